//! `ratls retire`: write a retirement marker for an identity, signed by it and by its
//! successor when one is named.
//!
//! Exit codes: 0 written; 2 a key cannot be read or the marker cannot be written.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ratls_quic::evidence_log::RetirementMarker;
use ratls_quic::Identity;

/// Arguments of `ratls retire`.
#[derive(Debug, clap::Args)]
pub(crate) struct RetireArgs {
    /// The identity to retire (PKCS#8 PEM key file).
    #[arg(long)]
    identity: PathBuf,
    /// Its successor's key file; the successor signs the marker too.
    #[arg(long)]
    successor: Option<PathBuf>,
    /// Where to write the marker (format in docs/evidence-log.md).
    #[arg(long)]
    out: PathBuf,
    /// Retirement time, unix seconds (default: now).
    #[arg(long)]
    time: Option<u64>,
}

pub(crate) fn run(args: &RetireArgs) -> ExitCode {
    match retire(args) {
        Ok(marker) => {
            println!("retired       {}", marker.retired());
            println!("since         {}", marker.time());
            match marker.successor() {
                Some(s) => println!("successor     {s}"),
                None => println!("successor     none"),
            }
            println!("marker        {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(error) => super::input_error(&error),
    }
}

fn retire(args: &RetireArgs) -> anyhow::Result<RetirementMarker> {
    let old = Identity::load(&args.identity)
        .with_context(|| format!("identity {}", args.identity.display()))?;
    let successor = args
        .successor
        .as_deref()
        .map(|path| Identity::load(path).with_context(|| format!("successor {}", path.display())))
        .transpose()?;
    let time = match args.time {
        Some(time) => time,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs(),
    };
    let marker = RetirementMarker::create(&old, time, successor.as_ref())?;
    let dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("temporary file in {}", dir.display()))?;
    file.write_all(&marker.encode())?;
    file.as_file().sync_all()?;
    file.persist(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(marker)
}
