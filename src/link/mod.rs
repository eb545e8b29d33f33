//! Attested links with the shape of mosaik's peer transport (`mosaik::network::link`), so a
//! mosaik-style subsystem moves onto attested QUIC by changing imports.
//!
//! | mosaik 0.4.2 (over iroh) | here (over [`Endpoint`](crate::Endpoint)) |
//! |---|---|
//! | `trait Protocol { const ALPN }` | [`Protocol`] |
//! | `Link<P>`: one connection, one bi stream | [`Link`], plus [`Link::attestation`] |
//! | `LinkSender` / `LinkReceiver`, `split` / `join` | [`LinkSender`] / [`LinkReceiver`] |
//! | `LengthDelimitedCodec` frames around postcard | the same bytes: 4-byte big-endian length, [`Datum`] |
//! | `shared_random(label)`: exporter, ALPN as context | [`Link::shared_random`] |
//! | close reasons, `make_close_reason!`, codes 100..401, subsystem codes | [`close`], [`make_close_reason!`](crate::make_close_reason) |
//! | `OpenError`, `AcceptError`, `RecvError`, `SendError`, `CloseError`, `LinkError` | same names, same variants, `close_reason()`, `is_cancelled()` |
//! | `LocalNode`, `EndpointAddr`, iroh `Router` / `ProtocolHandler` | [`LocalNode`], [`EndpointAddr`], [`Router`] / [`ProtocolHandler`] |
//! | `PeerId` = iroh `PublicKey`, `SecretKey` | [`PeerId`](crate::PeerId), [`Identity`](crate::Identity) (same 32 bytes both; [`identity_from_secret_key`]) |
//! | iroh `Connection` handed to a handler | [`AttestedConnection`](crate::AttestedConnection) |
//!
//! What differs: there are no relays and no hole punching (direct IP only, see
//! [`AddressError::RelayOnly`]); [`Link::send_raw`] is a safe function; `shared_random` returns
//! `[u8; 32]`; a receiver refuses frames over [`DEFAULT_MAX_FRAME_LEN`] unless raised; and every
//! connection is attested before any link exists. `docs/mosaik.md` has the details.
//!
//! # Wire format
//!
//! A link is one QUIC connection whose ALPN is `P::ALPN` (negotiated as described in
//! [`AlpnRoute`](crate::AlpnRoute)) and the first bidirectional stream the dialer opens on it (the bond proof's
//! unidirectional streams come before and are invisible here). Each direction of that stream
//! is a sequence of frames: a 4-byte big-endian unsigned payload length `n`, then `n` bytes of
//! payload. [`Link::send`] payloads are [`Datum::encode`] (postcard for serde types).

mod addr;
pub mod close;
mod committee;
mod datum;
mod error;
mod id;
mod node;
mod router;
mod stream;

pub use addr::{AddressBook, AddressError, EndpointAddr, TransportAddr};
pub use close::{ApplicationClose, CloseReason, VarInt};
pub use committee::{
    backoff_delay, BelowCommitteeLevel, Committee, CommitteeError, CommitteeEvent, CommitteePolicy,
    MemberView, Reattest, COMMITTEE_ALPN,
};
pub use datum::Datum;
pub use error::{AcceptError, BoxError, CloseError, LinkError, OpenError, RecvError, SendError};
pub use id::{identity_from_secret_key, secret_key_bytes};
pub use node::{ConnectError, LocalNode};
pub use router::{ProtocolHandler, Refusal, Router, RouterBuilder};
pub use stream::{Link, LinkReceiver, LinkSender, DEFAULT_MAX_FRAME_LEN};

pub use tokio_util::sync::CancellationToken;

/// An application protocol: its ALPN identifies it on the wire, and a [`Link<P>`] only ever
/// carries `P`.
pub trait Protocol {
    /// The ALPN name (1 to 255 bytes).
    const ALPN: &'static [u8];
}
