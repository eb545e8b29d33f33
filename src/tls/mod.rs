//! TLS for attested QUIC: the verifiers that judge peer evidence inside the handshake, the
//! certificate resolver, and the rustls configurations.
//!
//! Verifiers do no I/O and never block: quote verification uses collateral already in memory
//! and the `now` rustls passes in. Each connection gets its own verifier and [`VerdictSlot`], so
//! the typed [`PeerRejection`] reaches the caller while only the TLS alert reaches the peer.

mod config;
mod peer;
mod rejection;
mod verifiers;

pub use config::{client_config, crypto_provider, server_config, CertificateSlot, ALPN};
pub use peer::{CertifiedPeer, ExpectedPeer, PeerCheck};
pub use rejection::{BondFailure, PeerRejection, RejectedPeer};
pub use verifiers::{AttestedClientVerifier, AttestedServerVerifier, VerdictSlot};
