//! The bond proof: right after the handshake, each attested side sends a fresh quote bound to
//! this connection on the first unidirectional stream it opens; the other side verifies it
//! before the connection is handed out.
//!
//! Wire format of the message (the whole stream):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `RQB1` (ratls-quic bond, version 1) |
//! | 1 | kind: 0 = no quote (a Software side, or one using certificate freshness), 1 = quote |
//! | 4 | quote length, big-endian (kind 1 only) |
//! | n | the quote (kind 1 only) |

use std::sync::Arc;

use crate::evidence::{report_data, verify_binding, BindingInput, Role, MAX_QUOTE_LEN};
use crate::identity::PeerId;
use crate::policy::Freshness;
use crate::tdx::VerifiedQuote;
use crate::tls::{BondFailure, CertifiedPeer, PeerCheck, PeerRejection};

use super::certs::unix_now;
use super::{EndpointConfig, Error};

const MAGIC: &[u8; 4] = b"RQB1";
const KIND_NONE: u8 = 0;
const KIND_QUOTE: u8 = 1;
const MAX_MESSAGE_LEN: usize = 4 + 1 + 4 + MAX_QUOTE_LEN;

/// Label of the TLS exporter value a bond binds (RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-ratls-quic-bond-v1";

/// QUIC application close code for a refused bond proof.
pub const BOND_REFUSED: u32 = 0x5241_0001;

/// The exporter value of this connection, which both sides contributed to.
fn exporter(conn: &quinn::Connection) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| Error::Stream("TLS exporter unavailable".into()))?;
    Ok(out)
}

/// Encodes a bond proof message in the wire format above: the whole content of the first
/// unidirectional stream a side opens after the handshake. `None` is the empty proof of a side
/// that presents no quote per connection. For peers implemented outside this crate and for
/// tests; [`super::Endpoint`] sends its own proofs.
pub fn bond_message(quote: Option<&[u8]>) -> Vec<u8> {
    encode(quote)
}

pub(crate) fn encode(quote: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + quote.map_or(0, <[u8]>::len));
    out.extend_from_slice(MAGIC);
    match quote {
        None => out.push(KIND_NONE),
        Some(quote) => {
            out.push(KIND_QUOTE);
            // Quotes come from our own provider and are far below 4 GiB.
            out.extend_from_slice(&u32::try_from(quote.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(quote);
        }
    }
    out
}

pub(crate) fn decode(message: &[u8]) -> Result<Option<&[u8]>, BondFailure> {
    let rest = message
        .strip_prefix(MAGIC.as_slice())
        .ok_or(BondFailure::Malformed("bad magic"))?;
    match rest.split_first() {
        Some((&KIND_NONE, [])) => Ok(None),
        Some((&KIND_NONE, _)) => Err(BondFailure::Malformed("bytes after an empty proof")),
        Some((&KIND_QUOTE, rest)) => {
            let (len, quote) = rest
                .split_first_chunk::<4>()
                .ok_or(BondFailure::Malformed("truncated length"))?;
            let len = u32::from_be_bytes(*len) as usize;
            if len == 0 || len > MAX_QUOTE_LEN {
                return Err(BondFailure::Malformed("quote length out of range"));
            }
            if quote.len() != len {
                return Err(BondFailure::Malformed("quote length does not match"));
            }
            Ok(Some(quote))
        }
        _ => Err(BondFailure::Malformed("unknown kind")),
    }
}

/// The two identities of a connection, in binding order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parties {
    pub(crate) role: Role,
    pub(crate) client: PeerId,
    pub(crate) server: PeerId,
}

/// Runs the exchange for one side and returns the peer's verified bond quote, if it sent one.
pub(crate) async fn exchange(
    conn: &quinn::Connection,
    config: &EndpointConfig,
    check: &PeerCheck,
    parties: Parties,
    peer: &CertifiedPeer,
    freshness: Freshness,
) -> Result<Option<VerifiedQuote>, Error> {
    let exporter = exporter(conn)?;
    let run = async {
        match parties.role {
            // The dialer sends its proof at once and waits for the acceptor's.
            Role::Client => {
                let send = async {
                    let quote = own_quote(config, freshness, parties, exporter).await?;
                    send_proof(conn, quote.as_deref()).await
                };
                let ((), message) = tokio::try_join!(send, receive_peer(conn))?;
                Ok(judged(
                    conn, check, freshness, parties, peer, &exporter, &message,
                )?)
            }
            // The acceptor makes its quote while the dialer's proof arrives, but sends it only
            // once that proof passed: its proof doubles as the acceptance, so a dialer never
            // holds a connection the acceptor refused.
            Role::Server => {
                let (quote, message) = tokio::try_join!(
                    own_quote(config, freshness, parties, exporter),
                    receive_peer(conn)
                )?;
                let verified = judged(conn, check, freshness, parties, peer, &exporter, &message)?;
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

/// Decodes and judges the peer's proof; on failure closes the connection with `BOND_REFUSED`.
fn judged(
    conn: &quinn::Connection,
    check: &PeerCheck,
    freshness: Freshness,
    parties: Parties,
    peer: &CertifiedPeer,
    exporter: &[u8; 32],
    message: &[u8],
) -> Result<Option<VerifiedQuote>, Error> {
    let result =
        decode(message).and_then(|quote| judge(check, freshness, parties, peer, exporter, quote));
    result.map_err(|failure| {
        tracing::warn!(%failure, peer = %peer.peer_id, "bond proof refused");
        conn.close(BOND_REFUSED.into(), failure.wire_reason().as_bytes());
        Error::Rejected(failure.into())
    })
}

/// This side's fresh bond quote, when it is attested and uses per-bond freshness.
async fn own_quote(
    config: &EndpointConfig,
    freshness: Freshness,
    parties: Parties,
    exporter: [u8; 32],
) -> Result<Option<Vec<u8>>, Error> {
    let Some(provider) = config.provider.as_ref() else {
        return Ok(None);
    };
    if freshness != Freshness::PerBond {
        return Ok(None);
    }
    let report_data = report_data(&BindingInput::Bond {
        role: parties.role,
        client: parties.client,
        server: parties.server,
        exporter: &exporter,
    })
    .map_err(|e| Error::Stream(e.to_string()))?;
    let provider = Arc::clone(provider);
    let permit = Arc::clone(&config.quote_permits)
        .acquire_owned()
        .await
        .map_err(|_| Error::Stream("quote permits closed".into()))?;
    let quote = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        provider.quote(&report_data)
    })
    .await
    .map_err(|e| Error::Stream(format!("quote task: {e}")))??;
    Ok(Some(quote))
}

async fn send_proof(conn: &quinn::Connection, quote: Option<&[u8]>) -> Result<(), Error> {
    let mut stream = conn.open_uni().await?;
    stream
        .write_all(&encode(quote))
        .await
        .map_err(|e| match e {
            // Keep the peer's close (its TLS alert or bond refusal) typed, as receive_peer does.
            quinn::WriteError::ConnectionLost(e) => e.into(),
            other => Error::Stream(other.to_string()),
        })?;
    stream.finish().map_err(|e| Error::Stream(e.to_string()))?;
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
        Error::BondTimeout | Error::Rejected(_) | Error::Stream(_)
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
        .read_to_end(MAX_MESSAGE_LEN)
        .await
        .map_err(|e| match e {
            quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(e)) => e.into(),
            quinn::ReadToEndError::TooLong => {
                Error::Rejected(BondFailure::Malformed("bond proof too long").into())
            }
            other => Error::Stream(other.to_string()),
        })
}

fn judge(
    check: &PeerCheck,
    freshness: Freshness,
    parties: Parties,
    peer: &CertifiedPeer,
    exporter: &[u8; 32],
    quote: Option<&[u8]>,
) -> Result<Option<VerifiedQuote>, BondFailure> {
    let Some(cert_quote) = &peer.quote else {
        return match quote {
            None => Ok(None),
            Some(_) => Err(BondFailure::Unexpected("a Software peer sent a quote")),
        };
    };
    let Some(quote) = quote else {
        if freshness == Freshness::Certificate {
            tracing::info!(peer = %peer.peer_id, "bond admitted on certificate freshness");
            return Ok(None);
        }
        return Err(BondFailure::Missing);
    };
    let collateral = check
        .collateral
        .collateral_for(quote)
        .ok_or(BondFailure::Malformed("no collateral for the bond quote"))?;
    let verified = check
        .quote_verifier
        .verify(quote, &collateral, unix_now(), &check.policy)
        .map_err(BondFailure::Quote)?;
    if verified.quote_digest() == cert_quote.quote_digest() {
        return Err(BondFailure::Replayed);
    }
    let expected = BindingInput::Bond {
        role: parties.role.peer(),
        client: parties.client,
        server: parties.server,
        exporter,
    };
    verify_binding(&expected, verified.report_data()).map_err(BondFailure::Binding)?;
    if verified.measurements() != cert_quote.measurements() {
        return Err(BondFailure::MeasurementsChanged);
    }
    if verified.pck_chain_digest() != cert_quote.pck_chain_digest() {
        return Err(BondFailure::PlatformChanged);
    }
    Ok(Some(verified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_malformed_ones_are_refused() {
        assert_eq!(decode(&encode(None)).unwrap(), None);
        let quote = vec![7u8; 100];
        assert_eq!(decode(&encode(Some(&quote))).unwrap(), Some(&quote[..]));

        let good = encode(Some(&quote));
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(decode(&bad_magic).is_err());
        let mut bad_kind = good;
        bad_kind[4] = 9;
        assert!(decode(&bad_kind).is_err());
        let mut none_with_tail = encode(None);
        none_with_tail.push(1);
        assert!(decode(&none_with_tail).is_err());
        let mut huge = encode(Some(&[1]));
        huge[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge).is_err());
    }
}
