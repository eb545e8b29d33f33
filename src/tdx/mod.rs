//! Intel TDX evidence: quotes, their verification, and the seam they come from. Core: no I/O.
//!
//! - `quote` reads the layout of a DCAP quote (no signature checks).
//! - `verify` runs DCAP verification (dcap-qvl) at an explicit `now` and yields an
//!   [`AuthenticQuote`]; `cache` keeps its verdicts per platform. Whether an authentic quote is
//!   acceptable is the policy's judgement (`crate::policy`).
//! - [`QuoteProvider`] is the seam through which quotes are produced: `ConfigfsTsm` (shell) on a
//!   TDX guest, `synthetic` for tests, benchmarks and the demo.

mod cache;
mod collateral;
mod measurements;
mod provider;
pub(crate) mod quote;
mod tcb_status;
mod verify;

mod report_ext;
#[cfg(feature = "synthetic")]
pub(crate) mod synthetic;

pub use crate::configfs::{ConfigfsTsm, CONFIGFS_TSM_ROOT};
pub use cache::{CacheStats, VerdictCache, DEFAULT_CACHE_CAPACITY};
pub use collateral::{
    Collateral, CollateralError, CollateralProvenance, CollateralStore, StaticCollateral,
    MAX_COLLATERAL_LEN,
};
pub use measurements::{Measurements, ReportData, MEASUREMENT_LEN};
pub(crate) use provider::without_padding;
pub use provider::{QuoteProvider, QuoteProviderError};
pub use quote::{
    canonical_quote, normalized_quote, pck_chain_pem, QuoteFormatError, QuoteLayout, TdReportKind,
};
pub use report_ext::{Td15ExFields, Td15Fields, TdReportExtras};
pub use tcb_status::{TcbStatus, UnknownTcbStatus};
pub use verify::{
    AuthenticQuote, AuthenticityError, DangerousQuoteVerifier, DcapCheck, DcapError, DcapStats,
    QuoteVerifier, DEFAULT_MAX_CONCURRENT_DCAP, FAILED_QUOTE_SECS, INTEL_SGX_ROOT_CA_DER,
};
