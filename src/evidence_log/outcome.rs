//! What an application may publish about a bond: who bonded with whom, at what level, and the
//! digests of the evidence, never a quote body. Signed by the node that asserts it. Pure.
//!
//! The JSON form (serde) is for transport; the signature covers the canonical byte form
//! ([`BondOutcome::signed_bytes`]), documented in `docs/evidence-log.md`.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use super::codec::{Digest, Writer};
use super::record::{level_byte, role_byte, BondEvidence};
use crate::evidence::{report_data, Role};
use crate::identity::{Identity, PeerId};
use crate::level::AttestationLevel;

/// Bytes the signature covers start with this text and a zero byte.
pub const OUTCOME_CONTEXT: &str = "ratls-quic bond-outcome v1";

/// blake3 derive-key context of [`binding_digest`].
pub const BINDING_DIGEST_CONTEXT: &str = "ratls-quic bond-outcome binding v1";

/// Largest JSON outcome [`BondOutcome::from_json`] reads.
pub const MAX_OUTCOME_JSON_LEN: usize = 16 * 1024;

/// Most collateral digests in one outcome.
pub const MAX_COLLATERAL_DIGESTS: usize = 8;

/// The facts of a bond an outcome states (everything but the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeFacts {
    /// The asserting node (the signer).
    pub asserter: PeerId,
    /// Its peer in the bond.
    pub peer: PeerId,
    /// The asserter's role.
    pub role: Role,
    /// The level the bond reached.
    pub level: AttestationLevel,
    /// When the bond formed, unix seconds.
    pub time: u64,
    /// blake3 of the peer's certificate quote.
    pub cert_quote_digest: Option<Digest>,
    /// blake3 of the peer's bond-proof quote.
    pub bond_quote_digest: Option<Digest>,
    /// [`binding_digest`] of the peer's bond binding.
    pub binding_digest: Digest,
    /// Digests of the collateral used.
    pub collateral_digests: Vec<Digest>,
}

/// A signed [`OutcomeFacts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondOutcome {
    facts: OutcomeFacts,
    signature: [u8; 64],
}

/// Why an outcome is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutcomeError {
    /// The signature does not verify under the asserter's key.
    #[error("bond outcome signature does not verify")]
    BadSignature,
    /// The record is not the asserter's.
    #[error("the record was written by another node")]
    NotRecorder,
    /// The binding inputs are incomplete.
    #[error("bond binding: {0}")]
    Binding(#[source] crate::evidence::EvidenceError),
    /// The JSON is not an outcome.
    #[error("bond outcome JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A field of the JSON has a bad value.
    #[error("bond outcome field {0} is invalid")]
    Field(&'static str),
    /// The JSON is too large, or lists too many collateral digests.
    #[error("bond outcome too large")]
    TooLarge,
}

/// The digest an outcome carries for a bond binding: blake3 (derive-key,
/// [`BINDING_DIGEST_CONTEXT`]) of the 64-byte report_data (`docs/binding.md`) of the peer's
/// bond proof (`role` is the peer's role).
pub fn binding_digest(
    role: Role,
    client: PeerId,
    server: PeerId,
    exporter: &[u8],
) -> Result<Digest, OutcomeError> {
    let value = report_data(&crate::evidence::BindingInput::Bond {
        role,
        client,
        server,
        exporter,
    })
    .map_err(OutcomeError::Binding)?;
    let mut hasher = blake3::Hasher::new_derive_key(BINDING_DIGEST_CONTEXT);
    hasher.update(value.as_bytes());
    Ok(*hasher.finalize().as_bytes())
}

impl BondOutcome {
    /// Signs `facts` with `identity`, which becomes the asserter.
    pub fn sign(identity: &Identity, mut facts: OutcomeFacts) -> Result<Self, OutcomeError> {
        if facts.collateral_digests.len() > MAX_COLLATERAL_DIGESTS {
            return Err(OutcomeError::TooLarge);
        }
        facts.asserter = identity.peer_id();
        let signature = identity.sign(&signed_bytes(&facts));
        Ok(Self { facts, signature })
    }

    /// The outcome of the bond a log record describes, asserted by its recorder.
    pub fn from_evidence(
        identity: &Identity,
        evidence: &BondEvidence,
        time: u64,
    ) -> Result<Self, OutcomeError> {
        if evidence.recorder_id() != identity.peer_id() {
            return Err(OutcomeError::NotRecorder);
        }
        let digest = |q: &Option<super::QuoteEvidence>| {
            q.as_ref().map(|q| *blake3::hash(&q.quote).as_bytes())
        };
        let mut collateral_digests: Vec<Digest> = Vec::new();
        for q in [&evidence.cert_quote, &evidence.bond_quote]
            .into_iter()
            .flatten()
        {
            if !collateral_digests.contains(&q.collateral_digest) {
                collateral_digests.push(q.collateral_digest);
            }
        }
        Self::sign(
            identity,
            OutcomeFacts {
                asserter: identity.peer_id(),
                peer: evidence.subject_id(),
                role: evidence.recorder,
                level: evidence.level,
                time,
                cert_quote_digest: digest(&evidence.cert_quote),
                bond_quote_digest: digest(&evidence.bond_quote),
                binding_digest: binding_digest(
                    evidence.subject,
                    evidence.client,
                    evidence.server,
                    &evidence.exporter,
                )?,
                collateral_digests,
            },
        )
    }

    /// What the outcome states.
    pub fn facts(&self) -> &OutcomeFacts {
        &self.facts
    }

    /// The asserter's signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Checks the signature under the asserter's key.
    pub fn verify(&self) -> Result<(), OutcomeError> {
        let key = self
            .facts
            .asserter
            .verifying_key()
            .map_err(|_| OutcomeError::BadSignature)?;
        key.verify_strict(
            &signed_bytes(&self.facts),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| OutcomeError::BadSignature)
    }

    /// The canonical bytes the signature covers (see `docs/evidence-log.md`).
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.facts)
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        let f = &self.facts;
        let wire = Wire {
            version: 1,
            asserter: f.asserter.to_string(),
            peer: f.peer.to_string(),
            role: f.role.as_str().to_owned(),
            level: f.level.as_str().to_owned(),
            time: f.time,
            cert_quote_digest: f.cert_quote_digest.map(hex::encode),
            bond_quote_digest: f.bond_quote_digest.map(hex::encode),
            binding_digest: hex::encode(f.binding_digest),
            collateral_digests: f.collateral_digests.iter().map(hex::encode).collect(),
            signature: hex::encode(self.signature),
        };
        // A struct of strings, numbers and options always serialises.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads the JSON form (the signature is not checked here: call [`Self::verify`]).
    pub fn from_json(text: &str) -> Result<Self, OutcomeError> {
        if text.len() > MAX_OUTCOME_JSON_LEN {
            return Err(OutcomeError::TooLarge);
        }
        let wire: Wire = serde_json::from_str(text).map_err(OutcomeError::Json)?;
        if wire.version != 1 {
            return Err(OutcomeError::Field("version"));
        }
        if wire.collateral_digests.len() > MAX_COLLATERAL_DIGESTS {
            return Err(OutcomeError::TooLarge);
        }
        let peer = |s: &str, what| s.parse::<PeerId>().map_err(|_| OutcomeError::Field(what));
        let digest = |s: &str, what| {
            let mut d = [0u8; 32];
            hex::decode_to_slice(s, &mut d).map_err(|_| OutcomeError::Field(what))?;
            Ok::<_, OutcomeError>(d)
        };
        let role = match wire.role.as_str() {
            "client" => Role::Client,
            "server" => Role::Server,
            _ => return Err(OutcomeError::Field("role")),
        };
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&wire.signature, &mut signature)
            .map_err(|_| OutcomeError::Field("signature"))?;
        Ok(Self {
            facts: OutcomeFacts {
                asserter: peer(&wire.asserter, "asserter")?,
                peer: peer(&wire.peer, "peer")?,
                role,
                level: wire
                    .level
                    .parse()
                    .map_err(|_| OutcomeError::Field("level"))?,
                time: wire.time,
                cert_quote_digest: wire
                    .cert_quote_digest
                    .as_deref()
                    .map(|s| digest(s, "cert_quote_digest"))
                    .transpose()?,
                bond_quote_digest: wire
                    .bond_quote_digest
                    .as_deref()
                    .map(|s| digest(s, "bond_quote_digest"))
                    .transpose()?,
                binding_digest: digest(&wire.binding_digest, "binding_digest")?,
                collateral_digests: wire
                    .collateral_digests
                    .iter()
                    .map(|s| digest(s, "collateral_digests"))
                    .collect::<Result<_, _>>()?,
            },
            signature,
        })
    }
}

/// The JSON form, field by field.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    version: u8,
    asserter: String,
    peer: String,
    role: String,
    level: String,
    time: u64,
    cert_quote_digest: Option<String>,
    bond_quote_digest: Option<String>,
    binding_digest: String,
    collateral_digests: Vec<String>,
    signature: String,
}

fn signed_bytes(f: &OutcomeFacts) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(OUTCOME_CONTEXT.as_bytes());
    w.u8(0);
    w.bytes(f.asserter.as_bytes());
    w.bytes(f.peer.as_bytes());
    w.u8(role_byte(f.role));
    w.u8(level_byte(f.level));
    w.u64(f.time);
    w.opt_digest(f.cert_quote_digest.as_ref());
    w.opt_digest(f.bond_quote_digest.as_ref());
    w.bytes(&f.binding_digest);
    // At most MAX_COLLATERAL_DIGESTS, checked when signing and reading.
    w.u8(u8::try_from(f.collateral_digests.len()).unwrap_or(u8::MAX));
    for d in &f.collateral_digests {
        w.bytes(d);
    }
    w.0
}

#[cfg(all(test, feature = "synthetic"))]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#[path = "outcome_tests.rs"]
mod tests;
