use core::fmt::Debug;
use std::path::PathBuf;

use super::ReportData;

/// Something that produces TDX quotes over caller-chosen report data.
///
/// [`QuoteProvider::quote`] **may block** for milliseconds to a second (configfs-tsm asks the
/// quoting enclave through the host). Never call it from a rustls callback or directly on an async
/// executor thread: use `tokio::task::spawn_blocking` or a dedicated thread.
pub trait QuoteProvider: Debug + Send + Sync {
    /// Produce a DCAP quote whose TD report carries `report_data`. Blocking.
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError>;

    /// A short name for logs ("configfs-tsm", "synthetic").
    fn name(&self) -> &'static str;
}

/// Why a [`QuoteProvider`] produced no quote.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteProviderError {
    /// Another writer used the report entry at the same time, and retries ran out.
    #[error("configfs-tsm report entry stayed busy after {attempts} attempts")]
    Busy {
        /// How many times generation was tried.
        attempts: u32,
    },
    /// The generation counter did not advance by exactly one, so the outblob may belong to
    /// another request; retries ran out.
    #[error("configfs-tsm generation mismatch: expected {expected}, found {found}")]
    GenerationMismatch {
        /// The generation this request should have produced.
        expected: u64,
        /// The generation the entry reported.
        found: u64,
    },
    /// The report entry exists but is served by another provider (not `tdx_guest`).
    #[error("configfs-tsm provider is {found:?}, expected \"tdx_guest\"")]
    WrongProvider {
        /// The provider named in the entry.
        found: String,
    },
    /// A configfs file could not be read, written or created.
    #[error("configfs-tsm I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The provider returned something that is not a quote.
    #[error("quote provider returned a malformed quote: {0}")]
    Malformed(String),
    /// The synthetic provider could not sign a quote.
    #[error("synthetic quote: {0}")]
    Synthetic(String),
}
