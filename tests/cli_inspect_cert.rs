//! `ratls inspect-cert` on certificates issued here, and on garbage.

use std::process::Command;

use ratls_quic::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::ReportData;
use ratls_quic::{certificate_report_data, issue_certificate};

const NOT_BEFORE: u64 = 1_750_000_000;
const NOT_AFTER: u64 = NOT_BEFORE + 3600;

fn run(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ratls"))
        .arg("inspect-cert")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// A certificate whose quote carries `report_data` (the binding when `None`).
fn attested_cert(identity: &Identity, report_data: Option<ReportData>) -> Vec<u8> {
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(NOT_BEFORE)).unwrap();
    let bound = certificate_report_data(&identity.peer_id(), NOT_BEFORE, NOT_AFTER).unwrap();
    let quote = pki
        .quote(&QuoteSpec {
            report_data: report_data.unwrap_or(bound),
            measurements: sample_measurements(),
            tcb: SyntheticTcb::UpToDate,
        })
        .unwrap();
    issue_certificate(
        identity,
        NOT_BEFORE,
        NOT_AFTER,
        Some((AttestationLevel::TdxLocal, &quote)),
    )
    .unwrap()
    .cert_der
    .to_vec()
}

#[test]
fn attested_certificate_shows_peer_measurements_and_binding() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate().unwrap();
    let path = dir.path().join("cert.der");
    std::fs::write(&path, attested_cert(&identity, None)).unwrap();

    let (code, out) = run(&[path.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("peer id       {}", identity.peer_id())),
        "{out}"
    );
    assert!(out.contains("UNVERIFIED"), "{out}");
    assert!(out.contains(&format!(
        "mr_td         {}",
        hex::encode(sample_measurements().mr_td)
    )));
    assert!(out.contains("binding: ok"), "{out}");

    let (code, out) = run(&["--json".as_ref(), path.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["peer_id"], identity.peer_id().to_string());
    assert_eq!(json["binding"], "ok");
    assert_eq!(json["not_after"], NOT_AFTER);
    assert_eq!(json["evidence"]["quote"]["verified"], false);
    assert_eq!(json["evidence"]["level"], "TdxLocal");
}

#[test]
fn pem_certificate_is_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate().unwrap();
    let der = attested_cert(&identity, None);
    let pem = pem_armour(&der);
    let path = dir.path().join("cert.pem");
    std::fs::write(&path, pem).unwrap();
    let (code, out) = run(&[path.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&identity.peer_id().to_string()), "{out}");
}

#[test]
fn quote_bound_to_something_else_is_a_mismatch_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate().unwrap();
    let path = dir.path().join("cert.der");
    std::fs::write(&path, attested_cert(&identity, Some(ReportData([7; 64])))).unwrap();
    let (code, out) = run(&[path.as_os_str()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("binding: MISMATCH"), "{out}");
}

#[test]
fn software_certificate_has_no_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate().unwrap();
    let der = issue_certificate(&identity, NOT_BEFORE, NOT_AFTER, None).unwrap();
    let path = dir.path().join("cert.der");
    std::fs::write(&path, der.cert_der.as_ref()).unwrap();
    let (code, out) = run(&[path.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("evidence        none"), "{out}");
}

#[test]
fn garbage_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage");
    std::fs::write(&path, b"this is not a certificate").unwrap();
    assert_eq!(run(&[path.as_os_str()]).0, 2);
    let missing = dir.path().join("missing");
    assert_eq!(run(&[missing.as_os_str()]).0, 2);
}

/// PEM armour by hand: base64 at 64 columns.
fn pem_armour(der: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        body.join("\n")
    )
}
