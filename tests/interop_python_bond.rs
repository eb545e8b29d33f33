//! Interop: `interop/check_bond.py`, a Python checker written from `docs/binding.md` and
//! `docs/transport.md`, must verify batched bond proofs taken off the wire (recompute the leaf,
//! climb the audit path, recompute report_data v2 and compare it with the quote's), and refuse
//! them on another connection.
//!
//! Needs `python3` with the packages of `interop/requirements.txt`. Under `CI=true` their absence
//! fails the test; elsewhere the test prints why and passes without running.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;

use ratls_quic::synthetic::{sample_measurements, SyntheticQuoteProvider};
use ratls_quic::{
    leaf_hash, AttestationLevel, BindingInput, Endpoint, EndpointConfig, ExpectedPeer, Identity,
    PeerId, QuoteProvider, QuoteProviderError, ReportData, Role,
};
use serde_json::Value;

const SERVERS: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether python3 and the checker's packages are there. Panics under CI when they are not.
fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography, cbor2, blake3"])
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "python3 lacks the packages of interop/requirements.txt: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("python3 cannot be run: {e}"),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{problem}");
    }
    eprintln!("skipping the Python bond interop check: {problem}");
    false
}

/// A provider whose first bond quote waits until the dialer checked every server's
/// certificate, then takes a quote time (39 ms), so that the other bonds queue behind it and
/// share the next quote.
#[derive(Debug)]
struct HoldFirst {
    inner: Arc<SyntheticQuoteProvider>,
    armed: AtomicBool,
    endpoint: Mutex<Weak<Endpoint>>,
}

impl QuoteProvider for HoldFirst {
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let endpoint = self.endpoint.lock().unwrap().clone();
            let deadline = Instant::now() + Duration::from_secs(60);
            while endpoint
                .upgrade()
                .is_some_and(|e| e.handshake_checks() < SERVERS as u64)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            // A real quote takes this long; the other bonds' requests, which follow their
            // handshakes by a moment, queue meanwhile.
            std::thread::sleep(Duration::from_millis(39));
        }
        self.inner.quote(report_data)
    }

    fn name(&self) -> &'static str {
        "hold-first"
    }
}

/// One message off the wire and the receiving side's view of its connection.
struct Captured {
    message: Vec<u8>,
    server: PeerId,
    exporter: [u8; 32],
}

fn check(client: PeerId, captured: &Captured, exporter: &[u8; 32]) -> (i32, Value) {
    let path = std::env::temp_dir().join(format!(
        "ratls-bond-{}-{}.bin",
        std::process::id(),
        hex::encode(&captured.exporter[..8])
    ));
    std::fs::write(&path, &captured.message).unwrap();
    let out = Command::new("python3")
        .arg(root().join("interop/check_bond.py"))
        .arg(&path)
        .args(["--role", "client"])
        .args(["--client", &client.to_string()])
        .args(["--server", &captured.server.to_string()])
        .args(["--exporter", &hex::encode(exporter)])
        .output()
        .expect("python3 runs");
    std::fs::remove_file(&path).ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("checker printed no JSON ({e}): {stdout}"));
    (out.status.code().unwrap_or(-1), verdict)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_checker_verifies_batched_proofs_off_the_wire() {
    if !python_ready() {
        return;
    }
    let provider = Arc::new(HoldFirst {
        inner: provider(sample_measurements()),
        armed: AtomicBool::new(false),
        endpoint: Mutex::new(Weak::new()),
    });
    let (verifier, collateral) = verifier();
    let client = Arc::new(
        bind(
            EndpointConfig::builder(Identity::generate().unwrap())
                .with_policy(policy(AttestationLevel::TdxRaTlsBidirectional))
                .with_quote_provider(Arc::clone(&provider) as Arc<dyn QuoteProvider>)
                .with_quote_verifier(verifier, collateral)
                .build()
                .unwrap(),
        )
        .await,
    );
    *provider.endpoint.lock().unwrap() = Arc::downgrade(&client);
    provider.armed.store(true, Ordering::SeqCst);

    // Servers outside `Endpoint` that offer batched proofs and keep the dialer's proof bytes.
    let mut servers = Vec::new();
    for _ in 0..SERVERS {
        let identity = Identity::generate().unwrap();
        let now = unix_now();
        let issued = attested_certificate(
            &identity,
            identity.peer_id(),
            now - 60,
            now + 3600,
            sample_measurements(),
        );
        let (tls, _pending) = attested_tls(&issued).offer_batched_proofs().server();
        servers.push((identity.peer_id(), serve(tls)));
    }
    let dials: Vec<_> = servers
        .iter()
        .map(|(peer, endpoint)| {
            let client = Arc::clone(&client);
            let (peer, addr) = (*peer, endpoint.local_addr().unwrap());
            // The dialer waits for a proof these servers never send; it is dropped at the end.
            tokio::spawn(async move { client.connect(addr, ExpectedPeer::Exactly(peer)).await })
        })
        .collect();
    // Every server accepts at once: the held quote waits for all three handshakes.
    let reads: Vec<_> = servers
        .iter()
        .map(|(peer, endpoint)| {
            let (peer, endpoint) = (*peer, endpoint.clone());
            tokio::spawn(async move {
                let conn = endpoint.accept().await.unwrap().await.unwrap();
                let mut stream = conn.accept_uni().await.unwrap();
                let message = stream.read_to_end(1 << 16).await.unwrap();
                let captured = Captured {
                    message,
                    server: peer,
                    exporter: exporter(&conn),
                };
                (captured, conn)
            })
        })
        .collect();
    let mut captured = Vec::new();
    let mut conns = Vec::new();
    for read in reads {
        let (c, conn) = read.await.unwrap();
        captured.push(c);
        conns.push(conn);
    }
    for dial in dials {
        dial.abort();
    }

    let me = client.peer_id();
    let mut batched = 0;
    for c in &captured {
        let (code, verdict) = check(me, c, &c.exporter);
        assert_eq!(code, 0, "{verdict}");
        assert_eq!(verdict["ok"], true, "{verdict}");
        if verdict["message_version"] == 2 {
            batched += 1;
            assert!(verdict["leaf_count"].as_u64().unwrap() >= 2, "{verdict}");
            // The checker's leaf is this crate's leaf for the same connection.
            let leaf = leaf_hash(&BindingInput::Bond {
                role: Role::Client,
                client: me,
                server: c.server,
                exporter: &c.exporter,
            })
            .unwrap();
            assert_eq!(verdict["leaf"], hex::encode(leaf.as_bytes()), "{verdict}");
        }
    }
    // The first bond went alone (a single proof); the others queued and shared a quote.
    assert!(batched >= 1, "no batched proof came off the wire");

    // The same proofs on another connection (another exporter, or another server) fail.
    for (i, c) in captured.iter().enumerate() {
        let mut other = c.exporter;
        other[0] ^= 1;
        let (code, verdict) = check(me, c, &other);
        assert_eq!(code, 1, "{verdict}");
        assert_eq!(verdict["ok"], false, "{verdict}");
        let elsewhere = &captured[(i + 1) % captured.len()];
        let (code, verdict) = check(me, c, &elsewhere.exporter);
        assert_eq!(code, 1, "{verdict}");
    }
    // A truncated message is unreadable, not a mismatch.
    let mut cut = Captured {
        message: captured[1].message.clone(),
        server: captured[1].server,
        exporter: captured[1].exporter,
    };
    cut.message.truncate(cut.message.len() - 1);
    let (code, verdict) = check(me, &cut, &cut.exporter);
    assert_eq!(code, 2, "{verdict}");
}

/// The value after `label:` in docs/binding.md.
fn doc_vector(label: &str) -> String {
    let doc = include_str!("../docs/binding.md");
    let prefix = format!("{label}:");
    doc.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("docs/binding.md has no line `{prefix}`"))
        .trim()
        .to_owned()
}

#[test]
fn python_checker_recomputes_the_documented_batch_example() {
    if !python_ready() {
        return;
    }
    // From the doc's inputs alone: leaves, the path of leaf 0 climbed to the root, report_data.
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?}); import check_bond as c\n\
         client, server = bytes.fromhex({client:?}), bytes.fromhex({server:?})\n\
         leaves = [c.leaf_hash(c.bond_input('client', client, server, bytes.fromhex(e))) \
                   for e in ({e0:?}, {e1:?}, {e2:?})]\n\
         root = c.climb(leaves[0], 0, 3, [leaves[1], leaves[2]])\n\
         assert c.climb(leaves[2], 2, 3, [c.inner(leaves[0], leaves[1])]) == root\n\
         print(root.hex(), c.batch_report_data(root, 3).hex())\n",
        dir = root().join("interop").display().to_string(),
        client = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        server = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        e0 = doc_vector("batch.exporter0"),
        e1 = doc_vector("batch.exporter1"),
        e2 = doc_vector("batch.exporter2"),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut words = stdout.split_whitespace();
    assert_eq!(words.next(), Some(doc_vector("batch.root").as_str()));
    assert_eq!(words.next(), Some(doc_vector("batch.report_data").as_str()));
}
