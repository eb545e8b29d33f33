//! `ratls-flood`: honest TdxRaTlsBidirectional bonds alone, then under a flood of
//! unauthenticated attempts (garbage certificates, harvested quotes with varied PEM chains,
//! half-open handshakes); bond latency, acceptor CPU and flood rates of both phases.
//! Exit code 1 if an honest bond failed or a flood attempt was established.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use ratls_bench::flood::{run_flood, FloodOptions};

/// Honest bonds with and without a flood of unauthenticated attempts, on loopback.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Length of each phase, seconds.
    #[arg(long, default_value_t = FloodOptions::default().seconds)]
    seconds: u64,
    /// Honest dialers bonding back to back.
    #[arg(long, default_value_t = FloodOptions::default().bonders)]
    bonders: usize,
    /// Concurrent flooders sending garbage certificates.
    #[arg(long, default_value_t = FloodOptions::default().garbage)]
    garbage: usize,
    /// Concurrent flooders sending harvested quotes with varied PEM chains.
    #[arg(long, default_value_t = FloodOptions::default().harvested)]
    harvested: usize,
    /// Concurrent flooders sending QUIC Initials never followed up.
    #[arg(long, default_value_t = FloodOptions::default().half_open)]
    half_open: usize,
    /// Most attempts per second of each flooder (0: as fast as it can).
    #[arg(long, default_value_t = FloodOptions::default().max_rate)]
    max_rate: u64,
    /// Worker threads of the acceptor's runtime.
    #[arg(long, default_value_t = FloodOptions::default().acceptor_threads)]
    acceptor_threads: usize,
    /// Worker threads of the dialers' and flooders' runtime.
    #[arg(long, default_value_t = FloodOptions::default().client_threads)]
    client_threads: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = FloodOptions {
        seconds: args.seconds,
        bonders: args.bonders,
        garbage: args.garbage,
        harvested: args.harvested,
        half_open: args.half_open,
        max_rate: args.max_rate,
        acceptor_threads: args.acceptor_threads,
        client_threads: args.client_threads,
        ..FloodOptions::default()
    };
    let report = run_flood(&options)?;
    println!("{}", report.baseline.summary());
    println!("{}", report.flood.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    for phase in [&report.baseline, &report.flood] {
        for e in &phase.flood_errors {
            eprintln!("{}: flooder stopped: {e}", phase.name);
        }
        if phase.bond_failures > 0 {
            bail!(
                "{}: {} honest bonds failed; first: {}",
                phase.name,
                phase.bond_failures,
                phase.first_failure.as_deref().unwrap_or("?")
            );
        }
        if phase.acceptor_established != phase.bonds as u64 {
            bail!(
                "{}: the acceptor established {} connections for {} honest bonds",
                phase.name,
                phase.acceptor_established,
                phase.bonds
            );
        }
    }
    Ok(())
}
