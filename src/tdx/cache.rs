//! A cache of DCAP verdicts per platform, so that a quote from a platform already verified needs
//! one P-256 signature check instead of a full DCAP verification.
//!
//! # What is cached, and why a hit is sound
//!
//! dcap-qvl's verdict on a quote depends on the trusted root, the collateral, `now`, and these
//! parts of the quote: the header, the TD report fields that describe the TDX module and the TD's
//! attributes (`TEE_TCB_SVN`, `MRSEAM`, `MRSIGNERSEAM`, `SEAMATTRIBUTES`, `TDATTRIBUTES`, `XFAM`,
//! for TD 1.5 `TEE_TCB_SVN2` and `MRSERVICETD`, and for body type 4 every field after them),
//! and the signature data: the attestation
//! key, the QE report and its PCK signature, the QE authentication data and the PCK chain. The
//! TD's own registers (`MRTD`, `MRCONFIGID`, `MROWNER`, `MROWNERCONFIG`, `RTMR0..3`) and
//! `REPORTDATA` only enter through the quote's ECDSA signature over header and body.
//!
//! The cache key is blake3 (derive-key mode) over the root digest, [`Collateral::digest`] and
//! all of the above, that is the whole canonical quote except those registers, `REPORTDATA` and
//! the 64-byte quote signature. On a hit, the signature is checked under the attestation key
//! (which the cached verification proved is bound to the QE report, signed by the PCK), and the
//! TD report is read by [`TdReportFields`]. Everything else dcap-qvl checks is what the key
//! covers.
//!
//! A verdict also remembers the blake3 digests of the last few canonical quotes that verified
//! under it (by full verification or by a signature check). A byte-identical quote, such as
//! the certificate quote a peer presents on every connection until it renews, skips the
//! signature check: its result is a function of the same bytes. Fresh quotes (bond proofs)
//! always have their signature checked.
//!
//! `now` enters dcap-qvl only through validity windows: of the TCB info and QE identity
//! (issueDate..nextUpdate), of the CRLs (thisUpdate..nextUpdate) and of the certificates
//! (notBefore..notAfter). A verdict is stored with the intersection of all of them (root,
//! collateral chains and the quote's PCK chain) and used only while `now` lies inside it;
//! outside, the quote goes through full verification again. Failures are never stored.
//!
//! [`TdReportFields`]: super::quote::TdReportFields

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

use std::collections::HashMap;
use std::sync::Mutex;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::collateral::Collateral;
use super::quote::{td_report, QuoteLayout};
use super::TcbStatus;

/// Digests of byte-identical quotes remembered per verdict (a peer presents the same
/// certificate quote on every connection until it renews its certificate).
const KNOWN_QUOTES: usize = 8;

/// Entries a verifier's cache holds by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// Context string of the cache key derivation.
const KEY_CONTEXT: &str = "ratls-quic dcap verdict cache key v1";
/// Length of the quote's ECDSA signature, the first field of the signature data.
const QUOTE_SIGNATURE_LEN: usize = 64;
/// Length of the attestation key (x || y), after the quote signature.
const ATTESTATION_KEY_LEN: usize = 64;

/// A bounded map from platform keys to DCAP verdicts, shared by the clones of a
/// [`super::QuoteVerifier`] (and by other verifiers it is given to). Thread safe: the lock is
/// held only to look up or store, never during verification.
#[derive(Debug)]
pub struct VerdictCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<[u8; 32], Verdict>,
    hits: u64,
    repeats: u64,
    misses: u64,
}

/// What a full verification proved about a platform, and while when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Verdict {
    /// The converged TCB status.
    pub(super) tcb_status: TcbStatus,
    /// Advisory IDs attached to it.
    pub(super) advisory_ids: Vec<String>,
    /// The window in which every dated input was valid.
    pub(super) window: Window,
    /// blake3 of canonical quotes whose signature verified under this verdict, newest last.
    pub(super) known_quotes: Vec<[u8; 32]>,
}

impl Verdict {
    /// Whether the canonical quote with `digest` was verified under this verdict before, so
    /// that its signature, a function of the same bytes, need not be checked again.
    pub(super) fn knows(&self, digest: &[u8; 32]) -> bool {
        self.known_quotes.contains(digest)
    }
}

/// A validity window in unix seconds: `from <= now < until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    /// The latest issue date, thisUpdate or notBefore.
    pub(super) from: u64,
    /// The earliest nextUpdate or notAfter.
    pub(super) until: u64,
}

impl Window {
    /// Whether `now` lies inside. The upper end is excluded: at the expiry second itself the
    /// quote is verified in full.
    pub(super) fn contains(&self, now: u64) -> bool {
        self.from <= now && now < self.until
    }
}

/// Counters of a [`VerdictCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache (the quote signature was then checked, unless the quote
    /// was byte-identical to one verified under the same verdict).
    pub hits: u64,
    /// Of the hits, those for a byte-identical quote verified before.
    pub repeats: u64,
    /// Lookups that found nothing usable (absent, or outside its window).
    pub misses: u64,
    /// Verdicts held.
    pub entries: usize,
}

impl VerdictCache {
    /// An empty cache holding at most `capacity` verdicts (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// How many verdicts it may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hits, misses and entries so far.
    pub fn stats(&self) -> CacheStats {
        self.state.lock().map_or_else(
            |_| CacheStats::default(),
            |state| CacheStats {
                hits: state.hits,
                repeats: state.repeats,
                misses: state.misses,
                entries: state.entries.len(),
            },
        )
    }

    /// Drops every verdict (counters are kept).
    pub fn clear(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.entries.clear();
        }
    }

    /// The verdict for `key` if one is held and `now` lies inside its window. A verdict whose
    /// window has ended is dropped.
    pub(super) fn lookup(&self, key: &[u8; 32], now: u64) -> Option<Verdict> {
        // A poisoned lock only means another thread panicked mid-update: verify in full.
        let mut state = self.state.lock().ok()?;
        let found = match state.entries.get(key) {
            Some(verdict) if verdict.window.contains(now) => Some(verdict.clone()),
            Some(verdict) if now >= verdict.window.until => {
                state.entries.remove(key);
                None
            }
            _ => None,
        };
        if found.is_some() {
            state.hits = state.hits.saturating_add(1);
        } else {
            state.misses = state.misses.saturating_add(1);
        }
        found
    }

    /// Records that the canonical quote with `digest` verified under the verdict at `key`
    /// (a hit whose quote signature was checked), or counts a repeat if it is known already.
    pub(super) fn record_quote(&self, key: &[u8; 32], digest: [u8; 32]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Some(verdict) = state.entries.get_mut(key) else {
            return;
        };
        if verdict.knows(&digest) {
            state.repeats = state.repeats.saturating_add(1);
            return;
        }
        if verdict.known_quotes.len() >= KNOWN_QUOTES {
            verdict.known_quotes.remove(0);
        }
        verdict.known_quotes.push(digest);
    }

    /// Stores a verdict, making room first: verdicts whose window ended at `now`, else any one.
    pub(super) fn insert(&self, key: [u8; 32], verdict: Verdict, now: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            state.entries.retain(|_, v| now < v.window.until);
            if state.entries.len() >= self.capacity {
                if let Some(victim) = state.entries.keys().next().copied() {
                    state.entries.remove(&victim);
                }
            }
        }
        state.entries.insert(key, verdict);
    }
}

/// The cache key of a canonical `quote` (see the module docs), or `None` if the layout does not
/// fit the bytes (which [`QuoteLayout::parse`] rules out).
pub(super) fn key(
    root_digest: &[u8; 32],
    collateral: &Collateral,
    quote: &[u8],
    layout: &QuoteLayout,
) -> Option<[u8; 32]> {
    let report = quote.get(layout.report_offset..layout.signed_len)?;
    let sig_data_offset = layout.signed_len.checked_add(4)?;
    let platform_data = quote.get(sig_data_offset.checked_add(QUOTE_SIGNATURE_LEN)?..)?;
    let parts: [&[u8]; 7] = [
        root_digest,
        collateral.digest(),
        // Header, and for v5 the body descriptor.
        quote.get(..layout.report_offset)?,
        // TDX module fields, TD attributes and XFAM.
        report.get(..td_report::MR_TD)?,
        // TD 1.5: TEE_TCB_SVN2 and MRSERVICETD; body type 4: its extension fields too
        // (empty for TD 1.0).
        report.get(td_report::TD10_END..)?,
        // Signature data length.
        quote.get(layout.signed_len..sig_data_offset)?,
        // Attestation key, QE report, its signature, QE auth data, PCK chain.
        platform_data,
    ];
    let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    Some(*hasher.finalize().as_bytes())
}

/// Checks the quote's ECDSA P-256 signature (raw r || s) over header and body under its
/// attestation key (raw x || y).
pub(super) fn quote_signature_verifies(quote: &[u8], layout: &QuoteLayout) -> bool {
    let Some(sig_offset) = layout.signed_len.checked_add(4) else {
        return false;
    };
    let key_offset = sig_offset.saturating_add(QUOTE_SIGNATURE_LEN);
    let (Some(signed), Some(signature), Some(key)) = (
        quote.get(..layout.signed_len),
        quote.get(sig_offset..key_offset),
        quote.get(key_offset..key_offset.saturating_add(ATTESTATION_KEY_LEN)),
    ) else {
        return false;
    };
    let mut point = [0u8; 1 + ATTESTATION_KEY_LEN];
    point[0] = 0x04;
    point[1..].copy_from_slice(key);
    crate::crypto::p256_verifies(&point, signed, signature)
}

/// The window in which every dated input of a verification is valid: TCB info and QE identity
/// (issueDate, nextUpdate), both CRLs (thisUpdate, nextUpdate), every certificate of the
/// collateral chains, the quote's PCK chain and the root (notBefore, notAfter). `None` if any
/// of them cannot be read, or the window is empty: then nothing is cached.
pub(super) fn validity_window(
    collateral: &Collateral,
    pck_chain_pem: &[u8],
    root_der: &[u8],
) -> Option<Window> {
    let dcap = collateral.dcap();
    let (from, until) = collateral.document_window()?;
    let mut window = Window { from, until };
    let mut add = |from: u64, until: u64| {
        window.from = window.from.max(from);
        window.until = window.until.min(until);
    };
    let mut chains: Vec<&[u8]> = vec![
        dcap.pck_crl_issuer_chain.as_bytes(),
        dcap.tcb_info_issuer_chain.as_bytes(),
        dcap.qe_identity_issuer_chain.as_bytes(),
        pck_chain_pem,
    ];
    if let Some(chain) = &dcap.pck_certificate_chain {
        chains.push(chain.as_bytes());
    }
    for chain in chains {
        for cert in CertificateDer::pem_slice_iter(chain) {
            let (from, until) = cert_dates(cert.ok()?.as_ref())?;
            add(from, until);
        }
    }
    let (from, until) = cert_dates(root_der)?;
    add(from, until);
    (window.from < window.until).then_some(window)
}

fn cert_dates(der: &[u8]) -> Option<(u64, u64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    Some((
        u64::try_from(validity.not_before.timestamp()).ok()?,
        u64::try_from(validity.not_after.timestamp()).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(from: u64, until: u64) -> Verdict {
        Verdict {
            tcb_status: TcbStatus::UpToDate,
            advisory_ids: Vec::new(),
            window: Window { from, until },
            known_quotes: Vec::new(),
        }
    }

    #[test]
    fn lookup_outside_the_window_misses_and_drops_ended_verdicts() {
        let cache = VerdictCache::new(4);
        cache.insert([1; 32], verdict(100, 200), 150);
        assert!(cache.lookup(&[1; 32], 99).is_none());
        assert!(cache.lookup(&[1; 32], 100).is_some());
        assert!(cache.lookup(&[1; 32], 199).is_some());
        assert_eq!(cache.stats().entries, 1);
        assert!(cache.lookup(&[1; 32], 200).is_none());
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 2,
                repeats: 0,
                misses: 2,
                entries: 0
            }
        );
    }

    #[test]
    fn known_quotes_are_bounded_and_counted_as_repeats() {
        let cache = VerdictCache::new(4);
        cache.insert([1; 32], verdict(0, 100), 0);
        for i in 0..20u8 {
            cache.record_quote(&[1; 32], [i; 32]);
        }
        let known = cache.lookup(&[1; 32], 50).unwrap();
        assert_eq!(known.known_quotes.len(), KNOWN_QUOTES);
        assert!(known.knows(&[19; 32]) && !known.knows(&[0; 32]));
        cache.record_quote(&[1; 32], [19; 32]);
        assert_eq!(cache.stats().repeats, 1);
    }

    #[test]
    fn capacity_is_a_bound_and_ended_verdicts_go_first() {
        let cache = VerdictCache::new(2);
        cache.insert([1; 32], verdict(0, 10), 0);
        cache.insert([2; 32], verdict(0, 100), 0);
        cache.insert([3; 32], verdict(0, 100), 50);
        assert_eq!(cache.stats().entries, 2);
        assert!(cache.lookup(&[2; 32], 50).is_some());
        assert!(cache.lookup(&[3; 32], 50).is_some());
        for i in 4..40u8 {
            cache.insert([i; 32], verdict(0, 100), 50);
            assert!(cache.stats().entries <= 2);
        }
    }
}
