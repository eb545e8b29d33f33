//! Errors of the collateral client, cache and service.

use std::path::PathBuf;

use super::platform::PlatformKeyError;
use super::wire::WireError;

/// Why collateral could not be fetched from a service.
///
/// Every variant that comes from one request names its URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Every declared service failed; one error per service, in the order tried.
    #[error("every collateral service failed: {}", list(.0))]
    AllServicesFailed(Vec<Self>),
    /// The collateral's TCB evaluation data number is below the configured floor.
    #[error("{url}: TCB evaluation data number {got} is below the floor {floor}")]
    BelowEvaluationFloor {
        /// The service.
        url: String,
        /// The number served.
        got: u32,
        /// The floor.
        floor: u32,
    },
    /// The client configuration is unusable (no URL, an unparsable URL, TLS set-up).
    #[error("collateral client configuration: {0}")]
    Config(String),
    /// The connection could not be made or broke (refused, reset, DNS).
    #[error("{url}: connection failed: {source}")]
    Connect {
        /// The request URL.
        url: String,
        /// reqwest's error.
        source: reqwest::Error,
    },
    /// HTTP 410 Gone: the item is no longer published (for example an evaluation data number
    /// that was withdrawn).
    #[error("{url}: HTTP 410 Gone")]
    Gone {
        /// The request URL.
        url: String,
    },
    /// The body ended before its announced length, or the connection broke while reading it.
    #[error("{url}: response body incomplete: {source}")]
    Incomplete {
        /// The request URL.
        url: String,
        /// reqwest's error.
        source: reqwest::Error,
    },
    /// The body is malformed or inconsistent (a wire-level check failed).
    #[error("{url}: {source}")]
    Malformed {
        /// The request URL.
        url: String,
        /// What is wrong.
        source: WireError,
    },
    /// A required response header is absent.
    #[error("{url}: no {header} header")]
    MissingHeader {
        /// The request URL.
        url: String,
        /// The header.
        header: &'static str,
    },
    /// HTTP 404: the service has no such item (an unknown FMSPC, for example).
    #[error("{url}: HTTP 404 Not Found")]
    NotFound {
        /// The request URL.
        url: String,
    },
    /// The quote does not name a platform.
    #[error("no platform key in the quote: {0}")]
    Platform(#[from] PlatformKeyError),
    /// HTTP 5xx after every retry.
    #[error("{url}: HTTP {status} (server error)")]
    Server {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Any other unexpected HTTP status (3xx, 4xx other than 404, 410, 429).
    #[error("{url}: unexpected HTTP status {status}")]
    Status {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The request timed out (connect, or the whole exchange).
    #[error("{url}: timed out after {seconds:.1} s")]
    Timeout {
        /// The request URL.
        url: String,
        /// The timeout that expired.
        seconds: f64,
    },
    /// The TLS handshake with the service failed: its certificate does not chain to a trusted
    /// root (the platform store plus [`ClientConfig::tls_roots`](super::ClientConfig::tls_roots)),
    /// names another host, or the handshake broke. Not retried: it would fail the same way.
    #[error("{url}: TLS handshake refused: {detail}")]
    Tls {
        /// The request URL.
        url: String,
        /// The TLS error (rustls's), for example an unknown issuer.
        detail: String,
        /// reqwest's error (its source chain holds the rustls error).
        source: reqwest::Error,
    },
    /// HTTP 429 after every retry.
    #[error("{url}: HTTP 429 Too Many Requests (Retry-After {retry_after:?})")]
    TooManyRequests {
        /// The request URL.
        url: String,
        /// The last Retry-After, in seconds, if given.
        retry_after: Option<u64>,
    },
    /// The response body is larger than the client accepts.
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge {
        /// The request URL.
        url: String,
        /// The limit.
        limit: usize,
    },
}

fn list(errors: &[FetchError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl FetchError {
    /// Whether trying the same request again may succeed (timeouts, connection failures, 429,
    /// 5xx); the client retries those, with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Incomplete { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::TooManyRequests { .. }
        )
    }

    /// The wire-level error, if the service answered with bad data.
    pub fn wire(&self) -> Option<&WireError> {
        match self {
            Self::Malformed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a collateral file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a collateral file of the documented format.
    #[error("{path}: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file's collateral fails the checks.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: WireError,
    },
}
