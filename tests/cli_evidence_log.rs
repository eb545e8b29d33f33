//! `ratls audit` and `ratls retire` run as the built binary on a log written through the
//! library with synthetic quotes bound the way the endpoint binds them.

use std::fs;
use std::process::{Command, Output};

use common::evlog::evidence;
use ratls_quic::evidence_log::{LogStore, RecordBody, RetirementMarker, StoreOptions};
use ratls_quic::synthetic::{SyntheticPki, SyntheticPkiParams};
use ratls_quic::Collateral;
use ratls_quic::Identity;

mod common;

const RATLS: &str = env!("CARGO_BIN_EXE_ratls");
const ISSUED: u64 = 1_800_000_000;
const NOW: u64 = ISSUED + 3600;

struct Setup {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    log: std::path::PathBuf,
    root: std::path::PathBuf,
    client: Identity,
    server: Identity,
    /// Frame offsets of the records in segment 0.
    offsets: Vec<u64>,
}

/// Four formed bonds at NOW, NOW+10, NOW+20, NOW+30.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let log = dir.join("log");
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(ISSUED)).unwrap();
    let collateral = Collateral::new(pki.collateral().clone()).unwrap();
    let root = dir.join("root.der");
    fs::write(&root, pki.root_der()).unwrap();
    let client = Identity::generate().unwrap();
    let server = Identity::generate().unwrap();
    let (mut store, _) = LogStore::open(&log, StoreOptions::default()).unwrap();
    store.put_collateral(&collateral).unwrap();
    let mut offsets = Vec::new();
    for i in 0..4 {
        offsets.push(
            fs::metadata(log.join("segment-00000000.rqel"))
                .unwrap()
                .len(),
        );
        let time = NOW + 10 * i;
        store
            .append(
                time,
                RecordBody::BondFormed(evidence(&pki, &collateral, &client, &server, time)),
            )
            .unwrap();
    }
    Setup {
        _tmp: tmp,
        dir,
        log,
        root,
        client,
        server,
        offsets,
    }
}

fn audit(s: &Setup, extra: &[&str]) -> (Output, serde_json::Value) {
    let out = Command::new(RATLS)
        .arg("audit")
        .arg("--log")
        .arg(&s.log)
        .arg("--root")
        .arg(&s.root)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out, json)
}

#[test]
fn audit_of_an_honest_log_passes() {
    let s = setup();
    let (out, json) = audit(&s, &[]);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(json["passed"], true);
    assert_eq!(json["records"].as_array().unwrap().len(), 4);
    // The human form names every record and the summary.
    let out = Command::new(RATLS)
        .args(["audit", "--log"])
        .arg(&s.log)
        .arg("--root")
        .arg(&s.root)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("4 records, 0 failed"), "{text}");
}

#[test]
fn audit_names_exactly_the_record_with_a_changed_quote_byte() {
    let s = setup();
    let path = s.log.join("segment-00000000.rqel");
    let mut data = fs::read(&path).unwrap();
    data[s.offsets[1] as usize + 500] ^= 0x04;
    fs::write(&path, data).unwrap();
    let (out, json) = audit(&s, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["failed_records"], serde_json::json!([1]));
}

#[test]
fn audit_without_the_test_root_fails_every_record() {
    let s = setup();
    let out = Command::new(RATLS)
        .args(["audit", "--json", "--log"])
        .arg(&s.log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failed_records"], serde_json::json!([0, 1, 2, 3]));
}

#[test]
fn retire_writes_a_marker_and_audit_flags_records_after_it() {
    let s = setup();
    let old = s.dir.join("old.key");
    let new = s.dir.join("new.key");
    s.client.save(&old).unwrap();
    Identity::generate().unwrap().save(&new).unwrap();
    let marker = s.dir.join("retired.marker");
    let out = Command::new(RATLS)
        .args(["retire", "--identity"])
        .arg(&old)
        .arg("--successor")
        .arg(&new)
        .arg("--out")
        .arg(&marker)
        .args(["--time", &(NOW + 15).to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = RetirementMarker::decode(&fs::read(&marker).unwrap()).unwrap();
    parsed.verify().unwrap();
    assert_eq!(parsed.retired(), s.client.peer_id());
    assert_eq!(parsed.time(), NOW + 15);
    assert_eq!(
        parsed.successor(),
        Some(Identity::load(&new).unwrap().peer_id())
    );

    let (out, json) = audit(&s, &["--marker", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["failed_records"], serde_json::json!([2, 3]));
    let failure = json["records"][2]["failures"][0].as_str().unwrap();
    assert!(failure.contains("retired"), "{failure}");

    // A marker with a changed byte is an input error, not a silent no-op.
    let mut bytes = fs::read(&marker).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&marker, bytes).unwrap();
    let out = Command::new(RATLS)
        .args(["audit", "--log"])
        .arg(&s.log)
        .arg("--marker")
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn audit_with_a_checkpoint_from_before_a_truncation_fails() {
    let s = setup();
    let (mut store, _) = LogStore::open(&s.log, StoreOptions::default()).unwrap();
    let checkpoint = store.checkpoint(&s.server, NOW + 40).unwrap();
    drop(store);
    let cp_file = s.dir.join("cp");
    fs::write(&cp_file, checkpoint.to_bytes()).unwrap();
    let (out, json) = audit(&s, &["--checkpoint", cp_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{json}");
    // Cut the log back to two records, at a record boundary.
    let path = s.log.join("segment-00000000.rqel");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(s.offsets[2])
        .unwrap();
    let (out, json) = audit(&s, &["--checkpoint", cp_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["failed_records"], serde_json::json!([]));
    let failure = json["checkpoints"][0]["failure"].as_str().unwrap();
    assert!(failure.contains("truncated"), "{failure}");
}

#[test]
fn demo_log_audits_clean_and_names_a_changed_record_and_a_cut_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let out = Command::new(RATLS)
        .args(["demo", "--bonds", "1", "--evidence-log"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let audit = |extra: &[&str]| {
        let out = Command::new(RATLS)
            .arg("audit")
            .arg("--log")
            .arg(&log)
            .arg("--root")
            .arg(log.join("root.der"))
            .arg("--policy")
            .arg(log.join("policy.toml"))
            .arg("--checkpoint")
            .arg(log.join("checkpoint"))
            .arg("--json")
            .args(extra)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), json)
    };
    let (code, json) = audit(&[]);
    assert_eq!(code, Some(0), "{json}");
    let kinds: Vec<_> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    // Two bonds (the demo's first and one timed), the refused impostor, the checkpoint.
    assert_eq!(
        kinds,
        ["bond-formed", "bond-formed", "bond-refused", "checkpoint"]
    );

    let path = log.join("segment-00000000.rqel");
    let original = fs::read(&path).unwrap();
    let offset = |i: usize| json["records"][i]["offset"].as_u64().unwrap() as usize;
    let mut changed = original.clone();
    changed[offset(1) + 3000] ^= 0x01;
    fs::write(&path, &changed).unwrap();
    let (code, json_changed) = audit(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(json_changed["failed_records"], serde_json::json!([1]));

    // Cut mid-record: the checkpoint taken before exposes the truncation.
    fs::write(&path, &original[..offset(1) + 100]).unwrap();
    let (code, json_cut) = audit(&[]);
    assert_eq!(code, Some(1));
    let failure = json_cut["checkpoints"][0]["failure"].as_str().unwrap();
    assert!(failure.contains("truncated"), "{failure}");
    // The log reopens with the torn tail cut and record 0 intact.
    let (store, report) = LogStore::open(&log, StoreOptions::default()).unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(report.truncated_bytes, 100);
    drop(store);
}
