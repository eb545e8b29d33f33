//! A retired identity is refused at the handshake with a typed reason (and alert
//! `certificate_revoked` on the wire) from its retirement time on; before it, and for its
//! successor, bonds form; a marker that does not verify is never loaded.

use common::{assert_peer_alert, bind, config, pair, policy, Side};
use ratls_quic::evidence_log::{RetirementError, RetirementMarker};
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{AttestationLevel, Error, ExpectedPeer, Identity, PeerRejection, Policy};

mod common;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn attested(identity: Identity, policy: Policy) -> ratls_quic::EndpointConfig {
    config(
        identity,
        Side::Attested(Box::new(sample_measurements())),
        policy,
    )
}

#[tokio::test]
async fn retired_identity_is_refused_at_the_handshake_and_its_successor_bonds() {
    let level = AttestationLevel::TdxRaTlsBidirectional;
    let old = Identity::generate().unwrap();
    let new = Identity::generate().unwrap();
    let marker = RetirementMarker::create(&old, unix_now() - 60, Some(&new)).unwrap();
    let mut server_policy = policy(level);
    server_policy.retired.insert(marker).unwrap();
    let server = bind(attested(Identity::generate().unwrap(), server_policy)).await;

    let retired = bind(attested(old.clone(), policy(level))).await;
    let (accepted, dialed) = pair(&server, &retired, ExpectedPeer::AnyAllowedByPolicy).await;
    match accepted {
        Err(Error::Rejected(PeerRejection::Retired(r))) => {
            assert_eq!(r.retired, old.peer_id());
            assert_eq!(r.successor, Some(new.peer_id()));
        }
        other => panic!("retired identity not refused: {other:?}"),
    }
    assert_peer_alert(&dialed, rustls::AlertDescription::CertificateRevoked);

    let successor = bind(attested(new, policy(level))).await;
    let (accepted, dialed) = pair(&server, &successor, ExpectedPeer::AnyAllowedByPolicy).await;
    accepted.unwrap();
    dialed.unwrap();
}

#[tokio::test]
async fn identity_bonds_until_its_retirement_time() {
    let level = AttestationLevel::TdxRaTlsBidirectional;
    let old = Identity::generate().unwrap();
    let marker = RetirementMarker::create(&old, unix_now() + 3600, None).unwrap();
    let mut server_policy = policy(level);
    server_policy.retired.insert(marker).unwrap();
    let server = bind(attested(Identity::generate().unwrap(), server_policy)).await;
    let client = bind(attested(old, policy(level))).await;
    let (accepted, dialed) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    accepted.unwrap();
    dialed.unwrap();
}

#[test]
fn marker_that_does_not_verify_is_not_loaded() {
    let old = Identity::generate().unwrap();
    let marker = RetirementMarker::create(&old, 10, None).unwrap();
    let mut bytes = marker.encode();
    bytes[40] ^= 1; // inside the retirement time
    let forged = RetirementMarker::decode(&bytes).unwrap();
    let mut p = policy(AttestationLevel::TdxLocal);
    assert_eq!(
        p.retired.insert(forged),
        Err(RetirementError::BadRetiredSignature)
    );
    assert!(p.retired.is_empty());
}
