//! Synthetic evidence for tests, benchmarks and the demo (feature `synthetic`).
//!
//! A complete DCAP test PKI made at run time (root, PCK CA, PCK leaf with the SGX extension, TCB
//! signer, signed TCB info and QE identity, CRLs) that signs DCAP-format quotes with
//! caller-chosen report_data and Measurements, and small TDVF firmware images and kernels for
//! the measurement code. The real verifier checks these quotes once told to trust the synthetic
//! root ([`SyntheticPki::quote_verifier`], logged). Such quotes prove nothing about hardware.

pub use crate::measure::synthetic::{
    synthetic_kernel, SyntheticImage, SyntheticSection, SyntheticTdvf,
};
pub use crate::tdx::synthetic::{
    sample_measurements, QuoteSpec, SyntheticError, SyntheticPki, SyntheticPkiParams,
    SyntheticQuoteProvider, SyntheticTcb,
};
