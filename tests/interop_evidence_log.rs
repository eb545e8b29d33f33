//! Interop: `interop/read_evidence_log.py`, a Python reader written from `docs/evidence-log.md`
//! and `docs/binding.md`, reads the log `ratls demo --evidence-log` writes: the same records and
//! digests as this crate, every quote's report_data recomputed from the recorded binding inputs,
//! checkpoint signatures; and it names exactly the record a changed byte or a forged binding
//! input damages.
//!
//! Needs `python3` with the packages of `interop/requirements.txt`. Under `CI=true` their absence
//! fails the test; elsewhere the test prints why and passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;

use ratls_quic::evidence_log::{record_digest, LogContents, LogEntry, Record, RecordBody};
use serde_json::Value;

const RATLS: &str = env!("CARGO_BIN_EXE_ratls");

fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography, blake3"])
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        Err(e) => format!("python3 cannot be run: {e}"),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{problem} (python3 -m pip install -r interop/requirements.txt)");
    }
    eprintln!("skipping the Python evidence-log reader: {problem}");
    false
}

fn read(log: &Path) -> (i32, Value) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/read_evidence_log.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout:?} {:?}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), json)
}

fn failing(json: &Value) -> Vec<(u64, Vec<String>)> {
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["failures"].as_array().unwrap().is_empty())
        .map(|r| {
            let failures = r["failures"].as_array().unwrap();
            (
                r["index"].as_u64().unwrap(),
                failures
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn python_reader_agrees_with_the_log_and_names_damaged_records() {
    if !python_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let out = Command::new(RATLS)
        .args(["demo", "--bonds", "1", "--evidence-log"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    let (code, json) = read(&log);
    assert_eq!(code, 0, "{json:#}");
    let contents = LogContents::read(&log).unwrap();
    let ours: Vec<(u64, String, u64)> = contents
        .entries()
        .iter()
        .map(|e| match e {
            LogEntry::Record {
                digest,
                record,
                offset,
                ..
            } => (record.index, hex::encode(digest), *offset),
            other => panic!("{other:?}"),
        })
        .collect();
    let theirs: Vec<(u64, String, u64)> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["digest"].as_str().unwrap().to_owned(),
                r["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    let kinds: Vec<_> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["bond-formed", "bond-formed", "bond-refused", "checkpoint"]
    );

    let path = log.join("segment-00000000.rqel");
    let original = std::fs::read(&path).unwrap();
    let start = |i: usize| ours[i].2 as usize;

    // One changed byte in record 1: exactly record 1.
    let mut changed = original.clone();
    changed[start(1) + 4000] ^= 0x02;
    std::fs::write(&path, &changed).unwrap();
    let (code, json) = read(&log);
    assert_eq!(code, 1);
    assert_eq!(failing(&json).iter().map(|f| f.0).collect::<Vec<_>>(), [1]);

    // Record 0 rewritten with another exporter and a matching digest: its bond quote no longer
    // binds, and record 1's link breaks.
    let payload = &original[start(0) + 8..start(1) - 32];
    let mut record = Record::decode(payload).unwrap();
    let RecordBody::BondFormed(formed) = &mut record.body else {
        panic!("{record:?}")
    };
    formed.exporter = vec![0x5a; 32];
    let payload = record.encode().unwrap();
    let mut forged = original[..start(0)].to_vec();
    forged.extend_from_slice(b"RQLR");
    forged.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    forged.extend_from_slice(&payload);
    forged.extend_from_slice(&record_digest(&payload));
    forged.extend_from_slice(&original[start(1)..]);
    std::fs::write(&path, &forged).unwrap();
    let (code, json) = read(&log);
    assert_eq!(code, 1);
    let failures = failing(&json);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0].0, 0);
    assert!(
        failures[0]
            .1
            .iter()
            .any(|f| f.starts_with("bond report_data")),
        "{failures:?}"
    );
    assert_eq!(failures[1], (1, vec!["chain broken".to_owned()]));
}
