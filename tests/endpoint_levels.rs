//! Every level that works end to end, over real UDP on loopback.

mod common;

use common::*;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::AttestationLevel;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;

#[tokio::test]
async fn bidirectional_bond_with_per_bond_proofs() {
    let level = AttestationLevel::TdxRaTlsBidirectional;
    let server_id = Identity::generate().unwrap();
    let server_peer = server_id.peer_id();
    let server = bind(config(
        server_id,
        Side::Attested(Box::new(sample_measurements())),
        policy(level),
    ))
    .await;
    let client_id = Identity::generate().unwrap();
    let client_peer = client_id.peer_id();
    let client = bind(config(
        client_id,
        Side::Attested(Box::new(sample_measurements())),
        policy(level),
    ))
    .await;

    let (accepted, connected) = pair(&server, &client, ExpectedPeer::Exactly(server_peer)).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    assert_eq!(connected.peer().peer_id(), server_peer);
    assert_eq!(accepted.peer().peer_id(), client_peer);
    for conn in [&accepted, &connected] {
        assert_eq!(conn.peer().level(), level);
        assert_eq!(conn.peer().measurements(), Some(&sample_measurements()));
        assert!(conn.peer().bond_quote().is_some());
        assert_ne!(
            conn.peer().bond_quote().unwrap().quote_digest(),
            conn.peer().certificate_quote().unwrap().quote_digest()
        );
    }
    let ((), reply) = tokio::join!(echo_once(&accepted), round_trip(&connected, b"ping"));
    assert_eq!(reply, b"ping");
    let ((), reply) = tokio::join!(echo_once(&connected), round_trip(&accepted, b"pong"));
    assert_eq!(reply, b"pong");
}

#[tokio::test]
async fn tdx_local_attested_server_software_client() {
    let server_id = Identity::generate().unwrap();
    let client_id = Identity::generate().unwrap();
    let mut server_policy = policy(AttestationLevel::Software);
    server_policy
        .software_allow
        .insert(client_id.peer_id().attestation_digest());
    let server = bind(config(
        server_id,
        Side::Attested(Box::new(sample_measurements())),
        server_policy,
    ))
    .await;
    let client = bind(config(
        client_id,
        Side::Software,
        policy(AttestationLevel::TdxLocal),
    ))
    .await;

    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    assert_eq!(connected.peer().level(), AttestationLevel::TdxLocal);
    assert_eq!(
        connected.peer().measurements(),
        Some(&sample_measurements())
    );
    assert!(connected.peer().bond_quote().is_some());
    assert_eq!(accepted.peer().level(), AttestationLevel::Software);
    assert!(accepted.peer().measurements().is_none());
    let ((), reply) = tokio::join!(echo_once(&accepted), round_trip(&connected, b"hello"));
    assert_eq!(reply, b"hello");
}

#[tokio::test]
async fn software_bond_with_allow_lists() {
    let server_id = Identity::generate().unwrap();
    let client_id = Identity::generate().unwrap();
    let mut server_policy = policy(AttestationLevel::Software);
    server_policy
        .software_allow
        .insert(client_id.peer_id().attestation_digest());
    let mut client_policy = policy(AttestationLevel::Software);
    client_policy
        .software_allow
        .insert(server_id.peer_id().attestation_digest());
    let server = bind(config(server_id, Side::Software, server_policy)).await;
    let client = bind(config(client_id, Side::Software, client_policy)).await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    assert_eq!(accepted.peer().level(), AttestationLevel::Software);
    assert_eq!(connected.peer().level(), AttestationLevel::Software);
    assert!(connected.peer().quote_digest().is_none());
    let ((), reply) = tokio::join!(echo_once(&accepted), round_trip(&connected, b"hi"));
    assert_eq!(reply, b"hi");
}

#[tokio::test]
async fn certificate_freshness_opt_in_admits_bonds_without_bond_quotes() {
    let level = AttestationLevel::TdxLocal;
    let certificate_only = || {
        let mut policy = policy(level);
        assert!(policy.dangerous().certificate_freshness());
        policy
    };
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        certificate_only(),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        certificate_only(),
    ))
    .await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    for conn in [&accepted, &connected] {
        // Both attested, but without per-bond proofs the bond stays at TdxLocal.
        assert_eq!(conn.peer().level(), AttestationLevel::TdxLocal);
        assert!(conn.peer().bond_quote().is_none());
        assert_eq!(
            conn.peer().quote_digest(),
            Some(conn.peer().certificate_quote().unwrap().quote_digest())
        );
    }
    let ((), reply) = tokio::join!(echo_once(&accepted), round_trip(&connected, b"rate"));
    assert_eq!(reply, b"rate");

    // The opt-in is refused where per-bond freshness is required.
    let mut strict = policy(AttestationLevel::TdxRaTlsBidirectional);
    assert!(!strict.dangerous().certificate_freshness());
}
