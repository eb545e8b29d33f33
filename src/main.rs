//! The `ratls` command-line tool.
//!
//! Exit codes: 0 success or accepted, 1 rejected, 2 usage or input error.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

mod cli;

/// RA-TLS on QUIC for Intel TDX.
#[derive(Debug, Parser)]
#[command(name = "ratls", version, about)]
struct Cli {
    /// More log on stderr: -v info (bonds, refusals), -vv debug, -vvv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only on stderr (the default shows warnings too, such as trusting a non-Intel root).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

// One variant per subcommand; each lives in its own file under `src/cli/`.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Re-verify every record of an evidence log; exit 1 naming each failing record.
    Audit(cli::audit::AuditArgs),
    /// Fetch collateral from a PCS/PCCS service, or run a PCCS-compatible service.
    Collateral(cli::collateral::CollateralArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(cli::docs::CompletionsArgs),
    /// Connect to a `ratls serve`, print the verified peer, send lines (stdin or --message).
    Connect(cli::connect::ConnectArgs),
    /// Two synthetic TDX nodes on loopback: a mutual attested bond, then a refused impostor.
    Demo(cli::demo::DemoArgs),
    /// Create (mode 0600) or show an identity key file: PeerId and Software allow digest.
    Identity(cli::identity::IdentityArgs),
    /// Decode a certificate's evidence (the quote is parsed, not verified).
    InspectCert(cli::inspect_cert::InspectCertArgs),
    /// Compute MRTD from a TDVF firmware image.
    Measure(cli::measure::MeasureArgs),
    /// Write a policy pinning given Measurements (`init`), or say what a policy admits (`check`).
    Policy(cli::policy::PolicyArgs),
    /// Print the man page (roff) on stdout: `ratls man > ratls.1 && man ./ratls.1`.
    Man,
    /// Produce a TDX quote over given report data through configfs-tsm (on a TDX guest).
    Quote(cli::quote::QuoteArgs),
    /// Write a retirement marker for an identity (signed by it and by its successor).
    Retire(cli::retire::RetireArgs),
    /// Accept attested connections, print each peer, echo bi streams.
    Serve(cli::serve::ServeArgs),
    /// Rebuild firmware from a declared recipe and check its measurements.
    VerifyBuild(cli::verify_build::VerifyBuildArgs),
    /// Verify a TDX quote with its collateral at a given time, and apply a policy.
    VerifyQuote(cli::verify_quote::Args),
}

fn main() -> ExitCode {
    cli::quiet_broken_pipe();
    let cli = Cli::parse();
    let verbosity = if cli.quiet {
        -1
    } else {
        i8::try_from(cli.verbose).unwrap_or(i8::MAX)
    };
    cli::log::init(verbosity);
    match cli.command {
        Command::Audit(args) => cli::audit::run(&args),
        Command::Collateral(args) => cli::collateral::run(&args),
        Command::Completions(args) => cli::docs::completions(&args, Cli::command()),
        Command::Connect(args) => cli::connect::run(&args),
        Command::Demo(args) => cli::demo::run(&args),
        Command::Identity(args) => cli::identity::run(&args),
        Command::InspectCert(args) => cli::inspect_cert::run(&args),
        Command::Man => cli::docs::man(Cli::command()),
        Command::Measure(args) => cli::measure::run(&args),
        Command::Policy(args) => cli::policy::run(&args),
        Command::Quote(args) => cli::quote::run(&args),
        Command::Retire(args) => cli::retire::run(&args),
        Command::Serve(args) => cli::serve::run(&args),
        Command::VerifyBuild(args) => cli::verify_build::run(&args),
        Command::VerifyQuote(args) => cli::verify_quote::run(args),
    }
}
