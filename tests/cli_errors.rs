//! Errors of the `ratls` tool that say what went wrong once, where, and what to do.

mod cli_support;

use std::time::Duration;

use cli_support::{identity, ratls, software_policy, Server};
use ratls_quic::synthetic::{sample_measurements, SyntheticPki, SyntheticPkiParams};

#[test]
fn a_cause_is_not_repeated_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_, digest) = identity(dir.path(), "server.key");
    software_policy(dir.path(), "server.toml", &[&digest]);
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = ratls(
        dir.path(),
        &["serve", "--listen", &addr, "--policy", "server.toml"],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains(&format!("binding {addr}")),
        "{}",
        out.all()
    );
    assert_eq!(
        out.stderr.matches("Address already in use").count(),
        1,
        "{}",
        out.all()
    );
}

#[test]
fn hex_errors_in_policy_files_name_their_line_and_0x_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, digest) = identity(dir.path(), "server.key");
    std::fs::write(
        dir.path().join("bad.toml"),
        "version = 1\nlevel = \"Software\"\n\n[software]\nallow = [\n  \"00ff\",\n]\n",
    )
    .unwrap();
    let out = ratls(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--policy", "bad.toml"],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("bad.toml: line 6: software.allow"),
        "{}",
        out.all()
    );
    // The same digest with a 0x prefix is read, as `quote --report-data` reads one.
    std::fs::write(
        dir.path().join("ok.toml"),
        format!("version = 1\nlevel = \"Software\"\n[software]\nallow = [\"0x{digest}\"]\n"),
    )
    .unwrap();
    let out = ratls(dir.path(), &["policy", "check", "ok.toml"]);
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn a_stale_synthetic_pki_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    // The PKI of an earlier server run: not the one the running server signs with.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stale = SyntheticPki::generate(SyntheticPkiParams::new(now - 86_400)).unwrap();
    std::fs::create_dir(dir.path().join("old")).unwrap();
    std::fs::write(dir.path().join("old/root.der"), stale.root_der()).unwrap();
    std::fs::write(
        dir.path().join("old/collateral.json"),
        stale.collateral_json().unwrap(),
    )
    .unwrap();
    let (_, client_digest) = identity(dir.path(), "client.key");
    software_policy(dir.path(), "server.toml", &[&client_digest]);
    let m = sample_measurements();
    std::fs::write(
        dir.path().join("client.toml"),
        format!(
            "version = 1\nlevel = \"TdxLocal\"\n[[profile]]\nname = \"synthetic\"\nmr_td = \"{}\"\nrtmr0 = \"any\"\nrtmr1 = \"any\"\nrtmr2 = \"any\"\nrtmr3 = \"any\"\nmr_config_id = \"any\"\nmr_owner = \"any\"\nmr_owner_config = \"any\"\n",
            hex::encode(m.mr_td)
        ),
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--once",
            "--synthetic",
            "--policy",
            "server.toml",
        ],
    );
    let client = ratls(
        dir.path(),
        &[
            "connect",
            &server.addr,
            "--policy",
            "client.toml",
            "--identity",
            "client.key",
            "--root",
            "old/root.der",
            "--collateral",
            "old/collateral.json",
        ],
    );
    assert_eq!(client.code, 1, "{}", client.all());
    assert!(
        client.stdout.contains("this side refused the peer"),
        "{}",
        client.all()
    );
    assert!(
        client
            .stdout
            .contains("hint: wrong or stale root/collateral?"),
        "{}",
        client.all()
    );
    assert!(
        client.stdout.contains("valid for that server run only"),
        "{}",
        client.all()
    );
    let served = server.finish(Duration::from_secs(60));
    assert_eq!(served.code, 1, "{}", served.all());
}

#[test]
fn progress_goes_to_terminals_only_never_into_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let out = ratls(dir.path(), &["demo", "--bonds", "3"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!out.stderr.contains("bonds 0/3"), "{}", out.all());
    assert!(!out.stderr.contains('\r'), "{}", out.all());
}

#[test]
fn serve_and_connect_take_a_pem_root_and_refuse_a_root_that_is_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_, digest) = identity(dir.path(), "a.key");
    software_policy(dir.path(), "p.toml", &[&digest]);
    std::fs::write(dir.path().join("junk.der"), b"junk").unwrap();
    for command in ["serve", "connect"] {
        let mut args = vec![command, "--policy", "p.toml", "--root", "junk.der"];
        args.extend_from_slice(match command {
            "serve" => &["--listen", "127.0.0.1:0", "--once"][..],
            _ => &["127.0.0.1:9", "--timeout", "1"][..],
        });
        let out = ratls(dir.path(), &args);
        assert_eq!(out.code, 2, "{command}: {}", out.all());
        assert!(
            out.stderr
                .contains("--root junk.der: not a DER or PEM certificate"),
            "{}",
            out.all()
        );
    }
    let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/intel_sgx_root_ca.pem");
    let out = ratls(
        dir.path(),
        &[
            "connect",
            "127.0.0.1:9",
            "--timeout",
            "1",
            "--policy",
            "p.toml",
            "--root",
            pem,
        ],
    );
    assert_eq!(
        out.code,
        1,
        "a PEM root loads; nothing answers: {}",
        out.all()
    );
    assert!(out.stdout.contains("no answer"), "{}", out.all());
}
