//! The bond proof exchange, shell half: streams, the quote request and the timeout. What a
//! message looks like and whether a proof passes is the core's (`crate::tls::bond`).

use crate::evidence::BatchPosition;
use crate::policy::{Freshness, VerifiedQuote};
use crate::tls::{
    batched_bond_message, bond_message, AttestedTlsConfig, BondFailure, CertifiedPeer, Parties,
    PeerCheck, PeerRejection,
};
use crate::tls::{BOND_REFUSED, EXPORTER_LABEL, MAX_BOND_MESSAGE_LEN};

use super::batcher::{BondBinding, BondQuote, BondQuoteError};
use super::certs::unix_now;
use super::{EndpointConfig, Error};

/// The exporter value of this connection, which both sides contributed to.
fn exporter(conn: &quinn::Connection) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| Error::ExporterUnavailable)?;
    Ok(out)
}

/// Whether both sides offered batched proofs (ALPN `ratls-quic/2`). Logged: the decision
/// of which proofs this side sends on the connection.
fn batched_negotiated(conn: &quinn::Connection) -> bool {
    let protocol = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    let batched = AttestedTlsConfig::batched_proofs_negotiated(protocol.as_deref());
    tracing::debug!(
        batched,
        alpn = ?protocol.as_deref().map(String::from_utf8_lossy),
        "bond proofs: {}",
        if batched { "batched proofs negotiated" } else { "single proofs only" }
    );
    batched
}

/// Runs the exchange for one side and returns the peer's verified bond quote, if it sent one,
/// with its leaf's position when the quote served a batch, and the peer's proof message as
/// received (for the evidence log).
pub(crate) async fn exchange(
    conn: &quinn::Connection,
    config: &EndpointConfig,
    check: &PeerCheck,
    parties: Parties,
    peer: &CertifiedPeer,
    freshness: Freshness,
) -> Result<(Judged, Vec<u8>), Error> {
    let exporter = exporter(conn)?;
    let batched = batched_negotiated(conn);
    let run = async {
        match parties.role {
            // The dialer sends its proof at once and waits for the acceptor's.
            crate::Role::Client => {
                let send = async {
                    let quote = own_quote(config, freshness, parties, exporter, batched).await?;
                    send_proof(conn, quote.as_ref()).await
                };
                let ((), message) = tokio::try_join!(send, receive_peer(conn))?;
                let verified = judged(conn, check, freshness, parties, peer, &exporter, &message)?;
                Ok((verified, message))
            }
            // The acceptor sends its proof only once the dialer's passed: its proof doubles as
            // the acceptance, so a dialer never holds a connection the acceptor refused. It
            // makes its quote while the dialer's proof arrives only when the dialer's
            // certificate already reached a TDX level (its quote passed DCAP, binding and
            // Measurements: only a genuine measured TD's key presents that); for any other
            // dialer the quote is asked for once its proof passed, so a peer that proved
            // nothing costs no quote. A quote still queued when the dialer fails or leaves is
            // dropped from the queue unmade.
            crate::Role::Server if peer.quote().is_some() => {
                let (quote, message) = tokio::try_join!(
                    own_quote(config, freshness, parties, exporter, batched),
                    receive_peer(conn)
                )?;
                let verified = judged(conn, check, freshness, parties, peer, &exporter, &message)?;
                send_proof(conn, quote.as_ref()).await?;
                Ok((verified, message))
            }
            crate::Role::Server => {
                let message = receive_peer(conn).await?;
                let verified = judged(conn, check, freshness, parties, peer, &exporter, &message)?;
                let quote = own_quote(config, freshness, parties, exporter, batched).await?;
                send_proof(conn, quote.as_ref()).await?;
                Ok((verified, message))
            }
        }
    };
    match tokio::time::timeout(config.bond_timeout, run).await {
        Ok(Ok(verified)) => Ok(verified),
        Ok(Err(error)) => Err(refuse_on_peer_fault(conn, error)),
        Err(_) => Err(refuse_on_peer_fault(conn, Error::BondTimeout)),
    }
}

/// The peer's verified bond quote and, for a batched proof, its leaf's position.
pub(crate) type Judged = (Option<VerifiedQuote>, Option<BatchPosition>);

/// Judges the peer's proof; on failure closes the connection with `BOND_REFUSED`.
fn judged(
    conn: &quinn::Connection,
    check: &PeerCheck,
    freshness: Freshness,
    parties: Parties,
    peer: &CertifiedPeer,
    exporter: &[u8; 32],
    message: &[u8],
) -> Result<Judged, Error> {
    check
        .judge_bond_proof(freshness, parties, peer, exporter, message, unix_now())
        .map_err(|failure| {
            tracing::warn!(%failure, peer = %peer.peer_id(), "bond proof refused");
            conn.close(BOND_REFUSED.into(), failure.wire_reason().as_bytes());
            Error::Rejected(failure.into())
        })
}

/// This side's fresh bond quote, when it is attested and uses per-bond freshness. `batched`
/// when the connection negotiated batched proofs: the quote may then serve a batch.
async fn own_quote(
    config: &EndpointConfig,
    freshness: Freshness,
    parties: Parties,
    exporter: [u8; 32],
    batched: bool,
) -> Result<Option<BondQuote>, Error> {
    let Some(quotes) = config.bond_quotes.as_ref() else {
        return Ok(None);
    };
    if freshness != Freshness::PerBond {
        return Ok(None);
    }
    let binding = BondBinding {
        role: parties.role,
        client: parties.client,
        server: parties.server,
        exporter,
    };
    let quote = quotes.quote(binding, batched).await?;
    Ok(Some(quote))
}

async fn send_proof(conn: &quinn::Connection, quote: Option<&BondQuote>) -> Result<(), Error> {
    let message = match quote {
        None => bond_message(None),
        Some(BondQuote::Single(quote)) => bond_message(Some(quote)),
        Some(BondQuote::Batched { quote, position }) => batched_bond_message(quote, position),
    };
    let mut stream = conn.open_uni().await?;
    stream.write_all(&message).await.map_err(|e| match e {
        // Keep the peer's close (its TLS alert or bond refusal) typed, as receive_peer does.
        quinn::WriteError::ConnectionLost(e) => e.into(),
        other => Error::BondStreamWrite(other),
    })?;
    stream.finish().map_err(Error::BondStreamFinish)?;
    Ok(())
}

/// Closes the connection with [`BOND_REFUSED`] when the exchange failed other than by a lost
/// connection or this side's quote provider (mostly the peer's fault: no proof in time, an
/// oversized or broken proof stream), so that the peer learns why rather than seeing an
/// anonymous close when the connection is dropped. A refusal already closed it; closing again
/// changes nothing.
fn refuse_on_peer_fault(conn: &quinn::Connection, error: Error) -> Error {
    if matches!(
        error,
        Error::BondTimeout
            | Error::Rejected(_)
            | Error::BondStreamRead(_)
            | Error::BondStreamWrite(_)
            | Error::BondStreamFinish(_)
            | Error::BondQuote(BondQuoteError::RateLimited(_) | BondQuoteError::QueueTimeout(_))
    ) {
        tracing::warn!(%error, "bond proof exchange failed");
        let reason = match &error {
            Error::BondTimeout => "bond proof timed out",
            Error::Rejected(PeerRejection::Bond(failure)) => failure.wire_reason(),
            Error::BondQuote(BondQuoteError::RateLimited(_)) => "bond quote rate exceeded",
            Error::BondQuote(_) => "bond quote unavailable",
            _ => "bond proof exchange failed",
        };
        conn.close(BOND_REFUSED.into(), reason.as_bytes());
    }
    error
}

async fn receive_peer(conn: &quinn::Connection) -> Result<Vec<u8>, Error> {
    let mut stream = conn.accept_uni().await?;
    stream
        .read_to_end(MAX_BOND_MESSAGE_LEN)
        .await
        .map_err(|e| match e {
            quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(e)) => e.into(),
            quinn::ReadToEndError::TooLong => {
                Error::Rejected(BondFailure::Malformed("bond proof too long").into())
            }
            other => Error::BondStreamRead(other),
        })
}
