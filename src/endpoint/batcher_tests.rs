use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Condvar;

use super::*;
use crate::endpoint::batch_queue::PeerRate;
use crate::evidence::verify_batch_binding;

/// A provider that stands in for a host's quoting service: every call holds the host's lock for
/// `delay` (calls are serialised per host, as on TDX hardware), and its "quote" is the report
/// data itself, so answers can be checked against the bindings. While the gate is shut, calls
/// wait for it after taking the lock.
#[derive(Debug)]
struct SlowHost {
    delay: Duration,
    host: Arc<Host>,
    gate: Arc<(Mutex<bool>, Condvar)>,
    started: AtomicUsize,
    fail: bool,
}

/// One machine's quoting service: one quote at a time, and how many ever ran at once.
#[derive(Debug, Default)]
struct Host {
    lock: Mutex<()>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Host {
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl SlowHost {
    fn new(delay_ms: u64, host: Arc<Host>) -> Self {
        Self {
            delay: Duration::from_millis(delay_ms),
            host,
            gate: Arc::new((Mutex::new(true), Condvar::new())),
            started: AtomicUsize::new(0),
            fail: false,
        }
    }

    fn shut(self) -> Self {
        *self.gate.0.lock().unwrap() = false;
        self
    }

    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }

    fn calls(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

impl QuoteProvider for SlowHost {
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        let _host = self.host.lock.lock().unwrap();
        self.started.fetch_add(1, Ordering::SeqCst);
        let running = self.host.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.host.peak.fetch_max(running, Ordering::SeqCst);
        let (open, wake) = &*self.gate;
        let mut guard = open.lock().unwrap();
        while !*guard {
            guard = wake.wait(guard).unwrap();
        }
        drop(guard);
        std::thread::sleep(self.delay);
        self.host.running.fetch_sub(1, Ordering::SeqCst);
        if self.fail {
            return Err(QuoteProviderError::Malformed("host refused".into()));
        }
        Ok(report_data.0.to_vec())
    }

    fn name(&self) -> &'static str {
        "slow-host"
    }
}

fn peer(n: u16) -> PeerId {
    let mut bytes = [0u8; 32];
    bytes[0] = 9;
    bytes[1..3].copy_from_slice(&n.to_be_bytes());
    PeerId::from_bytes(bytes)
}

const SERVER: u16 = 0xffff;

/// The server side of the `i`-th connection, from client `client`.
fn binding(client: u16, i: u32) -> BondBinding {
    let mut exporter = [0x5au8; 32];
    exporter[..4].copy_from_slice(&i.to_be_bytes());
    exporter[4..6].copy_from_slice(&client.to_be_bytes());
    BondBinding {
        role: Role::Server,
        client: peer(client),
        server: peer(SERVER),
        exporter,
    }
}

fn batcher(provider: &Arc<SlowHost>, limits: BondQuoteLimits) -> QuoteBatcher {
    QuoteBatcher::new(
        Arc::clone(provider) as Arc<dyn QuoteProvider>,
        limits,
        Arc::new(Semaphore::new(8)),
    )
}

/// Checks that `answer` is a quote committing to `binding`; returns the batch size.
fn check(binding: &BondBinding, answer: &BondQuote) -> u64 {
    match answer {
        BondQuote::Single(quote) => {
            assert_eq!(quote[..], report_data(&binding.input()).unwrap().0[..]);
            1
        }
        BondQuote::Batched { quote, position } => {
            let rd = ReportData(quote[..].try_into().unwrap());
            verify_batch_binding(&binding.input(), position, &rd).unwrap();
            // Never a batch of one: that is a single proof.
            assert!(position.count >= 2);
            position.count
        }
    }
}

async fn until(what: impl Fn() -> bool) {
    while !what() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn queued(batcher: &QuoteBatcher) -> usize {
    batcher.inner.lock().queue.len()
}

/// One request in flight holding the (shut) provider, then `rest` requests queued behind it;
/// opens the gate and returns every answer in order.
async fn burst(
    provider: &Arc<SlowHost>,
    batcher: &QuoteBatcher,
    bindings: &[(BondBinding, bool)],
) -> Vec<Result<BondQuote, BondQuoteError>> {
    let mut tasks = Vec::new();
    let (first, rest) = bindings.split_first().unwrap();
    let b = batcher.clone();
    let first = *first;
    tasks.push(tokio::spawn(async move { b.quote(first.0, first.1).await }));
    until(|| provider.calls() == 1).await;
    for &(binding, batchable) in rest {
        let b = batcher.clone();
        tasks.push(tokio::spawn(
            async move { b.quote(binding, batchable).await },
        ));
    }
    until(|| queued(batcher) == rest.len()).await;
    provider.open();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_request_is_a_single_quote_made_at_once() {
    let provider = Arc::new(SlowHost::new(5, Arc::default()));
    let batcher = batcher(&provider, BondQuoteLimits::default());
    let b = binding(1, 0);
    let answer = batcher.quote(b, true).await.unwrap();
    assert_eq!(check(&b, &answer), 1);
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_while_the_provider_is_busy_share_one_quote() {
    let provider = Arc::new(SlowHost::new(39, Arc::default()).shut());
    let batcher = batcher(&provider, BondQuoteLimits::default());
    let bindings: Vec<_> = (0..64).map(|i| (binding(i as u16, i), true)).collect();
    let answers = burst(&provider, &batcher, &bindings).await;
    let sizes: Vec<u64> = bindings
        .iter()
        .zip(&answers)
        .map(|((b, _), a)| check(b, a.as_ref().unwrap()))
        .collect();
    // The first went alone; the 63 that queued meanwhile share the second quote.
    assert_eq!(sizes[0], 1);
    assert!(sizes[1..].iter().all(|&n| n == 63), "{sizes:?}");
    assert_eq!(provider.calls(), 2);
    assert_eq!(provider.host.peak(), 1);
    // Every bond of the batch has its own position under the same quote.
    let mut indices: Vec<u64> = answers[1..]
        .iter()
        .map(|a| match a.as_ref().unwrap() {
            BondQuote::Batched { position, .. } => position.index,
            BondQuote::Single(_) => unreachable!(),
        })
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..63).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_respect_max_batch_and_max_per_peer() {
    let provider = Arc::new(SlowHost::new(2, Arc::default()).shut());
    let mut limits = BondQuoteLimits::default();
    limits.max_batch(16).max_per_peer(4);
    let batcher = batcher(&provider, limits);
    // 1 + 40 requests: the first 30 queued ones from one peer, 10 from ten others.
    let mut bindings = vec![(binding(500, 0), true)];
    bindings.extend((1..=30).map(|i| (binding(7, i), true)));
    bindings.extend((31..=40).map(|i| (binding(i as u16, i), true)));
    let answers = burst(&provider, &batcher, &bindings).await;
    for ((b, _), a) in bindings.iter().zip(&answers) {
        check(b, a.as_ref().unwrap());
    }
    // Batch 2 holds 4 of peer 7 and the 10 others (14); then 4 of peer 7 at a time.
    let first_batch = match answers[31].as_ref().unwrap() {
        BondQuote::Batched { position, .. } => position.count,
        BondQuote::Single(_) => 1,
    };
    assert_eq!(first_batch, 14);
    // 1 + 1 + ceil(26 / 4) = 9 quotes for 41 bonds.
    assert_eq!(provider.calls(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_proof_peers_get_single_quotes_in_the_same_queue() {
    let provider = Arc::new(SlowHost::new(2, Arc::default()).shut());
    let batcher = batcher(&provider, BondQuoteLimits::default());
    let bindings: Vec<_> = (0..6).map(|i| (binding(i as u16, i), i % 2 == 0)).collect();
    let answers = burst(&provider, &batcher, &bindings).await;
    for ((b, batchable), a) in bindings.iter().zip(&answers) {
        let size = check(b, a.as_ref().unwrap());
        if !batchable {
            assert_eq!(size, 1, "a single-proof peer got a batch");
        }
    }
    // 0 alone, then 2 and 4 batched, then 1, 3, 5 alone.
    assert_eq!(provider.calls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_over_its_rate_is_refused_before_any_quote() {
    let provider = Arc::new(SlowHost::new(1, Arc::default()));
    let mut limits = BondQuoteLimits::default();
    limits.peer_rate(PeerRate::new(2, 0.0));
    let batcher = batcher(&provider, limits);
    for i in 0..2 {
        batcher.quote(binding(1, i), true).await.unwrap();
    }
    let refused = batcher.quote(binding(1, 2), true).await;
    assert!(
        matches!(refused, Err(BondQuoteError::RateLimited(p)) if p == peer(1)),
        "{refused:?}"
    );
    assert_eq!(provider.calls(), 2);
    // Another peer is not affected; the client side counts the server as its peer.
    batcher.quote(binding(2, 0), true).await.unwrap();
    let as_client = |server: u16| BondBinding {
        role: Role::Client,
        client: peer(SERVER),
        server: peer(server),
        exporter: [0x77; 32],
    };
    batcher.quote(as_client(3), true).await.unwrap();
    assert!(matches!(
        batcher.quote(as_client(1), true).await,
        Err(BondQuoteError::RateLimited(p)) if p == peer(1)
    ));
    assert_eq!(provider.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failure_reaches_every_bond_of_the_batch() {
    let mut slow = SlowHost::new(1, Arc::default()).shut();
    slow.fail = true;
    let provider = Arc::new(slow);
    let batcher = batcher(&provider, BondQuoteLimits::default());
    let bindings: Vec<_> = (0..5).map(|i| (binding(i as u16, i), true)).collect();
    let answers = burst(&provider, &batcher, &bindings).await;
    for answer in &answers {
        assert!(
            matches!(answer, Err(BondQuoteError::Provider(_))),
            "{answer:?}"
        );
    }
    assert_eq!(provider.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_queued_past_max_wait_is_refused() {
    let provider = Arc::new(SlowHost::new(5, Arc::default()).shut());
    let mut limits = BondQuoteLimits::default();
    limits.max_wait(Duration::ZERO);
    let batcher = batcher(&provider, limits);
    let bindings = [(binding(1, 0), true), (binding(2, 1), true)];
    let answers = burst(&provider, &batcher, &bindings).await;
    check(&bindings[0].0, answers[0].as_ref().unwrap());
    assert!(
        matches!(answers[1], Err(BondQuoteError::QueueTimeout(_))),
        "{:?}",
        answers[1]
    );
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_binding_is_refused_before_it_is_queued() {
    let provider = Arc::new(SlowHost::new(1, Arc::default()));
    let batcher = batcher(&provider, BondQuoteLimits::default());
    let mut bad = binding(1, 0);
    bad.exporter = [0; 32];
    let refused = batcher.quote(bad, true).await;
    assert!(
        matches!(
            refused,
            Err(BondQuoteError::Binding(EvidenceError::EmptyBindingInput(_)))
        ),
        "{refused:?}"
    );
    assert_eq!(provider.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_batching_every_bond_gets_its_own_quote() {
    let provider = Arc::new(SlowHost::new(3, Arc::default()));
    let batcher = batcher(&provider, BondQuoteLimits::single_quotes());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let b = batcher.clone();
            tokio::spawn(async move { (i, b.quote(binding(i as u16, i), true).await) })
        })
        .collect();
    for task in tasks {
        let (i, answer) = task.await.unwrap();
        assert_eq!(check(&binding(i as u16, i), &answer.unwrap()), 1);
    }
    assert_eq!(provider.calls(), 8);
    // The host serialises them even with eight permits.
    assert_eq!(provider.host.peak(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_on_one_host_are_serialised() {
    let host = Arc::new(Host::default());
    let a = Arc::new(SlowHost::new(3, Arc::clone(&host)));
    let b = Arc::new(SlowHost::new(3, host));
    let (ba, bb) = (
        batcher(&a, BondQuoteLimits::default()),
        batcher(&b, BondQuoteLimits::default()),
    );
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let batcher = if i % 2 == 0 { ba.clone() } else { bb.clone() };
            tokio::spawn(async move { (i, batcher.quote(binding(i as u16, i), true).await) })
        })
        .collect();
    for task in tasks {
        let (i, answer) = task.await.unwrap();
        check(&binding(i as u16, i), &answer.unwrap());
    }
    // Quotes of the two endpoints never overlap on the host.
    assert_eq!(a.host.peak(), 1);
    assert!(a.calls() + b.calls() <= 16);
    assert!(a.calls() >= 1 && b.calls() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_over_its_rate_is_delayed_then_refused_beyond_the_bound() {
    let provider = Arc::new(SlowHost::new(1, Arc::default()));
    let mut limits = BondQuoteLimits::default();
    // Two quotes, then one a second, waits of up to 1.5 s.
    limits.peer_rate(PeerRate::new(2, 1.0).with_max_delay(Duration::from_millis(1500)));
    let lenient = batcher(&provider, limits);
    for i in 0..2 {
        lenient.quote(binding(1, i), true).await.unwrap();
    }
    // The third waits for its token rather than being refused.
    let started = Instant::now();
    lenient.quote(binding(1, 2), true).await.unwrap();
    // About a second less the time the first two took.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(provider.calls(), 3);

    // At 2 a second the next token is 500 ms away, beyond the 300 ms bound: refused at once,
    // with no quote made.
    let provider = Arc::new(SlowHost::new(1, Arc::default()));
    let mut limits = BondQuoteLimits::default();
    limits.peer_rate(PeerRate::new(2, 2.0).with_max_delay(Duration::from_millis(300)));
    let strict = batcher(&provider, limits);
    for i in 0..2 {
        strict.quote(binding(1, i), true).await.unwrap();
    }
    let refused = strict.quote(binding(1, 2), true).await;
    assert!(
        matches!(refused, Err(BondQuoteError::RateLimited(p)) if p == peer(1)),
        "{refused:?}"
    );
    assert_eq!(provider.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_serving_several_peers_charges_none_of_them() {
    let provider = Arc::new(SlowHost::new(1, Arc::default()).shut());
    let mut limits = BondQuoteLimits::default();
    // One quote each, never refilled, no waiting.
    limits.peer_rate(PeerRate::new(1, 0.0).with_max_delay(Duration::ZERO));
    let batcher = batcher(&provider, limits);
    // Peer 3 wakes the idle provider alone (charged); peers 1 and 2 queue meanwhile and share
    // the next quote (not charged).
    let bindings = [
        (binding(3, 0), true),
        (binding(1, 0), true),
        (binding(2, 0), true),
    ];
    let answers = burst(&provider, &batcher, &bindings).await;
    assert_eq!(check(&bindings[0].0, answers[0].as_ref().unwrap()), 1);
    assert_eq!(check(&bindings[1].0, answers[1].as_ref().unwrap()), 2);
    assert_eq!(provider.calls(), 2);
    // Peers 1 and 2 still have their token: each makes the provider quote alone once...
    batcher.quote(binding(1, 1), true).await.unwrap();
    batcher.quote(binding(2, 1), true).await.unwrap();
    // ...and only then are over their budget, as peer 3 is after its lone quote.
    for p in [1, 2, 3] {
        assert!(matches!(
            batcher.quote(binding(p, 2), true).await,
            Err(BondQuoteError::RateLimited(r)) if r == peer(p)
        ));
    }
    assert_eq!(provider.calls(), 4);
}
