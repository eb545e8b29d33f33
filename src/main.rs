//! The `ratls` command-line tool.

use std::process::ExitCode;

use clap::Parser;

/// RA-TLS on QUIC for Intel TDX.
#[derive(Debug, Parser)]
#[command(name = "ratls", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
