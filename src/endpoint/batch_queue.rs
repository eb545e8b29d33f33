//! The bookkeeping of bond quote batching, without I/O or a clock: the configuration, the
//! per-peer rate limit and the queue that decides what the next quote covers. The caller passes
//! `now`; [`super::batcher`] runs the quotes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::evidence::MAX_BATCH_LEAVES;
use crate::identity::PeerId;

/// Most peers the rate limiter tracks at once; peers whose bucket is full are forgotten first.
pub(crate) const MAX_TRACKED_PEERS: usize = 65_536;

/// How bond quotes are made: batched or one per bond, and the bounds that apply to both.
///
/// Batching (the default) queues bond quote requests while the quote provider is busy and
/// answers every queued request with one quote whose report_data commits to a Merkle tree over
/// their bonds (`docs/binding.md`, "Batched bond proofs"). A request that finds the provider
/// free is never held to fill a batch: it is quoted at once, alone, and a batch of one is an
/// ordinary single proof. Batches of two or more go only to peers that negotiated them (ALPN
/// `ratls-quic/2`); others get single quotes, in the same queue.
#[derive(Clone, Debug, PartialEq)]
pub struct BondQuoteLimits {
    pub(crate) batching: bool,
    pub(crate) max_batch: usize,
    pub(crate) max_per_peer: usize,
    pub(crate) max_wait: Duration,
    pub(crate) peer_rate: PeerRate,
}

impl Default for BondQuoteLimits {
    fn default() -> Self {
        Self {
            batching: true,
            max_batch: 64,
            max_per_peer: 64,
            max_wait: Duration::from_secs(5),
            peer_rate: PeerRate::default(),
        }
    }
}

impl BondQuoteLimits {
    /// One quote per bond, made as soon as a quote permit is free (no batching, no negotiation
    /// of batched proofs: this side speaks only single proofs). The rate limit still applies.
    pub fn single_quotes() -> Self {
        Self {
            batching: false,
            ..Self::default()
        }
    }

    /// Whether bond quotes are batched.
    pub fn batching(&self) -> bool {
        self.batching
    }

    /// Most bonds one quote serves (default 64; clamped to 1 ..= 1024).
    pub fn max_batch(&mut self, leaves: usize) -> &mut Self {
        self.max_batch = leaves.clamp(1, MAX_BATCH_LEAVES);
        self
    }

    /// Most bonds of one peer in one batch (default 64, at least 1): one peer cannot take every
    /// slot of a batch; its further requests wait for the next one.
    pub fn max_per_peer(&mut self, leaves: usize) -> &mut Self {
        self.max_per_peer = leaves.max(1);
        self
    }

    /// Longest a request waits behind a busy provider for its quote to start (default 5 s). A
    /// request still queued after this is refused ([`super::BondQuoteError::QueueTimeout`])
    /// rather than served late, so the queue cannot grow without bound behind a stalled
    /// provider. A request that finds the provider idle is always quoted; zero refuses every
    /// request that would have to wait.
    pub fn max_wait(&mut self, wait: Duration) -> &mut Self {
        self.max_wait = wait;
        self
    }

    /// The rate limit on bond quotes per peer identity (default [`PeerRate::default`]).
    pub fn peer_rate(&mut self, rate: PeerRate) -> &mut Self {
        self.peer_rate = rate;
        self
    }
}

/// A token bucket per peer identity on the bond quotes a peer makes this side generate: a peer
/// may cause `burst` quotes at once and `per_second` a second after that, so no peer makes this
/// host generate quotes at will.
///
/// A peer is charged only for the quotes it causes alone: a quote made for one bond (a single
/// proof, or a batch of one leaf) or for a batch whose leaves are all its own costs it one
/// token; a batch that serves several peers costs none of them anything. A peer with no token
/// left waits for the next one when that comes within `max_delay` (default one second), and is
/// refused ([`super::BondQuoteError::RateLimited`]) only beyond it: a fast sequential dialer is
/// slowed to the rate, never refused; a peer that would need more than `max_delay` of waiting
/// (a rate of zero, or a debt from many quotes at once) is refused before any quote is made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerRate {
    burst: u32,
    per_second: f64,
    max_delay: Duration,
}

impl Default for PeerRate {
    /// A burst of 64 quotes, then 32 a second, per peer; waits of up to one second.
    fn default() -> Self {
        Self {
            burst: 64,
            per_second: 32.0,
            max_delay: Duration::from_secs(1),
        }
    }
}

impl PeerRate {
    /// `burst` requests at once (at least 1), refilled at `per_second` (at least 0; not a
    /// number counts as 0).
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: burst.max(1),
            per_second: if per_second.is_nan() {
                0.0
            } else {
                per_second.max(0.0)
            },
            max_delay: Self::default().max_delay,
        }
    }

    /// Longest a request waits for its peer's next token before it is refused (default one
    /// second; zero refuses every request over the rate at once).
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The longest wait for a token.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The burst size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The refill rate, requests a second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }
}

/// Per-peer token buckets.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: PeerRate,
    buckets: HashMap<PeerId, Bucket>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub(crate) fn new(rate: PeerRate) -> Self {
        Self {
            rate,
            buckets: HashMap::new(),
        }
    }

    /// How long a request of `peer` at `now` must wait for a token: zero when it has one,
    /// `None` when the wait would exceed the rate's `max_delay` (or, with every tracked peer
    /// active, when a new peer cannot be tracked: fail closed). Takes nothing: the token is
    /// taken by [`Self::charge`] when a quote the peer caused alone starts.
    pub(crate) fn wait(&mut self, peer: PeerId, now: Instant) -> Option<Duration> {
        let rate = self.rate;
        let bucket = self.bucket(peer, now)?;
        if bucket.tokens >= 1.0 {
            return Some(Duration::ZERO);
        }
        if rate.per_second <= 0.0 {
            return None;
        }
        let wait = Duration::try_from_secs_f64((1.0 - bucket.tokens) / rate.per_second).ok()?;
        (wait <= rate.max_delay).then_some(wait)
    }

    /// Takes one token of `peer` at `now`, for a quote it caused alone. The balance may go
    /// below zero (quotes that started together); it is floored at minus the burst.
    pub(crate) fn charge(&mut self, peer: PeerId, now: Instant) {
        let floor = -f64::from(self.rate.burst);
        if let Some(bucket) = self.bucket(peer, now) {
            bucket.tokens = (bucket.tokens - 1.0).max(floor);
        }
    }

    /// `peer`'s bucket refilled to `now`, tracked from now on if it was not.
    fn bucket(&mut self, peer: PeerId, now: Instant) -> Option<&mut Bucket> {
        let burst = f64::from(self.rate.burst);
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= MAX_TRACKED_PEERS {
            let rate = self.rate;
            self.buckets
                .retain(|_, bucket| refilled(bucket, rate, now) < burst);
            if self.buckets.len() >= MAX_TRACKED_PEERS {
                return None;
            }
        }
        let rate = self.rate;
        let bucket = self.buckets.entry(peer).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = refilled(bucket, rate, now);
        bucket.at = now;
        Some(bucket)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

fn refilled(bucket: &Bucket, rate: PeerRate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
}

/// What the next quote covers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Job<T> {
    /// One request, quoted alone with a single proof's report_data.
    Single(T),
    /// Two or more requests of peers that take batched proofs, under one tree.
    Batch(Vec<T>),
}

/// A queued request and what the queue needs to know about it.
#[derive(Debug)]
struct Queued<T> {
    peer: PeerId,
    batchable: bool,
    at: Instant,
    item: T,
}

/// Bond quote requests in arrival order.
#[derive(Debug)]
pub(crate) struct BatchQueue<T> {
    queue: VecDeque<Queued<T>>,
}

impl<T> Default for BatchQueue<T> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
        }
    }
}

impl<T> BatchQueue<T> {
    /// Queues `item` of `peer`, arrived at `at`; `batchable` when the peer takes batched proofs.
    pub(crate) fn push(&mut self, peer: PeerId, batchable: bool, at: Instant, item: T) {
        self.queue.push_back(Queued {
            peer,
            batchable,
            at,
            item,
        });
    }

    /// How many requests wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Removes and returns requests that no one waits for any more (`live` is false) or that
    /// waited longer than `limits.max_wait` at `now`; the latter are returned to be refused.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        limits: &BondQuoteLimits,
        live: impl Fn(&T) -> bool,
    ) -> Vec<T> {
        let mut expired = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for queued in self.queue.drain(..) {
            if !live(&queued.item) {
                continue;
            }
            if now.saturating_duration_since(queued.at) > limits.max_wait {
                expired.push(queued.item);
            } else {
                kept.push_back(queued);
            }
        }
        self.queue = kept;
        expired
    }

    /// The next job, oldest request first. When the oldest takes only single proofs, it is
    /// quoted alone; otherwise the batch takes every batchable request in order, up to
    /// `max_batch`, at most `max_per_peer` of each peer; the others stay queued in order. A job
    /// of one batchable request is a single proof.
    pub(crate) fn next_job(&mut self, limits: &BondQuoteLimits) -> Option<Job<T>> {
        let head = self.queue.pop_front()?;
        if !head.batchable || !limits.batching {
            return Some(Job::Single(head.item));
        }
        let mut per_peer: HashMap<PeerId, usize> = HashMap::new();
        per_peer.insert(head.peer, 1);
        let mut taken = vec![head.item];
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for queued in self.queue.drain(..) {
            let count = per_peer.entry(queued.peer).or_insert(0);
            if queued.batchable && taken.len() < limits.max_batch && *count < limits.max_per_peer {
                *count = count.saturating_add(1);
                taken.push(queued.item);
            } else {
                kept.push_back(queued);
            }
        }
        self.queue = kept;
        if taken.len() == 1 {
            taken.pop().map(Job::Single)
        } else {
            Some(Job::Batch(taken))
        }
    }
}

#[cfg(test)]
#[path = "batch_queue_tests.rs"]
mod tests;
