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
//!
//! Version 2 (a batched proof, `docs/binding.md` "Batched bond proofs"), sent only on
//! connections that negotiated ALPN [`super::ALPN_BATCHED`]; single proofs keep version 1:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `RQB2` (ratls-quic bond, version 2) |
//! | 1 | kind: 2 = batched quote (no other kind) |
//! | 4 | quote length, big-endian, 1 ..= 8192 |
//! | n | the quote |
//! | 4 | leaf index, big-endian |
//! | 4 | leaf count, big-endian, 1 ..= 1024, above the index |
//! | 1 | audit path length `p` (hashes), 0 ..= 10 |
//! | 32 p | the audit path, bottom-up |

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
    verify_batch_binding, verify_binding, BatchPosition, BindingInput, NodeHash, Role,
    MAX_AUDIT_PATH, MAX_QUOTE_LEN,
};
use crate::identity::PeerId;
use crate::policy::{Freshness, VerifiedQuote};

use super::peer::{CertifiedPeer, PeerCheck, QuoteCheck};
use super::BondFailure;
use crate::tdx::quote::TdReportFields;

const MAGIC: &[u8; 4] = b"RQB1";
const KIND_NONE: u8 = 0;
const KIND_QUOTE: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 4;
const MAGIC_V2: &[u8; 4] = b"RQB2";
const KIND_BATCHED: u8 = 2;
/// Index, count and path length after the quote of a version 2 message.
const POSITION_LEN: usize = 4 + 4 + 1;

/// The longest bond proof message accepted (a batched proof of the deepest tree).
pub(crate) const MAX_MESSAGE_LEN: usize =
    HEADER_LEN + MAX_QUOTE_LEN + POSITION_LEN + 32 * MAX_AUDIT_PATH;

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

/// Encodes a batched bond proof (version 2 above): `quote` commits to a batch, and `position`
/// places this connection's leaf in it. For peers that negotiated [`super::ALPN_BATCHED`].
pub fn batched_bond_message(quote: &[u8], position: &BatchPosition) -> Vec<u8> {
    let path_len = position.path.len();
    let mut out = Vec::with_capacity(
        HEADER_LEN
            .saturating_add(quote.len())
            .saturating_add(POSITION_LEN)
            .saturating_add(path_len.saturating_mul(32)),
    );
    out.extend_from_slice(MAGIC_V2);
    out.push(KIND_BATCHED);
    // Quotes come from our own provider and are far below 4 GiB; positions from our own tree
    // (at most 1024 leaves, 10 hashes).
    out.extend_from_slice(&u32::try_from(quote.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(quote);
    out.extend_from_slice(
        &u32::try_from(position.index)
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(
        &u32::try_from(position.count)
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.push(u8::try_from(path_len).unwrap_or(u8::MAX));
    for hash in &position.path {
        out.extend_from_slice(hash.as_bytes());
    }
    out
}

/// A decoded bond proof message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Proof<'a> {
    /// No quote (version 1, kind 0).
    Empty,
    /// A quote over this bond's own report_data (version 1, kind 1).
    Single(&'a [u8]),
    /// A quote over a batch, with this bond's position (version 2).
    Batched {
        /// The quote.
        quote: &'a [u8],
        /// Index, count and audit path, as received (checked against the tree shape by the
        /// judgement).
        position: BatchPosition,
    },
}

impl<'a> Proof<'a> {
    fn quote(&self) -> Option<&'a [u8]> {
        match *self {
            Self::Empty => None,
            Self::Single(quote) | Self::Batched { quote, .. } => Some(quote),
        }
    }
}

/// Decodes a bond proof message of either version.
pub(crate) fn decode_proof(message: &[u8]) -> Result<Proof<'_>, BondFailure> {
    let Some(rest) = message.strip_prefix(MAGIC_V2.as_slice()) else {
        return Ok(match decode(message)? {
            None => Proof::Empty,
            Some(quote) => Proof::Single(quote),
        });
    };
    let Some((&KIND_BATCHED, rest)) = rest.split_first() else {
        return Err(BondFailure::Malformed("unknown kind"));
    };
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(BondFailure::Malformed("truncated length"))?;
    let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
    if len == 0 || len > MAX_QUOTE_LEN {
        return Err(BondFailure::Malformed("quote length out of range"));
    }
    let (quote, rest) = rest
        .split_at_checked(len)
        .ok_or(BondFailure::Malformed("truncated quote"))?;
    let (index, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(BondFailure::Malformed("truncated leaf index"))?;
    let (count, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(BondFailure::Malformed("truncated leaf count"))?;
    let (&path_len, rest) = rest
        .split_first()
        .ok_or(BondFailure::Malformed("truncated path length"))?;
    let path_len = usize::from(path_len);
    if path_len > MAX_AUDIT_PATH {
        return Err(BondFailure::Malformed("audit path too long"));
    }
    if rest.len() != path_len.saturating_mul(32) {
        return Err(BondFailure::Malformed("audit path length does not match"));
    }
    let path = rest
        .chunks_exact(32)
        .map(|hash| <[u8; 32]>::try_from(hash).map(NodeHash))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| BondFailure::Malformed("audit path length does not match"))?;
    Ok(Proof::Batched {
        quote,
        position: BatchPosition {
            index: u64::from(u32::from_be_bytes(*index)),
            count: u64::from(u32::from_be_bytes(*count)),
            path,
        },
    })
}

/// Decodes a version 1 bond proof message: the quote it carries, if any.
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
}

impl PeerCheck {
    /// Judges the peer's bond proof `message` on the connection with this `exporter`, at `now`,
    /// under `freshness` (the policy's, or an ALPN route's): the peer's verified bond quote,
    /// `None` where no quote is due (a Software peer, or certificate freshness).
    pub(crate) fn judge_bond(
        &self,
        freshness: Freshness,
        parties: Parties,
        peer: &CertifiedPeer,
        exporter: &[u8; 32],
        message: &[u8],
        now: u64,
    ) -> Result<Option<VerifiedQuote>, BondFailure> {
        self.judge_bond_proof(freshness, parties, peer, exporter, message, now)
            .map(|(quote, _)| quote)
    }

    /// [`Self::judge_bond`], and for a batched proof the position of this bond's leaf in the
    /// batch its quote serves (what an auditor needs besides the quote to re-verify it).
    pub(crate) fn judge_bond_proof(
        &self,
        freshness: Freshness,
        parties: Parties,
        peer: &CertifiedPeer,
        exporter: &[u8; 32],
        message: &[u8],
        now: u64,
    ) -> Result<(Option<VerifiedQuote>, Option<BatchPosition>), BondFailure> {
        let proof = decode_proof(message)?;
        let quote = proof.quote();
        let Some(cert_quote) = peer.quote() else {
            return match quote {
                None => Ok((None, None)),
                Some(_) => Err(BondFailure::Unexpected("a Software peer sent a quote")),
            };
        };
        let Some(quote) = quote else {
            if freshness == Freshness::Certificate {
                tracing::info!(peer = %peer.peer_id(), "bond admitted on certificate freshness");
                return Ok((None, None));
            }
            return Err(BondFailure::Missing);
        };
        let expected = parties.binding(parties.role.peer(), exporter);
        // Everything that can be compared before DCAP is: a proof that replays the
        // certificate quote, binds another bond or carries other Measurements costs no
        // verification.
        let precheck = |fields: &TdReportFields, digest: &[u8; 32]| {
            if digest == cert_quote.quote_digest() {
                return Err(BondFailure::Replayed);
            }
            match &proof {
                Proof::Batched { position, .. } => {
                    verify_batch_binding(&expected, position, &fields.report_data)
                }
                Proof::Empty | Proof::Single(_) => verify_binding(&expected, &fields.report_data),
            }
            .map_err(BondFailure::Binding)?;
            if &fields.measurements != cert_quote.measurements() {
                return Err(BondFailure::MeasurementsChanged);
            }
            Ok(())
        };
        let accept = |verified: &VerifiedQuote| {
            if verified.pck_chain_digest() != cert_quote.pck_chain_digest() {
                return Err(BondFailure::PlatformChanged);
            }
            Ok(())
        };
        let verified = self.verify_peer_quote(quote, now, precheck, accept)?;
        let position = match proof {
            Proof::Batched { position, .. } => Some(position),
            Proof::Empty | Proof::Single(_) => None,
        };
        Ok((Some(verified), position))
    }
}

impl From<QuoteCheck> for BondFailure {
    fn from(check: QuoteCheck) -> Self {
        match check {
            QuoteCheck::MissingCollateral => Self::MissingCollateral,
            QuoteCheck::Refused(error) => Self::Quote(error),
        }
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

    fn position(count: u64, index: u64) -> BatchPosition {
        let leaves = (0..count)
            .map(|i| NodeHash([u8::try_from(i % 251).unwrap() + 1; 32]))
            .collect();
        crate::evidence::BatchTree::new(leaves)
            .unwrap()
            .position(index)
            .unwrap()
    }

    #[test]
    fn batched_messages_round_trip() {
        let quote = vec![9u8; 300];
        for (count, index) in [(1, 0), (2, 1), (3, 2), (5, 4), (64, 17), (1024, 1023)] {
            let position = position(count, index);
            let message = batched_bond_message(&quote, &position);
            assert_eq!(
                message.len(),
                4 + 1 + 4 + quote.len() + 9 + 32 * position.path.len()
            );
            assert!(message.len() <= MAX_MESSAGE_LEN);
            assert_eq!(
                decode_proof(&message).unwrap(),
                Proof::Batched {
                    quote: &quote,
                    position
                }
            );
        }
        // Version 1 messages decode as before.
        assert_eq!(decode_proof(&bond_message(None)).unwrap(), Proof::Empty);
        assert_eq!(
            decode_proof(&bond_message(Some(&quote))).unwrap(),
            Proof::Single(&quote)
        );
    }

    #[test]
    fn malformed_batched_messages_are_refused() {
        let quote = vec![9u8; 50];
        let good = batched_bond_message(&quote, &position(5, 4));
        for len in 0..good.len() {
            assert!(decode_proof(&good[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode_proof(&longer).is_err());
        let mut bad_kind = good.clone();
        bad_kind[4] = KIND_QUOTE;
        assert!(decode_proof(&bad_kind).is_err());
        let mut zero_quote = good.clone();
        zero_quote[5..9].copy_from_slice(&0u32.to_be_bytes());
        assert!(decode_proof(&zero_quote).is_err());
        let mut huge_quote = good.clone();
        huge_quote[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_proof(&huge_quote).is_err());
        // A path length byte that disagrees with the bytes that follow, or is too long.
        let path_len_at = 4 + 1 + 4 + quote.len() + 8;
        for bad in [0u8, 2, 4, 11, 255] {
            let mut message = good.clone();
            message[path_len_at] = bad;
            assert!(decode_proof(&message).is_err(), "path length {bad}");
        }
        let deep = batched_bond_message(
            &quote,
            &BatchPosition {
                index: 0,
                count: 2048,
                path: vec![NodeHash([1; 32]); MAX_AUDIT_PATH + 1],
            },
        );
        assert!(decode_proof(&deep).is_err());
    }
}
