//! Re-verification of a whole log: every record's chain link, every quote with the collateral
//! stored beside the log at the record's own time, every report_data recomputed from the
//! recorded binding inputs, the policy, checkpoints, and retirement markers.
//!
//! The algorithm is written down in `docs/evidence-log.md` ("Audit").

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use super::store::{Damage, LogEntry};
use super::{
    BondEvidence, Checkpoint, CheckpointMismatch, CollateralSource, Digest, LogContents, LogError,
    QuoteEvidence, RecordBody, RetiredIdentity, RetirementError, RetirementMarker,
};
use crate::evidence::{verify_binding, EvidenceError};
use crate::identity::PeerId;
use crate::policy::Policy;
use crate::tdx::{Collateral, QuoteVerifier};
use crate::{AttestationError, CollateralProvenance};

/// Which quote of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuoteKind {
    /// The quote from the certificate.
    Certificate,
    /// The bond-proof quote.
    Bond,
}

impl QuoteKind {
    /// `certificate` or `bond`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::Bond => "bond",
        }
    }
}

/// One reason a record fails the audit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditFailure {
    /// The bytes are not a valid record.
    #[error("damaged: {0:?}")]
    Damaged(Damage),
    /// The record's index is not the next one.
    #[error("index {found} where {expected} was expected")]
    IndexOutOfSequence {
        /// The index the record carries.
        found: u64,
        /// Its position in the log.
        expected: u64,
    },
    /// The record does not name the previous record's digest.
    #[error("previous-record digest does not match the record before it")]
    ChainBroken,
    /// The level needs a quote and the record has none.
    #[error("level {0} requires a quote and none is recorded")]
    MissingQuote(&'static str),
    /// The collateral a quote names is not stored beside the log, or is damaged.
    #[error("{which} quote: collateral: {source}")]
    Collateral {
        /// Which quote.
        which: &'static str,
        /// Why it could not be loaded.
        #[source]
        source: LogError,
    },
    /// The quote does not verify (DCAP at the record's time, or the policy).
    #[error("{which} quote: {source}")]
    Quote {
        /// Which quote.
        which: &'static str,
        /// Why.
        #[source]
        source: AttestationError,
    },
    /// The quote's report_data is not the one the recorded binding inputs give.
    #[error("{which} quote: report_data: {source}")]
    Binding {
        /// Which quote.
        which: &'static str,
        /// Why.
        #[source]
        source: EvidenceError,
    },
    /// The recorded verdict disagrees with the re-verification.
    #[error("recorded TCB status {recorded:?}, re-verification gives {computed:?}")]
    VerdictMismatch {
        /// What the record says.
        recorded: String,
        /// What verification says.
        computed: String,
    },
    /// The identity the record is about was retired before the record's time.
    #[error("{0}")]
    Retired(RetiredIdentity),
    /// A checkpoint record does not hold.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointMismatch),
    /// A checkpoint record covers another index or head than the record before it.
    #[error("checkpoint does not cover the record before it")]
    CheckpointPosition,
    /// Checkpoints in one log are signed by different nodes.
    #[error("checkpoint signed by {found}, the log's earlier checkpoints by {expected}")]
    CheckpointSigner {
        /// This checkpoint's signer.
        found: PeerId,
        /// The signer of the first checkpoint.
        expected: PeerId,
    },
    /// A retirement marker in the log does not verify.
    #[error("retirement marker: {0}")]
    Marker(RetirementError),
}

/// The audit's verdict on one place of the log.
#[derive(Debug)]
pub struct RecordVerdict {
    /// The record's position (its index, when intact).
    pub index: u64,
    /// Segment and byte offset.
    pub location: (u64, u64),
    /// `bond-formed`, `bond-refused`, `checkpoint`, `retirement` or `damaged`.
    pub kind: &'static str,
    /// The identity the record is about, when it names one.
    pub subject: Option<PeerId>,
    /// The record's digest, when readable.
    pub digest: Option<Digest>,
    /// Everything wrong with it; empty when it passed.
    pub failures: Vec<AuditFailure>,
}

impl RecordVerdict {
    /// Whether the record passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What an external checkpoint says about the log.
#[derive(Debug)]
pub struct CheckpointVerdict {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// `None` when the log agrees with it.
    pub failure: Option<CheckpointMismatch>,
}

/// The audit of a whole log.
#[derive(Debug)]
pub struct AuditReport {
    /// One verdict per record or damaged place, in log order.
    pub records: Vec<RecordVerdict>,
    /// Verdicts on the checkpoints given from outside.
    pub checkpoints: Vec<CheckpointVerdict>,
}

impl AuditReport {
    /// Whether every record and every checkpoint passed.
    pub fn passed(&self) -> bool {
        self.records.iter().all(RecordVerdict::passed)
            && self.checkpoints.iter().all(|c| c.failure.is_none())
    }

    /// The verdicts that failed.
    pub fn failed(&self) -> impl Iterator<Item = &RecordVerdict> {
        self.records.iter().filter(|r| !r.passed())
    }
}

/// How to audit.
#[derive(Debug)]
pub struct Auditor<'a> {
    verifier: &'a QuoteVerifier,
    policy: &'a Policy,
    markers: Vec<RetirementMarker>,
    checkpoints: Vec<Checkpoint>,
}

impl<'a> Auditor<'a> {
    /// Verifies quotes with `verifier` (its trusted root) and judges them by `policy`.
    pub fn new(verifier: &'a QuoteVerifier, policy: &'a Policy) -> Self {
        Self {
            verifier,
            policy,
            markers: Vec::new(),
            checkpoints: Vec::new(),
        }
    }

    /// Also applies `marker` (from a file); refused if its signatures do not verify.
    pub fn with_marker(mut self, marker: RetirementMarker) -> Result<Self, RetirementError> {
        marker.verify()?;
        self.markers.push(marker);
        Ok(self)
    }

    /// Also checks the log against `checkpoint`, obtained earlier from the node.
    pub fn with_checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoints.push(checkpoint);
        self
    }

    /// Audits `log`.
    pub fn audit(&self, log: &LogContents) -> AuditReport {
        let mut markers = self.markers.clone();
        markers.extend(log.records().filter_map(|(_, r)| match &r.body {
            RecordBody::Retirement(m) if m.verify().is_ok() => Some(m.clone()),
            _ => None,
        }));
        let mut collateral = CollateralCache::default();
        let mut records = Vec::new();
        let mut digests = Vec::new();
        let mut head: Option<Digest> = Some([0; 32]);
        let mut signer: Option<PeerId> = None;
        for entry in log.entries() {
            let expected = digests.len() as u64;
            match entry {
                LogEntry::Damaged {
                    segment,
                    offset,
                    defect,
                    stored_digest,
                    ..
                } => {
                    records.push(RecordVerdict {
                        index: expected,
                        location: (*segment, *offset),
                        kind: "damaged",
                        subject: None,
                        digest: *stored_digest,
                        failures: vec![AuditFailure::Damaged(defect.clone())],
                    });
                    // A frame whose length was readable is one record: the chain goes on from
                    // its stored digest. Past unreadable bytes the next link cannot be checked.
                    head = *stored_digest;
                    if let Some(d) = stored_digest {
                        digests.push(*d);
                    }
                }
                LogEntry::Record {
                    segment,
                    offset,
                    digest,
                    record,
                } => {
                    let mut failures = Vec::new();
                    if record.index != expected && head.is_some() {
                        failures.push(AuditFailure::IndexOutOfSequence {
                            found: record.index,
                            expected,
                        });
                    }
                    if head.is_some_and(|h| h != record.prev) {
                        failures.push(AuditFailure::ChainBroken);
                    }
                    let (kind, subject) = match &record.body {
                        RecordBody::BondFormed(b) => {
                            self.check_formed(
                                b,
                                record.time,
                                &markers,
                                log,
                                &mut collateral,
                                &mut failures,
                            );
                            ("bond-formed", Some(b.subject_id()))
                        }
                        RecordBody::BondRefused(r) => ("bond-refused", r.peer),
                        RecordBody::Checkpoint(c) => {
                            if c.index.checked_add(1) != Some(record.index) || c.head != record.prev
                            {
                                failures.push(AuditFailure::CheckpointPosition);
                            }
                            if let Err(e) = c.verify_signature() {
                                failures.push(AuditFailure::Checkpoint(e));
                            }
                            match signer {
                                None => signer = Some(c.signer),
                                Some(s) if s != c.signer => {
                                    failures.push(AuditFailure::CheckpointSigner {
                                        found: c.signer,
                                        expected: s,
                                    })
                                }
                                Some(_) => {}
                            }
                            if let Some(retired) = retired(&markers, &c.signer, c.time) {
                                failures.push(AuditFailure::Retired(retired));
                            }
                            ("checkpoint", Some(c.signer))
                        }
                        RecordBody::Retirement(m) => {
                            if let Err(e) = m.verify() {
                                failures.push(AuditFailure::Marker(e));
                            }
                            ("retirement", Some(m.retired()))
                        }
                    };
                    records.push(RecordVerdict {
                        index: record.index,
                        location: (*segment, *offset),
                        kind,
                        subject,
                        digest: Some(*digest),
                        failures,
                    });
                    head = Some(*digest);
                    digests.push(*digest);
                }
            }
        }
        let checkpoints = self
            .checkpoints
            .iter()
            .map(|c| CheckpointVerdict {
                checkpoint: c.clone(),
                failure: c.check_log(&digests).err(),
            })
            .collect();
        AuditReport {
            records,
            checkpoints,
        }
    }

    fn check_formed(
        &self,
        b: &BondEvidence,
        time: u64,
        markers: &[RetirementMarker],
        log: &LogContents,
        collateral: &mut CollateralCache,
        failures: &mut Vec<AuditFailure>,
    ) {
        if let Some(r) = retired(markers, &b.subject_id(), time) {
            failures.push(AuditFailure::Retired(r));
        }
        if b.level.requires_quote() && b.cert_quote.is_none() {
            failures.push(AuditFailure::MissingQuote(b.level.as_str()));
        }
        let quotes = [
            (
                QuoteKind::Certificate,
                &b.cert_quote,
                b.certificate_binding(),
            ),
            (QuoteKind::Bond, &b.bond_quote, b.bond_binding()),
        ];
        for (kind, quote, binding) in quotes {
            let Some(q) = quote else { continue };
            let which = kind.as_str();
            let verified = match collateral.get(log, q) {
                Err(source) => {
                    failures.push(AuditFailure::Collateral { which, source });
                    continue;
                }
                Ok(c) => match &q.collateral_source {
                    // The policy's [remote] rules judge where and when it was fetched.
                    CollateralSource::Service {
                        url,
                        fetched_at,
                        item_digests,
                    } => {
                        let fetched = c.clone().with_provenance(CollateralProvenance {
                            source: url.clone(),
                            fetched_at: *fetched_at,
                            item_digests: *item_digests,
                        });
                        self.verifier.verify(&q.quote, &fetched, time, self.policy)
                    }
                    _ => self.verifier.verify(&q.quote, c, time, self.policy),
                },
            };
            match verified {
                Err(source) => failures.push(AuditFailure::Quote { which, source }),
                Ok(v) => {
                    if let Err(source) = verify_binding(&binding, v.report_data()) {
                        failures.push(AuditFailure::Binding { which, source });
                    }
                    let computed = v.tcb_status().as_str();
                    if kind == QuoteKind::Certificate && b.verdict.tcb_status != computed {
                        failures.push(AuditFailure::VerdictMismatch {
                            recorded: b.verdict.tcb_status.clone(),
                            computed: computed.to_owned(),
                        });
                    }
                }
            }
        }
    }
}

fn retired(markers: &[RetirementMarker], peer: &PeerId, time: u64) -> Option<RetiredIdentity> {
    markers.iter().find_map(|m| m.applies(peer, time))
}

/// Collateral loaded once per digest.
#[derive(Default)]
struct CollateralCache(BTreeMap<Digest, Collateral>);

impl CollateralCache {
    fn get(&mut self, log: &LogContents, q: &QuoteEvidence) -> Result<&Collateral, LogError> {
        match self.0.entry(q.collateral_digest) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => Ok(e.insert(log.collateral(&q.collateral_digest)?)),
        }
    }
}

#[cfg(all(test, feature = "synthetic"))]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
#[path = "audit_tests.rs"]
mod tests;
