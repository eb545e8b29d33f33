//! Intel TDX evidence: quotes, their verification, and where they come from.
//!
//! - [`quote`] reads the layout of a DCAP quote (no signature checks).
//! - [`verify`] runs DCAP verification (dcap-qvl) at an explicit `now` and yields a
//!   [`VerifiedQuote`]; [`cache`] keeps its verdicts per platform.
//! - [`QuoteProvider`] is the seam through which quotes are produced: [`ConfigfsTsm`] on a TDX
//!   guest, [`synthetic`] for tests, benchmarks and the demo.

mod measurements;
mod provider;
mod tcb_status;

pub mod cache;
pub mod collateral;
pub mod configfs;
pub mod quote;
pub mod report_ext;
pub mod synthetic;
pub mod verify;

#[cfg(test)]
mod cache_tests;

pub use cache::{CacheStats, VerdictCache, DEFAULT_CACHE_CAPACITY};
pub use collateral::{Collateral, CollateralError, CollateralStore, StaticCollateral};
pub use configfs::ConfigfsTsm;
pub use measurements::{Measurements, ReportData, MEASUREMENT_LEN};
pub use provider::{QuoteProvider, QuoteProviderError};
pub use tcb_status::{TcbStatus, UnknownTcbStatus};
pub use verify::{AttestationError, DcapCheck, QuoteVerifier, VerifiedQuote};
