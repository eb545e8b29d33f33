//! `ratls verify-quote` on the real v5 body-type-4 quote: accepted, with the fields of its
//! TD 1.5 report with extensions in the JSON.

use std::process::Command;

use serde_json::Value;

const NAME: &str = "v5_td15ex_phala_uptodate";

fn vectors_dir() -> String {
    format!("{}/certs/vectors", env!("CARGO_MANIFEST_DIR"))
}

fn entry() -> Value {
    let text = std::fs::read(format!("{}/vectors.json", vectors_dir())).unwrap();
    let manifest: Value = serde_json::from_slice(&text).unwrap();
    manifest
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == NAME)
        .unwrap()
        .clone()
}

fn verify(quote: &str, now: u64) -> (i32, Value) {
    let collateral = format!("{}/{NAME}/collateral.json", vectors_dir());
    let out = Command::new(env!("CARGO_BIN_EXE_ratls"))
        .args([
            "verify-quote",
            "--quote",
            quote,
            "--collateral",
            &collateral,
        ])
        .args(["--now", &now.to_string(), "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}")),
    )
}

#[test]
fn body_type_4_quote_is_accepted_with_its_extension_fields() {
    let entry = entry();
    let quote = format!("{}/{NAME}/quote.bin", vectors_dir());
    let (code, json) = verify(&quote, entry["now_unix"].as_u64().unwrap());
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["verdict"], "accepted");
    assert_eq!(json["quote_version"], 5);
    assert_eq!(json["td_report"], "td15ex");
    assert_eq!(json["tcb_status"], "UpToDate");
    for field in [
        "mr_td",
        "rtmr0",
        "report_data",
        "tee_tcb_svn2",
        "mr_servicetd",
    ] {
        assert_eq!(json[field], entry[field], "{field}");
    }
    assert_eq!(json["td15_ex"], entry["td15_ex"]);
}

#[test]
fn body_type_4_quote_with_a_changed_extension_byte_is_rejected() {
    let entry = entry();
    let mut bytes = std::fs::read(format!("{}/{NAME}/quote.bin", vectors_dir())).unwrap();
    bytes[54 + 700] ^= 0x80;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quote.bin");
    std::fs::write(&path, bytes).unwrap();
    let (code, json) = verify(path.to_str().unwrap(), entry["now_unix"].as_u64().unwrap());
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["reason"], "dcap:QuoteSignature");
    assert!(
        json["td15_ex"].is_null(),
        "unauthenticated fields are not reported"
    );
}
