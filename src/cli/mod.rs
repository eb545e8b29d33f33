//! Subcommands of the `ratls` tool, one file each, and what they share.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub(crate) mod connect;
pub(crate) mod demo;
pub(crate) mod identity;
pub(crate) mod inspect_cert;
pub(crate) mod measure;
mod node;
pub(crate) mod quote;
pub(crate) mod serve;
pub(crate) mod verify_build;
pub(crate) mod verify_quote;

/// Reports an input or usage error and returns exit code 2.
pub(crate) fn input_error(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(2)
}

/// Reads a whole file, refusing one larger than `limit` bytes.
pub(crate) fn read_limited(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > limit {
        anyhow::bail!("{} is larger than {limit} bytes", path.display());
    }
    Ok(bytes)
}

/// The tokio runtime of the networked subcommands (the library never builds one).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
