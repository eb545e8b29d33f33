//! Subcommands of the `ratls` tool, one file each, and what they share.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub(crate) mod audit;
pub(crate) mod collateral;
pub(crate) mod connect;
pub(crate) mod demo;
pub(crate) mod docs;
mod explain;
pub(crate) mod identity;
mod inputs;
pub(crate) mod inspect_cert;
pub(crate) mod log;
pub(crate) mod measure;
mod node;
pub(crate) mod policy;
mod progress;
pub(crate) mod quote;
pub(crate) mod retire;
pub(crate) mod serve;
pub(crate) mod verify_build;
pub(crate) mod verify_quote;
mod window;

/// Reports an input or usage error and returns exit code 2.
pub(crate) fn input_error(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", explain::anyhow_chain(error));
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

/// Runs an async subcommand on its own runtime; a runtime that cannot start is exit code 2.
pub(crate) fn run_async(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match runtime() {
        Ok(runtime) => runtime.block_on(command),
        Err(error) => input_error(&error),
    }
}

/// The registers of a TD report as JSON fields (lowercase hex).
pub(crate) fn measurements_json(
    m: &ratls_quic::Measurements,
) -> serde_json::Map<String, serde_json::Value> {
    let fields = [
        ("mr_td", hex::encode(m.mr_td)),
        ("rtmr0", hex::encode(m.rtmr[0])),
        ("rtmr1", hex::encode(m.rtmr[1])),
        ("rtmr2", hex::encode(m.rtmr[2])),
        ("rtmr3", hex::encode(m.rtmr[3])),
        ("mr_config_id", hex::encode(m.mr_config_id)),
        ("mr_owner", hex::encode(m.mr_owner)),
        ("mr_owner_config", hex::encode(m.mr_owner_config)),
        ("xfam", hex::encode(m.xfam)),
        ("td_attributes", hex::encode(m.td_attributes)),
    ];
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.into()))
        .collect()
}

/// A closed stdout (`ratls ... | head`) ends the process quietly, as with other command-line
/// tools, instead of a panic message: `println!` panics on a write error, and this hook turns
/// that one panic into exit code 141 (128 + SIGPIPE). Every other panic is reported as before.
pub(crate) fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The name of a TD report kind in JSON output.
pub(crate) fn report_kind_name(kind: ratls_quic::TdReportKind) -> &'static str {
    use ratls_quic::TdReportKind;
    match kind {
        TdReportKind::Td10 => "td10",
        TdReportKind::Td15 => "td15",
        TdReportKind::Td15Ex => "td15ex",
        _ => "unknown",
    }
}

/// The fields of a TD 1.5 report with extensions (v5 body type 4) as JSON (lowercase hex).
pub(crate) fn td15_ex_json(ex: &ratls_quic::Td15ExFields) -> serde_json::Value {
    serde_json::json!({
        "vmid": ex.vmid,
        "td_id": hex::encode(ex.td_id),
        "dev_info": hex::encode(ex.dev_info),
        "init_service_td_hash": hex::encode(ex.init_service_td_hash),
        "init_service_td_attributes": hex::encode(ex.init_service_td_attributes),
        "init_cpu_svn": hex::encode(ex.init_cpu_svn),
        "init_tee_tcb_svn": hex::encode(ex.init_tee_tcb_svn),
        "init_tee_fmspc": hex::encode(ex.init_tee_fmspc),
        "cur_service_td_hash": hex::encode(ex.cur_service_td_hash),
        "cur_service_td_attributes": hex::encode(ex.cur_service_td_attributes),
    })
}
