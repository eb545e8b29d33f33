//! `ratls-load`: N TdxRaTlsBidirectional bonds from C concurrent dialers against one acceptor,
//! on loopback; zero failures and no growth in file descriptors or resident memory expected.
//! Exit code 1 if any bond failed or a file descriptor was left open.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use ratls_bench::soak::{run_soak, SoakOptions};

/// Bonds against one acceptor, counting failures and what the process holds before and after.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Bonds in all.
    #[arg(long, default_value_t = SoakOptions::default().handshakes)]
    handshakes: usize,
    /// Concurrent dialers (each its own endpoint and identity).
    #[arg(long, default_value_t = SoakOptions::default().concurrency)]
    concurrency: usize,
    /// Socket send/receive buffer to ask for, bytes.
    #[arg(long, default_value_t = SoakOptions::default().socket_buffer)]
    socket_buffer: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    worker_threads: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = SoakOptions {
        handshakes: args.handshakes,
        concurrency: args.concurrency,
        socket_buffer: args.socket_buffer,
        drain_timeout: Duration::from_secs(30),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run_soak(&options))?;
    println!("{}", report.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    if report.failures > 0 {
        bail!(
            "{} bonds failed; first: {}",
            report.failures,
            report.first_failure.as_deref().unwrap_or("?")
        );
    }
    if report.fd_growth() > 0 {
        bail!("{} file descriptors left open", report.fd_growth());
    }
    Ok(())
}
