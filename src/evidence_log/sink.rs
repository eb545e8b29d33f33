//! What an endpoint calls when a bond forms or is refused: turns what the endpoint knows into
//! records and appends them, durably, before the bond is reported.

use std::sync::Arc;

use super::{
    BondEvidence, BondRefusal, CertificateFacts, CollateralSource, Digest, EvidenceLog, LogError,
    QuoteEvidence, RecordBody, Verdict,
};
use crate::evidence::{parse_certificate, BatchPosition, EvidenceError, Role};
use crate::identity::PeerId;
use crate::level::AttestationLevel;
use crate::tdx::{Collateral, CollateralStore};
use crate::tls::PeerRejection;
use crate::{AttestationError, VerifiedQuote, EXPORTER_LABEL};

/// Where an endpoint records its bonds.
#[derive(Clone, Debug)]
pub struct EvidenceSink {
    log: EvidenceLog,
    required: bool,
}

/// Why a bond could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The peer's certificate could not be read again for the record.
    #[error("peer certificate: {0}")]
    Certificate(#[source] EvidenceError),
    /// The connection has no TLS exporter or no peer certificate.
    #[error("connection: {0}")]
    Connection(&'static str),
    /// The collateral store has no collateral for a recorded quote.
    #[error("no collateral for a recorded quote")]
    MissingCollateral,
    /// A quote to record does not parse (the verifier accepted it, so this does not happen).
    #[error("recorded quote: {0}")]
    Quote(#[source] crate::QuoteFormatError),
    /// Writing the log failed.
    #[error("evidence log: {0}")]
    Log(#[from] LogError),
}

/// What the endpoint knows when a bond formed (the peer's side of it).
#[derive(Clone, Copy, Debug)]
pub struct FormedBond<'a> {
    /// The connection (for its TLS exporter and the peer's certificate).
    pub conn: &'a quinn::Connection,
    /// This side's role.
    pub role: Role,
    /// The dialing peer.
    pub client: PeerId,
    /// The accepting peer.
    pub server: PeerId,
    /// The level reached.
    pub level: AttestationLevel,
    /// The verified certificate quote, if any.
    pub cert_quote: Option<&'a VerifiedQuote>,
    /// The bond-proof quote as received, and its verification, if any.
    pub bond_quote: Option<(&'a [u8], &'a VerifiedQuote)>,
    /// The bond quote's batch position, when the peer's proof was batched (version 2).
    pub bond_batch: Option<&'a BatchPosition>,
    /// Where the verifier found collateral.
    pub collateral: &'a dyn CollateralStore,
}

impl EvidenceSink {
    /// Records into `log`. With `required`, a bond whose record cannot be written does not
    /// form; without it the failure is logged and the bond goes on.
    pub fn new(log: EvidenceLog, required: bool) -> Self {
        Self { log, required }
    }

    /// The log.
    pub fn log(&self) -> &EvidenceLog {
        &self.log
    }

    /// Whether a bond needs its record written to form.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Records the peer's evidence of a formed bond at `now`; durable when this returns `Ok`.
    pub async fn formed(&self, now: u64, bond: FormedBond<'_>) -> Result<(), SinkError> {
        let result = self.write_formed(now, bond).await;
        self.settle(result)
    }

    /// Records a refused bond at `now`.
    pub async fn refused(&self, now: u64, refusal: BondRefusal) -> Result<(), SinkError> {
        let result = self
            .log
            .append(now, vec![RecordBody::BondRefused(refusal)])
            .await
            .map(drop)
            .map_err(SinkError::from);
        self.settle(result)
    }

    fn settle(&self, result: Result<(), SinkError>) -> Result<(), SinkError> {
        match result {
            Err(error) if !self.required => {
                tracing::warn!(%error, "bond not recorded in the evidence log (not required)");
                Ok(())
            }
            other => other,
        }
    }

    async fn write_formed(&self, now: u64, bond: FormedBond<'_>) -> Result<(), SinkError> {
        let (evidence, collateral) = formed_evidence(&bond)?;
        for c in collateral {
            self.log.put_collateral(c).await?;
        }
        self.log
            .append(now, vec![RecordBody::BondFormed(evidence)])
            .await?;
        Ok(())
    }
}

/// The record of the peer's evidence in `bond`, and the collateral it names.
pub fn formed_evidence(
    bond: &FormedBond<'_>,
) -> Result<(BondEvidence, Vec<Arc<Collateral>>), SinkError> {
    let mut exporter = [0u8; 32];
    bond.conn
        .export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .map_err(|_| SinkError::Connection("no TLS exporter"))?;
    let der = peer_certificate(bond.conn)?;
    let parsed = parse_certificate(&der).map_err(SinkError::Certificate)?;
    let mut used = Vec::new();
    let mut quote = |bytes: &[u8]| -> Result<QuoteEvidence, SinkError> {
        // The quote as verified, in its canonical form (`crate::normalized_quote`), so its
        // digest is the one `PeerInfo` and public outcomes carry.
        let bytes = crate::normalized_quote(bytes).map_err(SinkError::Quote)?;
        let collateral = bond
            .collateral
            .collateral_for(&bytes)
            .ok_or(SinkError::MissingCollateral)?;
        let evidence = QuoteEvidence {
            quote: bytes,
            collateral_digest: *collateral.digest(),
            // A store that fetched it from a collateral service says where and when.
            collateral_source: match collateral.provenance() {
                Some(p) => CollateralSource::Service {
                    url: p.source.clone(),
                    fetched_at: p.fetched_at,
                    item_digests: p.item_digests,
                },
                None => CollateralSource::File("configured collateral store".into()),
            },
        };
        if !used
            .iter()
            .any(|c: &Arc<Collateral>| c.digest() == collateral.digest())
        {
            used.push(collateral);
        }
        Ok(evidence)
    };
    let cert_quote = match (&parsed.evidence, bond.cert_quote) {
        (Some(evidence), Some(_)) => Some(quote(&evidence.quote)?),
        _ => None,
    };
    let bond_quote = bond.bond_quote.map(|(bytes, _)| quote(bytes)).transpose()?;
    let verdict_source = bond.cert_quote.or(bond.bond_quote.map(|(_, v)| v));
    let evidence = BondEvidence {
        client: bond.client,
        server: bond.server,
        recorder: bond.role,
        subject: bond.role.peer(),
        level: bond.level,
        exporter: exporter.to_vec(),
        certificate: CertificateFacts {
            spki_der: parsed.spki_der,
            not_before: parsed.not_before,
            not_after: parsed.not_after,
        },
        bond_batch: bond_quote.as_ref().and(bond.bond_batch.cloned()),
        cert_quote,
        bond_quote,
        verdict: Verdict {
            tcb_status: verdict_source
                .map_or_else(String::new, |v| v.tcb_status().as_str().to_owned()),
            profile: verdict_source
                .map(VerifiedQuote::profile)
                .unwrap_or_default()
                .to_owned(),
        },
    };
    Ok((evidence, used))
}

fn peer_certificate(conn: &quinn::Connection) -> Result<Vec<u8>, SinkError> {
    let identity = conn
        .peer_identity()
        .ok_or(SinkError::Connection("no peer certificate"))?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| SinkError::Connection("peer identity is not a certificate chain"))?;
    certs
        .first()
        .map(|c| c.as_ref().to_vec())
        .ok_or(SinkError::Connection("empty peer certificate chain"))
}

/// The record of a refusal: the reason's kind and text, and what the rejection names.
pub fn refusal(
    local: PeerId,
    role: Role,
    peer: Option<PeerId>,
    rejection: &PeerRejection,
) -> BondRefusal {
    let (named, quote_digest): (Option<PeerId>, Option<Digest>) = match rejection {
        PeerRejection::UnexpectedPeer { found, .. } => (Some(*found), None),
        PeerRejection::UnknownSoftwareIdentity(p) => (Some(*p), None),
        PeerRejection::Retired(r) => (Some(r.retired), None),
        PeerRejection::Quote(AttestationError::Policy { quote, .. }) => {
            (None, Some(*quote.quote_digest()))
        }
        PeerRejection::Quote(AttestationError::Prechecked { quote_digest, .. }) => {
            (None, Some(*quote_digest))
        }
        _ => (None, None),
    };
    BondRefusal {
        local,
        local_role: role,
        peer: peer.or(named),
        reason: rejection_kind(rejection).to_owned(),
        detail: truncated(rejection.to_string(), super::MAX_TEXT_LEN),
        cert_quote_digest: quote_digest,
        bond_quote_digest: None,
        collateral_digest: None,
    }
}

/// A short machine-readable name of the rejection.
pub fn rejection_kind(rejection: &PeerRejection) -> &'static str {
    match rejection {
        PeerRejection::BelowFloor { .. } => "below-floor",
        PeerRejection::Bond(_) => "bond-proof",
        PeerRejection::Evidence(_) => "certificate-evidence",
        PeerRejection::MissingCollateral => "missing-collateral",
        PeerRejection::NoCertificate => "no-certificate",
        PeerRejection::Quote(
            AttestationError::Policy { violation, .. }
            | AttestationError::Prechecked { violation, .. },
        ) => violation.kind(),
        PeerRejection::Quote(_) => "quote-not-authentic",
        PeerRejection::UnexpectedPeer { .. } => "unexpected-peer",
        PeerRejection::UnknownSoftwareIdentity(_) => "unknown-software-identity",
        PeerRejection::Retired(_) => "retired-identity",
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
