//! Bond throughput under load: many concurrent dialers against one acceptor whose quote
//! provider takes a fixed time per quote and serves one request at a time, as a TDX host's
//! quoting service does (3 to 39 ms measured on hardware). Today's single-quote design (one
//! quote per bond) and batched bond proofs run in the same process, one after the other.
//!
//! Each dialer is its own endpoint with a host of its own (same delay) and runs a closed loop:
//! connect (handshake and both bond proofs, TdxRaTlsBidirectional), close, again. A bond's
//! latency is from `connect` to the connection the application receives. `quotes_made` counts
//! the bond quotes the acceptor's host made in the window: the serialised resource the
//! single-quote design is bound by.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratls_quic::synthetic::{
    sample_measurements, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::{
    AttestationLevel, BondQuoteLimits, Collateral, Endpoint, EndpointConfig, ExpectedPeer,
    Identity, MeasurementPolicy, MeasurementProfile, Policy, QuoteProvider, QuoteProviderError,
    QuoteVerifier, ReportData, StaticCollateral,
};
use serde::Serialize;

use crate::stats::Stats;

/// A quote provider that takes `delay` per quote, one quote at a time per host, and counts the
/// quotes it made while counting is on.
#[derive(Debug)]
pub struct DelayedQuoteProvider {
    inner: SyntheticQuoteProvider,
    delay: Duration,
    host: Mutex<()>,
    counting: AtomicBool,
    quotes: AtomicU64,
}

impl DelayedQuoteProvider {
    /// Quotes of `inner`, each after `delay`, serialised.
    pub fn new(inner: SyntheticQuoteProvider, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            host: Mutex::new(()),
            counting: AtomicBool::new(false),
            quotes: AtomicU64::new(0),
        }
    }

    /// Starts counting quotes from zero.
    pub fn start_counting(&self) {
        self.quotes.store(0, Ordering::SeqCst);
        self.counting.store(true, Ordering::SeqCst);
    }

    /// Quotes made since [`Self::start_counting`].
    pub fn quotes(&self) -> u64 {
        self.quotes.load(Ordering::SeqCst)
    }
}

impl QuoteProvider for DelayedQuoteProvider {
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        let _host = self.host.lock().unwrap_or_else(PoisonError::into_inner);
        std::thread::sleep(self.delay);
        let quote = self.inner.quote(report_data);
        if self.counting.load(Ordering::SeqCst) {
            self.quotes.fetch_add(1, Ordering::SeqCst);
        }
        quote
    }

    fn name(&self) -> &'static str {
        "delayed"
    }
}

/// One load cell's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadReport {
    /// `single-quote` or `batched`, with the concurrency and delay.
    pub name: String,
    /// Concurrent dialers.
    pub concurrency: usize,
    /// The acceptor's (and each dialer's) time per quote, milliseconds.
    pub quote_delay_ms: u64,
    /// Bonds completed per second in the window.
    pub bonds_per_s: f64,
    /// Median bond latency, µs.
    pub p50_us: f64,
    /// 99th percentile bond latency, µs.
    pub p99_us: f64,
    /// Bond quotes the acceptor's host made in the window.
    pub quotes_made: u64,
    /// Bonds completed in the window.
    pub bonds: usize,
    /// Bond attempts that failed in the window.
    pub failures: u64,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// All latency percentiles.
    pub latency: Stats,
}

/// What the load cells run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadOptions {
    /// Concurrent dialers.
    pub concurrency: usize,
    /// Time per quote, milliseconds.
    pub quote_delay_ms: u64,
    /// Measured window per cell, seconds (0 skips the cells).
    pub window_secs: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            quote_delay_ms: 39,
            window_secs: 4,
        }
    }
}

/// Runs the single-quote cell, then the batched one. Must run inside a tokio runtime.
pub async fn run_load(options: &LoadOptions, socket_buffer: usize) -> Result<Vec<LoadReport>> {
    if options.window_secs == 0 || options.concurrency == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (label, limits) in [
        ("single-quote", BondQuoteLimits::single_quotes()),
        ("batched", BondQuoteLimits::default()),
    ] {
        out.push(
            cell(label, limits, options, socket_buffer)
                .await
                .with_context(|| format!("load cell {label}"))?,
        );
    }
    Ok(out)
}

async fn cell(
    label: &str,
    limits: BondQuoteLimits,
    options: &LoadOptions,
    socket_buffer: usize,
) -> Result<LoadReport> {
    let delay = Duration::from_millis(options.quote_delay_ms);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs();
    let pki = Arc::new(
        SyntheticPki::generate(SyntheticPkiParams::new(now.saturating_sub(86_400)))
            .context("synthetic PKI")?,
    );
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server_host = Arc::new(DelayedQuoteProvider::new(provider(&pki), delay));
    let server = Arc::new(
        Endpoint::bind(
            loopback,
            config(&pki, Arc::clone(&server_host), &limits, socket_buffer)?,
        )
        .await?,
    );
    let server_addr = server.local_addr()?;
    let server_peer = server.peer_id();
    let mut dialers = Vec::with_capacity(options.concurrency);
    for _ in 0..options.concurrency {
        let host = Arc::new(DelayedQuoteProvider::new(provider(&pki), delay));
        dialers.push(Arc::new(
            Endpoint::bind(loopback, config(&pki, host, &limits, socket_buffer)?).await?,
        ));
    }
    let acceptors: Vec<_> = (0..options.concurrency)
        .map(|_| tokio::spawn(accept_forever(Arc::clone(&server))))
        .collect();

    // Warm-up: every dialer bonds once.
    let warm: Vec<_> = dialers
        .iter()
        .map(|d| {
            let d = Arc::clone(d);
            tokio::spawn(async move {
                d.connect(server_addr, ExpectedPeer::Exactly(server_peer))
                    .await
                    .map(|c| c.close(0u32.into(), b"warm"))
            })
        })
        .collect();
    for task in warm {
        task.await?.context("warm-up bond")?;
    }

    server_host.start_counting();
    let window = Duration::from_secs(options.window_secs);
    let start = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = dialers
        .iter()
        .map(|d| {
            let d = Arc::clone(d);
            let failures = Arc::clone(&failures);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while start.elapsed() < window {
                    let t = Instant::now();
                    match d
                        .connect(server_addr, ExpectedPeer::Exactly(server_peer))
                        .await
                    {
                        Ok(conn) => {
                            // Bonds that end after the window are not counted.
                            if start.elapsed() <= window {
                                latencies.push(t.elapsed());
                            }
                            conn.close(0u32.into(), b"done");
                        }
                        Err(_) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in loops {
        latencies.extend(task.await?);
    }
    let elapsed = start.elapsed().min(window).as_secs_f64();
    let quotes_made = server_host.quotes();
    server.close();
    for acceptor in acceptors {
        acceptor.abort();
    }
    for d in &dialers {
        d.close();
    }
    let latency = Stats::from_samples(&latencies).context("no bond completed in the window")?;
    Ok(LoadReport {
        name: format!(
            "{label} c{} {}ms",
            options.concurrency, options.quote_delay_ms
        ),
        concurrency: options.concurrency,
        quote_delay_ms: options.quote_delay_ms,
        bonds_per_s: latencies.len() as f64 / elapsed,
        p50_us: latency.p50_us,
        p99_us: latency.p99_us,
        quotes_made,
        bonds: latencies.len(),
        failures: failures.load(Ordering::SeqCst),
        window_s: elapsed,
        latency,
    })
}

async fn accept_forever(server: Arc<Endpoint>) {
    while let Some(accepting) = server.accept().await {
        if let Ok(conn) = accepting.establish().await {
            tokio::spawn(async move {
                conn.closed().await;
            });
        }
    }
}

fn provider(pki: &Arc<SyntheticPki>) -> SyntheticQuoteProvider {
    SyntheticQuoteProvider::new(
        Arc::clone(pki),
        sample_measurements(),
        SyntheticTcb::UpToDate,
    )
}

fn config(
    pki: &SyntheticPki,
    host: Arc<DelayedQuoteProvider>,
    limits: &BondQuoteLimits,
    socket_buffer: usize,
) -> Result<EndpointConfig> {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(AttestationLevel::TdxRaTlsBidirectional);
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    policy.dangerous().static_collateral();
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let collateral = Arc::new(StaticCollateral(Arc::new(Collateral::new(
        pki.collateral().clone(),
    )?)));
    Ok(EndpointConfig::builder(Identity::generate()?)
        .with_policy(policy)
        .with_quote_provider(host)
        .with_quote_verifier(verifier, collateral)
        .socket_buffer_bytes(socket_buffer)
        .bond_timeout(Duration::from_secs(30))
        .bond_quotes(limits.clone())
        .build()?)
}
