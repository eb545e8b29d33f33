//! The evidence layer through its public API: issuer and verifier sides as the TLS layer will
//! drive them (quotes are fake blobs: this layer carries quotes, it does not verify them).

use proptest::prelude::*;
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::ReportData;
use ratls_quic::{
    certificate_report_data, issue_certificate, parse_certificate, report_data, verify_binding,
    BindingInput, EvidenceError, Role,
};

const NOW: u64 = 1_767_225_600;
const LIFETIME: u64 = 3600;
/// Offset of report_data in a TDX v4 quote (48-byte header + 520 bytes of TD report body before
/// it); the fake quote puts it at the same place.
const REPORT_DATA_OFFSET: usize = 568;
const QUOTE_LEN: usize = 5006;

/// A quote-shaped blob carrying `rd` where a TDX v4 quote does.
fn fake_quote(rd: &ReportData) -> Vec<u8> {
    let mut q = vec![0x5a; QUOTE_LEN];
    q[REPORT_DATA_OFFSET..REPORT_DATA_OFFSET + 64].copy_from_slice(rd.as_bytes());
    q
}

fn quote_report_data(quote: &[u8]) -> ReportData {
    ReportData(
        quote[REPORT_DATA_OFFSET..REPORT_DATA_OFFSET + 64]
            .try_into()
            .unwrap(),
    )
}

/// Issuer side: ask for a quote over the certificate binding, then issue.
fn attested_cert(id: &Identity) -> Vec<u8> {
    let rd = certificate_report_data(&id.peer_id(), NOW, NOW + LIFETIME).unwrap();
    let quote = fake_quote(&rd);
    issue_certificate(
        id,
        NOW,
        NOW + LIFETIME,
        Some((AttestationLevel::TdxLocal, &quote)),
    )
    .unwrap()
    .cert_der
    .to_vec()
}

/// Verifier side, minus quote verification: parse, validity, binding.
fn check(der: &[u8], now: u64) -> Result<(), EvidenceError> {
    let parsed = parse_certificate(der)?;
    parsed.check_validity(now)?;
    let evidence = parsed
        .evidence
        .as_ref()
        .ok_or(EvidenceError::Missing("evidence"))?;
    verify_binding(&parsed.binding_input(), &quote_report_data(&evidence.quote))
}

#[test]
fn attested_certificate_verifies_end_to_end() {
    let id = Identity::generate().unwrap();
    let der = attested_cert(&id);
    check(&der, NOW + 60).unwrap();
    assert_eq!(parse_certificate(&der).unwrap().peer_id, id.peer_id());
}

#[test]
fn quote_bound_to_another_key_is_rejected() {
    let victim = Identity::generate().unwrap();
    let attacker = Identity::generate().unwrap();
    // The attacker copies the victim's quote into a certificate for its own key.
    let stolen = parse_certificate(&attested_cert(&victim))
        .unwrap()
        .evidence
        .unwrap();
    let der = issue_certificate(
        &attacker,
        NOW,
        NOW + LIFETIME,
        Some((AttestationLevel::TdxLocal, &stolen.quote)),
    )
    .unwrap()
    .cert_der;
    assert!(matches!(
        check(&der, NOW + 60),
        Err(EvidenceError::BindingMismatch)
    ));
}

#[test]
fn quote_reused_with_other_validity_is_rejected() {
    let id = Identity::generate().unwrap();
    let old = parse_certificate(&attested_cert(&id))
        .unwrap()
        .evidence
        .unwrap();
    // Renewal must get a fresh quote: the validity is bound.
    let der = issue_certificate(
        &id,
        NOW + LIFETIME,
        NOW + 2 * LIFETIME,
        Some((AttestationLevel::TdxLocal, &old.quote)),
    )
    .unwrap()
    .cert_der;
    assert!(matches!(
        check(&der, NOW + LIFETIME + 1),
        Err(EvidenceError::BindingMismatch)
    ));
}

#[test]
fn expired_certificate_is_rejected() {
    let id = Identity::generate().unwrap();
    assert!(matches!(
        check(&attested_cert(&id), NOW + LIFETIME + 1),
        Err(EvidenceError::Expired { .. })
    ));
}

#[test]
fn bond_proof_with_roles_swapped_is_rejected() {
    let client = Identity::generate().unwrap().peer_id();
    let server = Identity::generate().unwrap().peer_id();
    let exporter = [0x33u8; 32];
    let bond = |role| BindingInput::Bond {
        role,
        client,
        server,
        exporter: &exporter,
    };
    let client_proof = report_data(&bond(Role::Client)).unwrap();
    verify_binding(&bond(Role::Client), &client_proof).unwrap();
    // The server's proof reflected back as the client's, or the client's from another connection.
    assert!(matches!(
        verify_binding(&bond(Role::Server), &client_proof),
        Err(EvidenceError::BindingMismatch)
    ));
    let other_conn = BindingInput::Bond {
        role: Role::Client,
        client,
        server,
        exporter: &[0x34u8; 32],
    };
    assert!(matches!(
        verify_binding(&other_conn, &client_proof),
        Err(EvidenceError::BindingMismatch)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_the_certificate_parser(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        prop_assert!(parse_certificate(&bytes).is_err());
    }

    #[test]
    fn any_flipped_byte_of_an_attested_certificate_is_rejected(
        pos in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let id = Identity::from_secret_bytes(&[9; 32]).unwrap();
        let mut der = attested_cert(&id);
        let i = pos.index(der.len());
        der[i] ^= xor;
        prop_assert!(check(&der, NOW + 60).is_err(), "flip at {}", i);
    }
}

#[test]
fn outer_signature_algorithm_in_another_der_spelling_is_rejected() {
    // The outer signatureAlgorithm is not covered by the self-signature: the OID's tag changed
    // (0x06 to 0x07) must not leave a second byte form of the same certificate accepted.
    let id = Identity::from_secret_bytes(&[9; 32]).unwrap();
    let mut der = attested_cert(&id);
    let tag = der.len() - 64 - 3 - 7 + 2;
    assert_eq!(der[tag], 0x06);
    der[tag] ^= 1;
    assert!(check(&der, NOW + 60).is_err());
}
