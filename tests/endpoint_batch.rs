//! Batched bond proofs over real UDP: many dialers, one quote provider that takes 39 ms per
//! quote and serves one request at a time (as a TDX host does), peers that know only single
//! proofs, and batched proofs replayed into another connection.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::forge::*;
use common::raw::*;
use common::*;

use ratls_quic::synthetic::{sample_measurements, SyntheticQuoteProvider};
use ratls_quic::{
    batched_bond_message, leaf_hash, verify_batch_binding, AttestationLevel, AttestedConnection,
    BatchTree, BindingInput, BondFailure, BondQuoteLimits, EndpointConfig, Error, EvidenceError,
    ExpectedPeer, Identity, PeerId, QuoteProvider, QuoteProviderError, ReportData, Role,
};

const BIDIRECTIONAL: AttestationLevel = AttestationLevel::TdxRaTlsBidirectional;
const QUOTE_DELAY: Duration = Duration::from_millis(39);

/// One host's quoting service: 39 ms per quote, one quote at a time. Counts the bond quotes it
/// made once armed (after the endpoint's start-up certificate). With a `hold`, the first armed
/// quote waits (holding the host) until the hold is released, so that the bonds of a burst
/// queue behind it whatever the machine's speed.
#[derive(Debug)]
struct DelayedHost {
    inner: Arc<SyntheticQuoteProvider>,
    host: Mutex<()>,
    armed: AtomicBool,
    bond_quotes: AtomicUsize,
    hold: Mutex<Option<Hold>>,
}

/// Says when a held quote may go on.
struct Hold(Box<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

impl DelayedHost {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: provider(sample_measurements()),
            host: Mutex::new(()),
            armed: AtomicBool::new(false),
            bond_quotes: AtomicUsize::new(0),
            hold: Mutex::new(None),
        })
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl QuoteProvider for DelayedHost {
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        let _host = self.host.lock().unwrap();
        if self.armed.load(Ordering::SeqCst) {
            let made = self.bond_quotes.fetch_add(1, Ordering::SeqCst);
            if let (0, Some(released)) = (made, self.hold.lock().unwrap().as_ref()) {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !(released.0)() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        std::thread::sleep(QUOTE_DELAY);
        self.inner.quote(report_data)
    }

    fn name(&self) -> &'static str {
        "delayed-host"
    }
}

fn endpoint_config(provider: Arc<DelayedHost>, limits: BondQuoteLimits) -> EndpointConfig {
    let (verifier, collateral) = verifier();
    EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(BIDIRECTIONAL))
        .with_quote_provider(provider)
        .with_quote_verifier(verifier, collateral)
        .bond_timeout(Duration::from_secs(120))
        .bond_quotes(limits)
        .build()
        .unwrap()
}

/// `n` dialers with hosts of their own, and the acceptor with its host; every bond between
/// them in one burst. Returns both sides' outcomes and the acceptor's host.
async fn burst(
    n: usize,
    server_limits: BondQuoteLimits,
    dialer_limits: impl Fn(usize) -> BondQuoteLimits,
    hold: bool,
) -> (
    Vec<Result<AttestedConnection, Error>>,
    Vec<Result<AttestedConnection, Error>>,
    Arc<DelayedHost>,
    Vec<PeerId>,
) {
    let server_host = DelayedHost::new();
    let server = Arc::new(bind(endpoint_config(Arc::clone(&server_host), server_limits)).await);
    if hold {
        // Until the acceptor checked every dialer's certificate: their bonds are on the way.
        let weak = Arc::downgrade(&server);
        *server_host.hold.lock().unwrap() = Some(Hold(Box::new(move || {
            weak.upgrade()
                .is_none_or(|s| s.handshake_checks() >= n as u64)
        })));
    }
    let mut hosts = Vec::new();
    let mut clients = Vec::new();
    for i in 0..n {
        let host = DelayedHost::new();
        clients.push(bind(endpoint_config(Arc::clone(&host), dialer_limits(i))).await);
        hosts.push(host);
    }
    server_host.arm();
    hosts.iter().for_each(|h| h.arm());
    let serve = async {
        let mut tasks = Vec::new();
        for _ in 0..n {
            tasks.push(server.accept().await.expect("open").establish());
        }
        join_all(tasks).await
    };
    let dial = join_all(
        clients
            .iter()
            .map(|c| c.connect(addr(&server), ExpectedPeer::Exactly(server.peer_id())))
            .collect(),
    );
    let (accepted, connected) = tokio::join!(serve, dial);
    let ids = clients.iter().map(|c| c.peer_id()).collect();
    (accepted, connected, server_host, ids)
}

/// Every bond formed, each side holding a bond quote of the other made for this bond (not a
/// certificate quote); returns the digests of the acceptor's bond quotes the dialers got.
fn assert_all_bonded(
    accepted: &[Result<AttestedConnection, Error>],
    connected: &[Result<AttestedConnection, Error>],
) -> Vec<[u8; 32]> {
    for conn in accepted {
        let conn = conn.as_ref().expect("every dialer is accepted");
        let bond = conn
            .peer()
            .bond_quote()
            .expect("fresh evidence from the dialer");
        let cert = conn.peer().certificate_quote().expect("certificate quote");
        assert_ne!(bond.quote_digest(), cert.quote_digest());
    }
    connected
        .iter()
        .map(|conn| {
            let conn = conn.as_ref().expect("every dialer bonds");
            let bond = conn
                .peer()
                .bond_quote()
                .expect("fresh evidence from the acceptor");
            let cert = conn.peer().certificate_quote().expect("certificate quote");
            assert_ne!(bond.quote_digest(), cert.quote_digest());
            *bond.quote_digest()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_dialers_bond_with_fresh_evidence_and_few_quotes() {
    let n = 64;
    let (accepted, connected, server_host, dialers) = burst(
        n,
        BondQuoteLimits::default(),
        |_| BondQuoteLimits::default(),
        true,
    )
    .await;
    let served = assert_all_bonded(&accepted, &connected);
    let quotes = server_host.bond_quotes.load(Ordering::SeqCst);
    let distinct: HashSet<[u8; 32]> = served.iter().copied().collect();
    // One quote went alone; the bonds that queued behind it share the next few.
    assert!(quotes <= 8, "{quotes} quotes for {n} bonds");
    assert_eq!(
        distinct.len(),
        quotes,
        "every quote the acceptor made served a bond"
    );

    // What a dialer keeps lets it (or an auditor) re-verify a batched bond: the quote, the
    // leaf's position, both identities and the connection's exporter.
    let mut batched = 0;
    for (conn, dialer) in connected.iter().zip(&dialers) {
        let conn = conn.as_ref().unwrap();
        let quote = conn.peer().bond_quote().unwrap();
        let Some(position) = conn.peer().bond_batch() else {
            continue;
        };
        batched += 1;
        let mut exporter = [0u8; 32];
        conn.export_keying_material(&mut exporter, ratls_quic::EXPORTER_LABEL, b"")
            .unwrap();
        let acceptor = BindingInput::Bond {
            role: Role::Server,
            client: *dialer,
            server: conn.peer().peer_id(),
            exporter: &exporter,
        };
        verify_batch_binding(&acceptor, position, quote.report_data()).unwrap();
        let mut other = exporter;
        other[0] ^= 1;
        let moved = BindingInput::Bond {
            role: Role::Server,
            client: *dialer,
            server: conn.peer().peer_id(),
            exporter: &other,
        };
        assert!(verify_batch_binding(&moved, position, quote.report_data()).is_err());
    }
    assert!(batched >= n - quotes, "{batched} batched proofs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_proof_peers_bond_with_a_batching_peer() {
    // Half the dialers know only single proofs: they negotiate ratls-quic/1 and get a quote of
    // their own each, queued with the others' batches.
    let n = 8;
    let (accepted, connected, server_host, _) = burst(
        n,
        BondQuoteLimits::default(),
        |i| {
            if i % 2 == 0 {
                BondQuoteLimits::single_quotes()
            } else {
                BondQuoteLimits::default()
            }
        },
        true,
    )
    .await;
    let served = assert_all_bonded(&accepted, &connected);
    let single: HashSet<[u8; 32]> = served.iter().step_by(2).copied().collect();
    assert_eq!(single.len(), n / 2, "a single-proof dialer shared a quote");
    let quotes = server_host.bond_quotes.load(Ordering::SeqCst);
    assert!(quotes < n, "{quotes} quotes for {n} bonds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_dialers_bond_with_a_single_proof_acceptor() {
    let n = 6;
    let (accepted, connected, server_host, _) = burst(
        n,
        BondQuoteLimits::single_quotes(),
        |_| BondQuoteLimits::default(),
        false,
    )
    .await;
    let served = assert_all_bonded(&accepted, &connected);
    let distinct: HashSet<[u8; 32]> = served.iter().copied().collect();
    assert_eq!(distinct.len(), n);
    assert_eq!(server_host.bond_quotes.load(Ordering::SeqCst), n);
}

#[tokio::test]
async fn batched_proof_replayed_into_another_connection_refused() {
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(BIDIRECTIONAL),
    ))
    .await;
    let forger = ForgingClient::new();
    // Another bond of the same batch, on a connection the server never sees.
    let other_exporter = [0x42u8; 32];
    let other = BindingInput::Bond {
        role: Role::Client,
        client: forger.identity.peer_id(),
        server: server.peer_id(),
        exporter: &other_exporter,
    };

    // Connection 1: an honest batched proof (leaf 1 of 2) is accepted.
    let first = async {
        let (conn, exporter) = forger.dial(&server).await;
        let leaves = vec![
            leaf_hash(&other).unwrap(),
            leaf_hash(&forger.honest_input(&server, &exporter)).unwrap(),
        ];
        let tree = BatchTree::new(leaves).unwrap();
        let quote = forger.quote_report_data(&tree.report_data().unwrap());
        let message = batched_bond_message(&quote, &tree.position(1).unwrap());
        send_bond_message(&conn, &message).await;
        (conn, exporter, message)
    };
    let (accepted, (_first_conn, first_exporter, message)) =
        tokio::join!(accept_one(&server), first);
    let accepted = accepted.expect("the honest batched proof of connection 1 is accepted");
    assert!(accepted.peer().bond_quote().is_some());
    let position = accepted
        .peer()
        .bond_batch()
        .expect("the batch position is kept");
    assert_eq!((position.index, position.count), (1, 2));

    // Connection 2: the same batched proof again.
    let failure = forged_bond(&server, &forger, |exporter| {
        assert_ne!(*exporter, first_exporter);
        message.clone()
    })
    .await;
    assert!(
        matches!(
            failure,
            BondFailure::Binding(EvidenceError::BindingMismatch)
        ),
        "{failure:?}"
    );

    // Connection 3: the proof of the other leaf of that batch does not serve it either.
    let failure = forged_bond(&server, &forger, |_| {
        let mut moved = message.clone();
        // The leaf index is the 4 bytes after the quote: point it at leaf 0.
        let at = moved.len() - 9 - 32;
        moved[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
        moved
    })
    .await;
    assert!(
        matches!(
            failure,
            BondFailure::Binding(EvidenceError::BindingMismatch)
        ),
        "{failure:?}"
    );
}

/// Runs all futures concurrently on this task and collects their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
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
