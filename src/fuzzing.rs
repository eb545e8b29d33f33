//! Entry points for the fuzz targets in `fuzz/` and the corpus replay test
//! (`tests/fuzz_corpus.rs`). Feature `fuzzing` only; **not a stable API**: names and behaviour
//! change without notice.
//!
//! Each function feeds one input to one parser that reads bytes a peer, a collateral service or
//! a file controls, and asserts what must hold of every input: the parser returns (a typed error
//! or a value, never a panic), and what it accepts survives a round trip through the matching
//! encoder. A failed assertion is a finding, so these functions panic on purpose.

use crate::evidence::{parse_certificate, Evidence, MAX_QUOTE_LEN};
use crate::evidence_log::{protocol, Checkpoint, Record, RetirementMarker};
use crate::policy::Policy;
use crate::tdx::quote::TdReportFields;
use crate::tdx::{canonical_quote, pck_chain_pem, Collateral, QuoteLayout, TdReportExtras};
use crate::tls::bond::{decode_proof, Proof};
use crate::tls::{batched_bond_message, bond_message};

/// The names of the targets, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: &[&str] = &[
    "certificate",
    "evidence_extension",
    "quote_layout",
    "bond_proof",
    "collateral",
    "policy_file",
    "evidence_log",
];

/// Runs the target named `name` on `data`; `false` when no target has that name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "certificate" => certificate(data),
        "evidence_extension" => evidence_extension(data),
        "quote_layout" => quote_layout(data),
        "bond_proof" => bond_proof(data),
        "collateral" => collateral(data),
        "policy_file" => policy_file(data),
        "evidence_log" => evidence_log(data),
        _ => return false,
    }
    true
}

/// Certificate evidence extraction: a peer's DER certificate, as the verifiers read it.
pub fn certificate(data: &[u8]) {
    let Ok(parsed) = parse_certificate(data) else {
        return;
    };
    assert!(parsed.not_before <= parsed.not_after, "validity inverted");
    let _ = parsed.binding_input();
    for now in [0, parsed.not_before, parsed.not_after, u64::MAX] {
        let _ = parsed.check_validity(now);
    }
    if let Some(evidence) = &parsed.evidence {
        assert!(
            evidence.matches_spki(&parsed.spki_der),
            "accepted evidence names another key"
        );
        round_trip_evidence(evidence);
        if let Ok(layout) = QuoteLayout::parse(&evidence.quote) {
            let _ = TdReportFields::parse(&evidence.quote, &layout);
        }
    }
}

/// The evidence extension's value: tagged CBOR holding the quote and the claims.
pub fn evidence_extension(data: &[u8]) {
    let Ok(evidence) = Evidence::decode(data) else {
        return;
    };
    assert!(evidence.quote.len() <= MAX_QUOTE_LEN, "quote over its cap");
    let encoded = round_trip_evidence(&evidence);
    // One byte form per value: the decoder accepts the canonical encoding only.
    assert_eq!(encoded, data, "a non-canonical extension was accepted");
}

fn round_trip_evidence(evidence: &Evidence) -> Vec<u8> {
    let encoded = evidence.encode().expect("accepted evidence re-encodes");
    let again = Evidence::decode(&encoded).expect("re-encoded evidence decodes");
    assert!(&again == evidence, "evidence round trip changed it");
    encoded
}

/// The layout of a DCAP quote, its TD report fields and the extra fields of TD 1.5 reports.
pub fn quote_layout(data: &[u8]) {
    let Ok(layout) = QuoteLayout::parse(data) else {
        assert!(canonical_quote(data).is_err() && pck_chain_pem(data).is_err());
        return;
    };
    assert!(
        layout.report_offset < layout.signed_len,
        "report outside the signed region"
    );
    assert!(
        layout.signed_len < layout.pck_chain_offset,
        "chain inside the signed region"
    );
    assert!(
        layout.pck_chain_offset <= layout.canonical_len,
        "chain past the quote"
    );
    assert!(
        layout.canonical_len <= data.len(),
        "quote longer than its bytes"
    );
    let canonical = canonical_quote(data).expect("a parsed quote has a canonical form");
    assert_eq!(canonical.len(), layout.canonical_len);
    assert!(
        data[layout.canonical_len..].iter().all(|&b| b == 0),
        "non-zero bytes after the quote were accepted"
    );
    // The canonical form is a fixed point with the same layout.
    assert_eq!(QuoteLayout::parse(canonical), Ok(layout));
    let chain = pck_chain_pem(data).expect("a parsed quote has a PCK chain");
    assert_eq!(chain.len(), layout.canonical_len - layout.pck_chain_offset);
    let fields = TdReportFields::parse(data, &layout).expect("a parsed quote has a TD report");
    let extras = TdReportExtras::parse(data, &layout).expect("a parsed quote has its extras");
    assert_eq!(extras.kind, layout.report);
    assert_eq!(
        TdReportFields::parse(canonical, &layout).expect("canonical TD report"),
        fields
    );
}

/// The bond proof message read from a peer's first unidirectional stream.
pub fn bond_proof(data: &[u8]) {
    let Ok(proof) = decode_proof(data) else {
        return;
    };
    let encoded = match &proof {
        Proof::Empty => bond_message(None),
        Proof::Single(quote) => {
            assert!(!quote.is_empty() && quote.len() <= MAX_QUOTE_LEN);
            bond_message(Some(quote))
        }
        Proof::Batched { quote, position } => {
            assert!(!quote.is_empty() && quote.len() <= MAX_QUOTE_LEN);
            batched_bond_message(quote, position)
        }
    };
    // One byte form per proof: what decodes is exactly what the encoder writes.
    assert_eq!(encoded, data, "a non-canonical bond proof was accepted");
}

/// Collateral as a collateral service serves it: the collateral JSON document, the signed TCB
/// info and QE identity bodies, issuer-chain headers and CRL bodies.
pub fn collateral(data: &[u8]) {
    use crate::pccs::wire::{
        decode_crl, decode_issuer_chain, encode_issuer_chain, parse_signed_json, signed_json_body,
        SignedItem, TCB_INFO_ISSUER_CHAIN,
    };
    if let Ok(collateral) = Collateral::from_json(data) {
        let _ = collateral.document_window();
        let _ = collateral.tcb_info_issued();
        let _ = collateral.qe_identity_issued();
    }
    for item in [SignedItem::TcbInfo, SignedItem::QeIdentity] {
        if let Ok(signed) = parse_signed_json(data, item) {
            assert_eq!(signed.signature.len(), 64);
            let body = signed_json_body(item, &signed);
            let again = parse_signed_json(body.as_bytes(), item).expect("re-encoded body parses");
            assert_eq!(again, signed, "signed JSON round trip changed it");
        }
    }
    if let Ok(pem) = decode_issuer_chain(data, TCB_INFO_ISSUER_CHAIN) {
        let header = encode_issuer_chain(&pem);
        let again = decode_issuer_chain(header.as_bytes(), TCB_INFO_ISSUER_CHAIN);
        // Encoding doubles at most threefold; a chain near the cap may not fit again.
        if let Ok(again) = again {
            assert_eq!(again, pem, "issuer chain round trip changed it");
        }
    }
    let _ = decode_crl(data, "CRL");
}

/// A policy file.
pub fn policy_file(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_toml(text) else {
        return;
    };
    let written = policy.to_toml();
    let again = Policy::from_toml(&written).expect("a written policy reads back");
    assert_eq!(again, policy, "policy file round trip changed it");
}

/// The evidence log as an auditor reads it: a segment file (header and frames), a record
/// payload, and the evidence protocol's requests and responses.
pub fn evidence_log(data: &[u8]) {
    for entry in crate::evidence_log::segment_entries(0, data) {
        if let crate::evidence_log::LogEntry::Record { record, .. } = entry {
            round_trip_record(&record);
        }
    }
    if let Ok(record) = Record::decode(data) {
        let encoded = round_trip_record(&record);
        assert_eq!(encoded, data, "a non-canonical record was accepted");
    }
    if let Ok(request) = protocol::Request::decode(data) {
        assert_eq!(
            request.encode(),
            data,
            "a non-canonical request was accepted"
        );
    }
    if let Ok(batch) = protocol::decode_records(data) {
        for frame in &batch.frames {
            assert!(!frame.is_empty());
        }
    }
    let _ = protocol::decode_collateral(data);
    if let Ok(checkpoint) = Checkpoint::from_bytes(data) {
        assert_eq!(
            checkpoint.to_bytes(),
            data,
            "a non-canonical checkpoint was accepted"
        );
        let _ = checkpoint.verify_signature();
    }
    if let Ok(marker) = RetirementMarker::decode(data) {
        assert_eq!(marker.encode(), data, "a non-canonical marker was accepted");
        let _ = marker.verify();
    }
}

fn round_trip_record(record: &Record) -> Vec<u8> {
    let encoded = record.encode().expect("an accepted record re-encodes");
    let again = Record::decode(&encoded).expect("a re-encoded record decodes");
    assert!(&again == record, "record round trip changed it");
    encoded
}
