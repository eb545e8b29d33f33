//! Differential tests: the caching verifier and an uncached one give the same verdict on real
//! vectors, synthetic quotes and mutations of both, warmed or not.

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::{AuthenticQuote, AuthenticityError, DcapCheck, QuoteVerifier};
use crate::policy::Policy;
use crate::policy::{AttestationError, VerifiedQuote};
use crate::tdx::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb,
};
use crate::tdx::{Collateral, ReportData, VerdictCache};

const ISSUED: u64 = 1_760_000_000;
const NOW: u64 = ISSUED + 3_600;

struct Fixture {
    pki: SyntheticPki,
    collateral: Collateral,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = SyntheticPki::generate(SyntheticPkiParams::new(ISSUED)).unwrap();
        let collateral = Collateral::new(pki.collateral().clone()).unwrap();
        Fixture { pki, collateral }
    })
}

/// A second, unrelated PKI.
fn other_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = SyntheticPki::generate(SyntheticPkiParams::new(ISSUED)).unwrap();
        let collateral = Collateral::new(pki.collateral().clone()).unwrap();
        Fixture { pki, collateral }
    })
}

fn spec(tag: u8, tcb: SyntheticTcb) -> QuoteSpec {
    let mut measurements = sample_measurements();
    measurements.mr_td = [tag; 48];
    measurements.rtmr[3] = [tag.wrapping_add(1); 48];
    measurements.mr_owner = [tag.wrapping_add(2); 48];
    QuoteSpec {
        report_data: ReportData([tag; 64]),
        measurements,
        tcb,
    }
}

fn synthetic_quote(tag: u8, tcb: SyntheticTcb) -> Vec<u8> {
    fixture().pki.quote(&spec(tag, tcb)).unwrap()
}

fn cached(f: &Fixture) -> QuoteVerifier {
    QuoteVerifier::dangerous().trust_root(f.pki.root_der().to_vec())
}

/// An authentic quote, and what the policy said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Authentic {
    quote: AuthenticQuote,
    refused: Option<String>,
}

impl core::ops::Deref for Authentic {
    type Target = AuthenticQuote;
    fn deref(&self) -> &AuthenticQuote {
        &self.quote
    }
}

/// The outcome with the error reduced to what must agree: the kind of failure. A quote the
/// policy refused is authentic and compared in full.
fn outcome(result: Result<VerifiedQuote, AttestationError>) -> Result<Authentic, String> {
    match result {
        Ok(quote) => Ok(Authentic {
            quote: quote.authentic().clone(),
            refused: None,
        }),
        Err(AttestationError::Policy { violation, quote }) => Ok(Authentic {
            quote: *quote,
            refused: Some(violation.to_string()),
        }),
        Err(AttestationError::Dcap { check, .. }) => Err(format!("dcap {check:?}")),
        Err(AttestationError::Format(format)) => Err(format!("format {format}")),
        Err(other) => Err(format!("other {other}")),
    }
}

fn verify(
    verifier: &QuoteVerifier,
    quote: &[u8],
    collateral: &Collateral,
    now: u64,
) -> Result<Authentic, String> {
    // verify_authentic caches every authentic verdict (Policy-judged verification caches only
    // admitted ones), so the policy is applied apart to exercise the cache at every TCB level.
    outcome(
        verifier
            .verify_authentic(quote, collateral, now)
            .map_err(AttestationError::from)
            .and_then(|authentic| Policy::authenticity_only().admit(authentic, collateral, now)),
    )
}

/// Asserts the cached verifier agrees with the uncached one on `quote`, and returns the outcome.
fn agree(
    cached: &QuoteVerifier,
    quote: &[u8],
    collateral: &Collateral,
    now: u64,
) -> Result<Authentic, String> {
    let expected = verify(&cached.clone().without_cache(), quote, collateral, now);
    let got = verify(cached, quote, collateral, now);
    assert_eq!(got, expected, "cached and uncached verdicts differ");
    got
}

struct Vector {
    quote: Vec<u8>,
    collateral: Collateral,
    now: u64,
}

fn vector(name: &str) -> Vector {
    let dir = format!("{}/certs/vectors", env!("CARGO_MANIFEST_DIR"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/vectors.json")).unwrap()).unwrap();
    let entry = manifest
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap();
    Vector {
        quote: std::fs::read(format!("{dir}/{name}/quote.bin")).unwrap(),
        collateral: Collateral::from_json(
            &std::fs::read(format!("{dir}/{name}/collateral.json")).unwrap(),
        )
        .unwrap(),
        now: entry["now_unix"].as_u64().unwrap(),
    }
}

#[test]
fn real_vectors_cold_and_warm_agree_with_uncached() {
    for (name, good) in [
        ("v4_tdx10_phala_uptodate", true),
        ("v5_td15_gotdxguest_uptodate", true),
        ("v5_td15ex_phala_uptodate", true),
        ("neg_v5_td15_phala_tcb_not_supported", false),
    ] {
        let v = vector(name);
        let verifier = QuoteVerifier::intel();
        let cold = agree(&verifier, &v.quote, &v.collateral, v.now);
        let warm = agree(&verifier, &v.quote, &v.collateral, v.now);
        assert_eq!(cold.is_ok(), good, "{name}: {cold:?}");
        assert_eq!(warm, cold, "{name}");
        let stats = verifier.cache_stats();
        assert_eq!(stats.hits, u64::from(good), "{name}: {stats:?}");
        assert_eq!(
            stats.entries,
            usize::from(good),
            "{name}: failures are not cached"
        );
    }
}

#[test]
fn synthetic_quotes_of_every_tcb_level_and_debug_agree_cold_and_warm() {
    let f = fixture();
    for tcb in SyntheticTcb::ALL {
        for debug in [false, true] {
            let mut spec = spec(7, tcb);
            if debug {
                spec.measurements.td_attributes[0] |= 1;
            }
            let quote = f.pki.quote(&spec).unwrap();
            let verifier = cached(f);
            let cold = agree(&verifier, &quote, &f.collateral, NOW).unwrap();
            let warm = agree(&verifier, &quote, &f.collateral, NOW).unwrap();
            assert_eq!(warm, cold);
            assert_eq!(
                cold.refused.is_some(),
                debug || tcb != SyntheticTcb::UpToDate
            );
            assert_eq!(cold.tcb_status().to_string(), tcb.status_name());
            assert_eq!(cold.measurements(), &spec.measurements);
            assert_eq!(verifier.cache_stats().hits, 1, "{tcb:?} debug={debug}");
        }
    }
}

#[test]
fn sibling_quote_from_the_same_platform_hits_and_equals_uncached() {
    let f = fixture();
    for tcb in SyntheticTcb::ALL {
        let verifier = cached(f);
        agree(&verifier, &synthetic_quote(1, tcb), &f.collateral, NOW).unwrap();
        let sibling = synthetic_quote(2, tcb);
        let verified = agree(&verifier, &sibling, &f.collateral, NOW).unwrap();
        assert_eq!(verifier.cache_stats().hits, 1, "{tcb:?}");
        assert_eq!(verified.report_data().0, [2; 64]);
        assert_eq!(verified.measurements().mr_td, [2; 48]);
    }
    // Another TCB level is another PCK leaf: another platform key.
    let verifier = cached(f);
    agree(
        &verifier,
        &synthetic_quote(1, SyntheticTcb::UpToDate),
        &f.collateral,
        NOW,
    )
    .unwrap();
    agree(
        &verifier,
        &synthetic_quote(1, SyntheticTcb::OutOfDate),
        &f.collateral,
        NOW,
    )
    .unwrap();
    assert_eq!(verifier.cache_stats().hits, 0);
}

#[test]
fn sibling_with_other_td_attributes_is_judged_in_full() {
    let f = fixture();
    let verifier = cached(f);
    agree(
        &verifier,
        &synthetic_quote(1, SyntheticTcb::UpToDate),
        &f.collateral,
        NOW,
    )
    .unwrap();
    let mut no_sept_ve_disable = spec(2, SyntheticTcb::UpToDate);
    no_sept_ve_disable.measurements.td_attributes[3] = 0;
    let mut migratable = spec(3, SyntheticTcb::UpToDate);
    migratable.measurements.td_attributes[7] |= 0x80;
    for spec in [no_sept_ve_disable, migratable] {
        let quote = f.pki.quote(&spec).unwrap();
        // dcap-qvl's `verify` leaves TD attribute checks to the caller's policy; what matters
        // here is that both agree and the verdict is not borrowed from the sibling.
        let _ = agree(&verifier, &quote, &f.collateral, NOW);
    }
    assert_eq!(
        verifier.cache_stats().hits,
        0,
        "TD attributes are part of the key"
    );
}

#[test]
fn identical_quote_repeats_and_siblings_still_check_the_signature() {
    let f = fixture();
    let verifier = cached(f);
    let quote = synthetic_quote(8, SyntheticTcb::UpToDate);
    let first = agree(&verifier, &quote, &f.collateral, NOW).unwrap();
    assert_eq!(agree(&verifier, &quote, &f.collateral, NOW).unwrap(), first);
    assert_eq!(verifier.cache_stats().repeats, 1);
    let sibling = synthetic_quote(9, SyntheticTcb::UpToDate);
    agree(&verifier, &sibling, &f.collateral, NOW).unwrap();
    agree(&verifier, &sibling, &f.collateral, NOW).unwrap();
    // A sibling with the first quote's signature is neither known nor valid.
    let mut spliced = sibling.clone();
    let sig = 48 + 584 + 4;
    spliced[sig..sig + 64].copy_from_slice(&quote[sig..sig + 64]);
    let outcome = agree(&verifier, &spliced, &f.collateral, NOW);
    assert_eq!(outcome, Err("dcap QuoteSignature".to_owned()));
    let stats = verifier.cache_stats();
    assert_eq!((stats.hits, stats.repeats), (4, 2), "{stats:?}");
}

#[test]
fn hit_with_tampered_body_or_signature_is_rejected() {
    let f = fixture();
    let quote = synthetic_quote(3, SyntheticTcb::UpToDate);
    let signed_len = 48 + 584;
    // MRTD, an RTMR, REPORTDATA (all outside the key), the signature's r and s.
    for offset in [
        48 + 136,
        48 + 400,
        48 + 583,
        signed_len + 4,
        signed_len + 4 + 63,
    ] {
        let verifier = cached(f);
        agree(&verifier, &quote, &f.collateral, NOW).unwrap();
        let mut tampered = quote.clone();
        tampered[offset] ^= 0x01;
        let outcome = agree(&verifier, &tampered, &f.collateral, NOW);
        assert_eq!(
            outcome,
            Err("dcap QuoteSignature".to_owned()),
            "offset {offset}"
        );
        assert_eq!(verifier.cache_stats().hits, 1, "offset {offset}: a hit");
    }
}

#[test]
fn outside_the_window_falls_back_to_full_verification() {
    let f = fixture();
    let quote = synthetic_quote(4, SyntheticTcb::UpToDate);
    let next_update = f.pki.params().next_update_unix();
    let verifier = cached(f);
    agree(&verifier, &quote, &f.collateral, NOW).unwrap();
    // Inside the window: hits, up to the last second before nextUpdate.
    agree(&verifier, &quote, &f.collateral, ISSUED).unwrap();
    agree(&verifier, &quote, &f.collateral, next_update - 1).unwrap();
    assert_eq!(verifier.cache_stats().hits, 2);
    // Before the issue date: full verification, which refuses.
    let early = agree(&verifier, &quote, &f.collateral, ISSUED - 1);
    assert!(early.is_err());
    // At nextUpdate itself the cache does not answer (dcap-qvl decides).
    let _ = agree(&verifier, &quote, &f.collateral, next_update);
    // After it: full verification, which refuses as expired.
    let late = agree(&verifier, &quote, &f.collateral, next_update + 1);
    assert_eq!(late, Err("dcap CollateralExpired".to_owned()));
    let stats = verifier.cache_stats();
    assert_eq!(stats.hits, 2, "{stats:?}");
    assert_eq!(stats.misses, 4, "{stats:?}");
}

#[test]
fn a_verdict_is_never_used_for_another_root_or_collateral() {
    let (f, g) = (fixture(), other_fixture());
    let shared = Arc::new(VerdictCache::new(16));
    let first = cached(f).with_cache(Arc::clone(&shared));
    let second = cached(g).with_cache(Arc::clone(&shared));
    let quote = synthetic_quote(5, SyntheticTcb::UpToDate);
    agree(&first, &quote, &f.collateral, NOW).unwrap();
    assert_eq!(shared.stats().entries, 1);
    // Same quote and collateral, another root.
    assert!(agree(&second, &quote, &f.collateral, NOW).is_err());
    // Same root, another collateral.
    assert!(agree(&first, &quote, &g.collateral, NOW).is_err());
    // Another root with its own collateral.
    assert!(agree(&second, &quote, &g.collateral, NOW).is_err());
    let stats = shared.stats();
    assert_eq!((stats.hits, stats.entries), (0, 1), "{stats:?}");
}

#[test]
fn clones_share_the_cache_and_capacity_bounds_it() {
    let f = fixture();
    let verifier = cached(f).with_cache(Arc::new(VerdictCache::new(1)));
    let clone = verifier.clone();
    agree(
        &verifier,
        &synthetic_quote(6, SyntheticTcb::UpToDate),
        &f.collateral,
        NOW,
    )
    .unwrap();
    agree(
        &clone,
        &synthetic_quote(7, SyntheticTcb::UpToDate),
        &f.collateral,
        NOW,
    )
    .unwrap();
    assert_eq!(verifier.cache_stats().hits, 1);
    agree(
        &clone,
        &synthetic_quote(6, SyntheticTcb::OutOfDate),
        &f.collateral,
        NOW,
    )
    .unwrap();
    assert_eq!(verifier.cache_stats().entries, 1);
    assert_eq!(
        QuoteVerifier::intel().cache().map(|c| c.capacity()),
        Some(1024)
    );
    assert!(QuoteVerifier::intel().without_cache().cache().is_none());
}

/// Flips one byte of `quote` and checks both verifiers agree, with the cache warmed by the
/// unmodified quote (so mutations outside the key take the hit path).
fn mutation_agrees(
    quote: &[u8],
    collateral: &Collateral,
    now: u64,
    verifier: &QuoteVerifier,
    index: usize,
    mask: u8,
) {
    let mut mutated = quote.to_vec();
    let index = index % mutated.len();
    mutated[index] ^= mask;
    let good = agree(verifier, quote, collateral, now);
    assert!(good.is_ok());
    // Agreement (asserted in `agree`) is the property. dcap-qvl accepts some changes to the
    // PEM chain, such as in the root certificate it carries (the trusted root is used instead):
    // such a quote has another cache key, so it is verified in full.
    let _ = agree(verifier, &mutated, collateral, now);
}

fn warmed_synthetic() -> &'static (Vec<u8>, QuoteVerifier) {
    static WARM: OnceLock<(Vec<u8>, QuoteVerifier)> = OnceLock::new();
    WARM.get_or_init(|| {
        let quote = synthetic_quote(9, SyntheticTcb::SwHardeningNeeded);
        (quote, cached(fixture()))
    })
}

fn warmed_v5() -> &'static (Vector, QuoteVerifier) {
    static WARM: OnceLock<(Vector, QuoteVerifier)> = OnceLock::new();
    WARM.get_or_init(|| {
        (
            vector("v5_td15_gotdxguest_uptodate"),
            QuoteVerifier::intel(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_flipped_byte_of_a_synthetic_quote_gets_the_same_verdict(
        index in any::<usize>(), mask in 1u8..=255
    ) {
        let (quote, verifier) = warmed_synthetic();
        mutation_agrees(quote, &fixture().collateral, NOW, verifier, index, mask);
    }

    #[test]
    fn any_flipped_byte_of_the_signed_region_or_signature_gets_the_same_verdict(
        index in 0usize..(48 + 584 + 4 + 64), mask in 1u8..=255
    ) {
        let (quote, verifier) = warmed_synthetic();
        mutation_agrees(quote, &fixture().collateral, NOW, verifier, index, mask);
    }

    #[test]
    fn any_flipped_byte_of_a_real_td15_quote_gets_the_same_verdict(
        index in any::<usize>(), mask in 1u8..=255
    ) {
        let (v, verifier) = warmed_v5();
        mutation_agrees(&v.quote, &v.collateral, v.now, verifier, index, mask);
    }

    #[test]
    fn any_flipped_byte_of_a_real_td15_signed_region_gets_the_same_verdict(
        index in 0usize..(48 + 6 + 648 + 4 + 64), mask in 1u8..=255
    ) {
        let (v, verifier) = warmed_v5();
        mutation_agrees(&v.quote, &v.collateral, v.now, verifier, index, mask);
    }
}

#[test]
fn verify_with_a_policy_caches_only_verdicts_the_policy_admits() {
    let f = fixture();
    let verifier = cached(f);
    let refused = synthetic_quote(1, SyntheticTcb::OutOfDate);
    let policy = Policy::authenticity_only();
    for _ in 0..2 {
        assert!(matches!(
            verifier.verify(&refused, &f.collateral, NOW, &policy),
            Err(AttestationError::Policy { .. })
        ));
    }
    assert_eq!(
        verifier.cache_stats().entries,
        0,
        "a refused verdict took a cache slot"
    );
    assert_eq!(verifier.dcap_stats().runs, 2);
    let admitted = synthetic_quote(1, SyntheticTcb::UpToDate);
    verifier
        .verify(&admitted, &f.collateral, NOW, &policy)
        .unwrap();
    assert_eq!(verifier.cache_stats().entries, 1);
}

#[test]
fn a_quote_that_failed_dcap_is_refused_again_without_a_second_run() {
    let f = fixture();
    let verifier = cached(f);
    let mut forged = synthetic_quote(1, SyntheticTcb::UpToDate);
    // A bit of MRTD: the quote signature no longer verifies.
    forged[48 + 136] ^= 1;
    for _ in 0..3 {
        let error = verifier
            .verify_authentic(&forged, &f.collateral, NOW)
            .unwrap_err();
        assert!(
            matches!(
                error,
                AuthenticityError::Dcap {
                    check: DcapCheck::QuoteSignature,
                    ..
                }
            ),
            "{error:?}"
        );
    }
    let stats = verifier.dcap_stats();
    assert_eq!((stats.runs, stats.known_bad_refusals), (1, 2), "{stats:?}");
    // Outside the memory window it is verified (and refused) in full again.
    verifier
        .verify_authentic(&forged, &f.collateral, NOW + crate::tdx::FAILED_QUOTE_SECS)
        .unwrap_err();
    assert_eq!(verifier.dcap_stats().runs, 2);
}
