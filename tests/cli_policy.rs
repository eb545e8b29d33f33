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
        &["policy", "init", "--from-quote", &vector("quote.bin")],
    );
    assert_eq!(out.code, 0, "{}", out.all());
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
