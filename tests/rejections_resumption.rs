//! No handshake skips the verifiers: no tickets, no resumption, no 0-RTT, a check on every
//! connection on both sides.

mod common;

use std::sync::Arc;

use common::raw::*;
use common::*;

use common::rejections::*;
use ratls_quic::bond_message;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::AttestationLevel;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::QuoteProvider;
use ratls_quic::{issue_certificate, report_data, BindingInput, Role};

#[tokio::test]
async fn every_connection_runs_the_verifiers_on_both_sides() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    for round in 1..=2u64 {
        let (accepted, connected) =
            pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;
        let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
        assert_eq!(server.handshake_checks(), round);
        assert_eq!(client.handshake_checks(), round);
        let ((), reply) = tokio::join!(echo_once(&accepted), round_trip(&connected, b"again"));
        assert_eq!(reply, b"again");
    }
}

#[tokio::test]
async fn resuming_client_gets_no_ticket_and_no_0rtt() {
    let client_id = Identity::generate().unwrap();
    let mut server_policy = policy(AttestationLevel::Software);
    server_policy
        .software_allow
        .insert(client_id.attestation_digest());
    let server = bind(config(
        Identity::generate().unwrap(),
        attested(),
        server_policy,
    ))
    .await;

    let now = unix_now();
    let issued = issue_certificate(&client_id, now - 60, now + 3600, None).unwrap();
    let store = CountingStore::new();
    let tls = resuming_client_config(
        ClientAuth::Certificate(issued.cert_der.clone(), issued.key_der.clone_key()),
        Arc::clone(&store),
    );
    let client = client_endpoint();
    for round in 1..=2u64 {
        let dialed = async {
            let connecting = dial(&client, tls.clone(), addr(&server));
            let Err(connecting) = connecting.into_0rtt() else {
                panic!("0-RTT offered on round {round}")
            };
            let conn = connecting.await.unwrap();
            send_bond_message(&conn, &bond_message(None)).await;
            conn
        };
        let (accepted, conn) = tokio::join!(accept_one(&server), dialed);
        let accepted = accepted.unwrap();
        assert_eq!(accepted.peer().level(), AttestationLevel::Software);
        // A full round trip after the handshake: a ticket would have arrived before the reply.
        let echo = async {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(b"ticket?").await.unwrap();
            send.finish().unwrap();
            recv.read_to_end(1 << 10).await.unwrap()
        };
        let ((), reply) = tokio::join!(echo_once(&accepted), echo);
        assert_eq!(reply, b"ticket?");
        assert_eq!(store.inserted(), 0, "the server sent a session ticket");
        assert_eq!(store.taken(), 0);
        assert_eq!(server.handshake_checks(), round);
    }
}

#[tokio::test]
async fn attested_client_ignores_tickets_and_runs_its_verifier_every_time() {
    // A server that does hand out session tickets, with an honest certificate and bond proofs.
    let server_id = Identity::generate().unwrap();
    let now = unix_now();
    let issued = attested_certificate(
        &server_id,
        server_id.peer_id(),
        now - 60,
        now + 3600,
        sample_measurements(),
    );
    let sessions = CountingServerStore::new();
    let mut tls = raw_server_tls(&issued);
    tls.session_storage = Arc::clone(&sessions) as Arc<dyn rustls::server::StoresServerSessions>;
    tls.send_tls13_tickets = 2;
    let server = serve(tls);
    let server_addr = server.local_addr().unwrap();
    let client = attested_endpoint(BIDIRECTIONAL).await;

    for round in 1..=2u64 {
        let serve_one = async {
            let conn = server.accept().await.unwrap().await.unwrap();
            let exporter = exporter(&conn);
            let report_data = report_data(&BindingInput::Bond {
                role: Role::Server,
                client: client.peer_id(),
                server: server_id.peer_id(),
                exporter: &exporter,
            })
            .unwrap();
            let quote = provider(sample_measurements()).quote(&report_data).unwrap();
            send_bond_message(&conn, &bond_message(Some(&quote))).await;
            let mut proof = conn.accept_uni().await.unwrap();
            proof.read_to_end(16 << 10).await.unwrap();
            conn
        };
        let (_conn, connected) = tokio::join!(
            serve_one,
            client.connect(server_addr, ExpectedPeer::Exactly(server_id.peer_id()))
        );
        let connected = connected.unwrap();
        assert_eq!(connected.peer().level(), BIDIRECTIONAL);
        assert_eq!(
            client.handshake_checks(),
            round,
            "the client verifier ran again"
        );
        assert!(sessions.stored() > 0, "the server offered tickets");
        assert_eq!(sessions.looked_up(), 0, "the client never offered one back");
    }
}
