//! Quote requests run on blocking threads, bounded: a burst of bonds queues for permits.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ratls_quic::synthetic::{sample_measurements, SyntheticQuoteProvider};
use ratls_quic::AttestationLevel;
use ratls_quic::EndpointConfig;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::{QuoteProvider, QuoteProviderError, ReportData};

/// A slow provider that records how many of its calls overlapped.
#[derive(Debug)]
struct SlowCounting {
    inner: Arc<SyntheticQuoteProvider>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl QuoteProvider for SlowCounting {
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        let quote = self.inner.quote(report_data);
        self.running.fetch_sub(1, Ordering::SeqCst);
        quote
    }

    fn name(&self) -> &'static str {
        "slow-counting"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bonds_wait_for_quote_permits() {
    let level = AttestationLevel::TdxRaTlsBidirectional;
    let slow = Arc::new(SlowCounting {
        inner: provider(sample_measurements()),
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let (verifier, collateral) = verifier();
    let server_config = EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(level))
        .with_quote_provider(Arc::clone(&slow) as Arc<dyn QuoteProvider>)
        .with_quote_verifier(verifier, collateral)
        .max_concurrent_quotes(1)
        .build()
        .unwrap();
    let server = Arc::new(bind(server_config).await);
    slow.peak.store(0, Ordering::SeqCst); // the start-up certificate is not part of the burst

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(
            bind(config(
                Identity::generate().unwrap(),
                Side::Attested(Box::new(sample_measurements())),
                policy(level),
            ))
            .await,
        );
    }
    let server_addr = addr(&server);
    let serve = {
        let server = Arc::clone(&server);
        async move {
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let accepting = server.accept().await.expect("open");
                tasks.push(accepting.establish());
            }
            futures_join(tasks).await
        }
    };
    let dial = async {
        let dials = clients
            .iter()
            .map(|client| client.connect(server_addr, ExpectedPeer::AnyAllowedByPolicy));
        futures_join(dials.collect()).await
    };
    let (accepted, connected) = tokio::join!(serve, dial);
    assert!(accepted.iter().all(Result::is_ok), "{accepted:?}");
    assert!(connected.iter().all(Result::is_ok), "{connected:?}");
    assert_eq!(
        slow.peak.load(Ordering::SeqCst),
        1,
        "quote calls overlapped"
    );
}

/// Runs all futures concurrently on this task and collects their outputs in order.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    join_all(futures.into_iter().map(Box::pin).collect()).await
}

async fn join_all<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match std::pin::Pin::new(future).poll(cx) {
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
