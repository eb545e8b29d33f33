//! The bond-time evidence log: an append-only, hash-chained, checkpoint-signed record of every
//! bond a node formed or refused, with the full quotes and every binding input, so that anyone
//! holding the log (and the collateral stored beside it) can re-run the verification.
//!
//! - [`codec`], [`record`], [`checkpoint`], [`retire`], [`outcome`], [`protocol`] are pure:
//!   they encode and decode bytes, hash and sign, and read no clock (`now` is a parameter).
//! - [`store`] does the I/O: segment files, durability, torn-tail repair, rotation, the
//!   collateral directory; [`EvidenceLog`] shares one store between tasks.
//! - [`pull`] serves the log to auditors and pulls it from a node; [`audit`] re-verifies a log.
//!
//! `docs/evidence-log.md` gives every format byte by byte, the durability rule, the chain and
//! checkpoint rules and the audit algorithm.

pub mod audit;
pub mod checkpoint;
pub mod codec;
#[cfg(test)]
pub(crate) mod fixture;
pub mod outcome;
pub mod protocol;
pub mod pull;
pub mod record;
pub mod retire;
mod shared;
pub mod sink;
pub mod store;

pub use audit::{AuditFailure, AuditReport, Auditor, RecordVerdict};
pub use checkpoint::{Checkpoint, CheckpointMismatch};
pub use codec::Digest;
pub use outcome::{BondOutcome, OutcomeError};
pub use pull::{pull, serve_connection, AuditAccess, PullError, Pulled};
pub use record::{
    BondEvidence, BondRefusal, CertificateFacts, CollateralSource, QuoteEvidence, Record,
    RecordBody, Verdict,
};
pub use retire::{RetiredIdentity, RetirementError, RetirementMarker};
pub use shared::EvidenceLog;
pub use sink::{EvidenceSink, FormedBond, SinkError};
pub use store::{LogContents, LogEntry, LogStore, OpenReport, StoreOptions};

/// Bytes that do not follow one of the log's formats.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A field has a value the format does not allow.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The data ends inside a field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Bytes follow a complete item.
    #[error("trailing bytes after {0}")]
    TrailingBytes(&'static str),
    /// A field exceeds its cap.
    #[error("{what} too large: {len} bytes (max {max})")]
    TooLarge {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A record kind this implementation does not know.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// A format version this implementation does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
}

/// Errors of the log store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A record could not be appended because the chain it would extend does not hold.
    #[error("chain broken at record {index}: {what}")]
    Chain {
        /// The record.
        index: u64,
        /// What does not hold.
        what: &'static str,
    },
    /// Collateral on disk does not have the digest its name says.
    #[error("collateral {digest} on disk does not match its digest")]
    CollateralMismatch {
        /// The expected digest, hex.
        digest: String,
    },
    /// A damaged stretch that is not a torn tail: a valid record follows it, or it is not in
    /// the last segment. The log is refused rather than repaired, since repair would drop
    /// records that were acknowledged.
    #[error(
        "segment {segment} damaged at offset {offset}: {defect:?}, with valid records after it"
    )]
    Corrupt {
        /// The segment's sequence number.
        segment: u64,
        /// Byte offset in the segment file.
        offset: u64,
        /// What is wrong there.
        defect: codec::FrameDefect,
    },
    /// A record or header is not in the log's format.
    #[error("{what}: {source}")]
    Format {
        /// Where.
        what: String,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Checkpoints need at least one record.
    #[error("the log is empty: nothing to checkpoint")]
    Empty,
}

#[cfg(test)]
#[path = "doc_tests.rs"]
mod doc_tests;
