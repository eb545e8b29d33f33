//! Attestation evidence in certificates: the report_data binding, the X.509 extension that
//! carries a quote, and issuance and strict parsing of self-signed certificates.
//!
//! This layer does no I/O, reads no clock and does not verify quotes: it carries them and checks
//! that they are bound to the right key. Quote verification lives in [`crate::tdx::verify`].
//!
//! A verifier does: [`parse_certificate`] → [`ParsedCertificate::binding_input`] →
//! [`verify_binding`] against the verified quote's report_data.

mod batch;
mod binding;
mod cbor;
mod cert;
mod extension;

pub use batch::{
    batch_report_data, encode_batch, leaf_hash, node_hash, path_len, root_from_path,
    verify_batch_binding, BatchError, BatchPosition, BatchTree, NodeHash, BATCH_BINDING_CONTEXT,
    BATCH_NODE_CONTEXT, MAX_AUDIT_PATH, MAX_BATCH_LEAVES,
};
pub use binding::{report_data, verify_binding, BindingInput, Role, BINDING_CONTEXT};
pub use cert::{
    certificate_report_data, ed25519_spki_der, issue_certificate, parse_certificate,
    IssuedCertificate, ParsedCertificate, MAX_CERT_LEN, MAX_VALIDITY_SECS,
};
pub use extension::{
    spki_sha256, Evidence, EVIDENCE_OID, EVIDENCE_VERSION, INTEL_TEE_QUOTE_TAG, MAX_EXTENSION_LEN,
    MAX_QUOTE_LEN,
};

/// Errors of the evidence layer. A verifier maps [`Self::Malformed`], [`Self::TooLarge`],
/// [`Self::DuplicateExtension`] and [`Self::UnknownVersion`] to the `bad_certificate` alert
/// (rustls `CertificateError::BadEncoding`), [`Self::Expired`] and [`Self::NotYetValid`] to
/// `certificate_expired`, and the rest to `certificate_unknown` via `CertificateError::Other`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// A batched bond proof names an impossible position or carries a path of the wrong length.
    #[error("batched bond proof: {0}")]
    Batch(#[from] BatchError),
    /// The certificate's self-signature does not verify under its own key.
    #[error("certificate self-signature is invalid")]
    BadSignature,
    /// The report_data in the quote is not the one the binding inputs give.
    #[error("report_data does not bind this certificate or connection")]
    BindingMismatch,
    /// The certificate holds more than one evidence extension.
    #[error("certificate holds more than one evidence extension")]
    DuplicateExtension,
    /// A binding input the verifier expected is missing, empty, zero or inconsistent.
    #[error("binding input missing or empty: {0}")]
    EmptyBindingInput(&'static str),
    /// The certificate has expired at the given time.
    #[error("certificate expired at {not_after} (now {now})")]
    Expired {
        /// End of validity, unix seconds.
        not_after: u64,
        /// The time checked, unix seconds.
        now: u64,
    },
    /// Certificate issuance failed.
    #[error("certificate issuance failed: {0}")]
    Issue(#[source] rcgen::Error),
    /// Bytes that do not follow the format.
    #[error("malformed evidence or certificate: {0}")]
    Malformed(&'static str),
    /// A required item is absent (no evidence extension, empty quote).
    #[error("missing {0}")]
    Missing(&'static str),
    /// The certificate is not valid yet at the given time.
    #[error("certificate not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Start of validity, unix seconds.
        not_before: u64,
        /// The time checked, unix seconds.
        now: u64,
    },
    /// The evidence names a different public key than the certificate's.
    #[error("evidence pubkey-hash does not match the certificate key")]
    PubkeyMismatch,
    /// An item exceeds its size cap.
    #[error("{what} too large: {len} bytes (max {max})")]
    TooLarge {
        /// Which item.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The certificate uses a key or signature algorithm other than Ed25519.
    #[error("unsupported key or signature algorithm (Ed25519 only)")]
    UnsupportedAlgorithm,
    /// The evidence payload has a version this implementation does not know.
    #[error("unknown evidence version {0}")]
    UnknownVersion(u64),
}
