//! The one crypto provider of the whole stack: ring, for rustls, rustls-webpki, rcgen and this
//! crate's own signatures, digests and randomness. Every other module names algorithms through
//! here, so a second provider would be added in this file alone.

use std::sync::{Arc, OnceLock};

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::SignatureScheme;

/// The operating system's random number generator.
pub(crate) type SystemRng = ring::rand::SystemRandom;

pub(crate) use ring::rand::SecureRandom;

/// The rustls provider (TLS 1.3 suites, X25519, signature verification).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// Identities are Ed25519 keys; no other handshake signature is accepted.
pub(crate) static ED25519_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[webpki::ring::ED25519],
    mapping: &[(SignatureScheme::ED25519, &[webpki::ring::ED25519])],
};

/// The signature algorithm of Intel's PCK certificate chains.
pub(crate) static PCK_CHAIN_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] =
    &[webpki::ring::ECDSA_P256_SHA256];

/// rcgen's name for the identity key algorithm.
pub(crate) static IDENTITY_CERT_ALGORITHM: &rcgen::SignatureAlgorithm = &rcgen::PKCS_ED25519;

/// A rustls signing key from an Ed25519 PKCS#8 document.
pub(crate) fn identity_signing_key(
    pkcs8: &rustls_pki_types::PrivatePkcs8KeyDer<'_>,
) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
    rustls::crypto::ring::sign::any_eddsa_type(pkcs8)
}

/// SHA-256 (the SPKI hash of the evidence format).
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    // SHA-256 output is always 32 bytes: the zip copies all of it.
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    out
}

/// Checks a fixed-size (r || s) ECDSA P-256 SHA-256 signature under an uncompressed point.
pub(crate) fn p256_verifies(uncompressed_point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        uncompressed_point,
    )
    .verify(message, signature)
    .is_ok()
}

/// P-256 signing for the synthetic test PKI.
#[cfg(feature = "synthetic")]
pub(crate) mod p256 {
    pub(crate) use ring::signature::{
        EcdsaKeyPair as SigningKey, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as FIXED_SIGNING,
    };
}
