//! RA-TLS on QUIC for Intel TDX.
//!
//! Every peer has an Ed25519 identity and a short-lived self-signed certificate that carries a TDX
//! quote. Verifiers on both sides check that quote (DCAP signature chain to a trusted root, TCB
//! status, declared Measurements, report_data binding) inside the TLS handshake, so a peer that
//! fails is refused before any stream opens.
//!
//! # Layout
//!
//! The core modules ([`level`], [`policy`], [`tdx::quote`], [`tdx::verify`]) do no I/O and read no
//! clock: the caller passes `now`. The shell modules (quote providers that touch configfs) do I/O.
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
pub mod policy;
pub mod repro;
pub mod tdx;
pub mod tls;

pub use level::AttestationLevel;
