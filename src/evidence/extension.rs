//! The X.509 extension that carries a TDX quote (format in `docs/evidence.md`).
//!
//! ```text
//! extnID    2.23.133.5.4.9 (tcg-dice-conceptual-message-wrapper), critical = FALSE
//! extnValue 60000([ quote: bstr, claims: bstr .cbor {
//!               "ratls-quic":  bstr .cbor [ version: uint, level: uint ],
//!               "pubkey-hash": bstr .cbor [ 1 (sha-256), bstr .size 32 ],
//!           } ])
//! ```

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

use super::{cbor, EvidenceError};
use crate::level::AttestationLevel;

/// OID of the extension: TCG DICE conceptual message wrapper.
pub const EVIDENCE_OID: &[u64] = &[2, 23, 133, 5, 4, 9];

/// CBOR tag of an Intel TEE (SGX or TDX) ECDSA quote with claims, as used by Interoperable RA-TLS.
pub const INTEL_TEE_QUOTE_TAG: u64 = 60000;

/// Version of our claims payload. A decoder refuses any other.
pub const EVIDENCE_VERSION: u64 = 1;

/// Largest extension value accepted or produced.
pub const MAX_EXTENSION_LEN: usize = 16 * 1024;

/// Largest quote accepted or produced.
pub const MAX_QUOTE_LEN: usize = 8 * 1024;

/// Claim names (text keys of the claims map, in canonical order).
const CLAIM_RATLS: &str = "ratls-quic";
const CLAIM_PUBKEY_HASH: &str = "pubkey-hash";

/// IANA named-information hash algorithm id of sha-256.
const HASH_ALG_SHA256: u64 = 1;

/// The decoded content of the evidence extension. The quote is carried, not verified.
#[derive(Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The level the issuer claims; informational, the verifier's policy decides.
    pub level: AttestationLevel,
    /// The DCAP quote, as produced by the quoting enclave.
    pub quote: Vec<u8>,
    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo (the Interoperable RA-TLS
    /// `pubkey-hash` claim).
    pub pubkey_sha256: [u8; 32],
}

impl core::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Evidence")
            .field("level", &self.level)
            .field("quote_len", &self.quote.len())
            .field("quote_blake3", &blake3::hash(&self.quote).to_hex())
            .field("pubkey_sha256", &hex::encode(self.pubkey_sha256))
            .finish()
    }
}

impl Evidence {
    /// Evidence for a certificate whose DER SubjectPublicKeyInfo is `spki_der`.
    pub fn new(level: AttestationLevel, quote: Vec<u8>, spki_der: &[u8]) -> Self {
        Self {
            level,
            quote,
            pubkey_sha256: spki_sha256(spki_der),
        }
    }

    /// Whether `pubkey_sha256` names this SubjectPublicKeyInfo.
    pub fn matches_spki(&self, spki_der: &[u8]) -> bool {
        // Public values: no need for a constant-time compare.
        self.pubkey_sha256 == spki_sha256(spki_der)
    }

    /// Encodes the extension value (the content of `extnValue`).
    pub fn encode(&self) -> Result<Vec<u8>, EvidenceError> {
        check_quote(self.quote.len())?;
        let level = level_code(self.level)?;

        let mut ratls = Vec::with_capacity(4);
        cbor::head(&mut ratls, cbor::ARRAY, 2);
        cbor::head(&mut ratls, cbor::UINT, EVIDENCE_VERSION);
        cbor::head(&mut ratls, cbor::UINT, level);

        let mut hash_entry = Vec::with_capacity(36);
        cbor::head(&mut hash_entry, cbor::ARRAY, 2);
        cbor::head(&mut hash_entry, cbor::UINT, HASH_ALG_SHA256);
        cbor::bytes(&mut hash_entry, &self.pubkey_sha256);

        let mut claims = Vec::with_capacity(64);
        cbor::head(&mut claims, cbor::MAP, 2);
        cbor::text(&mut claims, CLAIM_RATLS);
        cbor::bytes(&mut claims, &ratls);
        cbor::text(&mut claims, CLAIM_PUBKEY_HASH);
        cbor::bytes(&mut claims, &hash_entry);

        let mut out = Vec::with_capacity(
            self.quote
                .len()
                .saturating_add(claims.len())
                .saturating_add(16),
        );
        cbor::head(&mut out, cbor::TAG, INTEL_TEE_QUOTE_TAG);
        cbor::head(&mut out, cbor::ARRAY, 2);
        cbor::bytes(&mut out, &self.quote);
        cbor::bytes(&mut out, &claims);
        if out.len() > MAX_EXTENSION_LEN {
            return Err(EvidenceError::TooLarge {
                what: "evidence extension",
                len: out.len(),
                max: MAX_EXTENSION_LEN,
            });
        }
        Ok(out)
    }

    /// Decodes an extension value. Never panics; every failure is a typed error.
    pub fn decode(value: &[u8]) -> Result<Self, EvidenceError> {
        if value.len() > MAX_EXTENSION_LEN {
            return Err(EvidenceError::TooLarge {
                what: "evidence extension",
                len: value.len(),
                max: MAX_EXTENSION_LEN,
            });
        }
        let mut r = cbor::Reader::new(value);
        if r.expect(cbor::TAG, "evidence is not a CBOR tag")? != INTEL_TEE_QUOTE_TAG {
            return Err(EvidenceError::Malformed(
                "CBOR tag is not an Intel TEE quote",
            ));
        }
        if r.expect(cbor::ARRAY, "evidence is not an array")? != 2 {
            return Err(EvidenceError::Malformed(
                "evidence array must have 2 entries",
            ));
        }
        let quote = r.bytes("quote is not a byte string")?;
        let claims = r.bytes("claims are not a byte string")?;
        r.finish("trailing bytes after evidence")?;
        check_quote(quote.len())?;

        let mut c = cbor::Reader::new(claims);
        if c.expect(cbor::MAP, "claims are not a map")? != 2 {
            return Err(EvidenceError::Malformed("claims map must have 2 entries"));
        }
        // Canonical key order: "ratls-quic" (10 chars) sorts before "pubkey-hash" (11 chars),
        // so the version is read before anything whose layout it might change.
        if c.text("claim name is not text")? != CLAIM_RATLS {
            return Err(EvidenceError::Malformed("first claim is not ratls-quic"));
        }
        let level = decode_ratls_claim(c.bytes("ratls-quic claim is not a byte string")?)?;
        if c.text("claim name is not text")? != CLAIM_PUBKEY_HASH {
            return Err(EvidenceError::Malformed("second claim is not pubkey-hash"));
        }
        let pubkey_sha256 = decode_hash_entry(c.bytes("pubkey-hash is not a byte string")?)?;
        c.finish("trailing bytes after claims")?;

        Ok(Self {
            level,
            quote: quote.to_vec(),
            pubkey_sha256,
        })
    }
}

fn decode_ratls_claim(bytes: &[u8]) -> Result<AttestationLevel, EvidenceError> {
    let mut r = cbor::Reader::new(bytes);
    let entries = r.expect(cbor::ARRAY, "ratls-quic claim is not an array")?;
    if entries < 1 {
        return Err(EvidenceError::Malformed("ratls-quic claim is empty"));
    }
    let version = r.expect(cbor::UINT, "version is not an unsigned integer")?;
    if version != EVIDENCE_VERSION {
        return Err(EvidenceError::UnknownVersion(version));
    }
    if entries != 2 {
        return Err(EvidenceError::Malformed(
            "ratls-quic claim must have 2 entries",
        ));
    }
    let code = r.expect(cbor::UINT, "level is not an unsigned integer")?;
    r.finish("trailing bytes after ratls-quic claim")?;
    let level = usize::try_from(code)
        .ok()
        .and_then(|i| AttestationLevel::ALL.get(i).copied())
        .ok_or(EvidenceError::Malformed("unknown level code"))?;
    if !level.requires_quote() {
        return Err(EvidenceError::Malformed(
            "evidence claims a level without a quote",
        ));
    }
    Ok(level)
}

fn decode_hash_entry(bytes: &[u8]) -> Result<[u8; 32], EvidenceError> {
    let mut r = cbor::Reader::new(bytes);
    if r.expect(cbor::ARRAY, "hash-entry is not an array")? != 2 {
        return Err(EvidenceError::Malformed("hash-entry must have 2 entries"));
    }
    if r.expect(cbor::UINT, "hash algorithm is not an unsigned integer")? != HASH_ALG_SHA256 {
        return Err(EvidenceError::Malformed(
            "pubkey-hash algorithm is not sha-256",
        ));
    }
    let hash = r.bytes("hash value is not a byte string")?;
    r.finish("trailing bytes after hash-entry")?;
    hash.try_into()
        .map_err(|_| EvidenceError::Malformed("sha-256 value is not 32 bytes"))
}

fn check_quote(len: usize) -> Result<(), EvidenceError> {
    if len == 0 {
        return Err(EvidenceError::Missing("quote"));
    }
    if len > MAX_QUOTE_LEN {
        return Err(EvidenceError::TooLarge {
            what: "quote",
            len,
            max: MAX_QUOTE_LEN,
        });
    }
    Ok(())
}

fn level_code(level: AttestationLevel) -> Result<u64, EvidenceError> {
    if !level.requires_quote() {
        return Err(EvidenceError::Malformed(
            "evidence claims a level without a quote",
        ));
    }
    AttestationLevel::ALL
        .iter()
        .position(|l| *l == level)
        .map(|i| i as u64)
        .ok_or(EvidenceError::Malformed("unknown level"))
}

/// SHA-256 of a DER SubjectPublicKeyInfo.
pub fn spki_sha256(spki_der: &[u8]) -> [u8; 32] {
    crate::crypto::sha256(spki_der)
}

#[cfg(test)]
#[path = "extension_tests.rs"]
mod tests;
