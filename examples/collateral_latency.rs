//! Collateral figures: how long a cold fetch of a platform's four collateral items takes from
//! the project's PCCS-compatible service on loopback, and how long a `CollateralCache` hit
//! (`CollateralStore::collateral_for`) takes, each next to a baseline measured in the same run.
//!
//! ```sh
//! nice -n 10 cargo run --release --example collateral_latency
//! ```
//!
//! The collateral is the synthetic PKI's (same sizes and checks as Intel's: chains, ECDSA
//! signatures, CRLs), served over real HTTP/1.1 on 127.0.0.1 from a directory. Printed as a
//! table; docs/collateral.md records a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratls_quic::pccs::server::{serve, DirSource};
use ratls_quic::pccs::{
    CacheConfig, ClientConfig, CollateralCache, PcsClient, PlatformKey, Service, SystemClock,
};
use ratls_quic::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb,
};
use ratls_quic::{Collateral, CollateralStore, ReportData, StaticCollateral};

const FETCHES: usize = 200;
const LOOKUPS: usize = 200_000;

/// p50, p99 and mean of `samples`.
fn summary(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: usize| samples[(samples.len() - 1) * q / 100];
    let total: Duration = samples.iter().sum();
    let mean = total / u32::try_from(samples.len()).unwrap_or(u32::MAX);
    (at(50), at(99), mean)
}

fn show(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos >= 1_000_000 {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    } else if nanos >= 1_000 {
        format!("{:.2} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{nanos} ns")
    }
}

fn row(name: &str, samples: &mut [Duration], baseline: Duration) {
    let (p50, p99, mean) = summary(samples);
    println!(
        "| {name} | {} | {} | {} | {} | {:.1} |",
        samples.len(),
        show(p50),
        show(p99),
        show(mean),
        p50.as_secs_f64() / baseline.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(now - 86_400))?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("synthetic.json"), pki.collateral_json()?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let source = Arc::new(DirSource::new(
        dir.path().to_owned(),
        pki.root_der().to_vec(),
        Arc::new(SystemClock),
    ));
    let _service = tokio::spawn(serve(listener, source));
    let quote = pki.quote(&QuoteSpec {
        report_data: ReportData([0; 64]),
        measurements: sample_measurements(),
        tcb: SyntheticTcb::UpToDate,
    })?;
    let key = PlatformKey::from_quote(&quote)?;
    let mut config = ClientConfig::new(vec![Service::pccs(&url)]);
    config.root_der = pki.root_der().to_vec();
    config.max_attempts = 1;
    let client = PcsClient::new(config.clone())?;
    let service = Service::pccs(&url);

    // Warm the service's directory listing (re-read at most every 10 s).
    client.fetch(key).await.context("first fetch")?;

    // Baseline: one HTTP request (the QE identity) from the same client.
    let mut one_request = Vec::with_capacity(FETCHES);
    for _ in 0..FETCHES {
        let started = Instant::now();
        client.qe_identity(&service).await.context("QE identity")?;
        one_request.push(started.elapsed());
    }
    // A cold fetch: the four items (concurrently), then the checks (chains, signatures, CRLs,
    // window), from a client that has nothing.
    let mut cold = Vec::with_capacity(FETCHES);
    for _ in 0..FETCHES {
        let fresh = PcsClient::new(config.clone())?;
        let started = Instant::now();
        fresh.fetch(key).await.context("cold fetch")?;
        cold.push(started.elapsed());
    }
    let (baseline_fetch, _, _) = summary(&mut one_request.clone());

    // Cache hit: a prewarmed CollateralCache, against a StaticCollateral lookup.
    let cache = CollateralCache::start(
        PcsClient::new(config.clone())?,
        CacheConfig {
            prewarm: vec![key],
            ..CacheConfig::default()
        },
    )
    .await;
    let mut changes = cache.subscribe();
    while cache.lookup(&key).is_none() {
        tokio::time::timeout(Duration::from_secs(10), changes.changed())
            .await
            .context("prewarm")??;
    }
    let fixed = StaticCollateral(Arc::new(Collateral::new(pki.collateral().clone())?));
    let time_lookups = |store: &dyn CollateralStore| -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(LOOKUPS / 100);
        for _ in 0..LOOKUPS / 100 {
            let started = Instant::now();
            for _ in 0..100 {
                std::hint::black_box(store.collateral_for(std::hint::black_box(&quote)))
                    .context("lookup")?;
            }
            samples.push(started.elapsed() / 100);
        }
        Ok(samples)
    };
    let mut static_hits = time_lookups(&fixed)?;
    let mut cache_hits = time_lookups(&cache)?;
    let (baseline_hit, _, _) = summary(&mut static_hits.clone());
    let stats = cache.stats();
    anyhow::ensure!(stats.fetches == 1, "the hits fetched: {stats:?}");

    println!("collateral from {url} (loopback, synthetic PKI)\n");
    println!("| operation | samples | p50 | p99 | mean | p50 / baseline |");
    println!("|---|---|---|---|---|---|");
    row(
        "baseline: one HTTP GET (QE identity)",
        &mut one_request,
        baseline_fetch,
    );
    row(
        "cold fetch: 4 items + checks (PcsClient::fetch)",
        &mut cold,
        baseline_fetch,
    );
    row(
        "baseline: StaticCollateral::collateral_for",
        &mut static_hits,
        baseline_hit,
    );
    row(
        "CollateralCache::collateral_for hit",
        &mut cache_hits,
        baseline_hit,
    );
    println!(
        "\n(hit samples are means over 100 lookups each; the cache made {} fetch)",
        stats.fetches
    );
    Ok(())
}
