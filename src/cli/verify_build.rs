//! `ratls verify-build`: rebuild the firmware from a declared recipe and check its MRTD.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ratls_quic::repro::{verify_build, BuildPolicy, MAX_RECIPE_LEN};
use ratls_quic::AttestationLevel;
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy};

/// Rebuild the firmware from the policy's recipe and compare its measurements.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyBuildArgs {
    /// Policy file with a `[build]` section.
    #[arg(long)]
    policy: PathBuf,
    /// After a successful check, write a transport policy at level TdxPlusReproducibleBuild
    /// whose profiles pin the rebuilt MRTD (and RTMR1/RTMR2 when computed), with a `[rebuild]`
    /// record. The transport tables of --policy (when it has `version`) are kept; otherwise one
    /// profile "rebuilt" pins only the rebuilt registers.
    #[arg(long, value_name = "OUT")]
    emit_policy: Option<PathBuf>,
    /// The emitted policy's `[remote]` section (when --policy has none).
    #[command(flatten)]
    remote: super::policy::RemoteArgs,
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
    let transport = match args.emit_policy {
        Some(_) => match transport_base(&text) {
            Ok(base) => Some(base),
            Err(e) => {
                eprintln!("error: {}: {e}", args.policy.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let progress = super::progress::Progress::new("verify-build", 0);
    progress.note("fetching and rebuilding");
    let mut report = |step, detail: &str| {
        progress.clear();
        println!("ok {step}: {detail}");
        progress.note(&format!("{step} done, going on"));
    };
    let result = verify_build(&policy, &fetch, &mut report);
    drop(progress);
    match result {
        Ok(verdict) => {
            println!("verified: rebuild reproduces the declared measurements");
            let (Some(out), Some(mut transport)) = (&args.emit_policy, transport) else {
                return ExitCode::SUCCESS;
            };
            transport.set_level(AttestationLevel::TdxPlusReproducibleBuild);
            if transport.remote().is_none() {
                if let Err(e) = args.remote.apply(&mut transport) {
                    eprintln!("error: --emit-policy: {e}");
                    return ExitCode::from(2);
                }
            }
            transport.pin_rebuilt(verdict.rebuilt());
            if let Err(e) = std::fs::write(out, transport.to_toml()) {
                eprintln!("error: writing {}: {e}", out.display());
                return ExitCode::from(2);
            }
            println!(
                "wrote {}: level TdxPlusReproducibleBuild, {} profile(s) pinned to MRTD {}",
                out.display(),
                transport.measurements.profiles().len(),
                hex::encode(verdict.rebuilt().mr_td())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED {}", e.step());
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The transport policy to pin: the tables of the policy file when it is a transport policy (has
/// `version`), else one profile that expects any value until pinned.
fn transport_base(text: &str) -> Result<Policy, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    if table.contains_key("version") {
        return Policy::from_toml(text).map_err(|e| e.to_string());
    }
    let any = MeasurementPolicy::any_measurements();
    let profiles = any
        .profiles()
        .iter()
        .map(|p| MeasurementProfile {
            name: "rebuilt".into(),
            ..p.clone()
        })
        .collect();
    Ok(Policy::new(MeasurementPolicy::new(profiles)))
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
