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
///
/// Variants are in alphabetical order. None of them is sent to a peer: a provider failure means no
/// certificate or bond proof is produced at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteProviderError {
    /// A configfs-tsm attribute held something other than what the ABI promises (for example a
    /// `generation` that is not a decimal number).
    #[error("configfs-tsm attribute {path} holds {found:?}, expected {expected}")]
    BadAttribute {
        /// The attribute file.
        path: PathBuf,
        /// What it held (lossily decoded, trimmed).
        found: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// The kernel answered `EBUSY` on every attempt at one operation (another request is in
    /// flight, or the host's quoting service is busy); retries ran out.
    #[error("configfs-tsm report entry stayed busy after {attempts} attempts")]
    Busy {
        /// How many times the operation was tried.
        attempts: u32,
    },
    /// The `generation` counter did not advance by exactly one between writing `inblob` and
    /// reading `outblob`, so the outblob may answer another writer's request; retries ran out.
    #[error("configfs-tsm generation mismatch: expected {expected}, found {found}")]
    GenerationMismatch {
        /// The generation this request should have produced (on the last attempt).
        expected: u64,
        /// The generation the entry reported (on the last attempt).
        found: u64,
    },
    /// A configfs file could not be read, written, created or removed.
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
    /// The configfs-tsm report directory does not exist: not a TDX guest, a kernel older than
    /// 6.7, configfs not mounted, or a wrong root path.
    #[error("configfs-tsm is not available: {root} does not exist")]
    Unavailable {
        /// The configured report root.
        root: PathBuf,
    },
    /// The report entry is served by another provider (not `tdx_guest`).
    #[error("configfs-tsm provider is {found:?}, expected \"tdx_guest\"")]
    WrongProvider {
        /// The provider named in the entry.
        found: String,
    },
}

/// `quote` cut at the end its length fields give: what this side puts in a certificate or a
/// bond proof, whose verifiers refuse any byte after the quote. configfs-tsm may hand out a
/// zero-padded buffer. Bytes that do not parse as a quote are left as they are (the peer refuses
/// them with a precise reason).
pub(crate) fn without_padding(mut quote: Vec<u8>) -> Vec<u8> {
    if let Ok(len) = super::canonical_quote(&quote).map(<[u8]>::len) {
        quote.truncate(len);
    }
    quote
}
