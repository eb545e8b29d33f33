//! The fuzz corpora on the stable toolchain: every seed in `fuzz/corpus/<target>/` and every
//! regression input in `fuzz/regressions/<target>/` runs through its target's checks
//! (`ratls_quic::fuzzing`), so CI replays what fuzzing found without a nightly toolchain.
//!
//! `write_seeds` (ignored) regenerates the seeds from the real vectors in `certs/vectors/` and
//! from synthetic quotes: `cargo test --features fuzzing --test fuzz_corpus -- --ignored`.

#[allow(unreachable_pub, dead_code)]
#[path = "common/evlog.rs"]
mod evlog;

use std::fs;
use std::path::{Path, PathBuf};

use ratls_quic::evidence_log::protocol::{self, RecordBatch, Request};
use ratls_quic::evidence_log::{
    segment_path, BondRefusal, Checkpoint, LogStore, Record, RecordBody, RetirementMarker,
    StoreOptions,
};
use ratls_quic::fuzzing::{self, TARGETS};
use ratls_quic::pccs::wire::{encode_issuer_chain, parse_signed_json, SignedItem};
use ratls_quic::synthetic::SyntheticTcb;
use ratls_quic::synthetic::{sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams};
use ratls_quic::{
    batched_bond_message, bond_message, certificate_report_data, ed25519_spki_der,
    issue_certificate, AttestationLevel, BatchTree, Collateral, Evidence, Identity, NodeHash,
    Policy, ReportData, Role,
};

const NOW: u64 = 1_780_000_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("fuzz").join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_seed_and_regression_runs_through_its_target() {
    let mut total = 0;
    for target in TARGETS {
        let seeds = inputs("corpus", target);
        assert!(seeds.len() >= 3, "{target}: only {} seeds", seeds.len());
        for (path, bytes) in seeds.iter().chain(&inputs("regressions", target)) {
            let outcome = std::panic::catch_unwind(|| fuzzing::run(target, bytes));
            assert_eq!(
                outcome.ok(),
                Some(true),
                "{target} failed on {}",
                path.display()
            );
            total += 1;
        }
    }
    assert!(total > 30, "{total} inputs");
}

/// Seeds that the parsers refuse teach a fuzzer nothing about what lies past the checks: each
/// target has seeds its parser accepts.
#[test]
fn each_target_has_seeds_its_parser_accepts() {
    let accepted = |target: &str, accept: &dyn Fn(&[u8]) -> bool| {
        let n = inputs("corpus", target)
            .iter()
            .filter(|(_, b)| accept(b))
            .count();
        assert!(n >= 2, "{target}: {n} accepted seeds");
    };
    accepted("certificate", &|b| ratls_quic::parse_certificate(b).is_ok());
    accepted("evidence_extension", &|b| Evidence::decode(b).is_ok());
    accepted("quote_layout", &|b| {
        ratls_quic::QuoteLayout::parse(b).is_ok()
    });
    accepted("bond_proof", &|b| {
        b.starts_with(b"RQB1") || b.starts_with(b"RQB2")
    });
    accepted("collateral", &|b| {
        Collateral::from_json(b).is_ok()
            || parse_signed_json(b, SignedItem::TcbInfo).is_ok()
            || ratls_quic::pccs::wire::decode_crl(b, "CRL").is_ok()
    });
    accepted("policy_file", &|b| {
        Policy::from_toml(std::str::from_utf8(b).unwrap_or("")).is_ok()
    });
    accepted("evidence_log", &|b| {
        Record::decode(b).is_ok() || b.starts_with(b"RQEL") || Request::decode(b).is_ok()
    });
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn vectors() -> Vec<(String, PathBuf)> {
    let dir = root().join("certs/vectors");
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("quote.bin").exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

fn synthetic_quote(pki: &SyntheticPki, report_data: ReportData) -> Vec<u8> {
    pki.quote(&QuoteSpec {
        report_data,
        measurements: sample_measurements(),
        tcb: SyntheticTcb::UpToDate,
    })
    .unwrap()
}

/// Writes the seed corpora (deterministic names; synthetic keys differ per run).
#[test]
#[ignore = "regenerates fuzz/corpus; run by hand"]
fn write_seeds() {
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(NOW - 3600)).unwrap();
    let identity = Identity::generate().unwrap();
    let peer = identity.peer_id();
    let spki = ed25519_spki_der(&peer);
    let (nb, na) = (NOW - 60, NOW + 3600);
    let cert_rd = certificate_report_data(&peer, nb, na).unwrap();
    let synthetic = synthetic_quote(&pki, cert_rd);

    let mut quotes = vec![("synthetic_v4".to_owned(), synthetic.clone())];
    for (name, dir) in vectors() {
        quotes.push((name, fs::read(dir.join("quote.bin")).unwrap()));
    }

    // Quote layout: real v4, v5 TD 1.5 and v5 TD 1.5-with-extensions quotes, a synthetic one,
    // one with zero padding and one cut short.
    for (name, quote) in &quotes {
        write("quote_layout", name, quote);
    }
    let mut padded = synthetic.clone();
    padded.extend_from_slice(&[0; 64]);
    write("quote_layout", "synthetic_v4_padded", &padded);
    write("quote_layout", "synthetic_v4_truncated", &synthetic[..700]);

    // Evidence extension and certificates: each quote in the extension of a certificate.
    for (name, quote) in &quotes {
        let level = AttestationLevel::TdxLocal;
        write(
            "evidence_extension",
            name,
            &Evidence::new(level, quote.clone(), &spki).encode().unwrap(),
        );
    }
    for (name, quote) in quotes.iter().take(2) {
        let cert = issue_certificate(&identity, nb, na, Some((AttestationLevel::TdxLocal, quote)))
            .unwrap();
        write("certificate", name, cert.cert_der.as_ref());
    }
    let software = issue_certificate(&identity, nb, na, None).unwrap();
    write("certificate", "software", software.cert_der.as_ref());
    let real = &quotes.last().unwrap().1;
    let bidi = issue_certificate(
        &identity,
        nb,
        na,
        Some((AttestationLevel::TdxRaTlsBidirectional, real)),
    )
    .unwrap();
    write(
        "certificate",
        "bidirectional_real_quote",
        bidi.cert_der.as_ref(),
    );

    // Bond proofs: empty, single, batched (a leaf of a batch of five).
    write("bond_proof", "empty", &bond_message(None));
    write(
        "bond_proof",
        "single_synthetic",
        &bond_message(Some(&synthetic)),
    );
    write("bond_proof", "single_real", &bond_message(Some(real)));
    let leaves: Vec<NodeHash> = (0u8..5).map(|i| NodeHash([i; 32])).collect();
    let tree = BatchTree::new(leaves).unwrap();
    write(
        "bond_proof",
        "batched_3_of_5",
        &batched_bond_message(&synthetic, &tree.position(3).unwrap()),
    );

    // Collateral: the documents, the signed JSON bodies a service returns, issuer-chain
    // headers and CRLs.
    for (name, dir) in vectors().iter().take(2) {
        let read = |f: &str| fs::read(dir.join(f)).unwrap();
        write(
            "collateral",
            &format!("{name}_collateral.json"),
            &read("collateral.json"),
        );
        for (item, json, sig) in [
            ("tcb_info", "tcb_info.json", "tcb_info_signature.hex"),
            (
                "qe_identity",
                "qe_identity.json",
                "qe_identity_signature.hex",
            ),
        ] {
            let member = if item == "tcb_info" {
                "tcbInfo"
            } else {
                "enclaveIdentity"
            };
            let body = format!(
                "{{\"{member}\":{},\"signature\":\"{}\"}}",
                String::from_utf8(read(json)).unwrap().trim(),
                String::from_utf8(read(sig)).unwrap().trim()
            );
            write(
                "collateral",
                &format!("{name}_{item}_body.json"),
                body.as_bytes(),
            );
        }
        let chain = String::from_utf8(read("tcb_info_issuer_chain.pem")).unwrap();
        write(
            "collateral",
            &format!("{name}_issuer_chain_header"),
            encode_issuer_chain(&chain).as_bytes(),
        );
        write(
            "collateral",
            &format!("{name}_pck_crl.der"),
            &read("pck_crl.der"),
        );
        write(
            "collateral",
            &format!("{name}_root_crl.hex"),
            hex::encode(read("root_ca_crl.der")).as_bytes(),
        );
    }
    write(
        "collateral",
        "synthetic_collateral.json",
        pki.collateral_json().unwrap().as_bytes(),
    );

    // Policy files: the documented example, one per level, and a written-out policy.
    let doc = fs::read_to_string(root().join("docs/policy.md")).unwrap();
    let example = doc
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let example = example.replace(
        "<64 hex: a peer's sw digest, as `ratls identity KEY` prints it>",
        &hex::encode(identity.attestation_digest()),
    );
    assert!(
        Policy::from_toml(&example).is_ok(),
        "the documented example reads"
    );
    write("policy_file", "documented_example.toml", example.as_bytes());
    write(
        "policy_file",
        "software.toml",
        format!(
            "version = 1\nlevel = \"Software\"\n\n[software]\nallow = [\"{}\"]\n",
            hex::encode(identity.attestation_digest())
        )
        .as_bytes(),
    );
    write(
        "policy_file",
        "tdx_local_certificate.toml",
        b"version = 1\nlevel = \"TdxLocal\"\nfreshness = \"certificate\"\n\n[tcb]\naccepted_statuses = [\"UpToDate\", \"SWHardeningNeeded\"]\nmax_collateral_age_secs = 86400\n",
    );
    let written = Policy::from_toml(&example).unwrap().to_toml();
    write("policy_file", "written.toml", written.as_bytes());

    // Evidence log: a segment with a formed bond, a refusal, a checkpoint and a retirement;
    // the record payloads alone; the protocol's request and records response.
    let tmp = tempfile::tempdir().unwrap();
    let server = Identity::generate().unwrap();
    let collateral = Collateral::from_json(pki.collateral_json().unwrap().as_bytes()).unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    store
        .append(
            NOW,
            RecordBody::BondFormed(evlog::evidence(&pki, &collateral, &identity, &server, NOW)),
        )
        .unwrap();
    store
        .append(
            NOW + 1,
            RecordBody::BondRefused(BondRefusal {
                local: server.peer_id(),
                local_role: Role::Server,
                peer: Some(peer),
                reason: "measurement".into(),
                detail: "mr_td does not match".into(),
                cert_quote_digest: Some([7; 32]),
                bond_quote_digest: None,
                collateral_digest: Some(*collateral.digest()),
            }),
        )
        .unwrap();
    store.checkpoint(&server, NOW + 2).unwrap();
    let marker = RetirementMarker::create(&identity, NOW + 3, Some(&server)).unwrap();
    store
        .append(NOW + 3, RecordBody::Retirement(marker.clone()))
        .unwrap();
    let segment = fs::read(segment_path(tmp.path(), 0)).unwrap();
    write("evidence_log", "segment", &segment);
    let frames = store.frames(0, 16, 1 << 20).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        // A frame is magic (4), length (4), payload, digest (32).
        let payload = &frame[8..frame.len() - 32];
        assert!(Record::decode(payload).is_ok());
        write("evidence_log", &format!("record_{i}"), payload);
    }
    let checkpoint = Checkpoint::sign(&server, 3, store.head(), NOW + 4);
    write("evidence_log", "checkpoint", &checkpoint.to_bytes());
    write("evidence_log", "retirement_marker", &marker.encode());
    write(
        "evidence_log",
        "request_records",
        &Request::Records { from: 0, max: 16 }.encode(),
    );
    write(
        "evidence_log",
        "response_records",
        &protocol::encode_records(&RecordBatch {
            log_len: store.len(),
            checkpoint: store.last_checkpoint().cloned(),
            frames,
        }),
    );
}
