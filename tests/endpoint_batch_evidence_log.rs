//! Batched bond proofs meet the evidence log, over real UDP: several dialers bond at once with
//! an acceptor whose quoting host is slow and serves one quote at a time, so the acceptor's bond
//! quotes cover batches of bonds. Every side records its peer's evidence; the dialers' records
//! of the acceptor's quotes carry their batch position. The logs audit clean (library, `ratls
//! audit`, the Python reader), and a changed audit-path byte fails exactly that record.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use common::{addr, bind, pki, policy, provider, verifier};
use ratls_quic::evidence_log::{
    segment_path, AuditFailure, AuditReport, Auditor, EvidenceLog, EvidenceSink, LogContents,
    LogEntry, LogStore, RecordBody, StoreOptions,
};
use ratls_quic::synthetic::{sample_measurements, SyntheticQuoteProvider};
use ratls_quic::{
    AttestationLevel, Collateral, Endpoint, EndpointConfig, ExpectedPeer, Identity, Policy,
    QuoteProvider, QuoteProviderError, QuoteVerifier, ReportData,
};

const LEVEL: AttestationLevel = AttestationLevel::TdxRaTlsBidirectional;
const DIALERS: usize = 8;
const RATLS: &str = env!("CARGO_BIN_EXE_ratls");

/// A quoting host that takes 39 ms per quote and serves one at a time. Once armed, its first
/// quote waits until the acceptor has checked every dialer's certificate, so that the other
/// bonds queue behind it and share the next quotes whatever the machine's speed.
#[derive(Debug)]
struct SlowHost {
    inner: Arc<SyntheticQuoteProvider>,
    host: Mutex<()>,
    armed: AtomicBool,
    held: AtomicBool,
    acceptor: OnceLock<Weak<Endpoint>>,
}

impl QuoteProvider for SlowHost {
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        let _host = self.host.lock().unwrap();
        if self.armed.load(Ordering::SeqCst) && !self.held.swap(true, Ordering::SeqCst) {
            let deadline = Instant::now() + Duration::from_secs(60);
            let ready = || {
                self.acceptor
                    .get()
                    .and_then(Weak::upgrade)
                    .is_none_or(|a| a.handshake_checks() >= DIALERS as u64)
            };
            while !ready() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_millis(39));
        self.inner.quote(report_data)
    }

    fn name(&self) -> &'static str {
        "slow-host"
    }
}

fn logging_config(quotes: Arc<dyn QuoteProvider>, sink: EvidenceSink) -> EndpointConfig {
    let (verifier, collateral) = verifier();
    EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(LEVEL))
        .with_quote_provider(quotes)
        .with_quote_verifier(verifier, collateral)
        .bond_timeout(Duration::from_secs(120))
        .evidence_log(sink)
        .build()
        .unwrap()
}

/// Bonds every dialer with the acceptor in one burst; the acceptor logs into `acceptor_log`,
/// all dialers into `dialer_log`.
async fn burst(acceptor_log: &Path, dialer_log: &Path) {
    let host = Arc::new(SlowHost {
        inner: provider(sample_measurements()),
        host: Mutex::new(()),
        armed: AtomicBool::new(false),
        held: AtomicBool::new(false),
        acceptor: OnceLock::new(),
    });
    let (log, _) = EvidenceLog::open(acceptor_log, StoreOptions::default()).unwrap();
    let acceptor = Arc::new(
        bind(logging_config(
            Arc::clone(&host) as Arc<dyn QuoteProvider>,
            EvidenceSink::new(log, true),
        ))
        .await,
    );
    host.acceptor.set(Arc::downgrade(&acceptor)).unwrap();
    let (log, _) = EvidenceLog::open(dialer_log, StoreOptions::default()).unwrap();
    let mut dialers = Vec::new();
    for _ in 0..DIALERS {
        let sink = EvidenceSink::new(log.clone(), true);
        dialers.push(bind(logging_config(provider(sample_measurements()), sink)).await);
    }
    host.armed.store(true, Ordering::SeqCst);
    let serve = async {
        let mut tasks = Vec::new();
        for _ in 0..DIALERS {
            tasks.push(acceptor.accept().await.expect("open").establish());
        }
        join(tasks).await
    };
    let dial = async {
        let connects = dialers
            .iter()
            .map(|d| d.connect(addr(&acceptor), ExpectedPeer::Exactly(acceptor.peer_id())))
            .collect();
        join(connects).await
    };
    let (accepted, dialed) = tokio::join!(serve, dial);
    for result in accepted.iter().chain(&dialed) {
        result.as_ref().expect("every bond forms");
    }
}

/// Polls all futures on this task and collects their outputs in order.
async fn join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *result = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

fn audit(log: &Path) -> AuditReport {
    let verifier = QuoteVerifier::dangerous().trust_root(pki().root_der().to_vec());
    let node_policy: Policy = policy(LEVEL);
    Auditor::new(&verifier, &node_policy).audit(&LogContents::read(log).unwrap())
}

fn failed(report: &AuditReport) -> Vec<u64> {
    report.failed().map(|r| r.index).collect()
}

/// `ratls audit --log LOG --root ROOT --json`: exit code and failed record indexes.
fn cli_audit(log: &Path, root: &Path) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(RATLS)
        .arg("audit")
        .arg("--log")
        .arg(log)
        .arg("--root")
        .arg(root)
        .arg("--json")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), json["failed_records"].clone())
}

fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography, blake3"])
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        Err(e) => format!("python3 cannot be run: {e}"),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{problem} (python3 -m pip install -r interop/requirements.txt)");
    }
    eprintln!("skipping the Python evidence-log reader: {problem}");
    false
}

/// The Python reader's exit code, its failing record indexes, and the leaf counts it read.
fn python_read(log: &Path) -> (i32, Vec<u64>, Vec<u64>, serde_json::Value) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/read_evidence_log.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(log)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let records = json["records"].as_array().unwrap();
    let failing = records
        .iter()
        .filter(|r| !r["failures"].as_array().unwrap().is_empty())
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    let counts = records
        .iter()
        .filter_map(|r| r["bond_batch"]["count"].as_u64())
        .collect();
    (out.status.code().unwrap(), failing, counts, json)
}

/// Copies `from` into a fresh log at `to` through the store (so the chain is intact), with
/// `change` applied to record `index` first: what a forger who rewrites the whole log can do.
fn rewrite(from: &Path, to: &Path, index: u64, change: impl FnOnce(&mut RecordBody)) {
    let contents = LogContents::read(from).unwrap();
    let (mut store, _) = LogStore::open(to, StoreOptions::default()).unwrap();
    let mut change = Some(change);
    for (_, record) in contents.records() {
        let mut body = record.body.clone();
        if record.index == index {
            (change.take().unwrap())(&mut body);
        }
        if let RecordBody::BondFormed(b) = &body {
            for q in [&b.cert_quote, &b.bond_quote].into_iter().flatten() {
                let collateral: Collateral = contents.collateral(&q.collateral_digest).unwrap();
                store.put_collateral(&collateral).unwrap();
            }
        }
        store.append(record.time, body).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_bonds_are_logged_with_their_positions_and_audit_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let (acceptor_log, dialer_log) = (tmp.path().join("acceptor"), tmp.path().join("dialers"));
    burst(&acceptor_log, &dialer_log).await;
    let root = tmp.path().join("root.der");
    std::fs::write(&root, pki().root_der()).unwrap();

    // Every bond is recorded on both sides, each with a bond quote; the dialers' records of the
    // acceptor's batched quotes carry their batch position, at least one of several bonds.
    let contents = LogContents::read(&dialer_log).unwrap();
    let mut batched = Vec::new();
    for (_, record) in contents.records() {
        let RecordBody::BondFormed(b) = &record.body else {
            panic!("{record:?}");
        };
        assert!(
            b.bond_quote.is_some(),
            "record {} has no bond quote",
            record.index
        );
        // A quote that served one bond alone is a single proof, recorded without a position.
        if let Some(position) = &b.bond_batch {
            batched.push((record.index, position.count, position.path.len()));
        }
    }
    assert_eq!(contents.records().count(), DIALERS);
    let (shared, count, path_len) = *batched
        .iter()
        .find(|(_, count, _)| *count > 1)
        .unwrap_or_else(|| panic!("no batch of several bonds: {batched:?}"));
    assert!(path_len >= 1 && count > 1);
    let acceptor_records = LogContents::read(&acceptor_log).unwrap().records().count();
    assert_eq!(acceptor_records, DIALERS);

    for log in [&acceptor_log, &dialer_log] {
        let report = audit(log);
        assert!(report.passed(), "{:?}", report.failed().collect::<Vec<_>>());
        let (code, failed) = cli_audit(log, &root);
        assert_eq!((code, failed), (Some(0), serde_json::json!([])));
    }
    let python = python_ready();
    if python {
        let (code, failing, counts, json) = python_read(&dialer_log);
        assert_eq!((code, failing), (0, vec![]), "{json:#}");
        // The reader read the same positions.
        let ours: Vec<u64> = batched.iter().map(|b| b.1).collect();
        assert_eq!(counts, ours);
        let (code, failing, _, json) = python_read(&acceptor_log);
        assert_eq!((code, failing), (0, vec![]), "{json:#}");
    }

    // One changed byte of that record's audit path in the file: exactly that record fails.
    let entry_offset = contents
        .entries()
        .iter()
        .find_map(|e| match e {
            LogEntry::Record { offset, record, .. } if record.index == shared => {
                Some((*offset as usize, record.encode().unwrap().len()))
            }
            _ => None,
        })
        .unwrap();
    let path = segment_path(&dialer_log, 0);
    let original = std::fs::read(&path).unwrap();
    let mut changed = original.clone();
    // Frame: magic, length, payload (ending with the audit path), digest.
    changed[entry_offset.0 + 8 + entry_offset.1 - 1] ^= 0x01;
    std::fs::write(&path, &changed).unwrap();
    assert_eq!(failed(&audit(&dialer_log)), [shared]);
    let (code, failed_cli) = cli_audit(&dialer_log, &root);
    assert_eq!((code, failed_cli), (Some(1), serde_json::json!([shared])));
    if python {
        let (code, failing, _, _) = python_read(&dialer_log);
        assert_eq!((code, failing), (1, vec![shared]));
    }
    std::fs::write(&path, &original).unwrap();

    // The same byte changed by a forger who rewrites the whole chain: the frames and links
    // hold, and the audit path no longer leads to the quote's report_data.
    let forged = tmp.path().join("forged");
    rewrite(&dialer_log, &forged, shared, |body| {
        if let RecordBody::BondFormed(b) = body {
            let path = &mut b.bond_batch.as_mut().unwrap().path;
            let last = path.len() - 1;
            path[last].0[31] ^= 0x01;
        }
    });
    let report = audit(&forged);
    assert_eq!(failed(&report), [shared]);
    let verdict = report.failed().next().unwrap();
    assert!(
        matches!(
            verdict.failures[..],
            [AuditFailure::Binding { which: "bond", .. }]
        ),
        "{verdict:?}"
    );
    let (code, failed_cli) = cli_audit(&forged, &root);
    assert_eq!((code, failed_cli), (Some(1), serde_json::json!([shared])));
    if python {
        let (code, failing, _, json) = python_read(&forged);
        assert_eq!((code, failing), (1, vec![shared]), "{json:#}");
        let failures = json["records"][shared as usize]["failures"].to_string();
        assert!(failures.contains("bond report_data"), "{failures}");
    }
    // An unchanged rewrite audits clean: the forgery, not the copy, is what fails.
    let copy = tmp.path().join("copy");
    rewrite(&dialer_log, &copy, u64::MAX, |_| {});
    assert!(audit(&copy).passed());
}
