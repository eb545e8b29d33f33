//! `ratls policy init` writes complete policies that load and pin what they were made from;
//! `ratls policy check` says what a policy admits and warns (exit 1) when it admits nobody.

mod cli_support;

use cli_support::{identity, ratls, software_policy};

const KEYS: [&str; 10] = [
    "mr_td",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "xfam",
    "td_attributes",
];

fn vector(file: &str) -> String {
    format!(
        "{}/certs/vectors/v4_tdx10_phala_uptodate/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn init_from_a_quote_pins_every_register_and_the_quote_is_then_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let out = ratls(
        dir.path(),
        &[
            "policy",
            "init",
            "--from-quote",
            &vector("quote.bin"),
            "--static-collateral",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("\n[dangerous]\nstatic_collateral = true"),
        "{}",
        out.stdout
    );
    for key in KEYS.iter().chain(&[
        "version",
        "level",
        "freshness",
        "allow_debug",
        "allow",
        "accepted_statuses",
        "advisory_deny",
    ]) {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{key} = "))),
            "{key} missing:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("= \"any\""), "{}", out.stdout);
    std::fs::write(dir.path().join("p.toml"), &out.stdout).unwrap();
    let (quote, collateral) = (vector("quote.bin"), vector("collateral.json"));
    let verified = ratls(
        dir.path(),
        &[
            "verify-quote",
            "--quote",
            &quote,
            "--collateral",
            &collateral,
            "--now",
            "1750377600",
            "--policy",
            "p.toml",
            "--json",
        ],
    );
    assert_eq!(verified.code, 0, "{}", verified.all());
    let json: serde_json::Value = serde_json::from_str(verified.stdout.trim()).unwrap();
    assert_eq!(json["profile"], "pinned");
    let check = ratls(dir.path(), &["policy", "check", "p.toml"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check.stdout.contains("pins mr_td, rtmr0"),
        "{}",
        check.all()
    );
    assert!(
        check.stdout.contains("collateral    STATIC"),
        "{}",
        check.all()
    );
}

/// Levels from TdxRemote up include the TdxRemote check: `policy init` at the default level
/// (TdxRaTlsBidirectional) needs a declared service or the explicit opt-out, and what it writes
/// with a service loads with that `[remote]` section.
#[test]
fn init_at_a_remote_level_declares_a_service_or_opts_out() {
    let dir = tempfile::tempdir().unwrap();
    let refused = ratls(
        dir.path(),
        &["policy", "init", "--from-quote", &vector("quote.bin")],
    );
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(refused.stdout.is_empty(), "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("TdxRaTlsBidirectional needs a collateral service")
            && refused.stderr.contains("--pccs URL")
            && refused.stderr.contains("--static-collateral"),
        "{}",
        refused.all()
    );
    // TdxLocal does not include the check.
    let local = ratls(
        dir.path(),
        &[
            "policy",
            "init",
            "--from-quote",
            &vector("quote.bin"),
            "--level",
            "TdxLocal",
        ],
    );
    assert_eq!(local.code, 0, "{}", local.all());
    assert!(!local.stdout.contains("[remote]"), "{}", local.stdout);

    let out = ratls(
        dir.path(),
        &[
            "policy",
            "init",
            "--from-quote",
            &vector("quote.bin"),
            "--pccs",
            "http://127.0.0.1:8081",
            "--max-collateral-age-secs",
            "300",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("[remote]")
            && out.stdout.contains("pccs = [\"http://127.0.0.1:8081\"]"),
        "{}",
        out.stdout
    );
    let policy = ratls_quic::Policy::from_toml(&out.stdout).unwrap();
    let remote = policy.remote().expect("[remote] written");
    assert_eq!(remote.services(), ["http://127.0.0.1:8081"]);
    assert_eq!(remote.max_collateral_age_secs(), 300);
    std::fs::write(dir.path().join("remote.toml"), &out.stdout).unwrap();
    let check = ratls(dir.path(), &["policy", "check", "remote.toml"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check
            .stdout
            .contains("collateral    fetched from http://127.0.0.1:8081 at most 300 s"),
        "{}",
        check.all()
    );

    // A hand-written file at the default level without [remote] is refused by check, naming
    // the missing section and the opt-out.
    let bare = out.stdout.split("\n[remote]").next().unwrap().to_owned();
    std::fs::write(dir.path().join("bare.toml"), &bare).unwrap();
    let check = ratls(dir.path(), &["policy", "check", "bare.toml"]);
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(
        check.stderr.contains("needs a [remote] section")
            && check.stderr.contains("static_collateral = true"),
        "{}",
        check.all()
    );
}

#[test]
fn init_from_measure_output_pins_what_was_measured_and_leaves_the_rest_any() {
    let dir = tempfile::tempdir().unwrap();
    let mr_td = "ab".repeat(48);
    std::fs::write(
        dir.path().join("m.json"),
        format!("{{\"mr_td\":\"{mr_td}\"}}"),
    )
    .unwrap();
    let out = ratls(
        dir.path(),
        &[
            "policy",
            "init",
            "--from-measure",
            "m.json",
            "--level",
            "TdxLocal",
            "--name",
            "fw",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(&format!("mr_td = \"{mr_td}\"")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("rtmr1 = \"any\""), "{}", out.stdout);
    assert!(
        out.stdout.contains("level = \"TdxLocal\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("name = \"fw\""), "{}", out.stdout);
    for key in KEYS {
        assert!(
            out.stdout.contains(&format!("\n{key} = ")),
            "{key}: {}",
            out.stdout
        );
    }
}

#[test]
fn init_from_a_software_certificate_or_garbage_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk"), b"junk").unwrap();
    for args in [
        &["policy", "init", "--from-cert", "junk"][..],
        &["policy", "init", "--from-quote", "junk"],
        &["policy", "init", "--from-measure", "junk"],
        &["policy", "init"],
    ] {
        let out = ratls(dir.path(), args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.all());
        assert!(out.stdout.is_empty(), "{}", out.all());
    }
}

#[test]
fn check_says_what_a_policy_admits_and_warns_when_it_admits_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (_, digest) = identity(dir.path(), "a.key");
    software_policy(dir.path(), "software.toml", &[&digest]);
    let out = ratls(dir.path(), &["policy", "check", "software.toml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains(&digest), "{}", out.all());
    software_policy(dir.path(), "nobody.toml", &[]);
    let out = ratls(dir.path(), &["policy", "check", "nobody.toml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("admits nobody"), "{}", out.all());
    std::fs::write(dir.path().join("broken.toml"), "version = 1\nlevel = 3\n").unwrap();
    let out = ratls(dir.path(), &["policy", "check", "broken.toml"]);
    assert_eq!(out.code, 2, "{}", out.all());
}
