//! The handshake side of attestation: rustls verifiers and configurations, the certificate and
//! bond-proof judgements, rejection reasons and their TLS alerts. Core: no I/O, no clock (rustls
//! and the endpoint pass `now`).

pub(crate) mod bond;
mod config;
mod peer;
mod refusals;
mod rejection;
mod verifiers;

pub use bond::{batched_bond_message, bond_message, BOND_REFUSED, EXPORTER_LABEL};
pub(crate) use bond::{Parties, MAX_MESSAGE_LEN as MAX_BOND_MESSAGE_LEN};
pub use config::{AttestedTlsConfig, PendingPeer, ALPN, ALPN_BATCHED};
pub(crate) use peer::PeerCheck;
pub use peer::{CertifiedPeer, ExpectedPeer};
pub use refusals::{RefusalCounts, REFUSAL_LOG_INTERVAL_SECS};
pub use rejection::{BondFailure, PeerRejection, RejectedPeer};
