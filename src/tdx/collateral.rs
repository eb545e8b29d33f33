//! DCAP collateral: the signed TCB info, QE identity, CRLs and their chains.

// Parses bytes from the network or from files: no panics, no unchecked arithmetic.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use core::fmt;
use std::sync::Arc;

use serde::Deserialize;

/// Largest collateral document accepted. Real collateral JSON is about 20 KB.
pub const MAX_COLLATERAL_LEN: usize = 1024 * 1024;

/// Collateral for one platform (FMSPC, PCK CA), in dcap-qvl's `QuoteCollateralV3` JSON form.
///
/// Signatures are not checked here: [`super::QuoteVerifier`] checks them at verification time.
/// The issue dates read at load are only used after that check passed.
#[derive(Clone)]
pub struct Collateral {
    inner: dcap_qvl::QuoteCollateralV3,
    tcb_info_issued: u64,
    qe_identity_issued: u64,
    digest: [u8; 32],
    provenance: Option<CollateralProvenance>,
}

/// Where and when collateral was fetched: set by a store that fetched it from a collateral
/// service, and judged by a policy's `[remote]` section (level TdxRemote).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollateralProvenance {
    /// Base URL of the service it came from.
    pub source: String,
    /// When it was fetched, unix seconds.
    pub fetched_at: u64,
    /// blake3 of the TCB info text, QE identity text, PCK CRL and root CA CRL, in that order.
    pub item_digests: [[u8; 32]; 4],
}

impl fmt::Debug for Collateral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collateral")
            .field("tcb_info_issued", &self.tcb_info_issued)
            .field("qe_identity_issued", &self.qe_identity_issued)
            .field("digest", &hex::encode(self.digest))
            .finish()
    }
}

/// Collateral could not be read.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollateralError {
    /// An issue date is not an RFC 3339 time.
    #[error("{item} issueDate {value:?} is not an RFC 3339 time")]
    Date {
        /// "TCB info" or "QE identity".
        item: &'static str,
        /// The text found.
        value: String,
    },
    /// Not the expected JSON: the collateral document, or the signed `item` inside it.
    #[error("{item} is not the expected JSON: {source}")]
    Json {
        /// "collateral" (the QuoteCollateralV3 document), "TCB info" or "QE identity".
        item: &'static str,
        /// The parser's report.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// Larger than [`MAX_COLLATERAL_LEN`].
    #[error("collateral of {0} bytes exceeds the {MAX_COLLATERAL_LEN}-byte limit")]
    TooLarge(usize),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssueDate {
    issue_date: String,
}

impl Collateral {
    /// Reads `QuoteCollateralV3` JSON (the format of `certs/vectors/*/collateral.json`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, CollateralError> {
        if bytes.len() > MAX_COLLATERAL_LEN {
            return Err(CollateralError::TooLarge(bytes.len()));
        }
        let inner: dcap_qvl::QuoteCollateralV3 =
            serde_json::from_slice(bytes).map_err(|e| json_error("collateral", e))?;
        Self::new(inner)
    }

    /// Wraps collateral already in dcap-qvl's form.
    pub fn new(inner: dcap_qvl::QuoteCollateralV3) -> Result<Self, CollateralError> {
        let tcb_info_issued = issue_date("TCB info", &inner.tcb_info)?;
        let qe_identity_issued = issue_date("QE identity", &inner.qe_identity)?;
        let json = serde_json::to_vec(&inner).map_err(|e| json_error("collateral", e))?;
        Ok(Self {
            digest: *blake3::hash(&json).as_bytes(),
            inner,
            tcb_info_issued,
            qe_identity_issued,
            provenance: None,
        })
    }

    /// This collateral, recorded as fetched from `provenance.source` at
    /// `provenance.fetched_at`. The digest ([`Self::digest`]) does not change.
    pub fn with_provenance(mut self, provenance: CollateralProvenance) -> Self {
        self.provenance = Some(provenance);
        self
    }

    /// Where and when this collateral was fetched, if the store that holds it recorded it.
    pub fn provenance(&self) -> Option<&CollateralProvenance> {
        self.provenance.as_ref()
    }

    /// The collateral as dcap-qvl takes it.
    pub fn dcap(&self) -> &dcap_qvl::QuoteCollateralV3 {
        &self.inner
    }

    /// Issue date of the TCB info, unix seconds.
    pub fn tcb_info_issued(&self) -> u64 {
        self.tcb_info_issued
    }

    /// Issue date of the QE identity, unix seconds.
    pub fn qe_identity_issued(&self) -> u64 {
        self.qe_identity_issued
    }

    /// blake3 of the collateral's JSON serialisation, to record which collateral a verdict used.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// When the collateral documents are all valid, unix seconds `(from, until)`: from the
    /// latest issue date (TCB info, QE identity, CRL thisUpdate) to the earliest next update.
    /// A CRL without a next update bounds nothing. `None` when a date cannot be read.
    /// Certificates are not included: their windows belong to the chains, not to this set.
    pub fn document_window(&self) -> Option<(u64, u64)> {
        let dcap = &self.inner;
        let (mut from, mut until) = (0, u64::MAX);
        for json in [&dcap.tcb_info, &dcap.qe_identity] {
            let (issued, next) = json_dates(json)?;
            from = from.max(issued);
            until = until.min(next);
        }
        for crl in [&dcap.root_ca_crl, &dcap.pck_crl] {
            let (this, next) = crl_dates(crl)?;
            from = from.max(this);
            if let Some(next) = next {
                until = until.min(next);
            }
        }
        Some((from, until))
    }
}

/// `issueDate` and `nextUpdate` of a signed collateral JSON document, unix seconds.
fn json_dates(json: &str) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Dates {
        issue_date: String,
        next_update: String,
    }
    let dates: Dates = serde_json::from_str(json).ok()?;
    Some((rfc3339(&dates.issue_date)?, rfc3339(&dates.next_update)?))
}

fn rfc3339(text: &str) -> Option<u64> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp()).ok()
}

/// thisUpdate and nextUpdate (if any) of a DER CRL, unix seconds.
fn crl_dates(der: &[u8]) -> Option<(u64, Option<u64>)> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    let this = u64::try_from(crl.last_update().timestamp()).ok()?;
    let next = match crl.next_update() {
        Some(next) => Some(u64::try_from(next.timestamp()).ok()?),
        None => None,
    };
    Some((this, next))
}

fn json_error(item: &'static str, error: serde_json::Error) -> CollateralError {
    CollateralError::Json {
        item,
        source: Arc::new(error),
    }
}

fn issue_date(item: &'static str, json: &str) -> Result<u64, CollateralError> {
    let parsed: IssueDate = serde_json::from_str(json).map_err(|e| json_error(item, e))?;
    let date_error = || CollateralError::Date {
        item,
        value: parsed.issue_date.clone(),
    };
    let time = time::OffsetDateTime::parse(
        &parsed.issue_date,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| date_error())?;
    u64::try_from(time.unix_timestamp()).map_err(|_| date_error())
}

/// Where a verifier finds the collateral for a quote. Called inside TLS verifier callbacks, so
/// it must not block or do I/O: fetching belongs in the background, and a miss fails closed.
pub trait CollateralStore: fmt::Debug + Send + Sync {
    /// The collateral to verify `quote` with, if the store has it.
    fn collateral_for(&self, quote: &[u8]) -> Option<Arc<Collateral>>;
}

/// One collateral set for every quote: a deployment whose platforms share an FMSPC and PCK CA
/// (and the synthetic test PKI).
#[derive(Clone, Debug)]
pub struct StaticCollateral(pub Arc<Collateral>);

impl CollateralStore for StaticCollateral {
    fn collateral_for(&self, _quote: &[u8]) -> Option<Arc<Collateral>> {
        Some(Arc::clone(&self.0))
    }
}
