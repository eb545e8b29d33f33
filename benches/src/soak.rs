//! Many bonds against one acceptor: a fixed number of TdxRaTlsBidirectional bonds made by a
//! fixed number of concurrent dialers (each its own endpoint with its own identity and
//! synthetic quotes), on loopback. Every bond must form; the process's file descriptors and
//! resident memory are read after set-up and warm-up, and again after each half of the bonds
//! once every connection has closed on both sides, to show that bonds leave nothing behind.
//!
//! Each dialer bonds far faster than the default per-peer bond quote rate allows (a burst of
//! 64, then 32 a second, sized for hardware quote rates), so the run lifts that limit on the
//! acceptor and the dialers with `BondQuoteLimits::peer_rate(PeerRate::new(u32::MAX, 1e9))`,
//! as the latency benchmarks do. Every other limit is the default.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ratls_quic::synthetic::{
    sample_measurements, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::{
    AttestationLevel, BondQuoteLimits, Collateral, Endpoint, EndpointConfig, ExpectedPeer,
    Identity, MeasurementPolicy, MeasurementProfile, PeerRate, Policy, QuoteVerifier,
    StaticCollateral,
};
use serde::Serialize;

use crate::procstat::{self, Resources};
use crate::stats::Stats;

/// What a soak run does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SoakOptions {
    /// Bonds in all (after the warm-up bond of each dialer).
    pub handshakes: usize,
    /// Concurrent dialers.
    pub concurrency: usize,
    /// Socket buffers asked for on every endpoint, bytes.
    pub socket_buffer: usize,
    /// Longest wait for every connection to close after the run.
    pub drain_timeout: Duration,
}

impl Default for SoakOptions {
    fn default() -> Self {
        Self {
            handshakes: 10_000,
            concurrency: 64,
            socket_buffer: 4 << 20,
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// The figures of a soak run.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// What ran.
    pub options: SoakOptions,
    /// Bonds formed on the dialers' side.
    pub bonds: usize,
    /// Bond attempts that failed.
    pub failures: u64,
    /// The first failure, if any.
    pub first_failure: Option<String>,
    /// Connections the acceptor established (warm-up included).
    pub accepted: u64,
    /// Attempts the acceptor refused or lost (warm-up included).
    pub acceptor_failures: u64,
    /// Wall time of the run, seconds.
    pub elapsed_s: f64,
    /// Bonds per second.
    pub bonds_per_s: f64,
    /// Bond latency (connect to the connection the application receives).
    pub latency: Stats,
    /// After set-up and warm-up.
    pub before: Resources,
    /// After the first half of the bonds, every connection closed on both sides.
    pub halfway: Resources,
    /// After the run, every connection closed on both sides.
    pub after: Resources,
    /// Highest resident memory seen during the run, KiB.
    pub peak_rss_kib: u64,
    /// CPU time of the whole process during the run, seconds.
    pub cpu_s: f64,
}

impl SoakReport {
    /// File descriptors after minus before.
    pub fn fd_growth(&self) -> i64 {
        self.after.fds as i64 - self.before.fds as i64
    }

    /// Resident memory after minus before, KiB.
    pub fn rss_growth_kib(&self) -> i64 {
        self.after.rss_kib as i64 - self.before.rss_kib as i64
    }

    /// Resident memory after the second half minus after the first, KiB: what bonds leave
    /// behind once allocator pools and caches have grown to the load.
    pub fn rss_growth_second_half_kib(&self) -> i64 {
        self.after.rss_kib as i64 - self.halfway.rss_kib as i64
    }

    /// A short human summary.
    pub fn summary(&self) -> String {
        format!(
            "{} bonds ({} failures) with {} dialers in {:.1} s: {:.0} bonds/s, p50 {:.0} µs, p99 \
             {:.0} µs; acceptor: {} established, {} failed; fds {} -> {} -> {} ({:+}); RSS {} -> \
             {} -> {} KiB ({:+} KiB, second half {:+} KiB, peak {} KiB); threads {} -> {}; CPU \
             {:.1} s",
            self.bonds,
            self.failures,
            self.options.concurrency,
            self.elapsed_s,
            self.bonds_per_s,
            self.latency.p50_us,
            self.latency.p99_us,
            self.accepted,
            self.acceptor_failures,
            self.before.fds,
            self.halfway.fds,
            self.after.fds,
            self.fd_growth(),
            self.before.rss_kib,
            self.halfway.rss_kib,
            self.after.rss_kib,
            self.rss_growth_kib(),
            self.rss_growth_second_half_kib(),
            self.peak_rss_kib,
            self.before.threads,
            self.after.threads,
            self.cpu_s,
        )
    }
}

/// Runs the soak. Must run inside a multi-thread tokio runtime.
pub async fn run_soak(options: &SoakOptions) -> Result<SoakReport> {
    if options.concurrency == 0 {
        bail!("concurrency must be at least 1");
    }
    let pki = Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(
        unix_now()?.saturating_sub(86_400),
    ))?);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Arc::new(Endpoint::bind(loopback, config(&pki, options.socket_buffer)?).await?);
    let server_addr = server.local_addr()?;
    let server_peer = server.peer_id();
    let live = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let acceptor_failures = Arc::new(AtomicU64::new(0));
    let accept_tasks: Vec<_> = (0..options.concurrency)
        .map(|_| {
            tokio::spawn(accept_forever(
                Arc::clone(&server),
                Arc::clone(&live),
                Arc::clone(&accepted),
                Arc::clone(&acceptor_failures),
            ))
        })
        .collect();

    let mut dialers = Vec::with_capacity(options.concurrency);
    for _ in 0..options.concurrency {
        dialers.push(Arc::new(
            Endpoint::bind(loopback, config(&pki, options.socket_buffer)?).await?,
        ));
    }
    // Warm-up: every dialer bonds once, so lazily made state (verdict caches, buffers, the
    // blocking pool's threads) exists before the first reading.
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
    drain(&live, options.drain_timeout).await?;
    let before = Resources::now()?;

    let failures = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(Mutex::new(None::<String>));
    let peak_rss = Arc::new(AtomicU64::new(before.rss_kib));
    let sampler = {
        let peak_rss = Arc::clone(&peak_rss);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(r) = Resources::now() {
                    peak_rss.fetch_max(r.rss_kib, Ordering::Relaxed);
                }
            }
        })
    };
    // Two rounds of half the bonds each, every connection drained after each: growth from the
    // first reading to the second is what warm-up leaves, growth from the second to the third
    // is what bonds leave.
    let mut latencies = Vec::with_capacity(options.handshakes);
    let mut elapsed = Duration::ZERO;
    let mut cpu = Duration::ZERO;
    let mut readings = Vec::with_capacity(2);
    let first = options.handshakes / 2;
    for bonds in [first, options.handshakes - first] {
        let tickets = Arc::new(AtomicUsize::new(bonds));
        let cpu_start = procstat::process_cpu()?;
        let start = Instant::now();
        let loops: Vec<_> = dialers
            .iter()
            .map(|d| {
                let d = Arc::clone(d);
                let tickets = Arc::clone(&tickets);
                let failures = Arc::clone(&failures);
                let first_failure = Arc::clone(&first_failure);
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while take_ticket(&tickets) {
                        let t = Instant::now();
                        match d
                            .connect(server_addr, ExpectedPeer::Exactly(server_peer))
                            .await
                        {
                            Ok(conn) => {
                                latencies.push(t.elapsed());
                                conn.close(0u32.into(), b"done");
                            }
                            Err(e) => {
                                failures.fetch_add(1, Ordering::SeqCst);
                                first_failure
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .get_or_insert_with(|| format!("{e:#}"));
                            }
                        }
                    }
                    latencies
                })
            })
            .collect();
        for task in loops {
            latencies.extend(task.await?);
        }
        elapsed += start.elapsed();
        cpu += procstat::process_cpu()?.saturating_sub(cpu_start);
        drain(&live, options.drain_timeout).await?;
        // Closed connections linger for three PTOs in quinn before their state is freed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        readings.push(Resources::now()?);
    }
    sampler.abort();
    let (halfway, after) = (readings[0], readings[1]);

    server.close();
    for task in accept_tasks {
        task.abort();
    }
    for d in &dialers {
        d.close();
    }
    let latency = Stats::from_samples(&latencies).context("no bond formed")?;
    let first_failure = first_failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(SoakReport {
        options: options.clone(),
        bonds: latencies.len(),
        failures: failures.load(Ordering::SeqCst),
        first_failure,
        accepted: accepted.load(Ordering::SeqCst),
        acceptor_failures: acceptor_failures.load(Ordering::SeqCst),
        elapsed_s: elapsed.as_secs_f64(),
        bonds_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
        latency,
        before,
        halfway,
        after,
        peak_rss_kib: peak_rss.load(Ordering::Relaxed),
        cpu_s: cpu.as_secs_f64(),
    })
}

fn take_ticket(tickets: &AtomicUsize) -> bool {
    tickets
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Waits until the acceptor holds no connection.
async fn drain(live: &AtomicUsize, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while live.load(Ordering::SeqCst) > 0 {
        if start.elapsed() > timeout {
            bail!(
                "{} connections still open {timeout:?} after the run",
                live.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One accept loop; `Accepting` borrows the endpoint, so concurrency comes from running one
/// loop per dialer.
async fn accept_forever(
    server: Arc<Endpoint>,
    live: Arc<AtomicUsize>,
    accepted: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
) {
    while let Some(accepting) = server.accept().await {
        match accepting.establish().await {
            Ok(conn) => {
                accepted.fetch_add(1, Ordering::SeqCst);
                live.fetch_add(1, Ordering::SeqCst);
                let live = Arc::clone(&live);
                tokio::spawn(async move {
                    conn.closed().await;
                    live.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(_) => {
                failures.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

pub(crate) fn unix_now() -> Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs())
}

/// The policy both sides use: TdxRaTlsBidirectional, the synthetic sample Measurements.
pub(crate) fn bidirectional_policy() -> Policy {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(AttestationLevel::TdxRaTlsBidirectional);
    // Synthetic collateral held in memory, no collateral service (named opt-out, logged).
    policy.dangerous().static_collateral();
    policy
}

/// An endpoint configuration at TdxRaTlsBidirectional with synthetic quotes under `pki` and
/// the per-peer bond quote rate lifted (see the module docs).
pub(crate) fn config(pki: &Arc<SyntheticPki>, socket_buffer: usize) -> Result<EndpointConfig> {
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let collateral = Arc::new(StaticCollateral(Arc::new(Collateral::new(
        pki.collateral().clone(),
    )?)));
    let mut limits = BondQuoteLimits::default();
    limits.peer_rate(PeerRate::new(u32::MAX, 1e9));
    Ok(EndpointConfig::builder(Identity::generate()?)
        .with_policy(bidirectional_policy())
        .with_quote_provider(Arc::new(SyntheticQuoteProvider::new(
            Arc::clone(pki),
            sample_measurements(),
            SyntheticTcb::UpToDate,
        )))
        .with_quote_verifier(verifier, collateral)
        .socket_buffer_bytes(socket_buffer)
        .bond_quotes(limits)
        .build()?)
}
