use super::*;

fn peer(n: u16) -> PeerId {
    let mut bytes = [0u8; 32];
    bytes[0] = 1;
    bytes[1..3].copy_from_slice(&n.to_be_bytes());
    PeerId::from_bytes(bytes)
}

fn limits(max_batch: usize, max_per_peer: usize) -> BondQuoteLimits {
    let mut limits = BondQuoteLimits::default();
    limits.max_batch(max_batch).max_per_peer(max_per_peer);
    limits
}

/// A request that needs no wait, charged as a quote of its own.
fn take(limiter: &mut RateLimiter, peer: PeerId, now: Instant) -> bool {
    if limiter.wait(peer, now) == Some(Duration::ZERO) {
        limiter.charge(peer, now);
        true
    } else {
        false
    }
}

#[test]
fn a_peer_over_its_rate_waits_for_its_next_token_within_the_bound() {
    let t0 = Instant::now();
    let mut limiter = RateLimiter::new(PeerRate::new(3, 2.0));
    for _ in 0..3 {
        assert_eq!(limiter.wait(peer(1), t0), Some(Duration::ZERO));
        limiter.charge(peer(1), t0);
    }
    // No token: the next comes in half a second at 2/s.
    assert_eq!(limiter.wait(peer(1), t0), Some(Duration::from_millis(500)));
    // Two quotes that started together leave a debt: a second of waiting, the bound.
    limiter.charge(peer(1), t0);
    assert_eq!(limiter.wait(peer(1), t0), Some(Duration::from_secs(1)));
    // Beyond the bound: refused.
    limiter.charge(peer(1), t0);
    assert_eq!(limiter.wait(peer(1), t0), None);
    // Asking does not charge: a peer that only waits pays nothing (a second at 2/s pays
    // the debt of two back to zero tokens).
    let t1 = t0 + Duration::from_secs(1);
    for _ in 0..5 {
        assert_eq!(limiter.wait(peer(1), t1), Some(Duration::from_millis(500)));
    }
    // A zero bound refuses any wait.
    let mut strict = RateLimiter::new(PeerRate::new(1, 2.0).with_max_delay(Duration::ZERO));
    assert!(take(&mut strict, peer(1), t0));
    assert_eq!(strict.wait(peer(1), t0), None);
}

#[test]
fn rate_limit_allows_the_burst_then_refills_at_the_rate() {
    let t0 = Instant::now();
    let mut limiter = RateLimiter::new(PeerRate::new(3, 2.0));
    for _ in 0..3 {
        assert!(take(&mut limiter, peer(1), t0));
    }
    assert!(
        !take(&mut limiter, peer(1), t0),
        "fourth request of the burst"
    );
    // Another peer has its own bucket.
    assert!(take(&mut limiter, peer(2), t0));
    // Half a second at 2/s refills one token, not two.
    let t1 = t0 + Duration::from_millis(500);
    assert!(take(&mut limiter, peer(1), t1));
    assert!(!take(&mut limiter, peer(1), t1));
    // Refills never exceed the burst.
    let t2 = t1 + Duration::from_secs(3600);
    for _ in 0..3 {
        assert!(take(&mut limiter, peer(1), t2));
    }
    assert!(!take(&mut limiter, peer(1), t2));
    // A clock that goes backwards refills nothing.
    assert!(!take(&mut limiter, peer(1), t0));
}

#[test]
fn rate_of_zero_allows_only_the_burst() {
    let t0 = Instant::now();
    let mut limiter = RateLimiter::new(PeerRate::new(0, f64::NAN));
    assert_eq!(PeerRate::new(0, f64::NAN), PeerRate::new(1, 0.0));
    assert!(take(&mut limiter, peer(1), t0));
    assert!(!take(&mut limiter, peer(1), t0 + Duration::from_secs(1000)));
}

#[test]
fn tracked_peers_are_bounded_and_idle_ones_forgotten() {
    let t0 = Instant::now();
    let mut limiter = RateLimiter::new(PeerRate::new(2, 1.0));
    for n in 0..MAX_TRACKED_PEERS {
        let mut bytes = [0xffu8; 32];
        bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
        assert!(take(&mut limiter, PeerId::from_bytes(bytes), t0));
    }
    // Every tracked peer is active: a new one is refused rather than tracked without bound.
    assert!(!take(&mut limiter, peer(1), t0));
    assert_eq!(limiter.tracked(), MAX_TRACKED_PEERS);
    // Once their buckets refilled, they are forgotten and the new peer gets in.
    assert!(take(&mut limiter, peer(1), t0 + Duration::from_secs(5)));
    assert_eq!(limiter.tracked(), 1);
}

#[test]
fn lone_request_is_quoted_alone_at_once() {
    let mut queue = BatchQueue::default();
    queue.push(peer(1), true, Instant::now(), 'a');
    assert_eq!(queue.next_job(&limits(64, 64)), Some(Job::Single('a')));
    assert_eq!(queue.next_job(&limits(64, 64)), None);
}

#[test]
fn batch_takes_every_batchable_request_up_to_the_limits() {
    let t = Instant::now();
    let mut queue = BatchQueue::default();
    for (i, item) in "abcdefgh".chars().enumerate() {
        // Peer 1 sends a, b, c, d; peer 2 e, f; h takes single proofs only.
        let p = if i < 4 { 1 } else { 2 + u16::from(i >= 6) };
        queue.push(peer(p), item != 'h', t, item);
    }
    let limits = limits(5, 3);
    // At most 3 of peer 1, 5 in all, in arrival order.
    assert_eq!(
        queue.next_job(&limits),
        Some(Job::Batch(vec!['a', 'b', 'c', 'e', 'f']))
    );
    // d (peer 1's fourth) and g come next; h waits behind them in order.
    assert_eq!(queue.next_job(&limits), Some(Job::Batch(vec!['d', 'g'])));
    assert_eq!(queue.next_job(&limits), Some(Job::Single('h')));
    assert_eq!(queue.len(), 0);
}

#[test]
fn single_proof_peer_at_the_head_is_quoted_alone() {
    let t = Instant::now();
    let mut queue = BatchQueue::default();
    queue.push(peer(1), false, t, 'a');
    queue.push(peer(2), true, t, 'b');
    queue.push(peer(3), true, t, 'c');
    let limits = limits(64, 64);
    assert_eq!(queue.next_job(&limits), Some(Job::Single('a')));
    assert_eq!(queue.next_job(&limits), Some(Job::Batch(vec!['b', 'c'])));
}

#[test]
fn without_batching_every_request_is_single() {
    let t = Instant::now();
    let mut queue = BatchQueue::default();
    queue.push(peer(1), true, t, 'a');
    queue.push(peer(2), true, t, 'b');
    let limits = BondQuoteLimits::single_quotes();
    assert!(!limits.batching());
    assert_eq!(queue.next_job(&limits), Some(Job::Single('a')));
    assert_eq!(queue.next_job(&limits), Some(Job::Single('b')));
}

#[test]
fn stale_requests_are_refused_and_abandoned_ones_dropped() {
    let t0 = Instant::now();
    let mut limits = limits(64, 64);
    limits.max_wait(Duration::from_millis(100));
    let mut queue = BatchQueue::default();
    queue.push(peer(1), true, t0, 1);
    queue.push(peer(1), true, t0 + Duration::from_millis(50), 2);
    queue.push(peer(1), true, t0 + Duration::from_millis(60), 3);
    let now = t0 + Duration::from_millis(140);
    // 1 waited too long; 3 has no one waiting for it any more.
    assert_eq!(queue.expire(now, &limits, |item| *item != 3), vec![1]);
    assert_eq!(queue.next_job(&limits), Some(Job::Single(2)));
}

#[test]
fn limits_are_clamped() {
    let mut limits = BondQuoteLimits::default();
    limits.max_batch(0).max_per_peer(0);
    assert_eq!((limits.max_batch, limits.max_per_peer), (1, 1));
    limits.max_batch(1 << 20);
    assert_eq!(limits.max_batch, MAX_BATCH_LEAVES);
}
