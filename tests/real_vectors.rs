//! Real TDX quotes from `certs/vectors/`, each at its own `now`, and the negative matrix on them.

use ratls_quic::QuoteFormatError;
use ratls_quic::INTEL_SGX_ROOT_CA_DER;
use ratls_quic::{
    AttestationError, Collateral, DcapCheck, QuoteVerifier, TcbStatus, VerifiedQuote,
};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy, PolicyViolation, Register};

struct Vector {
    quote: Vec<u8>,
    collateral: Collateral,
    now: u64,
    valid_from: u64,
    valid_until: u64,
    expected_ok: bool,
    mr_td: String,
    report_data: String,
    signed_len: usize,
}

fn vector(name: &str) -> Vector {
    let dir = format!("{}/certs/vectors", env!("CARGO_MANIFEST_DIR"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/vectors.json")).unwrap()).unwrap();
    let entry = manifest
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap();
    let unix = |field: &str| {
        let text = entry[field].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp() as u64
    };
    Vector {
        quote: std::fs::read(format!("{dir}/{name}/quote.bin")).unwrap(),
        collateral: Collateral::from_json(
            &std::fs::read(format!("{dir}/{name}/collateral.json")).unwrap(),
        )
        .unwrap(),
        now: entry["now_unix"].as_u64().unwrap(),
        valid_from: unix("valid_from"),
        valid_until: unix("valid_until"),
        expected_ok: entry["expected"].as_str().unwrap().starts_with("OK"),
        mr_td: entry["mr_td"].as_str().unwrap().to_owned(),
        report_data: entry["report_data"].as_str().unwrap().to_owned(),
        signed_len: entry["signed_len"].as_u64().unwrap() as usize,
    }
}

const GOOD: [&str; 2] = ["v4_tdx10_phala_uptodate", "v5_td15_gotdxguest_uptodate"];

fn verify(
    v: &Vector,
    quote: &[u8],
    now: u64,
    policy: &Policy,
) -> Result<VerifiedQuote, AttestationError> {
    QuoteVerifier::intel().verify(quote, &v.collateral, now, policy)
}

fn dcap_check(result: Result<VerifiedQuote, AttestationError>) -> DcapCheck {
    match result {
        Err(e) => e
            .dcap_check()
            .unwrap_or_else(|| panic!("not a DCAP failure: {e}")),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn every_vector_gives_its_expected_result() {
    for name in GOOD
        .iter()
        .chain(["neg_v5_td15_phala_tcb_not_supported"].iter())
    {
        let v = vector(name);
        let result = verify(&v, &v.quote, v.now, &Policy::authenticity_only());
        assert_eq!(result.is_ok(), v.expected_ok, "{name}: {result:?}");
        if let Ok(quote) = result {
            assert_eq!(quote.tcb_status(), TcbStatus::UpToDate);
            assert!(quote.advisory_ids().is_empty());
            assert_eq!(hex::encode(quote.measurements().mr_td), v.mr_td);
            assert_eq!(hex::encode(quote.report_data().0), v.report_data);
            assert_eq!(quote.profile(), "any");
        }
    }
}

#[test]
fn tcb_not_supported_vector_is_refused_as_such() {
    let v = vector("neg_v5_td15_phala_tcb_not_supported");
    let check = dcap_check(verify(&v, &v.quote, v.now, &Policy::authenticity_only()));
    assert_eq!(check, DcapCheck::TcbLevelNotFound);
}

#[test]
fn now_outside_the_collateral_window_is_refused() {
    for name in GOOD {
        let v = vector(name);
        let policy = Policy::authenticity_only();
        assert!(verify(&v, &v.quote, v.valid_from + 1, &policy).is_ok());
        assert!(verify(&v, &v.quote, v.valid_until - 1, &policy).is_ok());
        assert_eq!(
            dcap_check(verify(&v, &v.quote, v.valid_from - 1, &policy)),
            DcapCheck::CollateralNotYetValid,
            "{name}"
        );
        assert_eq!(
            dcap_check(verify(&v, &v.quote, v.valid_until + 1, &policy)),
            DcapCheck::CollateralExpired,
            "{name}"
        );
    }
}

#[test]
fn zero_padding_is_dropped_and_digest_is_of_the_canonical_quote() {
    let v = vector("v4_tdx10_phala_uptodate");
    let policy = Policy::authenticity_only();
    let padded = verify(&v, &v.quote, v.now, &policy).unwrap();
    let trimmed = verify(&v, &v.quote[..4936], v.now, &policy).unwrap();
    assert_eq!(padded.quote_digest(), trimmed.quote_digest());
    // The digest names the canonical form: padding dropped, and for this vector the QE report
    // signature's high s replaced by n - s and the NUL after the PCK chain dropped.
    let canonical = ratls_quic::normalized_quote(&v.quote).unwrap();
    assert_eq!(canonical.len(), 4935);
    assert_eq!(padded.quote_digest(), blake3::hash(&canonical).as_bytes());
    assert_ne!(
        padded.quote_digest(),
        blake3::hash(&v.quote[..4936]).as_bytes()
    );

    let mut more = v.quote.clone();
    more.extend_from_slice(&[0; 100]);
    assert!(verify(&v, &more, v.now, &policy).is_ok());
    let mut junk = v.quote.clone();
    junk[4936] = 0xff;
    assert!(matches!(
        verify(&v, &junk, v.now, &policy),
        Err(AttestationError::Format(
            QuoteFormatError::TrailingBytes { .. }
        ))
    ));
}

fn flipped(quote: &[u8], offset: usize) -> Vec<u8> {
    let mut out = quote.to_vec();
    out[offset] ^= 0x01;
    out
}

#[test]
fn one_flipped_bit_is_refused_with_the_failing_check() {
    for name in GOOD {
        let v = vector(name);
        let policy = Policy::authenticity_only();
        let sig = v.signed_len + 4; // signature data: ECDSA sig (64), attestation key (64), cert data
        let qe_report = sig + 64 + 64 + 2 + 4; // cert type 6 (2) + size (4), then the QE report
        let cases = [
            ("header user data", 30, DcapCheck::QuoteSignature),
            (
                "MRTD in the body",
                v.signed_len - 584 + 136,
                DcapCheck::QuoteSignature,
            ),
            ("report_data", v.signed_len - 1, DcapCheck::QuoteSignature),
            ("quote signature", sig + 5, DcapCheck::QuoteSignature),
            ("attestation key", sig + 64 + 10, DcapCheck::QeReportBinding),
            ("QE report", qe_report + 100, DcapCheck::QeReportSignature),
            (
                "QE report signature",
                qe_report + 384 + 3,
                DcapCheck::QeReportSignature,
            ),
        ];
        for (what, offset, expected) in cases {
            let check = dcap_check(verify(&v, &flipped(&v.quote, offset), v.now, &policy));
            assert_eq!(check, expected, "{name}: {what}");
        }
    }
}

#[test]
fn tampered_pck_chain_is_refused() {
    let v = vector("v4_tdx10_phala_uptodate");
    // The PEM chain sits in the certification data; change one base64 digit of the PCK leaf's
    // signature region (well inside the first certificate).
    let begin = b"-----BEGIN CERTIFICATE-----\n";
    let start = v
        .quote
        .windows(begin.len())
        .position(|w| w == begin)
        .unwrap();
    let end_marker: &[u8] = b"-----END CERTIFICATE-----";
    let end = start
        + v.quote[start..]
            .windows(end_marker.len())
            .position(|w| w == end_marker)
            .unwrap();
    let mut tampered = v.quote.clone();
    let target = end - 20;
    tampered[target] = if tampered[target] == b'A' { b'B' } else { b'A' };
    let result = verify(&v, &tampered, v.now, &Policy::authenticity_only());
    assert_eq!(dcap_check(result), DcapCheck::PckChain);
}

#[test]
fn tampered_collateral_is_refused() {
    let v = vector("v4_tdx10_phala_uptodate");
    let mut dcap = v.collateral.dcap().clone();
    dcap.tcb_info = dcap.tcb_info.replacen("UpToDate", "UpToDatf", 1);
    let tampered = Collateral::new(dcap).unwrap();
    let result =
        QuoteVerifier::intel().verify(&v.quote, &tampered, v.now, &Policy::authenticity_only());
    assert_eq!(dcap_check(result), DcapCheck::TcbInfo);

    let mut dcap = v.collateral.dcap().clone();
    dcap.qe_identity_signature[10] ^= 1;
    let tampered = Collateral::new(dcap).unwrap();
    let result =
        QuoteVerifier::intel().verify(&v.quote, &tampered, v.now, &Policy::authenticity_only());
    assert_eq!(dcap_check(result), DcapCheck::QeIdentity);
}

#[test]
fn wrong_root_is_refused() {
    let v = vector("v4_tdx10_phala_uptodate");
    // A self-signed root that is not Intel's: the PCK Platform CA's issuer chain has only Intel
    // roots, so take a fresh one.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Intel SGX Root CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = params.self_signed(&key).unwrap();
    let verifier = QuoteVerifier::dangerous().trust_root(root.der().to_vec());
    assert!(!verifier.trusts_intel_root());
    let result = verifier.verify(&v.quote, &v.collateral, v.now, &Policy::authenticity_only());
    assert_eq!(dcap_check(result), DcapCheck::RootOrCrl);
    assert!(QuoteVerifier::dangerous()
        .trust_root(INTEL_SGX_ROOT_CA_DER.to_vec())
        .trusts_intel_root());
}

fn exact_policy(quote: &VerifiedQuote) -> Policy {
    Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "pinned",
        quote.measurements(),
    )]))
}

fn violation(result: Result<VerifiedQuote, AttestationError>) -> PolicyViolation {
    match result {
        Err(AttestationError::Policy { violation, .. }) => violation,
        other => panic!("expected a policy violation, got {other:?}"),
    }
}

#[test]
fn measurement_mismatches_are_named() {
    let v = vector("v5_td15_gotdxguest_uptodate");
    let accepted = verify(&v, &v.quote, v.now, &Policy::authenticity_only()).unwrap();
    let policy = exact_policy(&accepted);
    assert_eq!(
        verify(&v, &v.quote, v.now, &policy).unwrap().profile(),
        "pinned"
    );

    type Change = fn(&mut ratls_quic::Measurements);
    let cases: [(Register, Change); 4] = [
        (Register::MrTd, |m| m.mr_td[0] ^= 1),
        (Register::Rtmr1, |m| m.rtmr[1][47] ^= 1),
        (Register::Rtmr3, |m| m.rtmr[3][0] ^= 1),
        (Register::MrConfigId, |m| m.mr_config_id[5] ^= 1),
    ];
    for (register, change) in cases {
        let mut expected = *accepted.measurements();
        change(&mut expected);
        let policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
            "pinned", &expected,
        )]));
        match violation(verify(&v, &v.quote, v.now, &policy)) {
            PolicyViolation::Measurements(m) => {
                assert_eq!(m.mismatches, vec![("pinned".to_owned(), register)])
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn empty_policy_and_unaccepted_status_are_refused() {
    let v = vector("v4_tdx10_phala_uptodate");
    let empty = Policy::new(MeasurementPolicy::default());
    assert!(matches!(
        violation(verify(&v, &v.quote, v.now, &empty)),
        PolicyViolation::Measurements(m) if m.mismatches.is_empty()
    ));

    let mut policy = Policy::authenticity_only();
    policy.tcb.accepted_statuses = [TcbStatus::OutOfDate].into();
    assert_eq!(
        violation(verify(&v, &v.quote, v.now, &policy)),
        PolicyViolation::TcbStatus(TcbStatus::UpToDate)
    );
}

#[test]
fn truncated_quotes_are_refused_as_format_errors() {
    let v = vector("v5_td15_gotdxguest_uptodate");
    for len in [0, 10, 48, 600, v.signed_len + 3, 4000, v.quote.len() - 1] {
        assert!(
            matches!(
                verify(&v, &v.quote[..len], v.now, &Policy::authenticity_only()),
                Err(AttestationError::Format(QuoteFormatError::Truncated { .. }))
            ),
            "length {len}"
        );
    }
}

#[test]
fn collateral_age_limit_applies() {
    let v = vector("v4_tdx10_phala_uptodate");
    let mut policy = Policy::authenticity_only();
    let age = v.now
        - v.collateral
            .tcb_info_issued()
            .min(v.collateral.qe_identity_issued());
    policy.tcb.max_collateral_age_secs = Some(age);
    assert!(verify(&v, &v.quote, v.now, &policy).is_ok());
    policy.tcb.max_collateral_age_secs = Some(age - 1);
    assert!(matches!(
        violation(verify(&v, &v.quote, v.now, &policy)),
        PolicyViolation::CollateralTooOld { .. }
    ));
}

/// Offsets of the two ECDSA `s` values (quote signature, QE report signature), the PCK chain
/// and the three length fields that end with the quote.
struct SigOffsets {
    quote_s: usize,
    qe_s: usize,
    pem: usize,
    lengths: [usize; 3],
}

fn offsets(quote: &[u8]) -> SigOffsets {
    let layout = ratls_quic::QuoteLayout::parse(quote).unwrap();
    let sig = layout.signed_len + 4;
    let outer = sig + 128;
    SigOffsets {
        quote_s: sig + 32,
        qe_s: outer + 6 + 384 + 32,
        pem: layout.pck_chain_offset,
        lengths: [layout.signed_len, outer + 2, layout.pck_chain_offset - 4],
    }
}

/// n - s for P-256, big-endian.
fn negate_s(s: &mut [u8]) {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        s[i] = d.rem_euclid(256) as u8;
    }
}

/// `quote` cut to its length, with `edit` applied to the PCK chain text and the length fields
/// fixed up.
fn with_chain(quote: &[u8], edit: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let layout = ratls_quic::QuoteLayout::parse(quote).unwrap();
    let o = offsets(quote);
    let pem = &quote[o.pem..layout.canonical_len];
    let edited = edit(pem);
    let delta = edited.len() as i64 - pem.len() as i64;
    let mut out = quote[..o.pem].to_vec();
    out.extend_from_slice(&edited);
    for at in o.lengths {
        let value = u32::from_le_bytes(out[at..at + 4].try_into().unwrap()) as i64 + delta;
        out[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
    }
    out
}

#[test]
fn every_spelling_of_a_real_quote_has_one_digest_or_is_refused() {
    let policy = Policy::authenticity_only();
    for name in GOOD {
        let v = vector(name);
        let o = offsets(&v.quote);
        let canonical = ratls_quic::normalized_quote(&v.quote).unwrap();
        // The canonical form verifies with real DCAP, and names the quote.
        let reference = verify(&v, &canonical, v.now, &policy).unwrap();
        assert_eq!(
            reference.quote_digest(),
            blake3::hash(&canonical).as_bytes(),
            "{name}"
        );
        assert_eq!(
            ratls_quic::normalized_quote(&canonical).unwrap(),
            canonical,
            "{name}: canonical form is a fixed point"
        );

        let mut quote_s = v.quote.clone();
        negate_s(&mut quote_s[o.quote_s..o.quote_s + 32]);
        let mut qe_s = v.quote.clone();
        negate_s(&mut qe_s[o.qe_s..o.qe_s + 32]);
        let without_nul = with_chain(&v.quote, |pem| pem.strip_suffix(b"\0").unwrap().to_vec());
        let same: [(&str, Vec<u8>); 4] = [
            ("other s of the quote signature", quote_s),
            ("other s of the QE report signature", qe_s),
            ("no NUL after the chain", without_nul),
            ("zero padding", [v.quote.clone(), vec![0; 32]].concat()),
        ];
        for (what, variant) in same {
            let verified = verify(&v, &variant, v.now, &policy)
                .unwrap_or_else(|e| panic!("{name}, {what}: {e}"));
            assert_eq!(
                verified.quote_digest(),
                reference.quote_digest(),
                "{name}, {what}"
            );
        }

        let relabel = |pem: &[u8]| {
            let text = String::from_utf8(pem.to_vec()).unwrap();
            text.replacen("BEGIN CERTIFICATE", "BEGIN TRUSTED CERTIFICATE", 1)
                .replacen("END CERTIFICATE", "END TRUSTED CERTIFICATE", 1)
                .into_bytes()
        };
        let crlf = |pem: &[u8]| {
            String::from_utf8(pem.to_vec())
                .unwrap()
                .replace('\n', "\r\n")
                .into_bytes()
        };
        let blank_line = |pem: &[u8]| {
            let text = String::from_utf8(pem.to_vec()).unwrap();
            text.replacen("-----\n", "-----\n\n", 1).into_bytes()
        };
        let short_line = |pem: &[u8]| {
            // One base64 line split in two: the same certificate, another line layout.
            let text = String::from_utf8(pem.to_vec()).unwrap();
            let at = text.find("-----\n").unwrap() + 6 + 10;
            format!("{}\n{}", &text[..at], &text[at..]).into_bytes()
        };
        let two_nuls = |pem: &[u8]| [pem, b"\0"].concat();
        let refused: [(&str, Vec<u8>); 5] = [
            ("relabelled section", with_chain(&v.quote, relabel)),
            ("CRLF", with_chain(&v.quote, crlf)),
            ("blank line", with_chain(&v.quote, blank_line)),
            ("short line", with_chain(&v.quote, short_line)),
            ("two NULs", with_chain(&v.quote, two_nuls)),
        ];
        for (what, variant) in refused {
            match verify(&v, &variant, v.now, &policy) {
                Err(AttestationError::Format(QuoteFormatError::PckChainEncoding(_))) => {}
                other => panic!("{name}, {what}: {other:?}"),
            }
        }
    }
}
