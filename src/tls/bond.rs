//! The bond proof, core half: the message codec and the judgement of a peer's proof. No I/O:
//! the endpoint (`crate::endpoint`) moves the bytes and passes the exporter and `now`.
//!
//! Right after the handshake each attested side sends a fresh quote bound to this connection on
//! the first unidirectional stream it opens; the other side judges it before the connection is
//! handed out. Wire format of the message (the whole stream; `docs/transport.md`):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `RQB1` (ratls-quic bond, version 1) |
//! | 1 | kind: 0 = no quote (a Software side, or one using certificate freshness), 1 = quote |
//! | 4 | quote length, big-endian (kind 1 only) |
//! | n | the quote (kind 1 only) |

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

use crate::evidence::{
    report_data, verify_binding, BindingInput, EvidenceError, Role, MAX_QUOTE_LEN,
};
use crate::identity::PeerId;
use crate::policy::{Freshness, VerifiedQuote};
use crate::tdx::ReportData;

use super::peer::{CertifiedPeer, PeerCheck, QuoteCheck};
use super::BondFailure;

const MAGIC: &[u8; 4] = b"RQB1";
const KIND_NONE: u8 = 0;
const KIND_QUOTE: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 4;

/// The longest bond proof message accepted.
pub(crate) const MAX_MESSAGE_LEN: usize = HEADER_LEN + MAX_QUOTE_LEN;

/// Label of the TLS exporter value a bond binds (RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-ratls-quic-bond-v1";

/// QUIC application close code for a refused bond proof.
pub const BOND_REFUSED: u32 = 0x5241_0001;

/// Encodes a bond proof message in the wire format above: the whole content of the first
/// unidirectional stream a side opens after the handshake. `None` is the empty proof of a side
/// that presents no quote per connection. For peers implemented outside this crate and for
/// tests; the endpoint sends its own proofs.
pub fn bond_message(quote: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(quote.map_or(0, <[u8]>::len)));
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

/// Decodes a bond proof message: the quote it carries, if any.
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
            let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
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

/// The two identities of a connection in binding order, and which one this side is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parties {
    pub(crate) role: Role,
    pub(crate) client: PeerId,
    pub(crate) server: PeerId,
}

impl Parties {
    /// The parties of a connection on which `local` has `role` and talks to `peer`.
    pub(crate) fn new(role: Role, local: PeerId, peer: PeerId) -> Self {
        match role {
            Role::Client => Self {
                role,
                client: local,
                server: peer,
            },
            Role::Server => Self {
                role,
                client: peer,
                server: local,
            },
        }
    }

    /// What a bond quote of the side in `role` binds on this connection.
    fn binding(self, role: Role, exporter: &[u8; 32]) -> BindingInput<'_> {
        BindingInput::Bond {
            role,
            client: self.client,
            server: self.server,
            exporter,
        }
    }

    /// The report_data of this side's own bond quote.
    pub(crate) fn own_report_data(self, exporter: &[u8; 32]) -> Result<ReportData, EvidenceError> {
        report_data(&self.binding(self.role, exporter))
    }
}

impl PeerCheck {
    /// Judges the peer's bond proof `message` on the connection with this `exporter`, at `now`:
    /// the peer's verified bond quote, `None` where no quote is due (a Software peer, or
    /// certificate freshness).
    pub(crate) fn judge_bond(
        &self,
        parties: Parties,
        peer: &CertifiedPeer,
        exporter: &[u8; 32],
        message: &[u8],
        now: u64,
    ) -> Result<Option<VerifiedQuote>, BondFailure> {
        let quote = decode(message)?;
        let Some(cert_quote) = peer.quote() else {
            return match quote {
                None => Ok(None),
                Some(_) => Err(BondFailure::Unexpected("a Software peer sent a quote")),
            };
        };
        let Some(quote) = quote else {
            if self.policy().freshness() == Freshness::Certificate {
                tracing::info!(peer = %peer.peer_id(), "bond admitted on certificate freshness");
                return Ok(None);
            }
            return Err(BondFailure::Missing);
        };
        let verified = self.verify_quote(quote, now).map_err(|check| match check {
            QuoteCheck::MissingCollateral => BondFailure::MissingCollateral,
            QuoteCheck::Refused(error) => BondFailure::Quote(error),
        })?;
        if verified.quote_digest() == cert_quote.quote_digest() {
            return Err(BondFailure::Replayed);
        }
        let expected = parties.binding(parties.role.peer(), exporter);
        verify_binding(&expected, verified.report_data()).map_err(BondFailure::Binding)?;
        if verified.measurements() != cert_quote.measurements() {
            return Err(BondFailure::MeasurementsChanged);
        }
        if verified.pck_chain_digest() != cert_quote.pck_chain_digest() {
            return Err(BondFailure::PlatformChanged);
        }
        Ok(Some(verified))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_malformed_ones_are_refused() {
        assert_eq!(decode(&bond_message(None)).unwrap(), None);
        let quote = vec![7u8; 100];
        assert_eq!(
            decode(&bond_message(Some(&quote))).unwrap(),
            Some(&quote[..])
        );

        let good = bond_message(Some(&quote));
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
        let mut none_with_tail = bond_message(None);
        none_with_tail.push(1);
        assert!(decode(&none_with_tail).is_err());
        let mut huge = bond_message(Some(&[1]));
        huge[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge).is_err());
    }
}
