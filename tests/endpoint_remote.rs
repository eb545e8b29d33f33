//! Level TdxRemote end to end: collateral fetched over real HTTP on loopback by a
//! `CollateralCache` from the project's own service. A bond reaches TdxRemote and records the
//! collateral's service and fetch time; the service stops: once `max_collateral_age_secs`
//! passes, TdxRemote bonds are refused with a typed reason while TdxLocal bonds keep forming
//! from the cache; the service returns: TdxRemote bonds resume without a restart.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ratls_quic::pccs::server::{serve, DirSource};
use ratls_quic::pccs::{
    CacheConfig, ClientConfig, CollateralCache, PcsClient, PlatformKey, Service, SystemClock,
};
use ratls_quic::synthetic::{sample_measurements, QuoteSpec, SyntheticTcb};
use ratls_quic::{
    AttestationError, AttestationLevel, ConfigError, EndpointConfig, ExpectedPeer, Identity,
    MeasurementPolicy, MeasurementProfile, PeerRejection, Policy, PolicyViolation, RemotePolicy,
    RemoteViolation, ReportData,
};

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

fn start_service(
    listener: tokio::net::TcpListener,
    dir: &std::path::Path,
) -> tokio::task::JoinHandle<()> {
    let source = Arc::new(DirSource::new(
        dir.to_owned(),
        pki().root_der().to_vec(),
        Arc::new(SystemClock),
    ));
    tokio::spawn(serve(listener, source))
}

fn software_client(cache: &CollateralCache, policy: Policy, id: Identity) -> EndpointConfig {
    EndpointConfig::builder(id)
        .with_policy(policy)
        .without_quotes()
        .with_quote_verifier(pki().quote_verifier(), Arc::new(cache.clone()))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdx_remote_bonds_follow_the_collateral_service() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("synthetic.json"),
        serde_json::to_vec(pki.collateral()).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr: SocketAddr = listener.local_addr().unwrap();
    let url = format!("http://{service_addr}");
    let service = start_service(listener, dir.path());

    let quote = pki
        .quote(&QuoteSpec {
            report_data: ReportData([0; 64]),
            measurements: sample_measurements(),
            tcb: SyntheticTcb::UpToDate,
        })
        .unwrap();
    let key = PlatformKey::from_quote(&quote).unwrap();
    let mut client_config = ClientConfig::new(vec![Service::pccs(&url)]);
    client_config.root_der = pki.root_der().to_vec();
    client_config.timeout = Duration::from_secs(2);
    client_config.max_attempts = 1;
    let cache = CollateralCache::start(
        PcsClient::new(client_config).unwrap(),
        CacheConfig {
            prewarm: vec![key],
            // Every lookup asks for a refresh (single flight), as a TdxRemote deployment with a
            // short staleness bound would.
            refresh_ahead: u64::MAX / 2,
            failure_backoff: 0,
            ..CacheConfig::default()
        },
    )
    .await;
    wait_until(&cache, |c| c.held(&key).is_some()).await;

    let max_age = 1;
    let remote_policy = || {
        let mut p = policy(AttestationLevel::TdxRemote);
        p.set_remote(Some(RemotePolicy::new(vec![url.clone()], max_age)));
        p
    };
    // The attested server accepts these Software clients by their identity digests.
    let remote_id = Identity::generate().unwrap();
    let local_id = Identity::generate().unwrap();
    let mut server_policy = policy(AttestationLevel::Software);
    for id in [&remote_id, &local_id] {
        server_policy
            .software_allow
            .insert(id.peer_id().attestation_digest());
    }
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        server_policy,
    ))
    .await;
    let remote_client = bind(software_client(&cache, remote_policy(), remote_id)).await;
    let local_client = bind(software_client(
        &cache,
        policy(AttestationLevel::TdxLocal),
        local_id,
    ))
    .await;

    let (accepted, connected) =
        pair(&server, &remote_client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (_accepted, connected) = (accepted.unwrap(), connected.unwrap());
    assert_eq!(connected.peer().level(), AttestationLevel::TdxRemote);
    for quote in [
        connected.peer().certificate_quote().unwrap(),
        connected.peer().bond_quote().unwrap(),
    ] {
        let provenance = quote.collateral_provenance().expect("recorded");
        assert_eq!(provenance.source, url);
        let held = cache.held(&key).unwrap();
        assert_eq!(provenance.item_digests[0], held.digests.tcb_info);
    }

    // The service stops. Wait (bounded) until the cached collateral is older than the bound.
    service.abort();
    let _ = service.await;
    let fetched_at = cache.held(&key).unwrap().fetched_at;
    while SystemClock.now_secs() <= fetched_at + max_age {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, refused) = pair(&server, &remote_client, ExpectedPeer::AnyAllowedByPolicy).await;
    let error = refused.expect_err("stale collateral");
    match error.rejection() {
        Some(PeerRejection::Quote(AttestationError::Policy {
            violation: PolicyViolation::Remote(RemoteViolation::Stale { max_age_secs, .. }),
            ..
        })) => assert_eq!(*max_age_secs, max_age),
        other => panic!("expected a stale-collateral refusal, got {other:?} ({error})"),
    }
    // TdxLocal keeps bonding from the cache until nextUpdate.
    let (accepted, connected) =
        pair(&server, &local_client, ExpectedPeer::AnyAllowedByPolicy).await;
    assert!(accepted.is_ok());
    assert_eq!(
        connected.unwrap().peer().level(),
        AttestationLevel::TdxLocal
    );

    // The service returns on the same address: the next refresh succeeds and TdxRemote bonds
    // resume, with no restart of anything but the service.
    let listener = tokio::net::TcpListener::bind(service_addr).await.unwrap();
    let _service = start_service(listener, dir.path());
    // Asked again on every check: a fetch still in flight from before the service returned
    // absorbs a request (single flight) and then fails.
    wait_until(&cache, |c| {
        c.schedule(key);
        c.held(&key).is_some_and(|e| e.fetched_at > fetched_at)
    })
    .await;
    let (accepted, connected) =
        pair(&server, &remote_client, ExpectedPeer::AnyAllowedByPolicy).await;
    assert!(accepted.is_ok());
    assert_eq!(
        connected.unwrap().peer().level(),
        AttestationLevel::TdxRemote
    );
}

#[tokio::test]
async fn tdx_remote_refuses_collateral_from_a_file() {
    // A static store records no provenance: TdxRemote cannot be reached with it.
    let mut remote = policy(AttestationLevel::TdxRemote);
    remote.set_remote(Some(RemotePolicy::new(
        vec!["http://127.0.0.1:1".into()],
        600,
    )));
    let client_id = Identity::generate().unwrap();
    let mut server_policy = policy(AttestationLevel::Software);
    server_policy
        .software_allow
        .insert(client_id.peer_id().attestation_digest());
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        server_policy,
    ))
    .await;
    let client = bind(config(client_id, Side::Software, remote)).await;
    let (_, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let error = connected.expect_err("no provenance");
    assert!(
        matches!(
            error.rejection(),
            Some(PeerRejection::Quote(AttestationError::Policy {
                violation: PolicyViolation::Remote(RemoteViolation::NoProvenance),
                ..
            }))
        ),
        "{error}"
    );
}

/// Levels are cumulative: TdxRemote, TdxRaTlsBidirectional and TdxPlusReproducibleBuild all
/// include the TdxRemote check, so a policy at any of them without `[remote]` and without the
/// explicit opt-out is refused when the configuration is built, with a typed error naming the
/// missing section; the opt-out builds.
#[test]
fn levels_from_tdx_remote_up_without_a_remote_section_are_refused_at_build() {
    for level in [
        AttestationLevel::TdxRemote,
        AttestationLevel::TdxRaTlsBidirectional,
        AttestationLevel::TdxPlusReproducibleBuild,
    ] {
        let mut bare = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
            "sample",
            &sample_measurements(),
        )]));
        bare.set_level(level);
        assert!(!bare.accepts_static_collateral());
        let (quote_verifier, collateral) = verifier();
        let result = EndpointConfig::builder(Identity::generate().unwrap())
            .with_policy(bare.clone())
            .with_quote_provider(provider(sample_measurements()))
            .with_quote_verifier(quote_verifier, collateral)
            .build();
        match result {
            Err(ConfigError::RemoteSectionMissing(missing)) => {
                assert_eq!(missing.level, level);
                let message = missing.to_string();
                assert!(message.contains("[remote]"), "{message}");
                assert!(message.contains("static_collateral"), "{message}");
            }
            other => panic!("{level}: expected RemoteSectionMissing, got {other:?}"),
        }
        // With [remote] (any declared service) it builds; with the opt-out too.
        let mut declared = bare.clone();
        declared.set_remote(Some(RemotePolicy::new(
            vec!["http://127.0.0.1:1".into()],
            600,
        )));
        let mut opted_out = bare;
        opted_out.dangerous().static_collateral();
        for policy in [declared, opted_out] {
            let (quote_verifier, collateral) = verifier();
            let built = EndpointConfig::builder(Identity::generate().unwrap())
                .with_policy(policy)
                .with_quote_provider(provider(sample_measurements()))
                .with_quote_verifier(quote_verifier, collateral)
                .build();
            match (level, built) {
                (_, Ok(_)) => {}
                // TdxPlusReproducibleBuild also needs a rebuild pin: a different, later refusal.
                (
                    AttestationLevel::TdxPlusReproducibleBuild,
                    Err(ConfigError::NotRebuildPinned(_)),
                ) => {}
                (_, Err(error)) => panic!("{level}: {error}"),
            }
        }
    }
    // Below TdxRemote nothing is needed.
    let mut local = Policy::new(MeasurementPolicy::new(Vec::new()));
    local.set_level(AttestationLevel::TdxLocal);
    let (quote_verifier, collateral) = verifier();
    assert!(EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(local)
        .without_quotes()
        .with_quote_verifier(quote_verifier, collateral)
        .build()
        .is_ok());
}

/// With `[remote]`, a bidirectional bond whose peer quote verified with static collateral (no
/// provenance) is refused: TdxRaTlsBidirectional includes the TdxRemote check.
#[tokio::test]
async fn bidirectional_with_remote_refuses_static_collateral() {
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(AttestationLevel::TdxRaTlsBidirectional),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        remote_policy(
            AttestationLevel::TdxRaTlsBidirectional,
            "http://127.0.0.1:1",
            600,
        ),
    ))
    .await;
    let (_, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let error = connected.expect_err("no provenance");
    assert!(
        matches!(
            error.rejection(),
            Some(PeerRejection::Quote(AttestationError::Policy {
                violation: PolicyViolation::Remote(RemoteViolation::NoProvenance),
                ..
            }))
        ),
        "{error}"
    );
}

/// The opt-out admits at TdxRaTlsBidirectional with static collateral, and the peer's quotes
/// record no provenance (what the evidence shows).
#[tokio::test]
async fn the_static_collateral_opt_out_admits_at_bidirectional() {
    let bidirectional = policy(AttestationLevel::TdxRaTlsBidirectional);
    assert!(bidirectional.accepts_static_collateral() && bidirectional.remote().is_none());
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        bidirectional.clone(),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        bidirectional,
    ))
    .await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    for peer in [accepted.peer(), connected.peer()] {
        assert_eq!(peer.level(), AttestationLevel::TdxRaTlsBidirectional);
        assert!(peer
            .certificate_quote()
            .unwrap()
            .collateral_provenance()
            .is_none());
    }
}

/// Two attested endpoints bond at TdxRaTlsBidirectional with collateral each fetched over real
/// HTTP on loopback from the project's own service: both quotes of each side record the
/// service, fetch time and item digests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_bonds_with_collateral_from_the_loopback_service() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("synthetic.json"),
        serde_json::to_vec(pki.collateral()).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _service = start_service(listener, dir.path());
    let quote = pki
        .quote(&QuoteSpec {
            report_data: ReportData([0; 64]),
            measurements: sample_measurements(),
            tcb: SyntheticTcb::UpToDate,
        })
        .unwrap();
    let key = PlatformKey::from_quote(&quote).unwrap();
    let node = |cache: &CollateralCache| {
        EndpointConfig::builder(Identity::generate().unwrap())
            .with_policy(remote_policy(
                AttestationLevel::TdxRaTlsBidirectional,
                &url,
                600,
            ))
            .with_quote_provider(provider(sample_measurements()))
            .with_quote_verifier(pki.quote_verifier(), Arc::new(cache.clone()))
            .build()
            .unwrap()
    };
    let mut caches = Vec::new();
    for _ in 0..2 {
        let mut client_config = ClientConfig::new(vec![Service::pccs(&url)]);
        client_config.root_der = pki.root_der().to_vec();
        let cache = CollateralCache::start(
            PcsClient::new(client_config).unwrap(),
            CacheConfig {
                prewarm: vec![key],
                ..CacheConfig::default()
            },
        )
        .await;
        wait_until(&cache, |c| c.held(&key).is_some()).await;
        caches.push(cache);
    }
    let server = bind(node(&caches[0])).await;
    let client = bind(node(&caches[1])).await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    for (peer, cache) in [
        (accepted.peer(), &caches[0]),
        (connected.peer(), &caches[1]),
    ] {
        assert_eq!(peer.level(), AttestationLevel::TdxRaTlsBidirectional);
        let held = cache.held(&key).unwrap();
        for quote in [
            peer.certificate_quote().unwrap(),
            peer.bond_quote().unwrap(),
        ] {
            let provenance = quote.collateral_provenance().expect("recorded");
            assert_eq!(provenance.source, url);
            assert_eq!(provenance.fetched_at, held.fetched_at);
            assert_eq!(
                provenance.item_digests,
                [
                    held.digests.tcb_info,
                    held.digests.qe_identity,
                    held.digests.pck_crl,
                    held.digests.root_ca_crl
                ]
            );
        }
    }
}

trait NowSecs {
    fn now_secs(&self) -> u64;
}

impl NowSecs for SystemClock {
    fn now_secs(&self) -> u64 {
        use ratls_quic::pccs::Clock;
        self.now()
    }
}
