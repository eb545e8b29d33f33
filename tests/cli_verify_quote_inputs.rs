//! `ratls verify-quote` exit codes, each tested: 0 accepted, 1 refused, 2 for input errors (a root
//! that is no certificate, an empty root or quote file); which root was trusted, and refusals
//! that say why (a validity window in UTC, a hint for milliseconds, a hint for a wrong root).

mod cli_support;

use std::path::Path;
use std::time::Duration;

use cli_support::{ratls, ratls_in, Output};
use ratls_quic::synthetic::{SyntheticPki, SyntheticPkiParams};

const VECTOR: &str = "v4_tdx10_phala_uptodate";
const NOW: u64 = 1_750_377_600;

fn vector(file: &str) -> String {
    format!(
        "{}/certs/vectors/{VECTOR}/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn intel(ext: &str) -> String {
    format!(
        "{}/certs/intel_sgx_root_ca.{ext}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn verify(dir: &Path, now: u64, extra: &[&str]) -> Output {
    let (quote, collateral, now) = (
        vector("quote.bin"),
        vector("collateral.json"),
        now.to_string(),
    );
    let mut args = vec![
        "verify-quote",
        "--quote",
        &quote,
        "--collateral",
        &collateral,
        "--now",
        &now,
    ];
    args.extend_from_slice(extra);
    ratls(dir, &args)
}

#[test]
fn accepted_exits_0_and_names_the_root_it_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let out = verify(dir.path(), NOW, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("root          Intel SGX Root CA (built in)"),
        "{}",
        out.all()
    );
    // The shipped PEM file is a root like the DER one.
    let pem = intel("pem");
    let out = verify(dir.path(), NOW, &["--root", &pem]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("(Intel SGX Root CA)"), "{}", out.all());
    let out = verify(dir.path(), NOW, &["--root", &pem, "--json"]);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["root_is_intel"], true);
}

#[test]
fn refused_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\nlevel = \"TdxLocal\"\n[[profile]]\nname = \"x\"\nmr_td = \"{}\"\nrtmr0 = \"any\"\nrtmr1 = \"any\"\nrtmr2 = \"any\"\nrtmr3 = \"any\"\nmr_config_id = \"any\"\nmr_owner = \"any\"\nmr_owner_config = \"any\"\n",
            "ab".repeat(48)
        ),
    )
    .unwrap();
    let out = verify(dir.path(), NOW, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.starts_with("root "), "{}", out.all());
    assert!(out.stdout.contains("rejected: "), "{}", out.all());
}

#[test]
fn a_root_that_is_no_certificate_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.der");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.path().join("random.der");
    std::fs::write(
        &random,
        (0..200u8).map(|b| b.wrapping_mul(37)).collect::<Vec<_>>(),
    )
    .unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(
        &key,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    for root in [&empty, &random, &key] {
        let out = verify(dir.path(), NOW, &["--root", root.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{}: {}", root.display(), out.all());
        assert!(
            out.stderr.contains("not a DER or PEM certificate"),
            "{}",
            out.all()
        );
        assert!(!out.stdout.contains("rejected"), "{}", out.all());
    }
}

#[test]
fn an_empty_quote_file_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [("empty.bin", &[][..]), ("zeros.bin", &[0u8; 64][..])] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let collateral = vector("collateral.json");
        let out = ratls(
            dir.path(),
            &[
                "verify-quote",
                "--quote",
                path.to_str().unwrap(),
                "--collateral",
                &collateral,
                "--now",
                "1750377600",
            ],
        );
        assert_eq!(out.code, 2, "{name}: {}", out.all());
        assert!(out.stderr.contains("empty"), "{}", out.all());
    }
}

#[test]
fn expired_collateral_shows_its_window_in_utc_and_spots_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let out = verify(dir.path(), NOW + 60 * 86_400, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("collateral valid from 20"),
        "{}",
        out.all()
    );
    assert!(out.stdout.contains(" UTC to 20"), "{}", out.all());
    assert!(
        out.stdout
            .contains("(--now 1755561600) is 2025-08-19 00:00:00 UTC"),
        "{}",
        out.all()
    );
    for debug_text in ["UnixTime(", "Expired {", "next_update:"] {
        assert!(!out.stdout.contains(debug_text), "{}", out.all());
    }
    assert!(!out.stdout.contains("milliseconds"), "{}", out.all());
    let out = verify(dir.path(), NOW * 1000, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout
            .contains("looks like milliseconds (try --now 1750377600)"),
        "{}",
        out.all()
    );
}

#[test]
fn another_root_is_logged_named_and_its_refusal_hints_at_a_stale_pki() {
    let dir = tempfile::tempdir().unwrap();
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(NOW)).unwrap();
    let root = dir.path().join("root.der");
    std::fs::write(&root, pki.root_der()).unwrap();
    let root = root.to_str().unwrap();
    let out = verify(dir.path(), NOW, &["--root", root]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("NOT Intel's SGX Root CA"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("hint: wrong or stale root/collateral?"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr
            .contains("trusts a root other than Intel's SGX Root CA"),
        "trusting another root is logged by default: {}",
        out.all()
    );
    // -q keeps errors only; RUST_LOG replaces the default filter.
    let (quote, collateral, now) = (
        vector("quote.bin"),
        vector("collateral.json"),
        NOW.to_string(),
    );
    let args = [
        "-q",
        "verify-quote",
        "--quote",
        &quote,
        "--collateral",
        &collateral,
        "--now",
        &now,
        "--root",
        root,
    ];
    let quiet = ratls_in(dir.path(), &args, &[], Duration::from_secs(60));
    assert!(!quiet.stderr.contains("trusts a root"), "{}", quiet.all());
    let off = ratls_in(
        dir.path(),
        &args[1..],
        &[("RUST_LOG", "off")],
        Duration::from_secs(60),
    );
    assert!(!off.stderr.contains("trusts a root"), "{}", off.all());
}
