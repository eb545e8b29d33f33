use rcgen::PKCS_ECDSA_P256_SHA256;

use super::*;
use crate::evidence::verify_binding;

const NOT_BEFORE: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const NOT_AFTER: u64 = NOT_BEFORE + 3600;
/// The size of a real TDX v4 quote with its certification data.
const QUOTE_LEN: usize = 5006;

fn fake_quote() -> Vec<u8> {
    (0..QUOTE_LEN).map(|i| (i % 251) as u8).collect()
}

fn identity() -> Identity {
    Identity::from_secret_bytes(&[0x42; 32]).unwrap()
}

/// Self-signs `params` with the identity key, bypassing `issue_certificate`'s choices.
fn sign_with(identity: &Identity, params: &CertificateParams) -> Vec<u8> {
    let key = identity.private_key_der().unwrap();
    let PrivateKeyDer::Pkcs8(der) = &*key else {
        panic!("not pkcs8")
    };
    let kp =
        KeyPair::from_pkcs8_der_and_sign_algo(der, crate::crypto::IDENTITY_CERT_ALGORITHM).unwrap();
    params.self_signed(&kp).unwrap().der().to_vec()
}

fn base_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.not_before = to_time(NOT_BEFORE).unwrap();
    params.not_after = to_time(NOT_AFTER).unwrap();
    params
}

fn evidence_ext(spki: &[u8], critical: bool) -> CustomExtension {
    let value = Evidence::new(AttestationLevel::TdxLocal, fake_quote(), spki)
        .encode()
        .unwrap();
    let mut ext = CustomExtension::from_oid_content(EVIDENCE_OID, value);
    ext.set_criticality(critical);
    ext
}

#[test]
fn software_certificate_round_trips_without_extension() {
    let id = identity();
    let issued = issue_certificate(&id, NOT_BEFORE, NOT_AFTER, None).unwrap();
    let parsed = parse_certificate(&issued.cert_der).unwrap();
    assert_eq!(parsed.peer_id, id.peer_id());
    assert_eq!(parsed.spki_der, ed25519_spki_der(&id.peer_id()));
    assert_eq!(
        (parsed.not_before, parsed.not_after),
        (NOT_BEFORE, NOT_AFTER)
    );
    assert!(parsed.evidence.is_none());
    println!("software certificate DER: {} bytes", issued.cert_der.len());
}

#[test]
fn certificate_with_quote_round_trips_and_binds() {
    let id = identity();
    let quote = fake_quote();
    let issued = issue_certificate(
        &id,
        NOT_BEFORE,
        NOT_AFTER,
        Some((AttestationLevel::TdxLocal, &quote)),
    )
    .unwrap();
    let parsed = parse_certificate(&issued.cert_der).unwrap();
    let ev = parsed.evidence.as_ref().unwrap();
    assert_eq!(ev.quote, quote);
    assert_eq!(ev.level, AttestationLevel::TdxLocal);
    assert!(ev.matches_spki(&parsed.spki_der));
    // The verifier's path: recompute from the parsed certificate, compare with the quote's value.
    let expected = certificate_report_data(&id.peer_id(), NOT_BEFORE, NOT_AFTER).unwrap();
    verify_binding(&parsed.binding_input(), &expected).unwrap();
    let other = certificate_report_data(&id.peer_id(), NOT_BEFORE, NOT_AFTER + 1).unwrap();
    assert!(matches!(
        verify_binding(&parsed.binding_input(), &other),
        Err(EvidenceError::BindingMismatch)
    ));
    println!(
        "certificate DER with a {QUOTE_LEN}-byte quote: {} bytes",
        issued.cert_der.len()
    );
    assert!(issued.cert_der.len() < QUOTE_LEN + 400);
}

#[test]
fn issued_key_loads_as_rustls_ring_provider_does() {
    use ring::signature::KeyPair as _;
    let id = identity();
    let issued = issue_certificate(&id, NOT_BEFORE, NOT_AFTER, None).unwrap();
    assert_eq!(issued.key_der, id.private_key_der().unwrap());
    // rustls' ring provider loads Ed25519 keys with this call.
    let kp =
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(issued.key_der.secret_der())
            .unwrap();
    assert_eq!(kp.public_key().as_ref(), id.peer_id().as_bytes());
}

#[test]
fn tampered_certificate_is_rejected() {
    let id = identity();
    let quote = fake_quote();
    let issued = issue_certificate(
        &id,
        NOT_BEFORE,
        NOT_AFTER,
        Some((AttestationLevel::TdxLocal, &quote)),
    )
    .unwrap();
    let der = issued.cert_der.to_vec();
    // Last byte: inside the signature.
    let mut bad = der.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    assert!(matches!(
        parse_certificate(&bad),
        Err(EvidenceError::BadSignature)
    ));
    // A byte in the middle of the quote: inside the signed part.
    let mut bad = der.clone();
    bad[der.len() / 2] ^= 0x01;
    assert!(matches!(
        parse_certificate(&bad),
        Err(EvidenceError::BadSignature)
    ));
}

#[test]
fn duplicate_evidence_extension_is_rejected() {
    let id = identity();
    let spki = ed25519_spki_der(&id.peer_id());
    let mut params = base_params();
    params.custom_extensions.push(evidence_ext(&spki, false));
    params.custom_extensions.push(evidence_ext(&spki, false));
    let der = sign_with(&id, &params);
    assert!(matches!(
        parse_certificate(&der),
        Err(EvidenceError::DuplicateExtension)
    ));
}

#[test]
fn critical_evidence_extension_is_rejected() {
    let id = identity();
    let spki = ed25519_spki_der(&id.peer_id());
    let mut params = base_params();
    params.custom_extensions.push(evidence_ext(&spki, true));
    let der = sign_with(&id, &params);
    assert!(matches!(
        parse_certificate(&der),
        Err(EvidenceError::Malformed("critical extension"))
    ));
}

#[test]
fn evidence_for_another_key_is_rejected() {
    let id = identity();
    let other = ed25519_spki_der(&Identity::from_secret_bytes(&[1; 32]).unwrap().peer_id());
    let mut params = base_params();
    params.custom_extensions.push(evidence_ext(&other, false));
    let der = sign_with(&id, &params);
    assert!(matches!(
        parse_certificate(&der),
        Err(EvidenceError::PubkeyMismatch)
    ));
}

#[test]
fn non_ed25519_certificate_is_rejected() {
    let kp = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let der = base_params().self_signed(&kp).unwrap().der().to_vec();
    assert!(matches!(
        parse_certificate(&der),
        Err(EvidenceError::UnsupportedAlgorithm)
    ));
}

#[test]
fn long_or_inverted_validity_is_refused() {
    let id = identity();
    for (nb, na) in [
        (NOT_BEFORE, NOT_BEFORE),
        (NOT_AFTER, NOT_BEFORE),
        (NOT_BEFORE, NOT_BEFORE + MAX_VALIDITY_SECS + 1),
    ] {
        assert!(matches!(
            issue_certificate(&id, nb, na, None),
            Err(EvidenceError::Malformed(_))
        ));
    }
    let mut params = base_params();
    params.not_after = to_time(NOT_BEFORE + 10 * MAX_VALIDITY_SECS).unwrap();
    assert!(matches!(
        parse_certificate(&sign_with(&id, &params)),
        Err(EvidenceError::Malformed(_))
    ));
}

#[test]
fn validity_is_checked_against_given_time() {
    let issued = issue_certificate(&identity(), NOT_BEFORE, NOT_AFTER, None).unwrap();
    let parsed = parse_certificate(&issued.cert_der).unwrap();
    assert!(parsed.check_validity(NOT_BEFORE).is_ok());
    assert!(parsed.check_validity(NOT_AFTER).is_ok());
    assert!(matches!(
        parsed.check_validity(NOT_AFTER + 1),
        Err(EvidenceError::Expired { .. })
    ));
    assert!(matches!(
        parsed.check_validity(NOT_BEFORE - 1),
        Err(EvidenceError::NotYetValid { .. })
    ));
}

#[test]
fn garbage_truncated_and_oversized_input_is_refused() {
    let issued = issue_certificate(&identity(), NOT_BEFORE, NOT_AFTER, None).unwrap();
    let der = issued.cert_der.to_vec();
    for len in 0..der.len() {
        assert!(parse_certificate(&der[..len]).is_err(), "prefix {len}");
    }
    let mut longer = der.clone();
    longer.push(0);
    assert!(matches!(
        parse_certificate(&longer),
        Err(EvidenceError::Malformed(_))
    ));
    assert!(matches!(
        parse_certificate(&vec![0x30; MAX_CERT_LEN + 1]),
        Err(EvidenceError::TooLarge { .. })
    ));
    assert!(parse_certificate(b"garbage").is_err());
}

#[test]
fn unknown_evidence_version_in_certificate_is_rejected() {
    let id = identity();
    let spki = ed25519_spki_der(&id.peer_id());
    let mut value = Evidence::new(AttestationLevel::TdxLocal, fake_quote(), &spki)
        .encode()
        .unwrap();
    // The ratls-quic claim: text key, then bstr(3) holding [version, level].
    let key: Vec<u8> = [&[0x6a][..], b"ratls-quic", &[0x43, 0x82, 0x01]].concat();
    let at = value
        .windows(key.len())
        .position(|w| w == key.as_slice())
        .unwrap();
    value[at + key.len() - 1] = 0x02;
    let mut params = base_params();
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(EVIDENCE_OID, value));
    assert!(matches!(
        parse_certificate(&sign_with(&id, &params)),
        Err(EvidenceError::UnknownVersion(2))
    ));
}
