//! `ratls verify-quote` on the real vectors: exit codes and the JSON contract.

use std::process::Command;

use serde_json::Value;

fn vectors_dir() -> String {
    format!("{}/certs/vectors", env!("CARGO_MANIFEST_DIR"))
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read(format!("{}/vectors.json", vectors_dir())).unwrap();
    serde_json::from_slice::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ratls"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn verify_json(name: &str, now: u64, extra: &[&str]) -> (i32, Value) {
    let dir = format!("{}/{name}", vectors_dir());
    let quote = format!("{dir}/quote.bin");
    let collateral = format!("{dir}/collateral.json");
    let now = now.to_string();
    let mut args = vec![
        "verify-quote",
        "--quote",
        &quote,
        "--collateral",
        &collateral,
        "--now",
        &now,
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(&args);
    let value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {stdout} {stderr}"));
    (code, value)
}

#[test]
fn every_vector_gives_its_expected_verdict() {
    for entry in manifest() {
        let name = entry["name"].as_str().unwrap();
        let now = entry["now_unix"].as_u64().unwrap();
        let expected_ok = entry["expected"].as_str().unwrap().starts_with("OK");
        let (code, json) = verify_json(name, now, &[]);
        if expected_ok {
            assert_eq!(code, 0, "{name}: {json}");
            assert_eq!(json["verdict"], "accepted");
            assert_eq!(json["tcb_status"], "UpToDate");
            assert_eq!(json["advisory_ids"], serde_json::json!([]));
            for field in [
                "mr_td",
                "rtmr0",
                "rtmr1",
                "rtmr2",
                "rtmr3",
                "mr_config_id",
                "td_attributes",
                "report_data",
            ] {
                assert_eq!(json[field], entry[field], "{name}: {field}");
            }
            let quote = std::fs::read(format!("{}/{name}/quote.bin", vectors_dir())).unwrap();
            // The digest of the canonical form (padding, high s and the chain's NUL normalised,
            // see docs/evidence.md), whose length is the parsed length less that NUL.
            let canonical = ratls_quic::normalized_quote(&quote).unwrap();
            assert_eq!(
                canonical.len() + 1,
                entry["parsed_len"].as_u64().unwrap() as usize
            );
            assert_eq!(
                json["quote_digest"],
                blake3::hash(&canonical).to_hex().as_str()
            );
            assert!(json.get("error").is_none());
        } else {
            assert_eq!(code, 1, "{name}: {json}");
            assert_eq!(json["verdict"], "rejected");
            assert_eq!(json["reason"], "dcap:TcbLevelNotFound");
            assert!(json["error"].as_str().unwrap().contains("TCB level"));
        }
    }
}

#[test]
fn now_before_and_after_the_window_is_rejected_with_a_reason() {
    for entry in manifest() {
        let name = entry["name"].as_str().unwrap();
        if !entry["expected"].as_str().unwrap().starts_with("OK") {
            continue;
        }
        let now = entry["now_unix"].as_u64().unwrap();
        let (code, json) = verify_json(name, now - 40 * 86_400, &[]);
        assert_eq!(code, 1);
        assert_eq!(
            json["reason"], "dcap:CollateralNotYetValid",
            "{name}: {json}"
        );
        let (code, json) = verify_json(name, now + 60 * 86_400, &[]);
        assert_eq!(code, 1);
        assert_eq!(json["reason"], "dcap:CollateralExpired", "{name}: {json}");
        assert!(
            json["mr_td"].is_null(),
            "unauthenticated fields are not reported"
        );
    }
}

#[test]
fn policy_file_pins_measurements() {
    let entry = &manifest()[0];
    let name = entry["name"].as_str().unwrap();
    let now = entry["now_unix"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write_policy = |mr_td: &str| {
        let path = dir.path().join(format!("{mr_td:.8}.toml"));
        let text = format!(
            "version = 1\nlevel = \"TdxLocal\"\n[[profile]]\nname = \"vector\"\nmr_td = \"{mr_td}\"\nrtmr0 = \"any\"\nrtmr1 = \"any\"\nrtmr2 = \"any\"\nrtmr3 = \"any\"\nmr_config_id = \"any\"\nmr_owner = \"any\"\nmr_owner_config = \"any\"\n"
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let good = write_policy(entry["mr_td"].as_str().unwrap());
    let (code, json) = verify_json(name, now, &["--policy", &good]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["profile"], "vector");

    let bad = write_policy(&"ab".repeat(48));
    let (code, json) = verify_json(name, now, &["--policy", &bad]);
    assert_eq!(code, 1);
    assert_eq!(json["reason"], "policy:Measurements");
    assert!(json["error"].as_str().unwrap().contains("mr_td"), "{json}");
    assert_eq!(
        json["mr_td"], entry["mr_td"],
        "authentic fields are reported"
    );
}

#[test]
fn input_errors_exit_2() {
    let entry = &manifest()[0];
    let dir = format!("{}/{}", vectors_dir(), entry["name"].as_str().unwrap());
    let quote = format!("{dir}/quote.bin");
    let collateral = format!("{dir}/collateral.json");
    let base = ["verify-quote", "--quote", &quote, "--now", "1750377600"];

    let (code, _, stderr) = run(&[&base[..], &["--collateral", "/nonexistent/c.json"]].concat());
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot open"), "{stderr}");

    let (code, _, stderr) = run(&[&base[..], &["--collateral", &quote]].concat());
    assert_eq!(code, 2);
    assert!(stderr.contains("collateral"), "{stderr}");

    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("p.toml");
    std::fs::write(&policy, "version = 1\nallow_debugg = true\n").unwrap();
    let policy = policy.to_str().unwrap();
    let (code, _, stderr) = run(&[
        &base[..],
        &["--collateral", &collateral, "--policy", policy],
    ]
    .concat());
    assert_eq!(code, 2);
    assert!(stderr.contains("allow_debugg"), "{stderr}");

    let (code, _, _) = run(&["verify-quote", "--quote", &quote]);
    assert_eq!(code, 2, "missing arguments are usage errors");
}
