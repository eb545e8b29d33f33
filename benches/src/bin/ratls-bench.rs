//! `ratls-bench`: handshake latency of the scenarios in the same run, as markdown and JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ratls_bench::cells::{memory_in_process, MemoryKind};
use ratls_bench::{run, LoadOptions, Options};

/// Handshake latency benchmark on loopback UDP.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Timed connections per scenario.
    #[arg(long, default_value_t = Options::default().iterations)]
    iterations: usize,
    /// Untimed warm-up connections per scenario.
    #[arg(long, default_value_t = Options::default().warmup)]
    warmup: usize,
    /// Interleaved rounds the timed connections are split into.
    #[arg(long, default_value_t = Options::default().rounds)]
    rounds: usize,
    /// Timed calls of each micro-benchmark: quote verifier, certificate issuance (0 skips them).
    #[arg(long, default_value_t = Options::default().micro_iterations)]
    micro_iterations: usize,
    /// Bytes of dummy extension in the quote-sized server certificate.
    #[arg(long, default_value_t = Options::default().server_padding)]
    server_padding: usize,
    /// Socket send/receive buffer to ask for, bytes.
    #[arg(long, default_value_t = Options::default().socket_buffer)]
    socket_buffer: usize,
    /// Concurrent dialers of the load cells.
    #[arg(long, default_value_t = LoadOptions::default().concurrency)]
    load_concurrency: usize,
    /// Time per quote of the load cells' serialised provider, milliseconds.
    #[arg(long, default_value_t = LoadOptions::default().quote_delay_ms)]
    quote_delay_ms: u64,
    /// Measured window of each load cell, seconds (0 skips the load cells).
    #[arg(long, default_value_t = LoadOptions::default().window_secs)]
    load_seconds: u64,
    /// One-way delay of the delay relay, milliseconds.
    #[arg(long, default_value_t = Options::default().path_delay_ms)]
    path_delay_ms: u64,
    /// Connections per scenario through the delay relay (0 skips the path cells).
    #[arg(long, default_value_t = Options::default().path_connections)]
    path_connections: usize,
    /// Concurrent dialers of the concurrency cells, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = Options::default().concurrency_levels)]
    concurrency: Vec<usize>,
    /// Measured window of each concurrency cell, milliseconds (0 skips them).
    #[arg(long, default_value_t = Options::default().concurrency_window_ms)]
    concurrency_ms: u64,
    /// Quote delays of the quote-latency cells, milliseconds, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = Options::default().quote_latency_delays_ms)]
    quote_latency_delays_ms: Vec<u64>,
    /// Bonds per quote-latency cell (0 skips them).
    #[arg(long, default_value_t = Options::default().quote_latency_iterations)]
    quote_latency_iterations: usize,
    /// Bytes per one-stream bulk transfer (0 skips the bulk cells).
    #[arg(long, default_value_t = Options::default().bulk_bytes)]
    bulk_bytes: u64,
    /// Bulk transfers per side, alternating plain and bonded.
    #[arg(long, default_value_t = Options::default().bulk_rounds)]
    bulk_rounds: usize,
    /// Idle connections of the memory cells (0 skips them).
    #[arg(long, default_value_t = Options::default().memory_connections)]
    memory_connections: usize,
    /// Internal: run only this memory cell (plain-mtls or tdx-ratls-bidirectional) in this
    /// process and print its figures as JSON.
    #[arg(long, hide = true)]
    memory_cell: Option<String>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    worker_threads: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = Options {
        iterations: args.iterations,
        warmup: args.warmup,
        rounds: args.rounds,
        micro_iterations: args.micro_iterations,
        server_padding: args.server_padding,
        socket_buffer: args.socket_buffer,
        load: LoadOptions {
            concurrency: args.load_concurrency,
            quote_delay_ms: args.quote_delay_ms,
            window_secs: args.load_seconds,
        },
        path_delay_ms: args.path_delay_ms,
        path_connections: args.path_connections,
        concurrency_levels: args.concurrency,
        concurrency_window_ms: args.concurrency_ms,
        quote_latency_delays_ms: args.quote_latency_delays_ms,
        quote_latency_iterations: args.quote_latency_iterations,
        bulk_bytes: args.bulk_bytes,
        bulk_rounds: args.bulk_rounds,
        memory_connections: args.memory_connections,
        memory_exe: std::env::current_exe().ok(),
    };
    anyhow::ensure!(options.iterations > 0, "--iterations must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads.max(1))
        .enable_all()
        .build()?;
    if let Some(cell) = &args.memory_cell {
        let kind = match cell.as_str() {
            "plain-mtls" => MemoryKind::Plain,
            "tdx-ratls-bidirectional" => MemoryKind::Bonded,
            other => anyhow::bail!("unknown memory cell {other}"),
        };
        let report = runtime.block_on(memory_in_process(
            kind,
            options.memory_connections,
            options.socket_buffer,
        ))?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let report = runtime.block_on(run(&options))?;
    print!("{}", report.to_markdown());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
