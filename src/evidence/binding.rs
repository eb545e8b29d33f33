//! The report_data binding: what a quote's 64 bytes of report data commit to.
//!
//! One function, [`report_data`], computes the value for both purposes: the certificate evidence
//! (binds the certificate's key, validity and identity) and the bond proof (binds both identities,
//! the prover's role and a TLS exporter value of one connection). `docs/binding.md` gives the
//! construction byte by byte with a worked example.

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

use subtle::ConstantTimeEq;

use super::EvidenceError;
use crate::identity::PeerId;
use crate::tdx::ReportData;

/// The blake3 derive-key context. Changing the construction means changing this string.
pub const BINDING_CONTEXT: &str = "ratls-quic report_data v1";

/// Largest SubjectPublicKeyInfo accepted as binding input.
pub(super) const MAX_SPKI_LEN: usize = 1024;

/// Field tags of the encoding (see `docs/binding.md`).
pub(super) mod tag {
    pub(in crate::evidence) const PURPOSE: u8 = 0x01;
    pub(in crate::evidence) const SPKI: u8 = 0x02;
    pub(in crate::evidence) const NOT_BEFORE: u8 = 0x03;
    pub(in crate::evidence) const NOT_AFTER: u8 = 0x04;
    pub(in crate::evidence) const PEER_ID: u8 = 0x05;
    pub(in crate::evidence) const ROLE: u8 = 0x10;
    pub(in crate::evidence) const CLIENT_ID: u8 = 0x11;
    pub(in crate::evidence) const SERVER_ID: u8 = 0x12;
    pub(in crate::evidence) const EXPORTER: u8 = 0x13;
    pub(in crate::evidence) const LEAF_COUNT: u8 = 0x20;
    pub(in crate::evidence) const ROOT: u8 = 0x21;
}

/// Which side of a connection produced a bond proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // a connection has two ends, and always will
pub enum Role {
    /// The side that dialed (TLS client).
    Client,
    /// The side that accepted (TLS server).
    Server,
}

impl Role {
    /// The name encoded in the binding: `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }

    /// The other side.
    pub fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// What a report_data value binds. Every field is required; empty or all-zero values are refused
/// with [`EvidenceError::EmptyBindingInput`], so a verifier that forgot to fill one in fails
/// closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingInput<'a> {
    /// Purpose `cert`: the quote in a certificate binds that certificate's key.
    Certificate {
        /// DER SubjectPublicKeyInfo of the certificate (algorithm and key).
        spki_der: &'a [u8],
        /// Start of the certificate validity, unix seconds.
        not_before: u64,
        /// End of the certificate validity, unix seconds; after `not_before`.
        not_after: u64,
        /// The identity the certificate names.
        peer_id: PeerId,
    },
    /// Purpose `bond`: a fresh quote binds one connection.
    Bond {
        /// The side that produced the quote.
        role: Role,
        /// The dialing peer.
        client: PeerId,
        /// The accepting peer.
        server: PeerId,
        /// A TLS exporter value of this connection: 32 or 64 bytes.
        exporter: &'a [u8],
    },
}

/// Computes the 64-byte report_data for `input`: blake3 in derive-key mode with
/// [`BINDING_CONTEXT`] over the tagged, length-prefixed fields, 64 bytes of XOF output.
pub fn report_data(input: &BindingInput<'_>) -> Result<ReportData, EvidenceError> {
    let encoded = encode(input)?;
    let mut hasher = blake3::Hasher::new_derive_key(BINDING_CONTEXT);
    hasher.update(&encoded);
    let mut out = [0u8; 64];
    hasher.finalize_xof().fill(&mut out);
    Ok(ReportData(out))
}

/// Checks that `actual` (from a quote) equals the report_data of `expected`, comparing all 64
/// bytes in constant time. An incomplete `expected` fails closed.
pub fn verify_binding(
    expected: &BindingInput<'_>,
    actual: &ReportData,
) -> Result<(), EvidenceError> {
    let want = report_data(expected)?;
    if bool::from(want.as_bytes().ct_eq(actual.as_bytes())) {
        Ok(())
    } else {
        Err(EvidenceError::BindingMismatch)
    }
}

/// The byte string hashed by [`report_data`] (exposed for documentation tests and outside
/// re-implementations).
pub(super) fn encode(input: &BindingInput<'_>) -> Result<Vec<u8>, EvidenceError> {
    let mut out = Vec::with_capacity(256);
    match *input {
        BindingInput::Certificate {
            spki_der,
            not_before,
            not_after,
            peer_id,
        } => {
            require(!spki_der.is_empty(), "spki")?;
            if spki_der.len() > MAX_SPKI_LEN {
                return Err(EvidenceError::TooLarge {
                    what: "binding spki",
                    len: spki_der.len(),
                    max: MAX_SPKI_LEN,
                });
            }
            require(not_before != 0, "not_before")?;
            require(not_after > not_before, "not_after")?;
            require(!is_zero(peer_id.as_bytes()), "peer_id")?;
            field(&mut out, tag::PURPOSE, b"cert");
            field(&mut out, tag::SPKI, spki_der);
            field(&mut out, tag::NOT_BEFORE, &not_before.to_be_bytes());
            field(&mut out, tag::NOT_AFTER, &not_after.to_be_bytes());
            field(&mut out, tag::PEER_ID, peer_id.as_bytes());
        }
        BindingInput::Bond {
            role,
            client,
            server,
            exporter,
        } => {
            require(!is_zero(client.as_bytes()), "client")?;
            require(!is_zero(server.as_bytes()), "server")?;
            require(matches!(exporter.len(), 32 | 64), "exporter length")?;
            require(!is_zero(exporter), "exporter")?;
            field(&mut out, tag::PURPOSE, b"bond");
            field(&mut out, tag::ROLE, role.as_str().as_bytes());
            field(&mut out, tag::CLIENT_ID, client.as_bytes());
            field(&mut out, tag::SERVER_ID, server.as_bytes());
            field(&mut out, tag::EXPORTER, exporter);
        }
    }
    Ok(out)
}

fn require(ok: bool, what: &'static str) -> Result<(), EvidenceError> {
    if ok {
        Ok(())
    } else {
        Err(EvidenceError::EmptyBindingInput(what))
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

/// tag (1 byte) || length (u32, big-endian) || value. Callers keep values far below 4 GiB.
pub(super) fn field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
#[path = "binding_tests.rs"]
mod tests;
