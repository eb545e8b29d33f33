//! `ratls audit`: re-verify every record of an evidence log.
//!
//! Exit codes: 0 every record and checkpoint passed; 1 something failed (each failing record
//! is named); 2 usage or input error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ratls_quic::evidence_log::{
    pull_from, AuditReport, Auditor, Checkpoint, LogContents, RecordVerdict, RetirementMarker,
};
use ratls_quic::{Policy, QuoteVerifier};
use serde_json::json;

/// Arguments of `ratls audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// The log directory.
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    log: Option<PathBuf>,
    /// Pull the log from this node's evidence endpoint (host:port) instead.
    #[arg(long, requires_all = ["expect", "identity"])]
    from: Option<std::net::SocketAddr>,
    /// With --from: the node's PeerId; its endpoint and its checkpoint must be signed by it.
    #[arg(long)]
    expect: Option<ratls_quic::PeerId>,
    /// With --from: this auditor's identity key file (on the node's audit allow-list).
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Policy file (TOML) the quotes are judged by. Without it: authenticity only, UpToDate
    /// only, no debug TD.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Trust this root CA (DER) instead of Intel's SGX Root CA.
    #[arg(long)]
    root: Option<PathBuf>,
    /// A checkpoint obtained earlier from the node; the log must agree with it (repeatable).
    #[arg(long)]
    checkpoint: Vec<PathBuf>,
    /// A retirement marker file to apply (repeatable); markers in the log apply too.
    #[arg(long)]
    marker: Vec<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &AuditArgs) -> ExitCode {
    let report = match audit(args) {
        Ok(report) => report,
        Err(error) => return super::input_error(&error),
    };
    if args.json {
        println!("{}", report_json(&report));
    } else {
        print_human(&report);
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn audit(args: &AuditArgs) -> anyhow::Result<AuditReport> {
    let policy = match &args.policy {
        None => Policy::authenticity_only(),
        Some(path) => {
            let text = String::from_utf8(super::read_limited(path, 1 << 20)?)
                .with_context(|| format!("policy {} is not UTF-8", path.display()))?;
            Policy::from_toml(&text).with_context(|| format!("policy {}", path.display()))?
        }
    };
    let verifier = match &args.root {
        None => QuoteVerifier::intel(),
        Some(path) => QuoteVerifier::dangerous().trust_root(super::read_limited(path, 64 * 1024)?),
    };
    let mut auditor = Auditor::new(&verifier, &policy);
    for path in &args.marker {
        let marker = RetirementMarker::decode(&super::read_limited(path, 4096)?)
            .with_context(|| format!("marker {}", path.display()))?;
        auditor = auditor
            .with_marker(marker)
            .with_context(|| format!("marker {}", path.display()))?;
    }
    for path in &args.checkpoint {
        let checkpoint = Checkpoint::from_bytes(&super::read_limited(path, 4096)?)
            .with_context(|| format!("checkpoint {}", path.display()))?;
        auditor = auditor.with_checkpoint(checkpoint);
    }
    let (dir, _mirror) = match (&args.log, args.from, args.expect, &args.identity) {
        (Some(dir), _, _, _) => (dir.clone(), None),
        (None, Some(addr), Some(expect), Some(identity)) => {
            let identity = ratls_quic::Identity::load(identity)
                .with_context(|| format!("identity {}", identity.display()))?;
            let mirror = tempfile::tempdir().context("temporary directory")?;
            let pulled = super::runtime()?
                .block_on(pull_from(addr, expect, &identity, mirror.path()))
                .with_context(|| format!("pulling the log from {addr}"))?;
            eprintln!(
                "pulled {} records and {} collateral documents from {addr}",
                pulled.records, pulled.collateral
            );
            if let Some(checkpoint) = pulled.checkpoint {
                anyhow::ensure!(
                    checkpoint.signer == expect,
                    "the served checkpoint is signed by {}, not {expect}",
                    checkpoint.signer
                );
                auditor = auditor.with_checkpoint(checkpoint);
            }
            (mirror.path().to_path_buf(), Some(mirror))
        }
        _ => anyhow::bail!("give --log DIR, or --from ADDR --expect PEERID --identity KEY"),
    };
    let log = LogContents::read(&dir).with_context(|| format!("log {}", dir.display()))?;
    Ok(auditor.audit(&log))
}

fn subject(r: &RecordVerdict) -> String {
    r.subject.map_or_else(|| "-".to_owned(), |p| p.to_string())
}

fn print_human(report: &AuditReport) {
    for r in &report.records {
        let verdict = if r.passed() { "ok" } else { "FAIL" };
        println!(
            "record {:>6}  {:<12}  {:<4}  segment {} offset {}  subject {}",
            r.index,
            r.kind,
            verdict,
            r.location.0,
            r.location.1,
            subject(r)
        );
        for failure in &r.failures {
            println!("    {failure}");
        }
    }
    for c in &report.checkpoints {
        match &c.failure {
            None => println!("checkpoint at record {}: ok", c.checkpoint.index),
            Some(failure) => println!(
                "checkpoint at record {}: FAIL {failure}",
                c.checkpoint.index
            ),
        }
    }
    let failed: Vec<String> = report.failed().map(|r| r.index.to_string()).collect();
    let checkpoints_failed = report
        .checkpoints
        .iter()
        .filter(|c| c.failure.is_some())
        .count();
    println!(
        "{} records, {} failed{}; {} checkpoints given, {} failed",
        report.records.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" (records {})", failed.join(", "))
        },
        report.checkpoints.len(),
        checkpoints_failed
    );
}

fn report_json(report: &AuditReport) -> serde_json::Value {
    let records: Vec<_> = report
        .records
        .iter()
        .map(|r| {
            json!({
                "index": r.index,
                "kind": r.kind,
                "segment": r.location.0,
                "offset": r.location.1,
                "subject": r.subject.map(|p| p.to_string()),
                "digest": r.digest.map(hex::encode),
                "passed": r.passed(),
                "failures": r.failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    let checkpoints: Vec<_> = report
        .checkpoints
        .iter()
        .map(|c| {
            json!({
                "index": c.checkpoint.index,
                "head": hex::encode(c.checkpoint.head),
                "signer": c.checkpoint.signer.to_string(),
                "passed": c.failure.is_none(),
                "failure": c.failure.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    json!({
        "passed": report.passed(),
        "records": records,
        "failed_records": report.failed().map(|r| r.index).collect::<Vec<_>>(),
        "checkpoints": checkpoints,
    })
}
