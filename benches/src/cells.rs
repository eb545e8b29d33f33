//! The cells beyond one-at-a-time loopback latency: round trips on a delayed path, handshakes
//! under concurrency, quote latency on the critical path, one-stream bulk throughput and memory
//! per idle connection. Each compares plain quinn mutual TLS with the attested bond in the same
//! run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use ratls_quic::synthetic::{SyntheticPki, SyntheticPkiParams};
use ratls_quic::{AttestationLevel, AttestedConnection, Endpoint, ExpectedPeer, Identity};
use serde::{Deserialize, Serialize};

use crate::attested::{self, AttestedScenario, Level, Verification};
use crate::harness::{BASELINE, TDX_BIDIRECTIONAL};
use crate::net;
use crate::relay::DelayRelay;
use crate::scenario::HandshakeScenario;
use crate::stats::Stats;
use crate::tls::{self, Credential, PinnedPeer};

// ---------------------------------------------------------------------------------------------
// Round trips on a delayed path

/// Round trips of one scenario through the [`DelayRelay`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathReport {
    /// Scenario name.
    pub name: String,
    /// Delay added each way, milliseconds.
    pub one_way_ms: u64,
    /// Connections made through the relay.
    pub connections: usize,
    /// Median time from `connect` to the connection the dialer receives, ms.
    pub dialer_ready_ms: f64,
    /// The same in round trips (time / (2 x one way)).
    pub dialer_round_trips: f64,
    /// Median time from the dialer's `connect` to the acceptor's connection, ms: one way (the
    /// first Initial's trip) plus the acceptor's own handshake time.
    pub acceptor_ready_ms: f64,
    /// The same in round trips.
    pub acceptor_round_trips: f64,
    /// Median client datagrams sent before it was ready.
    pub client_datagrams_sent: u64,
    /// Median client datagrams received before it was ready.
    pub client_datagrams_received: u64,
    /// Datagrams the relay dropped (its queues were full): 0 in a sound run.
    pub relay_dropped: u64,
}

/// Dials every scenario `connections` times through a relay adding `one_way` each way.
pub async fn run_path(
    scenarios: &[Box<dyn HandshakeScenario>],
    one_way: Duration,
    connections: usize,
) -> Result<Vec<PathReport>> {
    if connections == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(scenarios.len());
    let rtt_ms = 2.0 * one_way.as_secs_f64() * 1e3;
    for scenario in scenarios {
        // Long enough for every connection (a handful of round trips each), then it stops.
        let lifetime = one_way * 40 * u32::try_from(connections).unwrap_or(u32::MAX).max(1);
        let relay = DelayRelay::start(scenario.server_addr(), one_way, lifetime, 4096).await?;
        let mut dialer = Vec::with_capacity(connections);
        let mut acceptor = Vec::with_capacity(connections);
        let mut sent = Vec::with_capacity(connections);
        let mut received = Vec::with_capacity(connections);
        for _ in 0..connections {
            let sample = scenario
                .one_handshake_via(relay.addr())
                .await
                .with_context(|| format!("{} through the delay relay", scenario.name()))?;
            dialer.push(sample.handshake.as_secs_f64() * 1e3);
            let accepted = sample
                .acceptor_handshake
                .context("the acceptor reported no time")?;
            acceptor.push((one_way + accepted).as_secs_f64() * 1e3);
            sent.push(sample.client_udp.datagrams_sent);
            received.push(sample.client_udp.datagrams_received);
        }
        let dialer_ms = median_f64(&mut dialer);
        let acceptor_ms = median_f64(&mut acceptor);
        out.push(PathReport {
            name: scenario.name().to_owned(),
            one_way_ms: u64::try_from(one_way.as_millis()).unwrap_or(u64::MAX),
            connections,
            dialer_ready_ms: dialer_ms,
            dialer_round_trips: dialer_ms / rtt_ms,
            acceptor_ready_ms: acceptor_ms,
            acceptor_round_trips: acceptor_ms / rtt_ms,
            client_datagrams_sent: median_u64(&mut sent),
            client_datagrams_received: median_u64(&mut received),
            relay_dropped: relay.counters().dropped.load(Ordering::Relaxed),
        });
    }
    Ok(out)
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

fn median_u64(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// Handshakes of `concurrency` dialers in closed loops against one acceptor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConcurrencyReport {
    /// `plain-mtls` or `tdx-ratls-bidirectional`.
    pub name: String,
    /// Concurrent dialers (each its own endpoint and socket).
    pub concurrency: usize,
    /// Connections completed in the window.
    pub handshakes: usize,
    /// Connections that failed: 0 in a sound run.
    pub failures: u64,
    /// Measured window, seconds.
    pub window_s: f64,
    /// `handshakes / window_s`.
    pub handshakes_per_s: f64,
    /// `handshakes_per_s` relative to plain mTLS at the same concurrency.
    pub vs_plain: f64,
    /// Latency from `connect` to the connection the dialer receives.
    pub latency: Stats,
}

/// Plain mTLS and the bidirectional bond at each concurrency, plain first, one cell after the
/// other. The attested dialers use the synthetic quote provider (no delay): this measures the
/// CPU and round trips of the bond, not a quote provider's queue (the load cells do).
pub async fn run_concurrency(
    levels: &[usize],
    window: Duration,
    socket_buffer: usize,
) -> Result<Vec<ConcurrencyReport>> {
    let mut out = Vec::new();
    if window.is_zero() {
        return Ok(out);
    }
    for &concurrency in levels.iter().filter(|c| **c > 0) {
        let plain = plain_cell(concurrency, window, socket_buffer)
            .await
            .with_context(|| format!("plain concurrency {concurrency}"))?;
        let bonded = attested_cell(concurrency, window, socket_buffer)
            .await
            .with_context(|| format!("attested concurrency {concurrency}"))?;
        let base = plain.handshakes_per_s;
        for mut report in [plain, bonded] {
            report.vs_plain = if base > 0.0 {
                report.handshakes_per_s / base
            } else {
                0.0
            };
            out.push(report);
        }
    }
    Ok(out)
}

/// Closed loops of `dial` for `window`; latencies of the connections that ended inside it.
async fn closed_loops<F, Fut>(
    name: &str,
    concurrency: usize,
    window: Duration,
    dial: F,
) -> Result<ConcurrencyReport>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let dial = Arc::new(dial);
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let loops: Vec<_> = (0..concurrency)
        .map(|i| {
            let (dial, failures) = (Arc::clone(&dial), Arc::clone(&failures));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while start.elapsed() < window {
                    let t = Instant::now();
                    match dial(i).await {
                        Ok(()) if start.elapsed() <= window => latencies.push(t.elapsed()),
                        Ok(()) => {}
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
    let window_s = start.elapsed().min(window).as_secs_f64();
    let latency = Stats::from_samples(&latencies).context("no connection in the window")?;
    Ok(ConcurrencyReport {
        name: name.to_owned(),
        concurrency,
        handshakes: latencies.len(),
        failures: failures.load(Ordering::SeqCst),
        window_s,
        handshakes_per_s: latencies.len() as f64 / window_s,
        vs_plain: 1.0,
        latency,
    })
}

async fn plain_cell(
    concurrency: usize,
    window: Duration,
    socket_buffer: usize,
) -> Result<ConcurrencyReport> {
    let server_cred = Credential::generate(0)?;
    let client_cred = Credential::generate(0)?;
    let provider = tls::provider();
    let server = net::echo_server(
        tls::server_config(
            &server_cred,
            PinnedPeer::new(client_cred.cert.clone(), provider.clone()),
        )?,
        socket_buffer,
    )?;
    let server_addr = server.endpoint.local_addr()?;
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(net::client(
            tls::client_config(
                &client_cred,
                PinnedPeer::new(server_cred.cert.clone(), provider.clone()),
            )?,
            socket_buffer,
        )?);
    }
    let clients: Arc<Vec<_>> = Arc::new(clients.into_iter().map(|(e, c, _)| (e, c)).collect());
    let dialers = Arc::clone(&clients);
    let report = closed_loops(BASELINE, concurrency, window, move |i| {
        let clients = Arc::clone(&dialers);
        async move {
            let (endpoint, config) = clients.get(i).context("dialer index")?;
            let connection = endpoint
                .connect_with(config.clone(), server_addr, tls::SERVER_NAME)?
                .await?;
            connection.close(0u32.into(), b"done");
            Ok(())
        }
    })
    .await;
    server.endpoint.close(0u32.into(), b"cell done");
    for (endpoint, _) in clients.iter() {
        endpoint.close(0u32.into(), b"cell done");
    }
    report
}

/// One acceptor and `dialers` dialing endpoints, TdxRaTlsBidirectional, synthetic quotes
/// (each after `quote_delay`, serialised per host, when given), under one fresh PKI.
pub(crate) struct BondedSet {
    /// The acceptor, with `dialers` accept loops running.
    pub(crate) server: Arc<Endpoint>,
    /// Its address.
    pub(crate) server_addr: SocketAddr,
    /// The dialers.
    pub(crate) dialers: Vec<Arc<Endpoint>>,
    acceptors: Vec<tokio::task::JoinHandle<()>>,
}

impl BondedSet {
    pub(crate) async fn setup(
        dialers: usize,
        socket_buffer: usize,
        serve: fn(AttestedConnection) -> tokio::task::JoinHandle<()>,
    ) -> Result<Self> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs();
        let pki = Arc::new(
            SyntheticPki::generate(SyntheticPkiParams::new(now.saturating_sub(86_400)))
                .context("synthetic PKI")?,
        );
        let level = AttestationLevel::TdxRaTlsBidirectional;
        let endpoint = |pki: &Arc<SyntheticPki>| {
            attested::config(
                Identity::generate()?,
                attested::policy(level),
                Some(Arc::clone(pki)),
                pki,
                Verification::Default,
                socket_buffer,
                None,
            )
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Arc::new(Endpoint::bind(loopback, endpoint(&pki)?).await?);
        let mut dialing = Vec::with_capacity(dialers);
        for _ in 0..dialers {
            dialing.push(Arc::new(Endpoint::bind(loopback, endpoint(&pki)?).await?));
        }
        let acceptors = (0..dialers.max(1))
            .map(|_| {
                let server = Arc::clone(&server);
                tokio::spawn(async move {
                    while let Some(accepting) = server.accept().await {
                        if let Ok(connection) = accepting.establish().await {
                            serve(connection);
                        }
                    }
                })
            })
            .collect();
        Ok(Self {
            server_addr: server.local_addr()?,
            server,
            dialers: dialing,
            acceptors,
        })
    }

    pub(crate) async fn connect(&self, dialer: usize) -> Result<AttestedConnection> {
        let endpoint = self.dialers.get(dialer).context("dialer index")?;
        Ok(endpoint
            .connect(
                self.server_addr,
                ExpectedPeer::Exactly(self.server.peer_id()),
            )
            .await?)
    }
}

impl Drop for BondedSet {
    fn drop(&mut self) {
        self.server.close();
        for task in &self.acceptors {
            task.abort();
        }
        for dialer in &self.dialers {
            dialer.close();
        }
    }
}

fn hold_until_closed(connection: AttestedConnection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        connection.closed().await;
    })
}

async fn attested_cell(
    concurrency: usize,
    window: Duration,
    socket_buffer: usize,
) -> Result<ConcurrencyReport> {
    let set = Arc::new(BondedSet::setup(concurrency, socket_buffer, hold_until_closed).await?);
    // One bond per dialer first: the verdict cache is warm, as for a running service.
    for i in 0..concurrency {
        set.connect(i).await?.close(0u32.into(), b"warm");
    }
    let dialing = Arc::clone(&set);
    closed_loops(TDX_BIDIRECTIONAL, concurrency, window, move |i| {
        let set = Arc::clone(&dialing);
        async move {
            set.connect(i).await?.close(0u32.into(), b"done");
            Ok(())
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Quote latency on the critical path

/// Bidirectional bonds made one at a time with a quote provider that takes a fixed time per
/// quote (serialised per host) on both sides.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuoteLatencyReport {
    /// Cell name.
    pub name: String,
    /// Time per quote, milliseconds.
    pub quote_delay_ms: u64,
    /// From `connect` to the bonded connection (client side).
    pub handshake: Stats,
    /// From `connect` to the 1-byte echo back.
    pub connect_echo: Stats,
    /// Handshake p50 minus the quote delay: what the bond adds beyond one quote time, µs.
    pub beyond_one_quote_p50_us: f64,
}

/// One cell per delay, `iterations` bonds each after one warm-up.
pub async fn run_quote_latency(
    delays_ms: &[u64],
    iterations: usize,
    socket_buffer: usize,
) -> Result<Vec<QuoteLatencyReport>> {
    let mut out = Vec::new();
    if iterations == 0 {
        return Ok(out);
    }
    for &delay_ms in delays_ms {
        let name = format!("{TDX_BIDIRECTIONAL} quote {delay_ms}ms");
        let scenario = AttestedScenario::setup_with(
            &name,
            Level::TdxRaTlsBidirectional,
            Verification::Default,
            socket_buffer,
            Some(Duration::from_millis(delay_ms)),
        )
        .await?;
        scenario.one_handshake().await.context("warm-up")?;
        let (mut handshakes, mut echoes) = (Vec::new(), Vec::new());
        for _ in 0..iterations {
            let sample = scenario.one_handshake().await.context(name.clone())?;
            handshakes.push(sample.handshake);
            echoes.push(sample.connect_echo);
        }
        let handshake = Stats::from_samples(&handshakes).context("no bond")?;
        let connect_echo = Stats::from_samples(&echoes).context("no bond")?;
        out.push(QuoteLatencyReport {
            name,
            quote_delay_ms: delay_ms,
            beyond_one_quote_p50_us: handshake.p50_us - delay_ms as f64 * 1e3,
            handshake,
            connect_echo,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Bulk transfer

/// One-stream transfers of the same size, plain and bonded, in alternating rounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BulkReport {
    /// `plain-mtls` or `tdx-ratls-bidirectional`.
    pub name: String,
    /// Bytes per transfer.
    pub bytes: u64,
    /// Transfers made.
    pub rounds: usize,
    /// Median throughput, MB/s (10^6 bytes), from the first byte written to the server's count
    /// of every byte received.
    pub median_mb_per_s: f64,
    /// Best round, MB/s.
    pub best_mb_per_s: f64,
    /// `median_mb_per_s` relative to plain mTLS.
    pub vs_plain: f64,
}

/// `rounds` transfers of `bytes` on one bi stream each, plain and bonded alternately.
pub async fn run_bulk(bytes: u64, rounds: usize, socket_buffer: usize) -> Result<Vec<BulkReport>> {
    if bytes == 0 || rounds == 0 {
        return Ok(Vec::new());
    }
    // Plain: its own server answering transfers.
    let server_cred = Credential::generate(0)?;
    let client_cred = Credential::generate(0)?;
    let provider = tls::provider();
    let plain_server = net::server_with(
        tls::server_config(
            &server_cred,
            PinnedPeer::new(client_cred.cert.clone(), provider.clone()),
        )?,
        socket_buffer,
        |connection| {
            tokio::spawn(async move {
                let _ = count_one(&connection).await;
                connection.closed().await;
            });
        },
    )?;
    let (plain_client, plain_config, _) = net::client(
        tls::client_config(
            &client_cred,
            PinnedPeer::new(server_cred.cert.clone(), provider),
        )?,
        socket_buffer,
    )?;
    let plain_addr = plain_server.local_addr()?;
    let bonded = BondedSet::setup(1, socket_buffer, |connection| {
        tokio::spawn(async move {
            let _ = count_one(&connection).await;
            connection.closed().await;
        })
    })
    .await?;

    let (mut plain, mut attested) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for first in [round % 2 == 0, round % 2 != 0] {
            if first {
                let connection = plain_client
                    .connect_with(plain_config.clone(), plain_addr, tls::SERVER_NAME)?
                    .await?;
                plain.push(send_counted(&connection, bytes).await?);
                connection.close(0u32.into(), b"done");
            } else {
                let connection = bonded.connect(0).await?;
                attested.push(send_counted(&connection, bytes).await?);
                connection.close(0u32.into(), b"done");
            }
        }
    }
    plain_server.close(0u32.into(), b"done");
    plain_client.close(0u32.into(), b"done");
    let summary = |name: &str, rates: &mut Vec<f64>, base: f64| {
        let median = median_f64(rates);
        BulkReport {
            name: name.to_owned(),
            bytes,
            rounds: rates.len(),
            median_mb_per_s: median,
            best_mb_per_s: rates.iter().copied().fold(0.0, f64::max),
            vs_plain: if base > 0.0 { median / base } else { 0.0 },
        }
    };
    let base = median_f64(&mut plain);
    Ok(vec![
        summary(BASELINE, &mut plain, base),
        summary(TDX_BIDIRECTIONAL, &mut attested, base),
    ])
}

/// Writes `bytes` on a new bi stream, finishes it and waits for the peer's 8-byte count;
/// returns MB/s.
async fn send_counted(connection: &quinn::Connection, bytes: u64) -> Result<f64> {
    const CHUNK: usize = 1 << 20;
    let chunk = Bytes::from(vec![0x5a; CHUNK]);
    let (mut send, mut recv) = connection.open_bi().await?;
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let take = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        send.write_chunk(chunk.slice(..take)).await?;
        left -= take as u64;
    }
    send.finish()?;
    let mut count = [0u8; 8];
    recv.read_exact(&mut count).await?;
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        u64::from_be_bytes(count) == bytes,
        "the peer counted {} bytes of {bytes}",
        u64::from_be_bytes(count)
    );
    Ok(bytes as f64 / elapsed / 1e6)
}

/// Server side of a transfer: reads one bi stream to its end and answers the byte count.
async fn count_one(connection: &quinn::Connection) -> Result<()> {
    let (mut send, mut recv) = connection.accept_bi().await?;
    let mut total = 0u64;
    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
        total += chunk.bytes.len() as u64;
    }
    send.write_all(&total.to_be_bytes()).await?;
    send.finish()?;
    // Keep the stream open until the count is delivered.
    let _ = send.stopped().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Memory per idle connection

/// Which connections the memory cell opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryKind {
    /// Plain quinn mTLS.
    Plain,
    /// TdxRaTlsBidirectional bonds.
    Bonded,
}

impl MemoryKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => BASELINE,
            Self::Bonded => TDX_BIDIRECTIONAL,
        }
    }
}

/// Resident memory before and after opening idle connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// `plain-mtls` or `tdx-ratls-bidirectional`.
    pub name: String,
    /// Idle connections held open (both of their ends live in the measuring process).
    pub connections: usize,
    /// VmRSS with the endpoints set up and one connection made and closed, KiB.
    pub rss_before_kib: u64,
    /// VmRSS with every connection open and idle, KiB.
    pub rss_after_kib: u64,
    /// `(after - before) / connections`, bytes: both ends of one connection.
    pub per_connection_bytes: f64,
    /// `per_connection_bytes` relative to plain mTLS (set by the caller that ran both).
    pub vs_plain: f64,
    /// Whether the figure comes from a process of its own (the default of the binary).
    pub own_process: bool,
}

/// VmRSS of this process, KiB.
pub fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// Opens `connections` idle connections of `kind` in this process (16 at a time) and reports
/// the resident memory they added.
pub async fn memory_in_process(
    kind: MemoryKind,
    connections: usize,
    socket_buffer: usize,
) -> Result<MemoryReport> {
    const PARALLEL: usize = 16;
    let (before, after) = match kind {
        MemoryKind::Plain => {
            let server_cred = Credential::generate(0)?;
            let client_cred = Credential::generate(0)?;
            let provider = tls::provider();
            let server = net::echo_server(
                tls::server_config(
                    &server_cred,
                    PinnedPeer::new(client_cred.cert.clone(), provider.clone()),
                )?,
                socket_buffer,
            )?;
            let (client, config, _) = net::client(
                tls::client_config(
                    &client_cred,
                    PinnedPeer::new(server_cred.cert.clone(), provider),
                )?,
                socket_buffer,
            )?;
            let addr = server.endpoint.local_addr()?;
            let dial = || async {
                anyhow::Ok(
                    client
                        .connect_with(config.clone(), addr, tls::SERVER_NAME)?
                        .await?,
                )
            };
            dial().await?.close(0u32.into(), b"warm");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let before = rss_kib()?;
            let mut open = Vec::with_capacity(connections);
            while open.len() < connections {
                let batch = PARALLEL.min(connections - open.len());
                let made = futures_join((0..batch).map(|_| dial())).await?;
                open.extend(made);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = rss_kib()?;
            for connection in &open {
                connection.close(0u32.into(), b"done");
            }
            server.endpoint.close(0u32.into(), b"done");
            client.close(0u32.into(), b"done");
            (before, after)
        }
        MemoryKind::Bonded => {
            let set = BondedSet::setup(1, socket_buffer, hold_until_closed).await?;
            set.connect(0).await?.close(0u32.into(), b"warm");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let before = rss_kib()?;
            let mut open = Vec::with_capacity(connections);
            while open.len() < connections {
                let batch = PARALLEL.min(connections - open.len());
                let made = futures_join((0..batch).map(|_| set.connect(0))).await?;
                open.extend(made);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = rss_kib()?;
            for connection in &open {
                connection.close(0u32.into(), b"done");
            }
            (before, after)
        }
    };
    let delta = after.saturating_sub(before) as f64 * 1024.0;
    Ok(MemoryReport {
        name: kind.name().to_owned(),
        connections,
        rss_before_kib: before,
        rss_after_kib: after,
        per_connection_bytes: delta / connections.max(1) as f64,
        vs_plain: 1.0,
        own_process: false,
    })
}

/// Awaits every future, concurrently, and returns their outputs in order.
async fn futures_join<T, F>(futures: impl Iterator<Item = F>) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>>,
{
    let mut out = Vec::new();
    for result in futures_util::future::join_all(futures).await {
        out.push(result?);
    }
    Ok(out)
}

/// Both memory cells, plain first, each in a process of its own running `exe` (the bench
/// binary, with `--memory-cell`), or in this process when `exe` is `None` (the second cell then
/// reuses memory the first freed, so figures are only indicative).
pub async fn run_memory(
    exe: Option<&std::path::Path>,
    connections: usize,
    socket_buffer: usize,
) -> Result<Vec<MemoryReport>> {
    if connections == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for kind in [MemoryKind::Plain, MemoryKind::Bonded] {
        let report = match exe {
            Some(exe) => {
                let output = tokio::process::Command::new(exe)
                    .arg("--memory-cell")
                    .arg(kind.name())
                    .arg("--memory-connections")
                    .arg(connections.to_string())
                    .arg("--socket-buffer")
                    .arg(socket_buffer.to_string())
                    .output()
                    .await
                    .with_context(|| format!("running {}", exe.display()))?;
                anyhow::ensure!(
                    output.status.success(),
                    "memory cell {} failed: {}",
                    kind.name(),
                    String::from_utf8_lossy(&output.stderr)
                );
                let mut report: MemoryReport =
                    serde_json::from_slice(&output.stdout).context("memory cell output")?;
                report.own_process = true;
                report
            }
            None => memory_in_process(kind, connections, socket_buffer).await?,
        };
        out.push(report);
    }
    let base = out.first().map_or(0.0, |r| r.per_connection_bytes);
    for report in &mut out {
        report.vs_plain = if base > 0.0 {
            report.per_connection_bytes / base
        } else {
            0.0
        };
    }
    Ok(out)
}
