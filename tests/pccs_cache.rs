//! `CollateralCache` fed over real HTTP on loopback: hits, misses that fail closed and schedule
//! a fetch, the never-after-nextUpdate rule, background refresh, single flight, persistence
//! across a restart, corrupted files, and the evaluation number floor.

mod pccs_support;

use std::sync::Arc;
use std::time::Duration;

use pccs_support::{entry, read, unix, Mode, TestPccs};
use ratls_quic::pccs::{
    CacheConfig, ClientConfig, CollateralCache, ManualClock, PcsClient, PlatformKey, Service,
};
use ratls_quic::Policy;
use ratls_quic::{CollateralStore, QuoteVerifier};

const NAME: &str = "v5_td15ex_phala_uptodate";

struct Setup {
    server: TestPccs,
    clock: Arc<ManualClock>,
    quote: Vec<u8>,
    key: PlatformKey,
    now: u64,
    until: u64,
}

async fn setup() -> Setup {
    let e = entry(NAME);
    let now = e["now_unix"].as_u64().unwrap();
    let quote = read(NAME, "quote.bin");
    Setup {
        server: TestPccs::start(NAME).await,
        clock: Arc::new(ManualClock::new(now)),
        key: PlatformKey::from_quote(&quote).unwrap(),
        quote,
        now,
        until: unix(e["valid_until"].as_str().unwrap()),
    }
}

fn client(url: &str, clock: &Arc<ManualClock>) -> PcsClient {
    let mut config = ClientConfig::new(vec![Service::pccs(url)]);
    config.backoff = Duration::from_millis(10);
    config.timeout = Duration::from_secs(5);
    PcsClient::with_clock(config, Arc::clone(clock) as _).unwrap()
}

fn quiet() -> CacheConfig {
    CacheConfig {
        refresh_ahead: 0,
        refresh_interval: Duration::from_secs(3600),
        failure_backoff: 0,
        ..CacheConfig::default()
    }
}

/// Waits (bounded) until `done` holds, waking on every finished fetch.
async fn wait_until(cache: &CollateralCache, done: impl Fn(&CollateralCache) -> bool) {
    let mut changes = cache.subscribe();
    for _ in 0..200 {
        if done(cache) {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
    }
    panic!("condition not reached; stats {:?}", cache.stats());
}

#[tokio::test]
async fn miss_fails_closed_and_schedules_a_fetch_then_hits() {
    let s = setup().await;
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), quiet()).await;
    assert!(
        cache.collateral_for(&s.quote).is_none(),
        "a miss fails closed"
    );
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.fetches), (1, 1));
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    let collateral = cache.collateral_for(&s.quote).expect("hit after the fetch");
    assert_eq!(cache.stats().hits, 1);
    let verified = QuoteVerifier::intel()
        .verify(&s.quote, &collateral, s.now, &Policy::authenticity_only())
        .unwrap();
    assert_eq!(verified.tcb_status().as_str(), "UpToDate");
    let held = cache.held(&s.key).unwrap();
    assert_eq!(held.source, s.server.url());
    assert_eq!(held.fetched_at, s.now);
    assert_eq!(held.validity.not_after, s.until);
    assert_eq!(s.server.count("/tdx/certification/v4/tcb"), 1);
}

#[tokio::test]
async fn entry_is_never_served_at_or_after_its_next_update() {
    let s = setup().await;
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), quiet()).await;
    cache.schedule(s.key);
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    s.clock.set(s.until - 1);
    assert!(cache.collateral_for(&s.quote).is_some());
    s.clock.set(s.until);
    let before = cache.stats().fetches;
    assert!(
        cache.collateral_for(&s.quote).is_none(),
        "expired: not served"
    );
    assert_eq!(cache.stats().fetches, before + 1, "a refetch is scheduled");
    // The service has nothing newer: the refetch fails (expired at fetch), the old entry stays
    // held but is still never served.
    wait_until(&cache, |c| c.stats().failures == 1).await;
    assert!(cache.last_error(&s.key).unwrap().contains("expired"));
    assert!(cache.held(&s.key).is_some());
    assert!(cache.collateral_for(&s.quote).is_none());
    s.clock.set(s.until + 86_400 * 365);
    assert!(cache.collateral_for(&s.quote).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_misses_fetch_once() {
    let s = setup().await;
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), quiet()).await;
    s.server.set_mode(Mode::Slow(Duration::from_millis(300)));
    let quote = Arc::new(s.quote.clone());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let cache = cache.clone();
            let quote = Arc::clone(&quote);
            tokio::spawn(async move { cache.collateral_for(&quote).is_some() })
        })
        .collect();
    for task in tasks {
        assert!(!task.await.unwrap(), "every concurrent miss fails closed");
    }
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    assert_eq!(cache.stats().fetches, 1);
    assert_eq!(cache.stats().misses, 64);
    for path in [
        "/tdx/certification/v4/tcb",
        "/tdx/certification/v4/qe/identity",
        "/sgx/certification/v4/pckcrl",
        "/sgx/certification/v4/rootcacrl",
    ] {
        assert_eq!(s.server.count(path), 1, "{path}");
    }
}

#[tokio::test]
async fn entries_are_refreshed_in_the_background_ahead_of_expiry() {
    let s = setup().await;
    let config = CacheConfig {
        prewarm: vec![],
        // Everything is "about to expire": the refresh task refetches at each tick.
        refresh_ahead: 365 * 86_400,
        refresh_interval: Duration::from_millis(50),
        ..quiet()
    };
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), config).await;
    cache.schedule(s.key);
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    let first = cache.held(&s.key).unwrap();
    s.clock.set(s.now + 60);
    wait_until(&cache, |c| {
        c.held(&s.key).is_some_and(|e| e.fetched_at == s.now + 60)
    })
    .await;
    assert!(s.server.count("/tdx/certification/v4/tcb") >= 2);
    assert_eq!(cache.stats().hits, 0, "no lookup drove the refresh");
    assert_eq!(first.digests, cache.held(&s.key).unwrap().digests);
}

#[tokio::test]
async fn prewarm_keys_are_fetched_at_start() {
    let s = setup().await;
    let config = CacheConfig {
        prewarm: vec![s.key],
        ..quiet()
    };
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), config).await;
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    assert!(cache.collateral_for(&s.quote).is_some());
    assert_eq!(cache.stats().misses, 0);
}

#[tokio::test]
async fn persisted_entries_survive_a_restart_without_the_service() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || CacheConfig {
        persist_dir: Some(dir.path().to_owned()),
        ..quiet()
    };
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), config()).await;
    cache.schedule(s.key);
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    let file = dir
        .path()
        .join(format!("{}-platform.json", s.key.fmspc.to_hex()));
    // Persistence runs after the entry lands; wait for the file.
    for _ in 0..100 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(file.exists());
    drop(cache);

    let url = s.server.url();
    drop(s.server);
    let restarted = CollateralCache::start(client(&url, &s.clock), config()).await;
    let collateral = restarted
        .collateral_for(&s.quote)
        .expect("warm from the directory");
    QuoteVerifier::intel()
        .verify(&s.quote, &collateral, s.now, &Policy::authenticity_only())
        .unwrap();
    assert_eq!(restarted.held(&s.key).unwrap().source, url);

    // The same directory read after nextUpdate gives nothing.
    s.clock.set(s.until);
    let late = CollateralCache::start(client(&url, &s.clock), config()).await;
    assert!(late.collateral_for(&s.quote).is_none());
}

#[tokio::test]
async fn corrupted_or_truncated_cache_file_is_ignored_and_refetched() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || CacheConfig {
        persist_dir: Some(dir.path().to_owned()),
        ..quiet()
    };
    let file = dir
        .path()
        .join(format!("{}-platform.json", s.key.fmspc.to_hex()));
    let good = read(NAME, "collateral.json");
    for broken in [
        good[..good.len() / 2].to_vec(),
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("UpToDate", "UpToDatf", 1)
            .into_bytes(),
        b"\x00\x01garbage".to_vec(),
    ] {
        std::fs::write(&file, &broken).unwrap();
        let before = s.server.count("/tdx/certification/v4/tcb");
        let cache = CollateralCache::start(client(&s.server.url(), &s.clock), config()).await;
        // Refetched at start, not served from the broken file.
        wait_until(&cache, |c| c.held(&s.key).is_some()).await;
        assert_eq!(s.server.count("/tdx/certification/v4/tcb"), before + 1);
        let collateral = cache.collateral_for(&s.quote).unwrap();
        QuoteVerifier::intel()
            .verify(&s.quote, &collateral, s.now, &Policy::authenticity_only())
            .unwrap();
        for _ in 0..100 {
            if std::fs::read(&file).unwrap() != broken {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(
            std::fs::read(&file).unwrap(),
            broken,
            "the file is rewritten"
        );
    }
}

#[tokio::test]
async fn collateral_below_the_evaluation_floor_is_refused() {
    let s = setup().await;
    let tcb: serde_json::Value = serde_json::from_slice(&read(NAME, "tcb_info.json")).unwrap();
    let number = tcb["tcbEvaluationDataNumber"].as_u64().unwrap() as u32;
    let config = CacheConfig {
        min_tcb_eval_data_number: Some(number + 1),
        ..quiet()
    };
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), config).await;
    assert!(cache.collateral_for(&s.quote).is_none());
    wait_until(&cache, |c| c.stats().failures == 1).await;
    assert!(cache.held(&s.key).is_none());
    assert!(cache
        .last_error(&s.key)
        .unwrap()
        .contains("below the floor"));

    let config = CacheConfig {
        min_tcb_eval_data_number: Some(number),
        ..quiet()
    };
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), config).await;
    cache.schedule(s.key);
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    assert!(cache.collateral_for(&s.quote).is_some());
}

#[tokio::test]
async fn failing_service_is_not_hammered_by_misses() {
    let s = setup().await;
    s.server.set_mode(Mode::Status(404));
    let config = CacheConfig {
        failure_backoff: 300,
        ..quiet()
    };
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), config).await;
    assert!(cache.collateral_for(&s.quote).is_none());
    wait_until(&cache, |c| c.stats().failures == 1).await;
    for _ in 0..10 {
        assert!(cache.collateral_for(&s.quote).is_none());
    }
    assert_eq!(s.server.count("/tdx/certification/v4/tcb"), 1);
    // After the backoff, a miss fetches again, and the service is back.
    s.server.set_mode(Mode::Normal);
    s.clock.set(s.now + 301);
    assert!(cache.collateral_for(&s.quote).is_none());
    wait_until(&cache, |c| c.held(&s.key).is_some()).await;
    assert!(cache.collateral_for(&s.quote).is_some());
}

#[tokio::test]
async fn quote_without_a_platform_key_is_a_miss_without_a_fetch() {
    let s = setup().await;
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), quiet()).await;
    assert!(cache.collateral_for(b"not a quote").is_none());
    assert_eq!(cache.stats().fetches, 0);
}

/// Lookups remember each PCK chain's platform key: quotes of different platforms, looked up in
/// turn through one cache, each schedule the fetch of their own platform (a remembered key is
/// never handed to another chain).
#[tokio::test]
async fn each_pck_chain_gets_its_own_platform_key() {
    let s = setup().await;
    let cache = CollateralCache::start(client(&s.server.url(), &s.clock), quiet()).await;
    // Another platform (FMSPC 90C06F000000, not B0C06F000000).
    let other = read("v5_td15_gotdxguest_uptodate", "quote.bin");
    let other_key = PlatformKey::from_quote(&other).unwrap();
    assert_ne!(other_key, s.key);
    assert_ne!(
        pccs_support::pck_chain(&other),
        pccs_support::pck_chain(&s.quote)
    );
    for (quote, key) in [
        (&s.quote, s.key),
        (&other, other_key),
        (&s.quote, s.key),
        (&other, other_key),
    ] {
        let _ = cache.collateral_for(quote);
        assert_eq!(cache.last_missed(), Some(key));
    }
}
