//! The endpoint's calls into the evidence log: every formed bond (the peer's evidence) and every
//! refused one is recorded when the configuration names an [`EvidenceSink`].

use crate::evidence::Role;
use crate::evidence_log::{refusal, EvidenceSink, FormedBond};
use crate::identity::PeerId;
use crate::tls::bond::Proof;
use crate::tls::Parties;

use super::certs::unix_now;
use super::{AttestedConnection, EndpointConfig, Error, PeerInfo};

/// QUIC application close code for a bond that formed but could not be recorded in a required
/// evidence log.
pub const EVIDENCE_UNRECORDED: u32 = 0x5241_0003;

/// Records the peer's evidence of a formed bond; durable before this returns. A required log
/// that cannot be written closes the connection and fails the bond.
pub(super) async fn record_formed(
    sink: &EvidenceSink,
    config: &EndpointConfig,
    conn: &quinn::Connection,
    parties: Parties,
    info: &PeerInfo,
    peer_message: &[u8],
) -> Result<(), Error> {
    // The judgement accepted the message, so it decodes; a batched (version 2) proof is
    // recorded with its position so the audit can climb the audit path.
    let (quote, position) = match crate::tls::bond::decode_proof(peer_message) {
        Ok(Proof::Single(quote)) => (Some(quote), None),
        Ok(Proof::Batched { quote, position }) => (Some(quote), Some(position)),
        Ok(Proof::Empty) | Err(_) => (None, None),
    };
    let bond_quote = quote.zip(info.bond_quote());
    let bond_batch = position.filter(|_| bond_quote.is_some());
    let bond = FormedBond {
        conn,
        role: parties.role,
        client: parties.client,
        server: parties.server,
        level: info.level(),
        cert_quote: info.certificate_quote(),
        bond_quote,
        bond_batch: bond_batch.as_ref(),
        collateral: config.collateral.as_ref(),
    };
    sink.formed(unix_now(), bond).await.map_err(|error| {
        tracing::error!(%error, "bond not recorded in the required evidence log; closing it");
        conn.close(EVIDENCE_UNRECORDED.into(), b"bond not recorded");
        Error::EvidenceLog(error)
    })
}

/// Records a bond the verifiers or the bond judgement refused, with the identity the peer's
/// certificate named when it could be read (best effort: the bond is refused whatever happens
/// here).
pub(super) async fn record_refused(
    config: &EndpointConfig,
    local: PeerId,
    role: Role,
    presented: Option<PeerId>,
    result: &Result<AttestedConnection, Error>,
) {
    let (Some(sink), Err(Error::Rejected(rejection))) = (&config.evidence, result) else {
        return;
    };
    if let Err(error) = sink
        .refused(unix_now(), refusal(local, role, presented, rejection))
        .await
    {
        tracing::warn!(%error, "refused bond not recorded in the evidence log");
    }
}
