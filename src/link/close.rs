//! Close reasons: typed values sent as a QUIC application close (`error_code`, `reason`), and
//! the codes mosaik gives them.
//!
//! A close reason is a unit type that converts into an [`ApplicationClose`] and compares equal
//! to any `ApplicationClose` with its code (the reason text is informative only). Declare one
//! with [`make_close_reason!`](crate::make_close_reason):
//!
//! ```
//! ratls_quic::make_close_reason!(
//!     /// The request named no known item.
//!     pub struct NotFound, 12_404);
//!
//! use ratls_quic::link::ApplicationClose;
//! let close: ApplicationClose = NotFound.into();
//! assert_eq!(close.error_code.into_inner(), 12_404);
//! assert!(close == NotFound);
//! ```
//!
//! Codes 0 to 199 are reserved for the transport, as in mosaik; the subsystem codes below
//! (streams `10_xxx`, functions `11_xxx`, groups `30_xxx`) are mosaik's, declared here so that
//! code written against mosaik's subsystems finds them under the same names. The transport's
//! own bond refusal ([`crate::BOND_REFUSED`], `0x5241_0001`) stays distinct from all
//! of them.

pub use quinn::{ApplicationClose, VarInt};

/// A typed close reason (see the module docs).
pub trait CloseReason:
    std::error::Error
    + Into<ApplicationClose>
    + PartialEq<ApplicationClose>
    + Clone
    + Sized
    + Send
    + Sync
    + 'static
{
    /// The close code.
    const CODE: u32;
}

/// Declares a close reason: a unit struct with `Debug`, `Clone`, `Copy`, `Display` (its name),
/// `Error`, `Into<ApplicationClose>` (code and name as reason text), and `PartialEq` with
/// `ApplicationClose` both ways (by code). See [`link::close`](crate::link::close).
#[macro_export]
macro_rules! make_close_reason {
    ($(#[$meta:meta])* $vis:vis struct $name:ident, $code:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis struct $name;

        const _: () = {
            impl ::core::fmt::Display for $name {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.write_str(stringify!($name))
                }
            }

            impl ::std::error::Error for $name {}

            impl ::core::convert::From<$name> for $crate::link::ApplicationClose {
                fn from(_: $name) -> Self {
                    $crate::link::ApplicationClose {
                        error_code: $crate::link::VarInt::from_u32($code),
                        reason: ::core::convert::From::from(stringify!($name).as_bytes()),
                    }
                }
            }

            impl ::core::cmp::PartialEq<$crate::link::ApplicationClose> for $name {
                fn eq(&self, other: &$crate::link::ApplicationClose) -> bool {
                    other.error_code == $crate::link::VarInt::from_u32($code)
                }
            }

            impl ::core::cmp::PartialEq<$name> for $crate::link::ApplicationClose {
                fn eq(&self, _: &$name) -> bool {
                    self.error_code == $crate::link::VarInt::from_u32($code)
                }
            }

            impl ::core::cmp::PartialEq<$name> for &$crate::link::ApplicationClose {
                fn eq(&self, _: &$name) -> bool {
                    self.error_code == $crate::link::VarInt::from_u32($code)
                }
            }

            impl $crate::link::CloseReason for $name {
                const CODE: u32 = $code;
            }
        };
    };
}

make_close_reason!(
    /// The accepting side serves another ALPN (code 100, as
    /// [`crate::INVALID_ALPN`]).
    pub struct InvalidAlpn, 100);

make_close_reason!(
    /// The remote peer is on a different network (101).
    pub struct DifferentNetwork, 101);

make_close_reason!(
    /// An operation was cancelled (102).
    pub struct Cancelled, 102);

make_close_reason!(
    /// The link ended without the protocol finishing (103).
    pub struct UnexpectedClose, 103);

make_close_reason!(
    /// The protocol ran to completion (200).
    pub struct Success, 200);

make_close_reason!(
    /// Graceful shutdown (204).
    pub struct GracefulShutdown, 204);

make_close_reason!(
    /// The remote peer sent a message that violates the protocol (400).
    pub struct ProtocolViolation, 400);

make_close_reason!(
    /// The dialing peer is not in the acceptor's catalog; it should re-sync and retry (401).
    pub struct UnknownPeer, 401);

/// mosaik's streams subsystem (`/mosaik/streams/1.0`).
pub mod streams {
    make_close_reason!(
        /// No such stream on the producer (10_404).
        pub struct StreamNotFound, 10_404);
    make_close_reason!(
        /// The consumer may not subscribe (10_403).
        pub struct NotAllowed, 10_403);
    make_close_reason!(
        /// The consumer fell too far behind the producer and was disconnected (10_413).
        pub struct TooSlow, 10_413);
    make_close_reason!(
        /// The producer has no capacity for another consumer (10_509).
        pub struct NoCapacity, 10_509);
}

/// mosaik's functions subsystem (`/mosaik/functions/1.0`).
pub mod functions {
    make_close_reason!(
        /// No such function on the handler (11_404).
        pub struct FunctionNotFound, 11_404);
    make_close_reason!(
        /// The caller may not invoke the function (11_403).
        pub struct NotAllowed, 11_403);
    make_close_reason!(
        /// The handler failed while producing a reply (11_500).
        pub struct HandlerFailure, 11_500);
    make_close_reason!(
        /// The handler has no capacity for another call (11_509).
        pub struct NoCapacity, 11_509);
}

/// mosaik's groups subsystem (`/mosaik/groups/1`).
pub mod groups {
    make_close_reason!(
        /// The handshake could not be received or decoded (30_400).
        pub struct InvalidHandshake, 30_400);
    make_close_reason!(
        /// The peer has no valid ticket for the group (30_403).
        pub struct NotAllowed, 30_403);
    make_close_reason!(
        /// The group is unknown to the acceptor (30_404).
        pub struct GroupNotFound, 30_404);
    make_close_reason!(
        /// The membership proof is invalid (30_405).
        pub struct InvalidProof, 30_405);
    make_close_reason!(
        /// The peer did not answer in time (30_408).
        pub struct Timeout, 30_408);
    make_close_reason!(
        /// The two peers already have a link in this group (30_429).
        pub struct AlreadyBonded, 30_429);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<R: CloseReason>(reason: R) -> u64 {
        let close: ApplicationClose = reason.clone().into();
        assert!(reason == close, "{reason} equals its own close");
        assert_eq!(close.reason.as_ref(), reason.to_string().as_bytes());
        assert_eq!(close.error_code.into_inner(), u64::from(R::CODE));
        close.error_code.into_inner()
    }

    #[test]
    fn codes_are_numbered_as_mosaik_numbers_them() {
        assert_eq!(code(InvalidAlpn), 100);
        assert_eq!(code(DifferentNetwork), 101);
        assert_eq!(code(Cancelled), 102);
        assert_eq!(code(UnexpectedClose), 103);
        assert_eq!(code(Success), 200);
        assert_eq!(code(GracefulShutdown), 204);
        assert_eq!(code(ProtocolViolation), 400);
        assert_eq!(code(UnknownPeer), 401);
        assert_eq!(code(streams::StreamNotFound), 10_404);
        assert_eq!(code(streams::NotAllowed), 10_403);
        assert_eq!(code(streams::TooSlow), 10_413);
        assert_eq!(code(streams::NoCapacity), 10_509);
        assert_eq!(code(functions::FunctionNotFound), 11_404);
        assert_eq!(code(functions::NotAllowed), 11_403);
        assert_eq!(code(functions::HandlerFailure), 11_500);
        assert_eq!(code(functions::NoCapacity), 11_509);
        assert_eq!(code(groups::InvalidHandshake), 30_400);
        assert_eq!(code(groups::NotAllowed), 30_403);
        assert_eq!(code(groups::GroupNotFound), 30_404);
        assert_eq!(code(groups::InvalidProof), 30_405);
        assert_eq!(code(groups::Timeout), 30_408);
        assert_eq!(code(groups::AlreadyBonded), 30_429);
        assert_eq!(u64::from(crate::INVALID_ALPN), code(InvalidAlpn));
    }

    #[test]
    fn reasons_compare_by_code_only() {
        let other = ApplicationClose {
            error_code: VarInt::from_u32(400),
            reason: bytes::Bytes::from_static(b"anything"),
        };
        assert!(other == ProtocolViolation);
        assert!(ProtocolViolation == other);
        assert!(other != Success);
        let bond = ApplicationClose {
            error_code: VarInt::from_u32(crate::BOND_REFUSED),
            reason: bytes::Bytes::new(),
        };
        for close in [
            ApplicationClose::from(InvalidAlpn),
            Cancelled.into(),
            Success.into(),
            ProtocolViolation.into(),
            groups::InvalidProof.into(),
        ] {
            assert_ne!(close.error_code, bond.error_code);
        }
    }
}
