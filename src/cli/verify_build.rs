//! `ratls verify-build`: rebuild the firmware from a declared recipe and check its MRTD.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ratls_quic::repro::recipe::{verify_build, BuildPolicy, MAX_RECIPE_LEN};

/// Rebuild the firmware from the policy's recipe and compare its measurements.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyBuildArgs {
    /// Policy file with a `[build]` section.
    #[arg(long)]
    policy: PathBuf,
}

/// Runs `ratls verify-build`.
pub(crate) fn run(args: &VerifyBuildArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.policy) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.policy.display());
            return ExitCode::from(2);
        }
    };
    let base = args
        .policy
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let policy = match BuildPolicy::from_toml(&text, &base) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("error: {}: {e}", args.policy.display());
            return ExitCode::from(2);
        }
    };
    let mut report = |step, detail: &str| println!("ok {step}: {detail}");
    match verify_build(&policy, &fetch, &mut report) {
        Ok(_) => {
            println!("verified: rebuild reproduces the declared measurements");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED {}", e.step());
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Fetches a recipe over HTTP(S) with a blocking client (ring as the TLS provider).
fn fetch(url: &str) -> Result<Vec<u8>, String> {
    // Another component may have installed the provider already; either way one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RECIPE_LEN as u64)
    {
        return Err(format!("recipe larger than {MAX_RECIPE_LEN} bytes"));
    }
    let body = response.bytes().map_err(|e| e.to_string())?;
    Ok(body.to_vec())
}
