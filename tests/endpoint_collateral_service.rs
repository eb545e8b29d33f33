//! Two endpoints whose collateral comes from a `CollateralCache` fed over real HTTP on loopback
//! by the project's own service (serving the synthetic PKI's collateral from a directory): the
//! first handshake before any fetch fails closed, bonds form once the cache holds the
//! collateral, and keep forming from the cache after the service stops.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ratls_quic::pccs::server::{serve, DirSource};
use ratls_quic::pccs::{
    CacheConfig, ClientConfig, CollateralCache, PcsClient, PlatformKey, Service, SystemClock,
};
use ratls_quic::synthetic::{sample_measurements, QuoteSpec, SyntheticTcb};
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::ReportData;
use ratls_quic::{ExpectedPeer, PeerRejection};

async fn wait_until(cache: &CollateralCache, done: impl Fn(&CollateralCache) -> bool) {
    let mut changes = cache.subscribe();
    for _ in 0..200 {
        if done(cache) {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
    }
    panic!("not reached: {:?}", cache.stats());
}

fn endpoint_config(cache: &CollateralCache, level: AttestationLevel) -> ratls_quic::EndpointConfig {
    ratls_quic::EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(level))
        .with_quote_provider(provider(sample_measurements()))
        .with_quote_verifier(pki().quote_verifier(), Arc::new(cache.clone()))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bonds_use_collateral_fetched_over_http_and_survive_the_service_stopping() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("synthetic.json"),
        serde_json::to_vec(pki.collateral()).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let source = Arc::new(DirSource::new(
        dir.path().to_owned(),
        pki.root_der().to_vec(),
        Arc::new(SystemClock),
    ));
    let service = tokio::spawn(serve(listener, source));

    let mut config = ClientConfig::new(vec![Service::pccs(&url)]);
    config.root_der = pki.root_der().to_vec();
    let client = PcsClient::new(config).unwrap();
    let cache = CollateralCache::start(
        client,
        CacheConfig {
            failure_backoff: 0,
            ..CacheConfig::default()
        },
    )
    .await;

    let level = AttestationLevel::TdxRaTlsBidirectional;
    let server = bind(endpoint_config(&cache, level)).await;
    let client = bind(endpoint_config(&cache, level)).await;

    // Nothing fetched yet: the client's verifier finds no collateral and refuses (fail
    // closed), and the miss schedules the fetch.
    let (_, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let error = connected.expect_err("refused without collateral");
    assert!(
        matches!(error.rejection(), Some(PeerRejection::MissingCollateral)),
        "{error}"
    );
    let quote = pki
        .quote(&QuoteSpec {
            report_data: ReportData([0; 64]),
            measurements: sample_measurements(),
            tcb: SyntheticTcb::UpToDate,
        })
        .unwrap();
    let key = PlatformKey::from_quote(&quote).unwrap();
    wait_until(&cache, |c| c.held(&key).is_some()).await;
    assert_eq!(cache.held(&key).unwrap().source, url);

    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    assert_eq!(connected.peer().level(), level);
    assert_eq!(accepted.peer().level(), level);
    drop((accepted, connected));

    // The service stops; bonds keep forming from the cache until nextUpdate.
    service.abort();
    let _ = service.await;
    for _ in 0..3 {
        let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
        assert!(accepted.is_ok() && connected.is_ok());
    }
    assert!(cache.stats().hits >= 6);
}
