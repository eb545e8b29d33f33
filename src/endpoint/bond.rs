//! The bond proof exchange, shell half: streams, the quote request and the timeout. What a
//! message looks like and whether a proof passes is the core's (`crate::tls::bond`).

use std::sync::Arc;

use crate::policy::{Freshness, VerifiedQuote};
use crate::tls::{bond_message, BondFailure, CertifiedPeer, Parties, PeerCheck, PeerRejection};
use crate::tls::{BOND_REFUSED, EXPORTER_LABEL, MAX_BOND_MESSAGE_LEN};

use super::certs::unix_now;
use super::{EndpointConfig, Error};

/// The exporter value of this connection, which both sides contributed to.
fn exporter(conn: &quinn::Connection) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| Error::ExporterUnavailable)?;
    Ok(out)
}

/// Runs the exchange for one side and returns the peer's verified bond quote, if it sent one.
pub(crate) async fn exchange(
    conn: &quinn::Connection,
    config: &EndpointConfig,
    check: &PeerCheck,
    parties: Parties,
    peer: &CertifiedPeer,
) -> Result<Option<VerifiedQuote>, Error> {
    let exporter = exporter(conn)?;
    let run = async {
        match parties.role {
            // The dialer sends its proof at once and waits for the acceptor's.
            crate::Role::Client => {
                let send = async {
                    let quote = own_quote(config, parties, exporter).await?;
                    send_proof(conn, quote.as_deref()).await
                };
                let ((), message) = tokio::try_join!(send, receive_peer(conn))?;
                judged(conn, check, parties, peer, &exporter, &message)
            }
            // The acceptor makes its quote while the dialer's proof arrives, but sends it only
            // once that proof passed: its proof doubles as the acceptance, so a dialer never
            // holds a connection the acceptor refused.
            crate::Role::Server => {
                let (quote, message) =
                    tokio::try_join!(own_quote(config, parties, exporter), receive_peer(conn))?;
                let verified = judged(conn, check, parties, peer, &exporter, &message)?;
                send_proof(conn, quote.as_deref()).await?;
                Ok(verified)
            }
        }
    };
    match tokio::time::timeout(config.bond_timeout, run).await {
        Ok(Ok(verified)) => Ok(verified),
        Ok(Err(error)) => Err(refuse_on_peer_fault(conn, error)),
        Err(_) => Err(refuse_on_peer_fault(conn, Error::BondTimeout)),
    }
}

/// Judges the peer's proof; on failure closes the connection with `BOND_REFUSED`.
fn judged(
    conn: &quinn::Connection,
    check: &PeerCheck,
    parties: Parties,
    peer: &CertifiedPeer,
    exporter: &[u8; 32],
    message: &[u8],
) -> Result<Option<VerifiedQuote>, Error> {
    check
        .judge_bond(parties, peer, exporter, message, unix_now())
        .map_err(|failure| {
            tracing::warn!(%failure, peer = %peer.peer_id(), "bond proof refused");
            conn.close(BOND_REFUSED.into(), failure.wire_reason().as_bytes());
            Error::Rejected(failure.into())
        })
}

/// This side's fresh bond quote, when it is attested and uses per-bond freshness.
async fn own_quote(
    config: &EndpointConfig,
    parties: Parties,
    exporter: [u8; 32],
) -> Result<Option<Vec<u8>>, Error> {
    let Some(provider) = config.provider.as_ref() else {
        return Ok(None);
    };
    if config.policy.freshness() != Freshness::PerBond {
        return Ok(None);
    }
    let report_data = parties.own_report_data(&exporter).map_err(Error::Binding)?;
    let provider = Arc::clone(provider);
    let permit = Arc::clone(&config.quote_permits)
        .acquire_owned()
        .await
        .map_err(|_| Error::QuotePermitsClosed)?;
    let quote = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        provider.quote(&report_data)
    })
    .await
    .map_err(Error::QuoteTask)??;
    Ok(Some(quote))
}

async fn send_proof(conn: &quinn::Connection, quote: Option<&[u8]>) -> Result<(), Error> {
    let mut stream = conn.open_uni().await?;
    stream
        .write_all(&bond_message(quote))
        .await
        .map_err(|e| match e {
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
    ) {
        tracing::warn!(%error, "bond proof exchange failed");
        let reason = match &error {
            Error::BondTimeout => "bond proof timed out",
            Error::Rejected(PeerRejection::Bond(failure)) => failure.wire_reason(),
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
