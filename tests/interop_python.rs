//! Interop: `interop/check_cert.py`, a Python reader written from `docs/evidence.md` and
//! `docs/binding.md`, must read the certificates this crate issues, recompute their report_data
//! binding, and tell good certificates from bad ones.
//!
//! Needs `python3` with the packages of `interop/requirements.txt`. Under `CI=true` their absence
//! fails the test; elsewhere the test prints why and passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;

use ratls_quic::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::QuoteLayout;
use ratls_quic::ReportData;
use ratls_quic::{certificate_report_data, issue_certificate};
use ratls_quic::{Identity, PeerId};
use serde_json::Value;

const NOT_BEFORE: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const NOT_AFTER: u64 = NOT_BEFORE + 3600;
/// Offset of report_data inside a TD report (TD 1.0 and TD 1.5 alike).
const REPORT_DATA_IN_TD_REPORT: usize = 520;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether python3 and the checker's packages are there. Panics under CI when they are not.
fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography, cbor2, blake3"])
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "python3 lacks the packages of interop/requirements.txt: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("python3 cannot be run: {e}"),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{problem} (install them with `python3 -m pip install -r interop/requirements.txt`)"
        );
    }
    eprintln!("skipping the Python interop check: {problem}");
    false
}

/// Runs the checker on `cert`; returns its exit code and its JSON verdict.
fn check(cert: &Path, expected_peer: Option<&PeerId>) -> (i32, Value) {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("interop/check_cert.py")).arg(cert);
    if let Some(peer) = expected_peer {
        cmd.arg("--peer-id").arg(peer.to_string());
    }
    let out = cmd.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checker printed no JSON ({e}): stdout {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("checker exited"), verdict)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn synthetic_quote(pki: &SyntheticPki, report_data: ReportData) -> Vec<u8> {
    pki.quote(&QuoteSpec {
        report_data,
        measurements: sample_measurements(),
        tcb: SyntheticTcb::UpToDate,
    })
    .unwrap()
}

fn cert_with_quote(identity: &Identity, quote: &[u8]) -> Vec<u8> {
    issue_certificate(
        identity,
        NOT_BEFORE,
        NOT_AFTER,
        Some((AttestationLevel::TdxRemote, quote)),
    )
    .unwrap()
    .cert_der
    .to_vec()
}

#[test]
fn python_reader_agrees_with_issued_certificates() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(NOT_BEFORE)).unwrap();
    let identity = Identity::generate().unwrap();
    let peer = identity.peer_id();
    let bound = certificate_report_data(&peer, NOT_BEFORE, NOT_AFTER).unwrap();

    // A v4 quote binding this certificate.
    let quote = synthetic_quote(&pki, bound);
    let good = write(dir.path(), "good.der", &cert_with_quote(&identity, &quote));
    let (code, v) = check(&good, Some(&peer));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["peer_id"], peer.to_string());
    assert_eq!(v["peer_id_matches"], true);
    assert_eq!(v["quote_len"], quote.len());
    assert_eq!(v["quote_version"], 4);
    assert_eq!(v["report_data"], hex::encode(bound.as_bytes()));
    assert_eq!(v["report_data_matches"], true);
    assert_eq!(v["pubkey_hash_matches"], true);
    assert_eq!(v["level"], "TdxRemote");
    assert_eq!(v["not_before"], NOT_BEFORE);
    assert_eq!(v["not_after"], NOT_AFTER);

    // Without an expected PeerId, the checker names the one it found.
    let (code, v) = check(&good, None);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["peer_id"], peer.to_string());

    // The right certificate, but another PeerId expected.
    let stranger = Identity::generate().unwrap().peer_id();
    let (code, v) = check(&good, Some(&stranger));
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["peer_id_matches"], false);
    assert_eq!(v["report_data_matches"], true);

    // A quote that binds another key, carried in this key's certificate.
    let other = certificate_report_data(&stranger, NOT_BEFORE, NOT_AFTER).unwrap();
    let cert = cert_with_quote(&identity, &synthetic_quote(&pki, other));
    let (code, v) = check(&write(dir.path(), "other_key.der", &cert), Some(&peer));
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["report_data_matches"], false);
    assert_eq!(v["pubkey_hash_matches"], true);
    assert_eq!(v["peer_id"], peer.to_string());

    // A quote over this key but another validity period.
    let shifted = certificate_report_data(&peer, NOT_BEFORE, NOT_AFTER + 1).unwrap();
    let cert = cert_with_quote(&identity, &synthetic_quote(&pki, shifted));
    let (code, v) = check(&write(dir.path(), "other_validity.der", &cert), None);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["report_data_matches"], false);

    // A certificate without evidence (Software level) is readable but proves nothing.
    let software = issue_certificate(&identity, NOT_BEFORE, NOT_AFTER, None).unwrap();
    let (code, v) = check(&write(dir.path(), "software.der", &software.cert_der), None);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["evidence_present"], false);
    assert_eq!(v["peer_id"], peer.to_string());

    // A flipped bit in the signature.
    let mut forged = cert_with_quote(&identity, &quote);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let (code, v) = check(&write(dir.path(), "bad_signature.der", &forged), None);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["signature_valid"], false);
}

#[test]
fn python_reader_finds_report_data_in_v5_quotes() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate().unwrap();
    let peer = identity.peer_id();
    let bound = certificate_report_data(&peer, NOT_BEFORE, NOT_AFTER).unwrap();

    // A real v5 (TD 1.5 body) quote whose report_data is overwritten: its signature no longer
    // verifies, which the checker does not look at.
    let mut quote =
        std::fs::read(root().join("certs/vectors/v5_td15_gotdxguest_uptodate/quote.bin")).unwrap();
    let layout = QuoteLayout::parse(&quote).unwrap();
    assert_eq!(layout.version, 5);
    let at = layout.report_offset + REPORT_DATA_IN_TD_REPORT;
    quote[at..at + 64].copy_from_slice(bound.as_bytes());

    let cert = cert_with_quote(&identity, &quote);
    let (code, v) = check(&write(dir.path(), "v5.der", &cert), Some(&peer));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["quote_version"], 5);
    assert_eq!(v["quote_len"], quote.len());
    assert_eq!(v["report_data_matches"], true);
}

#[test]
fn python_reader_refuses_unreadable_input() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, v) = check(
        &write(dir.path(), "garbage.der", b"\x30\x82garbage, not DER"),
        None,
    );
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["ok"], false);

    let (code, _) = check(&write(dir.path(), "empty.der", b""), None);
    assert_eq!(code, 2);

    let (code, _) = check(&dir.path().join("missing.der"), None);
    assert_eq!(code, 2);

    // A good certificate cut short.
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(NOT_BEFORE)).unwrap();
    let identity = Identity::generate().unwrap();
    let bound = certificate_report_data(&identity.peer_id(), NOT_BEFORE, NOT_AFTER).unwrap();
    let cert = cert_with_quote(&identity, &synthetic_quote(&pki, bound));
    let (code, _) = check(
        &write(dir.path(), "truncated.der", &cert[..cert.len() / 2]),
        None,
    );
    assert_eq!(code, 2);

    // A certificate whose evidence extension holds a quote that is not TDX.
    let cert = cert_with_quote(&identity, b"not a quote");
    let (code, v) = check(&write(dir.path(), "not_a_quote.der", &cert), None);
    assert_eq!(code, 2, "{v:#}");
}
