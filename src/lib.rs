//! RA-TLS on QUIC for Intel TDX.
//!
//! Every peer has an Ed25519 identity and a short-lived self-signed certificate that carries a TDX
//! quote. Verifiers on both sides check that quote (DCAP signature chain to a trusted root, TCB
//! status, declared Measurements, report_data binding) inside the TLS handshake, so a peer that
//! fails is refused before any stream opens.
//!
//! # Layout
//!
//! | module | what | I/O |
//! |---|---|---|
//! | [`level`] | the five attestation levels, ordered | none |
//! | [`policy`] | Measurement profiles, TCB rules, level floor, freshness; the TOML schema | none |
//! | [`identity`] | Ed25519 identities, `PeerId`, key files | key files only |
//! | [`evidence`] | report_data binding, the evidence extension, certificate issuance and parsing | none |
//! | [`tdx`] | quote layout, DCAP verification, collateral, quote providers (configfs-tsm, synthetic) | configfs only |
//! | [`tls`] | rustls verifiers and configurations; rejection reasons and their alerts | none |
//! | [`endpoint`] | the QUIC endpoint: bind, connect, accept, bond proofs, certificate renewal | UDP, tasks |
//! | [`link`] | mosaik-shaped links, ALPN router, address book, committee meshes | UDP, tasks |
//! | [`repro`] | Measurements computed from firmware and kernel images; rebuild checks | files, HTTP, processes |
//!
//! The core modules read no clock: the caller (or rustls) passes `now`. Quote generation may
//! block and runs on blocking threads, never inside a rustls callback.
//!
//! # Threat model in one paragraph
//!
//! The host, the network and the peer's operator are untrusted; Intel's signing chain, the TDX
//! module and the Measurements pinned in the policy are trusted. A peer is accepted when a quote
//! signed under the trusted root says its TD runs software with pinned Measurements, and that
//! quote is bound to the key that authenticated the TLS handshake and, per bond, to this very
//! connection (its TLS exporter), so a quote can be neither moved to another key nor replayed or
//! relayed into another connection.
//!
//! # What a verified quote proves
//!
//! A [`tdx::VerifiedQuote`] proves that a TDX module on a platform whose PCK chains to the trusted
//! root signed (through the quoting enclave) a TD report with these Measurements and this
//! report_data, and that the platform's TCB had the reported status in the given collateral. It
//! does not prove that the Measurements describe software you trust: that is what
//! [`policy::MeasurementPolicy`] is for. It does not prove freshness on its own: freshness comes
//! from binding report_data to a value the verifier chose or contributed to.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod endpoint;
pub mod evidence;
pub mod identity;
pub mod level;
pub mod link;
pub mod policy;
pub mod repro;
pub mod tdx;
pub mod tls;

pub use level::AttestationLevel;
