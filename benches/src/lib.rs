//! Handshake latency benchmarks for ratls-quic.
//!
//! Every scenario makes fresh QUIC connections on loopback over real UDP, one at a time, and
//! times each from `connect` to the established connection and to a 1-byte echo on a bi stream.
//! The baseline is plain quinn mutual TLS with Ed25519 self-signed certificates (ring, X25519,
//! TLS 1.3, resumption and 0-RTT off, no address-validation tokens), measured in the same run as
//! everything it is compared with. A second baseline pads the server certificate to the size of
//! one carrying a TDX quote, to show the cost of QUIC's anti-amplification limit. A micro-benchmark
//! times DCAP verification of a real quote, which a TLS verifier runs per handshake. The attested
//! levels (Software, TdxLocal, TdxRaTlsBidirectional) run `ratls_quic::endpoint` with synthetic
//! quotes and are timed to the connection the application receives.
//!
//! The load cells ([`load`]) run 64 concurrent dialers against an acceptor whose quote provider
//! takes 39 ms per quote, serialised, with one quote per bond and with batched bond proofs.
//!
//! New scenarios implement [`HandshakeScenario`] and join [`default_scenarios`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attested;
pub mod cells;
pub mod flood;
pub mod harness;
pub mod load;
pub mod micro;
pub mod net;
pub mod procstat;
pub mod relay;
pub mod scenario;
pub mod soak;
pub mod stats;
pub mod tls;

pub use attested::{AttestedScenario, Level, Verification};
pub use harness::{default_scenarios, measure, run, Options, Report};
pub use load::{run_load, DelayedQuoteProvider, LoadOptions, LoadReport};
pub use scenario::{HandshakeScenario, PlainMtls};
