//! Bond quotes, batched: requests queue while the quote provider is busy, and when it frees one
//! quote answers every queued request (up to the limits of [`BondQuoteLimits`]). The queue
//! logic is in [`super::batch_queue`]; this module runs the quotes on blocking threads.
//!
//! At most one quote of a batching endpoint runs at a time: real providers are serialised per
//! host, so a second concurrent quote would only wait in the provider and split the batch.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use super::batch_queue::{BatchQueue, BondQuoteLimits, Job, RateLimiter};
use crate::evidence::{
    leaf_hash, report_data, BatchPosition, BatchTree, BindingInput, EvidenceError, NodeHash, Role,
};
use crate::identity::PeerId;
use crate::tdx::{QuoteProvider, QuoteProviderError, ReportData};

/// Why this side made no bond quote for a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BondQuoteError {
    /// The quote task ended without an answer (it panicked, or the runtime is shutting down).
    #[error("bond quote task ended without an answer")]
    Abandoned,
    /// The bond's binding input is incomplete; no quote is made over it.
    #[error("bond binding input: {0}")]
    Binding(#[source] EvidenceError),
    /// The quote provider failed; every bond of the batch gets the same error.
    #[error("quote provider: {0}")]
    Provider(#[source] Arc<QuoteProviderError>),
    /// The request waited in the queue longer than the configured maximum wait.
    #[error("bond quote request waited more than {0:?} for the quote provider")]
    QueueTimeout(Duration),
    /// The peer asked for more bond quotes than the configured per-peer rate allows.
    #[error("peer {0} is over its bond quote rate")]
    RateLimited(PeerId),
}

/// The bond binding of one connection, owned (see [`BindingInput::Bond`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BondBinding {
    pub(crate) role: Role,
    pub(crate) client: PeerId,
    pub(crate) server: PeerId,
    pub(crate) exporter: [u8; 32],
}

impl BondBinding {
    pub(crate) fn input(&self) -> BindingInput<'_> {
        BindingInput::Bond {
            role: self.role,
            client: self.client,
            server: self.server,
            exporter: &self.exporter,
        }
    }

    /// The peer this bond is with (the one the rate limit counts).
    fn peer(&self) -> PeerId {
        match self.role {
            Role::Client => self.server,
            Role::Server => self.client,
        }
    }
}

/// A quote for one bond.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BondQuote {
    /// A quote over this bond's own report_data (a single proof).
    Single(Vec<u8>),
    /// A quote over a batch's report_data, and where this bond's leaf sits in it.
    Batched {
        /// The quote, shared by the batch.
        quote: Arc<Vec<u8>>,
        /// Index, count and audit path of this bond's leaf.
        position: BatchPosition,
    },
}

type Reply = oneshot::Sender<Result<BondQuote, BondQuoteError>>;

#[derive(Debug)]
struct Pending {
    binding: BondBinding,
    leaf: NodeHash,
    reply: Reply,
}

#[derive(Debug)]
struct State {
    queue: BatchQueue<Pending>,
    limiter: RateLimiter,
    /// Whether a drain task is running (it runs while the queue is not empty).
    draining: bool,
}

#[derive(Debug)]
struct Inner {
    provider: Arc<dyn QuoteProvider>,
    limits: BondQuoteLimits,
    state: Mutex<State>,
}

/// Makes this side's bond quotes: batched, or one per bond under `permits` (see
/// [`BondQuoteLimits`]), with the per-peer rate limit in both modes.
#[derive(Debug, Clone)]
pub(crate) struct QuoteBatcher {
    inner: Arc<Inner>,
    permits: Arc<Semaphore>,
}

impl QuoteBatcher {
    pub(crate) fn new(
        provider: Arc<dyn QuoteProvider>,
        limits: BondQuoteLimits,
        permits: Arc<Semaphore>,
    ) -> Self {
        let limiter = RateLimiter::new(limits.peer_rate);
        Self {
            inner: Arc::new(Inner {
                provider,
                limits,
                state: Mutex::new(State {
                    queue: BatchQueue::default(),
                    limiter,
                    draining: false,
                }),
            }),
            permits,
        }
    }

    /// A quote for `binding`. `batchable` when the peer takes batched proofs; otherwise the
    /// answer is a single proof. Refused at once when the peer is over its rate.
    pub(crate) async fn quote(
        &self,
        binding: BondBinding,
        batchable: bool,
    ) -> Result<BondQuote, BondQuoteError> {
        // Fail closed on an incomplete binding before anything is queued or counted.
        let leaf = leaf_hash(&binding.input()).map_err(BondQuoteError::Binding)?;
        let peer = binding.peer();
        self.wait_for_token(peer).await?;
        if !self.inner.limits.batching {
            return self.single(binding).await;
        }
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.inner.lock();
            state.queue.push(
                peer,
                batchable,
                Instant::now(),
                Pending {
                    binding,
                    leaf,
                    reply,
                },
            );
            !std::mem::replace(&mut state.draining, true)
        };
        if start {
            tokio::spawn(drain(Arc::clone(&self.inner)));
        }
        answer.await.unwrap_or(Err(BondQuoteError::Abandoned))
    }

    /// Waits until `peer` has a token (see [`super::PeerRate`]), at most the rate's
    /// `max_delay` in all; refuses beyond it.
    async fn wait_for_token(&self, peer: PeerId) -> Result<(), BondQuoteError> {
        let max_delay = self.inner.limits.peer_rate.max_delay();
        let started = Instant::now();
        loop {
            let wait = self.inner.lock().limiter.wait(peer, Instant::now());
            match wait {
                Some(Duration::ZERO) => return Ok(()),
                Some(wait) if started.elapsed().saturating_add(wait) <= max_delay => {
                    tracing::debug!(%peer, ?wait, "bond quote delayed: peer over its rate");
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    tracing::warn!(%peer, "bond quote refused: peer over its rate");
                    return Err(BondQuoteError::RateLimited(peer));
                }
            }
        }
    }

    /// Today's design without batching: one quote per bond, at most `permits` at once.
    async fn single(&self, binding: BondBinding) -> Result<BondQuote, BondQuoteError> {
        let report_data = report_data(&binding.input()).map_err(BondQuoteError::Binding)?;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| BondQuoteError::Abandoned)?;
        // The quote is this bond's alone.
        self.inner
            .lock()
            .limiter
            .charge(binding.peer(), Instant::now());
        let provider = Arc::clone(&self.inner.provider);
        let quote = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            provider.quote(&report_data)
        })
        .await
        .map_err(|_| BondQuoteError::Abandoned)?;
        quote
            .map(|quote| BondQuote::Single(crate::tdx::without_padding(quote)))
            .map_err(|e| BondQuoteError::Provider(Arc::new(e)))
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs jobs until the queue is empty. The first request of an idle batcher is quoted at once;
/// requests that arrive meanwhile form the next job.
///
/// The wait of a request is checked only once a quote ran since it arrived: the requests that
/// woke an idle batcher never waited for the provider.
async fn drain(inner: Arc<Inner>) {
    let mut idle_before = true;
    loop {
        let (expired, job) = {
            let mut state = inner.lock();
            let expired = if idle_before {
                Vec::new()
            } else {
                state
                    .queue
                    .expire(Instant::now(), &inner.limits, |p| !p.reply.is_closed())
            };
            idle_before = false;
            let job = state.queue.next_job(&inner.limits);
            if job.is_none() {
                state.draining = false;
            }
            (expired, job)
        };
        for pending in expired {
            let _ = pending
                .reply
                .send(Err(BondQuoteError::QueueTimeout(inner.limits.max_wait)));
        }
        match job {
            None => return,
            Some(Job::Single(pending)) => run_single(&inner, pending).await,
            Some(Job::Batch(batch)) => run_batch(&inner, batch).await,
        }
    }
}

async fn run_single(inner: &Inner, pending: Pending) {
    // A quote for one bond is its peer's alone.
    inner
        .lock()
        .limiter
        .charge(pending.binding.peer(), Instant::now());
    let answer = match report_data(&pending.binding.input()) {
        Ok(report_data) => provider_quote(inner, report_data)
            .await
            .map(BondQuote::Single),
        Err(e) => Err(BondQuoteError::Binding(e)),
    };
    let _ = pending.reply.send(answer);
}

async fn run_batch(inner: &Inner, batch: Vec<Pending>) {
    // A batch of one peer's bonds is that peer's quote; a batch serving several peers is
    // nobody's alone and charges nobody.
    if let Some((first, rest)) = batch.split_first() {
        let peer = first.binding.peer();
        if rest.iter().all(|p| p.binding.peer() == peer) {
            inner.lock().limiter.charge(peer, Instant::now());
        }
    }
    let leaves = batch.iter().map(|p| p.leaf).collect();
    let tree = match BatchTree::new(leaves) {
        Ok(tree) => tree,
        Err(e) => {
            // The queue never forms a batch outside 2 ..= MAX_BATCH_LEAVES.
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(BondQuoteError::Binding(EvidenceError::Batch(e))));
            }
            return;
        }
    };
    let quote = match tree.report_data() {
        Ok(report_data) => provider_quote(inner, report_data).await.map(Arc::new),
        Err(e) => Err(BondQuoteError::Binding(e)),
    };
    tracing::debug!(
        leaves = tree.count(),
        ok = quote.is_ok(),
        "batched bond quote"
    );
    match quote {
        Ok(quote) => {
            for (index, pending) in (0u64..).zip(batch) {
                let answer = tree
                    .position(index)
                    .map(|position| BondQuote::Batched {
                        quote: Arc::clone(&quote),
                        position,
                    })
                    .map_err(|e| BondQuoteError::Binding(EvidenceError::Batch(e)));
                let _ = pending.reply.send(answer);
            }
        }
        Err(error) => {
            let shared = match error {
                BondQuoteError::Provider(e) => Some(e),
                _ => None,
            };
            for pending in batch {
                let answer = match &shared {
                    Some(e) => BondQuoteError::Provider(Arc::clone(e)),
                    None => BondQuoteError::Abandoned,
                };
                let _ = pending.reply.send(Err(answer));
            }
        }
    }
}

async fn provider_quote(inner: &Inner, report_data: ReportData) -> Result<Vec<u8>, BondQuoteError> {
    let provider = Arc::clone(&inner.provider);
    tokio::task::spawn_blocking(move || provider.quote(&report_data))
        .await
        .map_err(|_| BondQuoteError::Abandoned)?
        .map(crate::tdx::without_padding)
        .map_err(|e| BondQuoteError::Provider(Arc::new(e)))
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
