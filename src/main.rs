//! The `ratls` command-line tool.
//!
//! Exit codes: 0 success or accepted, 1 rejected, 2 usage or input error.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// RA-TLS on QUIC for Intel TDX.
#[derive(Debug, Parser)]
#[command(name = "ratls", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One variant per subcommand; each lives in its own file under `src/cli/`.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Compute MRTD from a TDVF firmware image.
    Measure(cli::measure::MeasureArgs),
    /// Produce a TDX quote over given report data through configfs-tsm (on a TDX guest).
    Quote(cli::quote::QuoteArgs),
    /// Rebuild firmware from a declared recipe and check its measurements.
    VerifyBuild(cli::verify_build::VerifyBuildArgs),
    /// Verify a TDX quote with its collateral at a given time, and apply a policy.
    VerifyQuote(cli::verify_quote::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Measure(args) => cli::measure::run(&args),
        Command::Quote(args) => cli::quote::run(&args),
        Command::VerifyBuild(args) => cli::verify_build::run(&args),
        Command::VerifyQuote(args) => cli::verify_quote::run(args),
    }
}
