//! DCAP verification of TDX quotes: is this quote authentic at `now`?
//!
//! Authenticity (quote signature, QE report, PCK chain to the trusted root, CRLs, TCB info and QE
//! identity signatures and windows, TCB level matching) is checked by the pinned `dcap-qvl` at an
//! explicit `now`; this module cuts the quote to its canonical form first and sorts dcap-qvl's
//! failures into [`DcapCheck`] kinds. The result is an [`AuthenticQuote`]; whether its
//! Measurements and TCB are acceptable is the policy's judgement (`crate::policy::admit`), which
//! turns it into a `VerifiedQuote`.
//!
//! Verdicts are cached per platform (see [`super::cache`]): a quote from a platform verified
//! before, with the same root and collateral and inside the validity window, costs one P-256
//! signature check.

use core::fmt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::cache::{self, Verdict, VerdictCache};
use super::collateral::Collateral;
use super::quote::{QuoteFormatError, QuoteLayout, TdReportFields};
use super::report_ext::TdReportExtras;
use super::{Measurements, ReportData, TcbStatus};

/// Intel SGX Root CA (DER), the production trust anchor for DCAP. See `certs/README.md`.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("../../certs/intel_sgx_root_ca.der");

/// Verifies TDX quotes against one trusted root.
///
/// Clones share one [`VerdictCache`] of [`cache::DEFAULT_CACHE_CAPACITY`] entries, on by
/// default; [`Self::without_cache`] turns it off.
#[derive(Clone)]
pub struct QuoteVerifier {
    root_der: Vec<u8>,
    root_digest: [u8; 32],
    cache: Option<Arc<VerdictCache>>,
    /// Shared by clones: full DCAP runs, recent failures, and the bound on concurrent runs.
    dcap: Arc<DcapGate>,
}

/// How many full DCAP verifications may run at once by default, across the clones of a
/// verifier: more would only queue on the CPU, and each costs about half a millisecond.
pub const DEFAULT_MAX_CONCURRENT_DCAP: usize = 4;

/// How long a quote that failed full DCAP verification is refused without running it again
/// (with the same root and collateral).
pub const FAILED_QUOTE_SECS: u64 = 300;

/// Most failed quotes remembered.
const FAILED_QUOTES: usize = 4096;

/// The expensive part of verification, bounded: a count of full DCAP runs, the quotes that
/// recently failed it (refused again at the cost of a hash lookup), and a limit on concurrent
/// runs.
#[derive(Debug)]
struct DcapGate {
    runs: AtomicU64,
    known_bad_refusals: AtomicU64,
    busy_refusals: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Failed quotes: the check that failed and the window of `now` in which the failure is
    /// repeated without a run.
    failed: Mutex<HashMap<[u8; 32], (DcapCheck, u64, u64)>>,
}

impl DcapGate {
    fn new() -> Self {
        Self {
            runs: AtomicU64::new(0),
            known_bad_refusals: AtomicU64::new(0),
            busy_refusals: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(DEFAULT_MAX_CONCURRENT_DCAP),
            failed: Mutex::new(HashMap::new()),
        }
    }

    fn known_failure(&self, key: &[u8; 32], now: u64) -> Option<DcapCheck> {
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        match failed.get(key) {
            Some((check, from, until)) if *from <= now && now < *until => Some(*check),
            _ => None,
        }
    }

    fn remember_failure(&self, key: [u8; 32], check: DcapCheck, now: u64) {
        // Collateral issued after `now` may be valid a moment later: not a lasting failure.
        if check == DcapCheck::CollateralNotYetValid {
            return;
        }
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.len() >= FAILED_QUOTES && !failed.contains_key(&key) {
            failed.retain(|_, (_, _, until)| now < *until);
            if failed.len() >= FAILED_QUOTES {
                if let Some(victim) = failed.keys().next().copied() {
                    failed.remove(&victim);
                }
            }
        }
        failed.insert(key, (check, now, now.saturating_add(FAILED_QUOTE_SECS)));
    }
}

/// Holds one of the concurrent DCAP slots until dropped.
struct DcapSlot<'a>(&'a DcapGate);

impl Drop for DcapSlot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counters of a verifier's full DCAP verifications (shared by its clones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DcapStats {
    /// Full DCAP verifications started (cache hits and refusals before DCAP do not count).
    pub runs: u64,
    /// Quotes refused because the same canonical quote failed full verification within
    /// [`FAILED_QUOTE_SECS`], with the same root and collateral.
    pub known_bad_refusals: u64,
    /// Quotes refused because the concurrent-verification limit was reached.
    pub busy_refusals: u64,
}

/// A verdict that full verification produced, stored in the cache only once the caller's own
/// checks (binding, policy) passed: a quote that is authentic but refused never takes a place
/// in the cache.
#[derive(Debug)]
pub(crate) struct PendingVerdict {
    key: [u8; 32],
    verdict: Verdict,
}

impl fmt::Debug for QuoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuoteVerifier")
            .field("intel_root", &self.trusts_intel_root())
            .field("root_digest", &hex::encode(self.root_digest))
            .field("cache", &self.cache_stats())
            .field("dcap", &self.dcap_stats())
            .finish()
    }
}

impl QuoteVerifier {
    /// A verifier that trusts Intel's production SGX Root CA, and nothing else.
    pub fn intel() -> Self {
        Self::trusting(INTEL_SGX_ROOT_CA_DER.to_vec())
    }

    fn trusting(root_der: Vec<u8>) -> Self {
        Self {
            root_digest: *blake3::hash(&root_der).as_bytes(),
            root_der,
            cache: Some(Arc::new(VerdictCache::new(cache::DEFAULT_CACHE_CAPACITY))),
            dcap: Arc::new(DcapGate::new()),
        }
    }

    /// At most `runs` full DCAP verifications at once across this verifier's clones (default
    /// [`DEFAULT_MAX_CONCURRENT_DCAP`], at least 1). A quote that would exceed it is refused
    /// at once ([`AuthenticityError::Busy`]) instead of holding another thread: the check runs
    /// inside the TLS handshake, and a flood of new platforms must not take every thread.
    pub fn max_concurrent_dcap(self, runs: usize) -> Self {
        self.dcap
            .max_in_flight
            .store(runs.max(1), Ordering::Relaxed);
        self
    }

    /// Counters of full DCAP verifications, shared by this verifier's clones.
    pub fn dcap_stats(&self) -> DcapStats {
        DcapStats {
            runs: self.dcap.runs.load(Ordering::Relaxed),
            known_bad_refusals: self.dcap.known_bad_refusals.load(Ordering::Relaxed),
            busy_refusals: self.dcap.busy_refusals.load(Ordering::Relaxed),
        }
    }

    /// This verifier with its verdict cache turned off: every quote goes through full DCAP
    /// verification.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// This verifier using `cache`, which other verifiers may share (verdicts are keyed by
    /// root and collateral, so verifiers with other roots never see each other's).
    pub fn with_cache(mut self, cache: Arc<VerdictCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The verdict cache, unless turned off.
    pub fn cache(&self) -> Option<&Arc<VerdictCache>> {
        self.cache.as_ref()
    }

    /// The cache's counters (all zero without a cache).
    pub fn cache_stats(&self) -> cache::CacheStats {
        self.cache.as_ref().map(|c| c.stats()).unwrap_or_default()
    }

    /// Settings that loosen what this verifier trusts; each is logged.
    pub fn dangerous() -> DangerousQuoteVerifier {
        DangerousQuoteVerifier(())
    }

    /// The trusted root CA certificate (DER).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// Whether the trusted root is Intel's production root.
    pub fn trusts_intel_root(&self) -> bool {
        self.root_der == INTEL_SGX_ROOT_CA_DER
    }

    /// Checks that `quote` is authentic at `now` (unix seconds) under the trusted root with
    /// `collateral`. Says nothing about whether its Measurements or TCB are acceptable: that is
    /// the policy's judgement (`QuoteVerifier::verify` with a `Policy` does both, and caches
    /// only verdicts the policy accepted).
    ///
    /// The quote is verified in its canonical form ([`super::normalized_quote`]): zero padding
    /// after it is dropped, anything else after it is refused (see [`super::QuoteLayout`]).
    pub fn verify_authentic(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: u64,
    ) -> Result<AuthenticQuote, AuthenticityError> {
        let (authentic, pending) = self.authenticate(quote, collateral, now)?;
        self.remember(pending, now);
        Ok(authentic)
    }

    /// Stores a verdict [`Self::authenticate`] left pending.
    pub(crate) fn remember(&self, pending: Option<PendingVerdict>, now: u64) {
        if let (Some(cache), Some(pending)) = (&self.cache, pending) {
            cache.insert(pending.key, pending.verdict, now);
        }
    }

    /// As [`Self::verify_authentic`], but a verdict from full verification is returned to be
    /// stored with [`Self::remember`] once the caller's checks passed, not stored here.
    pub(crate) fn authenticate(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: u64,
    ) -> Result<(AuthenticQuote, Option<PendingVerdict>), AuthenticityError> {
        let normalized = super::quote::normalized_quote(quote)?;
        let quote = normalized.as_slice();
        let layout = QuoteLayout::parse(quote)?;
        // parse() proved pck_chain_offset <= canonical_len.
        let pck_chain = quote.get(layout.pck_chain_offset..).unwrap_or_default();
        let key = self.cache.as_ref().and_then(|cache| {
            Some((
                cache,
                cache::key(&self.root_digest, collateral, quote, &layout)?,
            ))
        });
        let Some((cache, key)) = key else {
            let mut verified = self.verify_dcap(quote, &layout, collateral, now)?;
            verified.valid_until = cache::validity_window(collateral, pck_chain, &self.root_der)
                .map(|window| window.until);
            return Ok((verified, None));
        };
        if let Some(verdict) = cache.lookup(&key, now) {
            let verified = from_verdict(quote, &layout, verdict)?;
            cache.record_quote(&key, verified.quote_digest);
            return Ok((verified, None));
        }
        let mut verified = self.verify_dcap(quote, &layout, collateral, now)?;
        let window = cache::validity_window(collateral, pck_chain, &self.root_der);
        verified.valid_until = window.map(|window| window.until);
        let pending = match window {
            Some(window) if window.contains(now) => Some(PendingVerdict {
                key,
                verdict: Verdict {
                    tcb_status: verified.tcb_status,
                    advisory_ids: verified.advisory_ids.clone(),
                    window,
                    known_quotes: vec![verified.quote_digest],
                },
            }),
            // The window could not be read, or is narrower than what dcap-qvl accepted: the
            // verdict is not reused.
            _ => {
                tracing::debug!("DCAP verdict not cached: no validity window around now");
                None
            }
        };
        Ok((verified, pending))
    }

    /// Full DCAP verification of a canonical quote, bounded: a quote that failed it recently
    /// (same root and collateral) is refused again without running it, and at most
    /// [`Self::max_concurrent_dcap`] runs at once.
    fn verify_dcap(
        &self,
        quote: &[u8],
        layout: &QuoteLayout,
        collateral: &Collateral,
        now: u64,
    ) -> Result<AuthenticQuote, AuthenticityError> {
        let gate = &*self.dcap;
        let mut hasher = blake3::Hasher::new_derive_key("ratls-quic failed quote key v1");
        hasher.update(&self.root_digest);
        hasher.update(collateral.digest());
        hasher.update(blake3::hash(quote).as_bytes());
        let failure_key = *hasher.finalize().as_bytes();
        if let Some(check) = gate.known_failure(&failure_key, now) {
            gate.known_bad_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(AuthenticityError::Dcap {
                check,
                source: DcapError::new(FailedBefore),
            });
        }
        let limit = gate.max_in_flight.load(Ordering::Relaxed);
        if gate.in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
            gate.in_flight.fetch_sub(1, Ordering::AcqRel);
            gate.busy_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(AuthenticityError::Busy);
        }
        let _slot = DcapSlot(gate);
        gate.runs.fetch_add(1, Ordering::Relaxed);
        let result = self.run_dcap(quote, layout, collateral, now);
        if let Err(AuthenticityError::Dcap { check, .. }) = &result {
            gate.remember_failure(failure_key, *check, now);
        }
        result
    }

    /// Full DCAP verification of a canonical quote, unbounded.
    fn run_dcap(
        &self,
        quote: &[u8],
        layout: &QuoteLayout,
        collateral: &Collateral,
        now: u64,
    ) -> Result<AuthenticQuote, AuthenticityError> {
        // Debug TDs are judged by the policy, which names the reason; dcap-qvl would refuse
        // them with a generic error first.
        let report = dcap_qvl::verify::QuoteVerifier::new(self.root_der.clone())
            .allow_debug(true)
            .verify(quote, collateral.dcap(), now)
            .map_err(|error| {
                let mut check = DcapCheck::classify(&error);
                if check == DcapCheck::CertificateChain && !self.pck_chain_verifies(quote, now) {
                    check = DcapCheck::PckChain;
                }
                AuthenticityError::Dcap {
                    check,
                    source: DcapError::from_dcap_qvl(error),
                }
            })?;
        let tcb_status =
            report
                .status
                .parse::<TcbStatus>()
                .map_err(|e| AuthenticityError::Dcap {
                    check: DcapCheck::Other,
                    source: DcapError::new(e),
                })?;
        let td = match &report.report {
            dcap_qvl::quote::Report::TD10(td) => td,
            dcap_qvl::quote::Report::TD15(td) => &td.base,
            dcap_qvl::quote::Report::TD15Ex(td) => &td.base.base,
            dcap_qvl::quote::Report::SgxEnclave(_) => {
                return Err(QuoteFormatError::NotTdx(0).into());
            }
        };
        let extras = TdReportExtras::parse(quote, layout)?;
        Ok(AuthenticQuote {
            version: layout.version,
            extras,
            measurements: Measurements {
                mr_td: td.mr_td,
                rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
                mr_config_id: td.mr_config_id,
                mr_owner: td.mr_owner,
                mr_owner_config: td.mr_owner_config,
                xfam: td.xfam,
                td_attributes: td.td_attributes,
            },
            report_data: ReportData(td.report_data),
            mr_seam: td.mr_seam,
            tee_tcb_svn: td.tee_tcb_svn,
            tcb_status,
            advisory_ids: report.advisory_ids,
            quote_digest: *blake3::hash(quote).as_bytes(),
            pck_chain_digest: *blake3::hash(&quote[layout.pck_chain_offset..]).as_bytes(),
            valid_until: None,
        })
    }
}

/// A verified quote from a cached verdict: the key proved everything but the quote signature
/// and the TD's own registers, so check the signature (unless these very bytes verified under
/// this verdict before) and read the registers.
fn from_verdict(
    quote: &[u8],
    layout: &QuoteLayout,
    verdict: Verdict,
) -> Result<AuthenticQuote, AuthenticityError> {
    let quote_digest = *blake3::hash(quote).as_bytes();
    if !verdict.knows(&quote_digest) && !cache::quote_signature_verifies(quote, layout) {
        return Err(AuthenticityError::Dcap {
            check: DcapCheck::QuoteSignature,
            source: DcapError::new(CachedPlatformSignature),
        });
    }
    let fields = TdReportFields::parse(quote, layout)?;
    let extras = TdReportExtras::parse(quote, layout)?;
    let pck_chain = quote
        .get(layout.pck_chain_offset..)
        .ok_or(QuoteFormatError::Truncated {
            field: "PCK chain",
            needed: layout.pck_chain_offset,
            available: quote.len(),
        })?;
    Ok(AuthenticQuote {
        version: layout.version,
        extras,
        measurements: fields.measurements,
        report_data: fields.report_data,
        mr_seam: fields.mr_seam,
        tee_tcb_svn: fields.tee_tcb_svn,
        tcb_status: verdict.tcb_status,
        advisory_ids: verdict.advisory_ids,
        quote_digest,
        pck_chain_digest: *blake3::hash(pck_chain).as_bytes(),
        valid_until: Some(verdict.window.until),
    })
}

impl QuoteVerifier {
    /// dcap-qvl does not say which certificate chain failed (TCB info, QE identity or PCK), so
    /// on that failure alone the PCK chain from the quote is checked on its own (signatures and
    /// validity, no CRLs) to tell the platform's chain from the collateral's.
    fn pck_chain_verifies(&self, quote: &[u8], now: u64) -> bool {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, UnixTime};

        let Ok(pem) = super::quote::pck_chain_pem(quote) else {
            return false;
        };
        let Ok(certs) = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() else {
            return false;
        };
        let Some((leaf, intermediates)) = certs.split_first() else {
            return false;
        };
        let root = CertificateDer::from(self.root_der.as_slice());
        let Ok(anchor) = webpki::anchor_from_trusted_cert(&root) else {
            return false;
        };
        let Ok(leaf) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        leaf.verify_for_usage(
            crate::crypto::PCK_CHAIN_ALGORITHMS,
            &[anchor],
            intermediates,
            UnixTime::since_unix_epoch(core::time::Duration::from_secs(now)),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok()
    }
}

/// A quote that passed DCAP verification: authentic at `now` under the trusted root, with the
/// TCB status the collateral gives. Exposes only verified fields. Not yet judged by any policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticQuote {
    version: u16,
    extras: TdReportExtras,
    measurements: Measurements,
    report_data: ReportData,
    mr_seam: [u8; 48],
    tee_tcb_svn: [u8; 16],
    tcb_status: TcbStatus,
    advisory_ids: Vec<String>,
    quote_digest: [u8; 32],
    pck_chain_digest: [u8; 32],
    valid_until: Option<u64>,
}

impl AuthenticQuote {
    /// Quote format version (4 or 5).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Which TD report the quote carries, and its fields beyond TD 1.0 (TD 1.5, and the
    /// extensions of v5 body type 4). Reported, not judged by the policy.
    pub fn report_extras(&self) -> &TdReportExtras {
        &self.extras
    }

    /// The TD's Measurements.
    pub fn measurements(&self) -> &Measurements {
        &self.measurements
    }

    /// The report data the TD put in its report.
    pub fn report_data(&self) -> &ReportData {
        &self.report_data
    }

    /// Measurement of the TDX module (SEAM).
    pub fn mr_seam(&self) -> &[u8; 48] {
        &self.mr_seam
    }

    /// The TEE TCB SVN of the TDX module at launch.
    pub fn tee_tcb_svn(&self) -> &[u8; 16] {
        &self.tee_tcb_svn
    }

    /// The platform TCB status (platform and QE statuses converged, as Intel's QVL does).
    pub fn tcb_status(&self) -> TcbStatus {
        self.tcb_status
    }

    /// Intel advisory IDs attached to the TCB status.
    pub fn advisory_ids(&self) -> &[String] {
        &self.advisory_ids
    }

    /// blake3 of the canonical quote bytes (without padding): the public name of this quote.
    pub fn quote_digest(&self) -> &[u8; 32] {
        &self.quote_digest
    }

    /// When this verification stops holding, unix seconds: the earliest end among every dated
    /// input it used (the collateral's TCB info and QE identity next updates, both CRLs, the
    /// certificates of the collateral chains, the quote's PCK chain and the root). `None` when
    /// one of them could not be read.
    pub fn valid_until(&self) -> Option<u64> {
        self.valid_until
    }

    /// blake3 of the PCK certificate chain the quote carries: equal for two quotes from the same
    /// platform at the same TCB (the PCK leaf names the platform and its TCB level).
    pub fn pck_chain_digest(&self) -> &[u8; 32] {
        &self.pck_chain_digest
    }
}

/// Which DCAP check failed, from dcap-qvl's error chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DcapCheck {
    /// The collateral (TCB info, QE identity or a CRL) is past its next update at `now`.
    CollateralExpired,
    /// The collateral was issued after `now`.
    CollateralNotYetValid,
    /// A collateral certificate chain (TCB info or QE identity signer) does not verify to the
    /// trusted root, or is revoked.
    CertificateChain,
    /// The PCK certificate chain in the quote does not verify to the trusted root.
    PckChain,
    /// The QE identity signature, chain, or the QE report's match against it failed.
    QeIdentity,
    /// The QE report does not carry the hash of the attestation key.
    QeReportBinding,
    /// The PCK did not sign the QE report.
    QeReportSignature,
    /// The attestation key did not sign the quote header and body.
    QuoteSignature,
    /// The platform's keys are revoked.
    Revoked,
    /// The trusted root or the CRLs it signs could not be used (a wrong root, most often).
    RootOrCrl,
    /// The TCB info signature or chain failed, or it does not fit the quote (FMSPC, TEE type).
    TcbInfo,
    /// No TCB level in the TCB info matches the platform (Intel: TCB not supported).
    TcbLevelNotFound,
    /// The quote structure was refused by the DCAP library.
    Decode,
    /// Anything else; the detail says what.
    Other,
}

impl DcapCheck {
    fn classify(error: &anyhow::Error) -> Self {
        // dcap-qvl 0.7.1's messages, most specific first. The version is pinned, and the
        // negative tests on real vectors fail if a message changes.
        const RULES: &[(&[&str], DcapCheck)] = &[
            (
                &["TCB status is invalid: Revoked", "CertRevoked"],
                DcapCheck::Revoked,
            ),
            (&["expired", "Expired"], DcapCheck::CollateralExpired),
            (
                &["in the future", "NotValidYet"],
                DcapCheck::CollateralNotYetValid,
            ),
            (&["ISV enclave report signature"], DcapCheck::QuoteSignature),
            (&["qe_report in quote"], DcapCheck::QeReportSignature),
            (&["QE report hash mismatch"], DcapCheck::QeReportBinding),
            (&["No matching TCB level"], DcapCheck::TcbLevelNotFound),
            (&["CRL", "root ca"], DcapCheck::RootOrCrl),
            (
                &["Failed to verify certificate chain"],
                DcapCheck::CertificateChain,
            ),
            (&["PCK"], DcapCheck::PckChain),
            (
                &[
                    "QE Identity",
                    "QeIdentity",
                    "qe_identity",
                    "QE ISVSVN",
                    "QE report",
                ],
                DcapCheck::QeIdentity,
            ),
            (
                &[
                    "TCB Info",
                    "TcbInfo",
                    "TCBInfo",
                    "tcb_info",
                    "Fmspc",
                    "TDX module",
                    "TCB",
                ],
                DcapCheck::TcbInfo,
            ),
            (&["decode quote"], DcapCheck::Decode),
        ];
        let text = format!("{error:#}");
        RULES
            .iter()
            .find(|(needles, _)| needles.iter().any(|needle| text.contains(needle)))
            .map_or(Self::Other, |(_, check)| *check)
    }
}

/// Why a quote is not authentic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticityError {
    /// DCAP verification failed: the quote is not authentic at `now` under the trusted root.
    #[error("DCAP verification failed ({check:?})")]
    Dcap {
        /// Which check.
        check: DcapCheck,
        /// What the DCAP library reported.
        #[source]
        source: DcapError,
    },
    /// The bytes are not a well-formed TDX quote.
    #[error("malformed quote")]
    Format(#[from] QuoteFormatError),
    /// The limit on concurrent full verifications was reached; the quote was not verified.
    #[error("too many quote verifications at once")]
    Busy,
}

/// The DCAP library's own report of a failure, with its chain of causes.
#[derive(Clone, Debug)]
pub struct DcapError(Arc<dyn std::error::Error + Send + Sync>);

impl DcapError {
    /// Wraps a cause.
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(cause))
    }

    fn from_dcap_qvl(error: anyhow::Error) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync> = error.into();
        Self(Arc::from(boxed))
    }
}

impl fmt::Display for DcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole chain: dcap-qvl's outer messages are too generic alone.
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(inner) = cause {
            write!(f, ": {inner}")?;
            cause = inner.source();
        }
        Ok(())
    }
}

impl std::error::Error for DcapError {}

/// The same canonical quote failed full verification within [`FAILED_QUOTE_SECS`].
#[derive(Debug, thiserror::Error)]
#[error("this quote failed full DCAP verification within the last {FAILED_QUOTE_SECS} s")]
struct FailedBefore;

/// A cached platform's attestation key does not verify this quote's signature.
#[derive(Debug, thiserror::Error)]
#[error("quote signature is invalid under the attestation key of a platform verified before")]
struct CachedPlatformSignature;

/// Loosening settings of a [`QuoteVerifier`], reached through [`QuoteVerifier::dangerous`].
#[derive(Debug)]
pub struct DangerousQuoteVerifier(());

impl DangerousQuoteVerifier {
    /// A verifier that trusts `root_der` **instead of** Intel's root: for a test PKI, or a
    /// staging one. Logged at warn level when the root is not Intel's.
    pub fn trust_root(self, root_der: Vec<u8>) -> QuoteVerifier {
        let verifier = QuoteVerifier::trusting(root_der);
        if !verifier.trusts_intel_root() {
            tracing::warn!(
                root = %blake3::hash(&verifier.root_der).to_hex(),
                "quote verifier trusts a root other than Intel's SGX Root CA"
            );
        }
        verifier
    }
}

// Differential tests of the verdict cache through this verifier (synthetic quotes).
#[cfg(all(test, feature = "synthetic"))]
#[path = "cache_tests.rs"]
mod cache_tests;
