//! Runs the scenarios interleaved in rounds, summarises them against the baseline, and renders
//! the report as a markdown table.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::attested::{AttestedScenario, Level, Verification};
use crate::cells::{
    run_bulk, run_concurrency, run_memory, run_path, run_quote_latency, BulkReport,
    ConcurrencyReport, MemoryReport, PathReport, QuoteLatencyReport,
};
use crate::load::{run_load, LoadOptions, LoadReport};
use crate::micro::{self, MicroReport};
use crate::net::{Sample, UdpCounts};
use crate::scenario::{HandshakeScenario, PlainMtls, ScenarioInfo};
use crate::stats::{Ratio, Stats};

/// Name of the baseline scenario; ratios are relative to it.
pub const BASELINE: &str = "plain-mtls";
/// Name of the baseline with a quote-sized server certificate.
pub const BASELINE_BIG_CERT: &str = "plain-mtls-5k-cert";
/// Name of the Software level scenario.
pub const SOFTWARE: &str = "software";
/// Name of the TdxLocal level scenario with certificate freshness (no bond quotes).
pub const TDX_LOCAL_CERT: &str = "tdx-local-cert-freshness";
/// Name of the TdxLocal level scenario.
pub const TDX_LOCAL: &str = "tdx-local";
/// Name of the TdxRaTlsBidirectional level scenario.
pub const TDX_BIDIRECTIONAL: &str = "tdx-ratls-bidirectional";
/// The same with the verifiers' verdict cache off.
pub const TDX_BIDIRECTIONAL_UNCACHED: &str = "tdx-ratls-bidirectional-uncached";

/// What to run and how often.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Options {
    /// Timed connections per scenario.
    pub iterations: usize,
    /// Untimed connections per scenario before the timed ones.
    pub warmup: usize,
    /// The timed connections are split into this many rounds, each running every scenario in
    /// turn, so drift on a shared machine hits all scenarios alike.
    pub rounds: usize,
    /// Timed calls of each micro-benchmark (0 skips them).
    pub micro_iterations: usize,
    /// Bytes of dummy extension in the big server certificate.
    pub server_padding: usize,
    /// Socket send and receive buffer asked for on every endpoint, bytes.
    pub socket_buffer: usize,
    /// The bond throughput cells (single-quote against batched).
    pub load: LoadOptions,
    /// One-way delay of the delay relay, milliseconds.
    pub path_delay_ms: u64,
    /// Connections per scenario through the delay relay (0 skips the path cells).
    pub path_connections: usize,
    /// Concurrent dialers of the concurrency cells.
    pub concurrency_levels: Vec<usize>,
    /// Measured window of each concurrency cell, milliseconds (0 skips them).
    pub concurrency_window_ms: u64,
    /// Quote delays of the quote-latency cells, milliseconds.
    pub quote_latency_delays_ms: Vec<u64>,
    /// Bonds per quote-latency cell (0 skips them).
    pub quote_latency_iterations: usize,
    /// Bytes per bulk transfer (0 skips the bulk cells).
    pub bulk_bytes: u64,
    /// Bulk transfers per side.
    pub bulk_rounds: usize,
    /// Idle connections of the memory cells (0 skips them).
    pub memory_connections: usize,
    /// The bench binary, to run each memory cell in a process of its own; in this process when
    /// `None`.
    #[serde(skip)]
    pub memory_exe: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            iterations: 300,
            warmup: 20,
            rounds: 10,
            micro_iterations: 200,
            server_padding: 5000,
            socket_buffer: 4 << 20,
            load: LoadOptions::default(),
            path_delay_ms: 25,
            path_connections: 5,
            concurrency_levels: vec![1, 16, 64],
            concurrency_window_ms: 3000,
            quote_latency_delays_ms: vec![4, 39],
            quote_latency_iterations: 30,
            bulk_bytes: 1 << 30,
            bulk_rounds: 3,
            memory_connections: 1000,
            memory_exe: None,
        }
    }
}

/// The machine the figures come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// CPUs available to the process.
    pub cpus: usize,
    /// `model name` from /proc/cpuinfo, when readable.
    pub cpu_model: Option<String>,
    /// Operating system and architecture.
    pub os: String,
}

impl Machine {
    /// Describes the current machine.
    pub fn current() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            });
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// Figures of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// Certificate sizes and socket buffers.
    #[serde(flatten)]
    pub info: ScenarioInfo,
    /// From `connect` to the connection established on the client.
    pub handshake: Stats,
    /// From `connect` to the 1-byte echo back on a bi stream.
    pub connect_echo: Stats,
    /// `handshake` relative to the baseline's.
    pub handshake_vs_baseline: Ratio,
    /// `connect_echo` relative to the baseline's.
    pub connect_echo_vs_baseline: Ratio,
    /// Median of each client-side UDP counter at established.
    pub client_udp_p50: UdpCounts,
    /// Server side, from the connection attempt to established, when the scenario reports it.
    pub acceptor_handshake: Option<Stats>,
    /// `acceptor_handshake` relative to the baseline's, when both are known.
    pub acceptor_handshake_vs_baseline: Option<Ratio>,
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// How it ran.
    pub options: Options,
    /// Name of the scenario the ratios refer to.
    pub baseline: String,
    /// One entry per scenario, baseline first.
    pub scenarios: Vec<ScenarioReport>,
    /// The micro-benchmarks (quote verifier, certificate issuance), unless skipped.
    pub micro: Vec<MicroReport>,
    /// Bond throughput under load: single-quote and batched, same run, unless skipped.
    pub load: Vec<LoadReport>,
    /// Round trips per scenario through the delay relay, unless skipped.
    pub path: Vec<PathReport>,
    /// Handshakes per second under concurrency, plain and bonded, unless skipped.
    pub concurrency: Vec<ConcurrencyReport>,
    /// Bonds with a quote provider that takes milliseconds, unless skipped.
    pub quote_latency: Vec<QuoteLatencyReport>,
    /// One-stream bulk throughput, plain and bonded, unless skipped.
    pub bulk: Vec<BulkReport>,
    /// Memory per idle connection, plain and bonded, unless skipped.
    pub memory: Vec<MemoryReport>,
}

/// The scenarios of a run, baseline first. Must run inside a tokio runtime.
pub async fn default_scenarios(options: &Options) -> Result<Vec<Box<dyn HandshakeScenario>>> {
    Ok(vec![
        Box::new(PlainMtls::setup(BASELINE, 0, options.socket_buffer)?),
        Box::new(PlainMtls::setup(
            BASELINE_BIG_CERT,
            options.server_padding,
            options.socket_buffer,
        )?),
        Box::new(
            AttestedScenario::setup(
                SOFTWARE,
                Level::Software,
                Verification::Default,
                options.socket_buffer,
            )
            .await?,
        ),
        Box::new(
            AttestedScenario::setup(
                TDX_LOCAL_CERT,
                Level::TdxLocalCertificateFreshness,
                Verification::Default,
                options.socket_buffer,
            )
            .await?,
        ),
        Box::new(
            AttestedScenario::setup(
                TDX_LOCAL,
                Level::TdxLocal,
                Verification::Default,
                options.socket_buffer,
            )
            .await?,
        ),
        Box::new(
            AttestedScenario::setup(
                TDX_BIDIRECTIONAL,
                Level::TdxRaTlsBidirectional,
                Verification::Default,
                options.socket_buffer,
            )
            .await?,
        ),
        Box::new(
            AttestedScenario::setup(
                TDX_BIDIRECTIONAL_UNCACHED,
                Level::TdxRaTlsBidirectional,
                Verification::Uncached,
                options.socket_buffer,
            )
            .await?,
        ),
    ])
}

/// Runs the default scenarios, then the micro-benchmarks.
pub async fn run(options: &Options) -> Result<Report> {
    let scenarios = default_scenarios(options).await?;
    let measured = measure(&scenarios, options).await?;
    let (iterations, padding) = (options.micro_iterations, options.server_padding);
    let micro = tokio::task::spawn_blocking(move || micro::run_all(iterations, padding)).await??;
    let load = run_load(&options.load, options.socket_buffer).await?;
    let path = run_path(
        &scenarios,
        Duration::from_millis(options.path_delay_ms),
        options.path_connections,
    )
    .await
    .context("path cells")?;
    drop(scenarios);
    let concurrency = run_concurrency(
        &options.concurrency_levels,
        Duration::from_millis(options.concurrency_window_ms),
        options.socket_buffer,
    )
    .await
    .context("concurrency cells")?;
    let quote_latency = run_quote_latency(
        &options.quote_latency_delays_ms,
        options.quote_latency_iterations,
        options.socket_buffer,
    )
    .await
    .context("quote latency cells")?;
    let bulk = run_bulk(
        options.bulk_bytes,
        options.bulk_rounds,
        options.socket_buffer,
    )
    .await
    .context("bulk cells")?;
    let memory = run_memory(
        options.memory_exe.as_deref(),
        options.memory_connections,
        options.socket_buffer,
    )
    .await
    .context("memory cells")?;
    Ok(Report {
        machine: Machine::current(),
        options: options.clone(),
        baseline: measured.first().map(|s| s.name.clone()).unwrap_or_default(),
        scenarios: measured,
        micro,
        load,
        path,
        concurrency,
        quote_latency,
        bulk,
        memory,
    })
}

/// Warms up every scenario, then times them in interleaved rounds. The first scenario is the
/// baseline of the ratios.
pub async fn measure(
    scenarios: &[Box<dyn HandshakeScenario>],
    options: &Options,
) -> Result<Vec<ScenarioReport>> {
    for scenario in scenarios {
        for _ in 0..options.warmup {
            scenario
                .one_handshake()
                .await
                .with_context(|| format!("warm-up of {}", scenario.name()))?;
        }
    }
    let mut columns: Vec<Column> = scenarios.iter().map(|_| Column::default()).collect();
    let rounds = options.rounds.clamp(1, options.iterations.max(1));
    for round in 0..rounds {
        let per_round =
            options.iterations / rounds + usize::from(round < options.iterations % rounds);
        for (scenario, column) in scenarios.iter().zip(&mut columns) {
            for _ in 0..per_round {
                let sample = scenario
                    .one_handshake()
                    .await
                    .with_context(|| format!("timed connection of {}", scenario.name()))?;
                column.push(sample);
            }
        }
    }
    let mut summaries = Vec::with_capacity(scenarios.len());
    for (scenario, column) in scenarios.iter().zip(&columns) {
        let handshake = Stats::from_samples(&column.handshakes).context("no timed connections")?;
        let connect_echo = Stats::from_samples(&column.echoes).context("no timed connections")?;
        let acceptor = Stats::from_samples(&column.acceptor);
        summaries.push((scenario, handshake, connect_echo, acceptor, &column.udp));
    }
    let Some(&(_, base_hs, base_echo, base_acceptor, _)) = summaries.first() else {
        return Ok(Vec::new());
    };
    Ok(summaries
        .into_iter()
        .map(
            |(scenario, handshake, connect_echo, acceptor, udp)| ScenarioReport {
                name: scenario.name().to_owned(),
                info: scenario.info().clone(),
                handshake,
                connect_echo,
                handshake_vs_baseline: Ratio::of(&handshake, &base_hs),
                connect_echo_vs_baseline: Ratio::of(&connect_echo, &base_echo),
                client_udp_p50: median_counts(udp),
                acceptor_handshake: acceptor,
                acceptor_handshake_vs_baseline: acceptor
                    .zip(base_acceptor)
                    .map(|(this, base)| Ratio::of(&this, &base)),
            },
        )
        .collect())
}

/// The samples of one scenario.
#[derive(Default)]
struct Column {
    handshakes: Vec<Duration>,
    echoes: Vec<Duration>,
    acceptor: Vec<Duration>,
    udp: Vec<UdpCounts>,
}

impl Column {
    fn push(&mut self, sample: Sample) {
        self.handshakes.push(sample.handshake);
        self.echoes.push(sample.connect_echo);
        self.acceptor.extend(sample.acceptor_handshake);
        self.udp.push(sample.client_udp);
    }
}

/// Median of each counter separately (lower median).
fn median_counts(counts: &[UdpCounts]) -> UdpCounts {
    let median = |field: fn(&UdpCounts) -> u64| {
        let mut values: Vec<u64> = counts.iter().map(field).collect();
        values.sort_unstable();
        values
            .get(values.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0)
    };
    UdpCounts {
        datagrams_sent: median(|c| c.datagrams_sent),
        datagrams_received: median(|c| c.datagrams_received),
        bytes_received: median(|c| c.bytes_received),
    }
}

impl Report {
    /// The report as markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let o = &self.options;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "Machine: {} CPUs ({}), {}, loopback UDP. {} timed connections per scenario after {} \
             warm-up, in {} interleaved rounds. Times in µs; ratios against `{}` in this run.\n",
            m.cpus,
            m.cpu_model.as_deref().unwrap_or("unknown CPU"),
            m.os,
            o.iterations,
            o.warmup,
            o.rounds,
            self.baseline,
        );
        for (title, pick) in [
            (
                "Handshake (connect to established, client side)",
                Pick::Handshake,
            ),
            ("Connect + 1-byte echo on a bi stream", Pick::ConnectEcho),
            (
                "Acceptor handshake (attempt to established, server side)",
                Pick::Acceptor,
            ),
        ] {
            let rows: Vec<_> = self
                .scenarios
                .iter()
                .filter_map(|s| pick.of(s).map(|figures| (s, figures)))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "### {title}\n");
            let _ = writeln!(
                out,
                "| scenario | p50 | p90 | p99 | mean | p50 ratio | p99 ratio |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
            for (s, (stats, ratio)) in rows {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |",
                    s.name,
                    stats.p50_us,
                    stats.p90_us,
                    stats.p99_us,
                    stats.mean_us,
                    ratio.p50,
                    ratio.p99
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "### Scenarios\n");
        let _ = writeln!(
            out,
            "| scenario | server cert (B) | client cert (B) | client datagrams sent/rcvd \
             to established (p50) | client bytes rcvd (p50) | socket rcv/snd buffers (B) | what |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
        for s in &self.scenarios {
            let i = &s.info;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {}/{} | {} | {}/{} | {} |",
                s.name,
                i.server_cert_bytes,
                i.client_cert_bytes,
                s.client_udp_p50.datagrams_sent,
                s.client_udp_p50.datagrams_received,
                s.client_udp_p50.bytes_received,
                i.server_socket.recv,
                i.server_socket.send,
                i.description
            );
        }
        if !self.micro.is_empty() {
            let _ = writeln!(out, "\n### Micro-benchmarks (no network), µs per call\n");
            let _ = writeln!(out, "| name | calls | p50 | p90 | p99 | mean | what |");
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
            for m in &self.micro {
                let p = &m.per_call;
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                    m.name, p.n, p.p50_us, p.p90_us, p.p99_us, p.mean_us, m.description
                );
            }
        }
        if !self.load.is_empty() {
            let _ = writeln!(
                out,
                "\n### Bonds under load (TdxRaTlsBidirectional, closed loop, serialised quote \
                 provider), latency µs from connect to the bonded connection\n"
            );
            let _ = writeln!(
                out,
                "| name | dialers | quote ms | bonds/s | bonds | acceptor quotes | failures | p50 | p99 |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for l in &self.load {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {} | {} | {} | {:.0} | {:.0} |",
                    l.name,
                    l.concurrency,
                    l.quote_delay_ms,
                    l.bonds_per_s,
                    l.bonds,
                    l.quotes_made,
                    l.failures,
                    l.p50_us,
                    l.p99_us
                );
            }
        }
        self.extra_markdown(&mut out);
        out
    }

    fn extra_markdown(&self, out: &mut String) {
        if !self.path.is_empty() {
            let _ = writeln!(
                out,
                "\n### Delayed path ({} ms each way through a userspace relay), median of {} \
                 connections; round trips = time / {} ms\n",
                self.options.path_delay_ms,
                self.options.path_connections,
                2 * self.options.path_delay_ms
            );
            let _ = writeln!(
                out,
                "| scenario | dialer ready ms | dialer RTs | acceptor ready ms | acceptor RTs | \
                 client datagrams sent/rcvd | relay drops |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
            for p in &self.path {
                let _ = writeln!(
                    out,
                    "| {} | {:.1} | {:.2} | {:.1} | {:.2} | {}/{} | {} |",
                    p.name,
                    p.dialer_ready_ms,
                    p.dialer_round_trips,
                    p.acceptor_ready_ms,
                    p.acceptor_round_trips,
                    p.client_datagrams_sent,
                    p.client_datagrams_received,
                    p.relay_dropped
                );
            }
        }
        if !self.concurrency.is_empty() {
            let _ = writeln!(
                out,
                "\n### Concurrency (closed loops, one acceptor, {} ms window), latency µs\n",
                self.options.concurrency_window_ms
            );
            let _ = writeln!(
                out,
                "| name | dialers | handshakes/s | vs plain | handshakes | failures | p50 | p99 |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
            for c in &self.concurrency {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} | {:.2}x | {} | {} | {:.0} | {:.0} |",
                    c.name,
                    c.concurrency,
                    c.handshakes_per_s,
                    c.vs_plain,
                    c.handshakes,
                    c.failures,
                    c.latency.p50_us,
                    c.latency.p99_us
                );
            }
        }
        if !self.quote_latency.is_empty() {
            let _ = writeln!(
                out,
                "\n### Quote on the critical path (bidirectional, serialised provider with a \
                 delay on both sides, one bond at a time), µs\n"
            );
            let _ = writeln!(
                out,
                "| name | quote ms | bonds | handshake p50 | p99 | connect+echo p50 | beyond one quote (p50) |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
            for q in &self.quote_latency {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    q.name,
                    q.quote_delay_ms,
                    q.handshake.n,
                    q.handshake.p50_us,
                    q.handshake.p99_us,
                    q.connect_echo.p50_us,
                    q.beyond_one_quote_p50_us
                );
            }
        }
        if !self.bulk.is_empty() {
            let _ = writeln!(out, "\n### One-stream bulk transfer\n");
            let _ = writeln!(
                out,
                "| name | bytes | rounds | median MB/s | best MB/s | vs plain |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
            for b in &self.bulk {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {:.1} | {:.2}x |",
                    b.name, b.bytes, b.rounds, b.median_mb_per_s, b.best_mb_per_s, b.vs_plain
                );
            }
        }
        if !self.memory.is_empty() {
            let _ = writeln!(
                out,
                "\n### Memory per idle connection (VmRSS delta, both ends in one process)\n"
            );
            let _ = writeln!(
                out,
                "| name | connections | RSS before KiB | RSS after KiB | bytes per connection | vs plain | own process |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
            for m in &self.memory {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.0} | {:.2}x | {} |",
                    m.name,
                    m.connections,
                    m.rss_before_kib,
                    m.rss_after_kib,
                    m.per_connection_bytes,
                    m.vs_plain,
                    m.own_process
                );
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Pick {
    Acceptor,
    ConnectEcho,
    Handshake,
}

impl Pick {
    fn of(self, s: &ScenarioReport) -> Option<(Stats, Ratio)> {
        match self {
            Self::Acceptor => s.acceptor_handshake.zip(s.acceptor_handshake_vs_baseline),
            Self::ConnectEcho => Some((s.connect_echo, s.connect_echo_vs_baseline)),
            Self::Handshake => Some((s.handshake, s.handshake_vs_baseline)),
        }
    }
}
