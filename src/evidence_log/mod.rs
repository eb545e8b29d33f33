//! The bond-time evidence log: an append-only, hash-chained, checkpoint-signed record of every
//! bond a node formed or refused, with the full quotes and every binding input, so that anyone
//! holding the log (and the collateral stored beside it) can re-run the verification.
//!
//! Core (pure: encode and decode bytes, hash and sign, no clock, `now` is a parameter): the
//! record and frame codecs, [`Checkpoint`], [`RetirementMarker`], [`BondOutcome`], and the
//! [`protocol`] messages. Shell: [`LogStore`] (segment files, durability, torn-tail repair,
//! rotation, the collateral directory), [`EvidenceLog`] (one store shared between tasks),
//! [`EvidenceSink`] (what an endpoint calls when a bond forms or is refused),
//! [`serve_connection`] and [`pull`] (the evidence protocol over QUIC), and [`Auditor`].
//!
//! `docs/evidence-log.md` gives every format byte by byte, the durability rule, the chain and
//! checkpoint rules and the audit algorithm.

// Core.
mod checkpoint;
mod codec;
mod outcome;
pub mod protocol;
mod record;
mod retire;

// Shell.
mod audit;
mod pull;
mod server;
mod shared;
mod sink;
mod store;

#[cfg(all(test, feature = "synthetic"))]
mod fixture;

pub use audit::{AuditFailure, AuditReport, Auditor, CheckpointVerdict, QuoteKind, RecordVerdict};
pub use checkpoint::{
    Checkpoint, CheckpointMismatch, CHECKPOINT_BODY_LEN, CHECKPOINT_CONTEXT, CHECKPOINT_MAGIC,
};
pub use codec::{
    record_digest, Digest, FrameDefect, BATCHED_RECORD_VERSION, FORMAT_VERSION, FRAME_MAGIC,
    MAX_PAYLOAD_LEN, RECORD_CONTEXT, SEGMENT_CONTEXT, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
pub use outcome::{
    binding_digest, BondOutcome, OutcomeError, OutcomeFacts, BINDING_DIGEST_CONTEXT,
    MAX_COLLATERAL_DIGESTS, MAX_OUTCOME_JSON_LEN, OUTCOME_CONTEXT,
};
pub use pull::{
    pull, serve_connection, AuditAccess, PullError, Pulled, MAX_PULL_RECORDS, SERVE_TIMEOUT,
};
pub use record::{
    BondEvidence, BondRefusal, CertificateFacts, CollateralSource, QuoteEvidence, Record,
    RecordBody, Verdict, MAX_NAME_LEN, MAX_SPKI_LEN, MAX_TEXT_LEN,
};
pub use retire::{
    RetiredIdentities, RetiredIdentity, RetirementError, RetirementMarker, MAX_MARKER_LEN,
    RETIREMENT_CONTEXT, RETIREMENT_MAGIC,
};
pub use server::{
    pull_from, EvidenceServer, EvidenceServerError, EVIDENCE_CERT_LIFETIME,
    MAX_EVIDENCE_CONNECTIONS,
};
pub use shared::EvidenceLog;
pub use sink::{formed_evidence, refusal, rejection_kind, EvidenceSink, FormedBond, SinkError};
#[cfg(feature = "fuzzing")]
pub(crate) use store::segment_entries;
pub use store::{
    load_collateral, put_collateral, segment_path, Appended, Damage, LogContents, LogEntry,
    LogStore, OpenReport, StoreOptions, COLLATERAL_DIR, DEFAULT_MAX_SEGMENT_BYTES,
};

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
        defect: FrameDefect,
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
    /// The group commit that carried this append failed (the first append of the group gets
    /// the cause; the others this, sharing it).
    #[error("group commit failed: {0}")]
    GroupCommit(#[source] std::sync::Arc<Self>),
    /// Checkpoints need at least one record.
    #[error("the log is empty: nothing to checkpoint")]
    Empty,
}

#[cfg(test)]
#[path = "doc_tests.rs"]
mod doc_tests;
