//! Self-signed Ed25519 certificates carrying evidence: issuance (rcgen) and strict parsing
//! (x509-parser for the structure, ed25519-dalek for the self-signature).
//!
//! A Software-level certificate carries no evidence extension at all: the extension, when
//! present, always holds a quote (see `docs/evidence.md`).

// Parses bytes from the network or from files: no panics, no unchecked arithmetic.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use ed25519_dalek::{Signature, VerifyingKey};
use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, SerialNumber};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{Oid, OID_SIG_ED25519};
use x509_parser::x509::{AlgorithmIdentifier, X509Version};
use zeroize::Zeroizing;

use super::binding::{report_data, BindingInput};
use super::extension::{Evidence, EVIDENCE_OID};
use super::EvidenceError;
use crate::identity::{Identity, PeerId};
use crate::level::AttestationLevel;
use crate::tdx::ReportData;

/// Largest certificate [`parse_certificate`] accepts.
pub const MAX_CERT_LEN: usize = 24 * 1024;

/// Longest validity period issued or accepted: certificates are short-lived and renewed.
pub const MAX_VALIDITY_SECS: u64 = 24 * 60 * 60;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The subject and issuer common name of issued certificates.
const COMMON_NAME: &str = "ratls";

/// A certificate and the private key to serve it with.
#[derive(Debug)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The identity key as PKCS#8 DER, for rustls; wiped when dropped.
    pub key_der: Zeroizing<PrivateKeyDer<'static>>,
}

/// A certificate that passed [`parse_certificate`]'s structural checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedCertificate {
    /// The identity the certificate's key names.
    pub peer_id: PeerId,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// Start of validity, unix seconds.
    pub not_before: u64,
    /// End of validity, unix seconds.
    pub not_after: u64,
    /// The evidence extension, if any (none for a Software-level certificate).
    pub evidence: Option<Evidence>,
}

impl ParsedCertificate {
    /// What the quote in this certificate must bind: compare with [`super::verify_binding`].
    pub fn binding_input(&self) -> BindingInput<'_> {
        BindingInput::Certificate {
            spki_der: &self.spki_der,
            not_before: self.not_before,
            not_after: self.not_after,
            peer_id: self.peer_id,
        }
    }

    /// Fails unless `not_before <= now <= not_after` (unix seconds, inclusive as RFC 5280).
    pub fn check_validity(&self, now: u64) -> Result<(), EvidenceError> {
        if now < self.not_before {
            return Err(EvidenceError::NotYetValid {
                not_before: self.not_before,
                now,
            });
        }
        if now > self.not_after {
            return Err(EvidenceError::Expired {
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }
}

/// The DER SubjectPublicKeyInfo of `peer_id`'s Ed25519 key.
pub fn ed25519_spki_der(peer_id: &PeerId) -> [u8; 44] {
    let mut out = [0u8; 44];
    let bytes = ED25519_SPKI_PREFIX.iter().chain(peer_id.as_bytes());
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

/// The report_data a quote must carry to go into the certificate that [`issue_certificate`]
/// makes for `peer_id` with this validity. Ask the quote provider for this value first.
pub fn certificate_report_data(
    peer_id: &PeerId,
    not_before: u64,
    not_after: u64,
) -> Result<ReportData, EvidenceError> {
    let spki = ed25519_spki_der(peer_id);
    report_data(&BindingInput::Certificate {
        spki_der: &spki,
        not_before,
        not_after,
        peer_id: *peer_id,
    })
}

/// Issues a certificate self-signed by `identity`, valid from `not_before` to `not_after` (unix
/// seconds, at most [`MAX_VALIDITY_SECS`] apart). With `quote`, the certificate carries the
/// evidence extension; the quote should bind [`certificate_report_data`] (not checked here).
pub fn issue_certificate(
    identity: &Identity,
    not_before: u64,
    not_after: u64,
    quote: Option<(AttestationLevel, &[u8])>,
) -> Result<IssuedCertificate, EvidenceError> {
    check_validity_period(not_before, not_after)?;
    let peer_id = identity.peer_id();
    let spki = ed25519_spki_der(&peer_id);

    let mut params = CertificateParams::default();
    params.not_before = to_time(not_before)?;
    params.not_after = to_time(not_after)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, COMMON_NAME);
    params.serial_number = Some(serial(&spki, not_before));
    if let Some((level, quote)) = quote {
        let value = Evidence::new(level, quote.to_vec(), &spki).encode()?;
        let mut ext = CustomExtension::from_oid_content(EVIDENCE_OID, value);
        ext.set_criticality(false);
        params.custom_extensions.push(ext);
    }

    let key_der = identity
        .private_key_der()
        .map_err(|_| EvidenceError::Malformed("identity key cannot be encoded"))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = &*key_der else {
        return Err(EvidenceError::Malformed("identity key is not PKCS#8"));
    };
    let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.secret_pkcs8_der()),
        crate::crypto::IDENTITY_CERT_ALGORITHM,
    )
    .map_err(EvidenceError::Issue)?;
    let cert = params
        .self_signed(&key_pair)
        .map_err(EvidenceError::Issue)?;
    Ok(IssuedCertificate {
        cert_der: cert.der().clone(),
        key_der,
    })
}

/// Parses a certificate strictly: DER X.509 v3, Ed25519 key and signature, self-issued and
/// self-signed, validity within [`MAX_VALIDITY_SECS`], no duplicate or critical extension, at most
/// one evidence extension whose `pubkey-hash` names this key. Does not look at the clock (see
/// [`ParsedCertificate::check_validity`]) and does not verify the quote.
pub fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, EvidenceError> {
    if der.len() > MAX_CERT_LEN {
        return Err(EvidenceError::TooLarge {
            what: "certificate",
            len: der.len(),
            max: MAX_CERT_LEN,
        });
    }
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| EvidenceError::Malformed("not a DER X.509 certificate"))?;
    if !rest.is_empty() {
        return Err(EvidenceError::Malformed("trailing bytes after certificate"));
    }
    if cert.version() != X509Version::V3 {
        return Err(EvidenceError::Malformed("not an X.509 v3 certificate"));
    }
    let tbs = &cert.tbs_certificate;
    if !is_ed25519(&cert.signature_algorithm) || !is_ed25519(&tbs.signature) {
        return Err(EvidenceError::UnsupportedAlgorithm);
    }
    // The outer signatureAlgorithm and signature are outside what the signature covers: only
    // their one DER spelling is accepted (the parser tolerates others, such as another tag on
    // the OID), so that a certificate has one byte form.
    if !has_der_signature_suffix(der) {
        return Err(EvidenceError::Malformed(
            "signature algorithm or signature not in DER form",
        ));
    }
    let spki = cert.public_key();
    if !is_ed25519(&spki.algorithm) || spki.subject_public_key.unused_bits != 0 {
        return Err(EvidenceError::UnsupportedAlgorithm);
    }
    let key: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| EvidenceError::UnsupportedAlgorithm)?;
    if tbs.issuer.as_raw() != tbs.subject.as_raw() {
        return Err(EvidenceError::Malformed("certificate is not self-issued"));
    }
    verify_self_signature(&cert, &key)?;

    let not_before = unix(cert.validity().not_before.timestamp())?;
    let not_after = unix(cert.validity().not_after.timestamp())?;
    check_validity_period(not_before, not_after)?;

    let evidence_oid =
        Oid::from(EVIDENCE_OID).map_err(|_| EvidenceError::Malformed("evidence OID"))?;
    let mut evidence = None;
    let exts = cert.extensions();
    for ext in exts {
        let is_evidence = ext.oid == evidence_oid;
        if exts.iter().filter(|other| other.oid == ext.oid).count() > 1 {
            return Err(if is_evidence {
                EvidenceError::DuplicateExtension
            } else {
                EvidenceError::Malformed("duplicate extension")
            });
        }
        if ext.critical {
            return Err(EvidenceError::Malformed("critical extension"));
        }
        if is_evidence {
            evidence = Some(Evidence::decode(ext.value)?);
        }
    }
    if let Some(ev) = &evidence {
        if !ev.matches_spki(spki.raw) {
            return Err(EvidenceError::PubkeyMismatch);
        }
    }
    Ok(ParsedCertificate {
        peer_id: PeerId::from_bytes(key),
        spki_der: spki.raw.to_vec(),
        not_before,
        not_after,
        evidence,
    })
}

fn verify_self_signature(cert: &X509Certificate<'_>, key: &[u8; 32]) -> Result<(), EvidenceError> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| EvidenceError::UnsupportedAlgorithm)?;
    if cert.signature_value.unused_bits != 0 {
        return Err(EvidenceError::BadSignature);
    }
    let sig = Signature::from_slice(cert.signature_value.data.as_ref())
        .map_err(|_| EvidenceError::BadSignature)?;
    key.verify_strict(cert.tbs_certificate.as_ref(), &sig)
        .map_err(|_| EvidenceError::BadSignature)
}

/// Ed25519 (RFC 8410): the algorithm identifier has no parameters.
/// The DER of the certificate's last two fields: AlgorithmIdentifier { Ed25519 } (no
/// parameters) and a BIT STRING of 64 bytes with no unused bits.
const SIGNATURE_SUFFIX: [u8; 10] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x41, 0x00];
/// The suffix and the 64-byte signature after it.
const SIGNATURE_SUFFIX_AND_SIGNATURE_LEN: usize = SIGNATURE_SUFFIX.len() + 64;

fn has_der_signature_suffix(der: &[u8]) -> bool {
    der.len()
        .checked_sub(SIGNATURE_SUFFIX_AND_SIGNATURE_LEN)
        .and_then(|start| der.get(start..))
        .is_some_and(|tail| tail.starts_with(&SIGNATURE_SUFFIX))
}

fn is_ed25519(alg: &AlgorithmIdentifier<'_>) -> bool {
    alg.algorithm == OID_SIG_ED25519 && alg.parameters.is_none()
}

fn check_validity_period(not_before: u64, not_after: u64) -> Result<(), EvidenceError> {
    if not_after <= not_before {
        return Err(EvidenceError::Malformed("validity ends before it starts"));
    }
    if not_after.saturating_sub(not_before) > MAX_VALIDITY_SECS {
        return Err(EvidenceError::Malformed("validity longer than 24 hours"));
    }
    Ok(())
}

fn unix(ts: i64) -> Result<u64, EvidenceError> {
    u64::try_from(ts).map_err(|_| EvidenceError::Malformed("validity before 1970"))
}

fn to_time(secs: u64) -> Result<OffsetDateTime, EvidenceError> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(EvidenceError::Malformed("validity time out of range"))
}

/// A positive 16-byte serial derived from the key and start of validity (unique per renewal).
fn serial(spki: &[u8], not_before: u64) -> SerialNumber {
    let mut h = blake3::Hasher::new_derive_key("ratls-quic certificate serial v1");
    h.update(spki);
    h.update(&not_before.to_be_bytes());
    let mut bytes = [0u8; 16];
    h.finalize_xof().fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
#[path = "cert_tests.rs"]
mod tests;
