//! `connect` returns only once the acceptor accepted, at every level: in a Software bond (no
//! quote on either side, so no bond proof) the acceptor's empty bond message is its acceptance.

mod common;

use common::*;
use ratls_quic::{AttestationLevel, Error, ExpectedPeer, Identity, PeerRejection};

fn software_pair(
    server_admits_client: bool,
) -> (Identity, Identity, ratls_quic::Policy, ratls_quic::Policy) {
    let server_id = Identity::generate().unwrap();
    let client_id = Identity::generate().unwrap();
    let mut server_policy = policy(AttestationLevel::Software);
    let admitted = if server_admits_client {
        client_id.peer_id().attestation_digest()
    } else {
        Identity::generate().unwrap().peer_id().attestation_digest()
    };
    server_policy.software_allow.insert(admitted);
    let mut client_policy = policy(AttestationLevel::Software);
    client_policy
        .software_allow
        .insert(server_id.peer_id().attestation_digest());
    (server_id, client_id, server_policy, client_policy)
}

#[tokio::test]
async fn software_dialer_refused_by_the_acceptor_gets_no_connection() {
    let (server_id, client_id, server_policy, client_policy) = software_pair(false);
    let server = bind(config(server_id, Side::Software, server_policy)).await;
    let client = bind(config(client_id, Side::Software, client_policy)).await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    assert!(
        matches!(
            accepted,
            Err(Error::Rejected(PeerRejection::UnknownSoftwareIdentity(_)))
        ),
        "{accepted:?}"
    );
    // Before the acceptance message, the dialer held a connection here (TLS 1.3 lets it finish
    // first); now it learns of the refusal, with the acceptor's alert.
    assert_peer_alert(&connected, rustls::AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn software_acceptance_stream_is_not_seen_by_the_application() {
    let (server_id, client_id, server_policy, client_policy) = software_pair(true);
    let server = bind(config(server_id, Side::Software, server_policy)).await;
    let client = bind(config(client_id, Side::Software, client_policy)).await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    let send = async {
        let mut stream = accepted.open_uni().await.unwrap();
        stream.write_all(b"application").await.unwrap();
        stream.finish().unwrap();
        stream.stopped().await.ok();
    };
    let receive = async {
        let mut stream = connected.accept_uni().await.unwrap();
        stream.read_to_end(1024).await.unwrap()
    };
    let ((), data) = tokio::join!(send, receive);
    assert_eq!(data, b"application");
}
