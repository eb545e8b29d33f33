//! What a peer can open and buffer before its bond formed (docs/transport.md, "Before the
//! bond"): no bidirectional stream, one unidirectional stream (its bond proof), at most
//! `PRE_BOND_RECEIVE_WINDOW` bytes of stream data unread. After the bond, quinn's defaults.
//!
//! The probing peer is a raw quinn endpoint whose certificate passes the handshake and which
//! then sends no bond proof. The tests run on one thread: between two polls of the probe
//! nothing else runs, so what a poll returns is exactly the credit the other side granted.

mod common;

use std::time::Duration;

use common::raw::*;
use common::*;

use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{
    issue_certificate, AttestationLevel, Endpoint, EndpointConfig, Identity, BONDED_STREAMS,
    PRE_BOND_BIDI_STREAMS, PRE_BOND_RECEIVE_WINDOW, PRE_BOND_UNI_STREAMS,
};

/// Polls `future` once: its output if it is ready now, `None` if it would wait.
fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Opens streams and writes on `conn` as far as the peer's credit lets it without waiting,
/// and asserts the documented limits.
fn assert_pre_bond_limits(conn: &quinn::Connection) {
    assert_eq!(PRE_BOND_BIDI_STREAMS, 0);
    assert!(
        now_or_never(conn.open_bi()).is_none(),
        "a bidirectional stream opened before the bond"
    );
    let mut uni = Vec::new();
    for _ in 0..=PRE_BOND_UNI_STREAMS {
        match now_or_never(conn.open_uni()) {
            Some(stream) => uni.push(stream.unwrap()),
            None => break,
        }
    }
    assert_eq!(
        uni.len(),
        PRE_BOND_UNI_STREAMS as usize,
        "unidirectional streams opened before the bond"
    );
    // Write as much as the credit allows, without waiting: nothing else runs meanwhile.
    let chunk = vec![0u8; 4096];
    let mut written = 0usize;
    let stream = &mut uni[0];
    while let Some(result) = now_or_never(stream.write(&chunk)) {
        written += result.unwrap();
        assert!(
            written <= 4 << 20,
            "{written} bytes accepted before the bond, and counting"
        );
    }
    assert!(
        written <= PRE_BOND_RECEIVE_WINDOW as usize,
        "{written} bytes accepted before the bond (limit {PRE_BOND_RECEIVE_WINDOW})"
    );
    assert!(written > 0, "not even a bond message fits");
}

/// An allow-listed Software client that completes the handshake and never sends its bond proof
/// cannot open more than the documented streams nor buffer more than the documented bytes on
/// the acceptor. Fails on the code before the limits: 100 bidirectional streams, a second
/// unidirectional stream and 1.25 MB on one stream were granted at once.
#[tokio::test]
async fn a_client_without_its_bond_proof_gets_the_pre_bond_limits() {
    let client_identity = Identity::generate().unwrap();
    let mut policy = policy(AttestationLevel::Software);
    policy
        .software_allow
        .insert(client_identity.attestation_digest());
    let (verifier, collateral) = verifier();
    let server = bind(
        EndpointConfig::builder(Identity::generate().unwrap())
            .with_policy(policy)
            .without_quotes()
            .with_quote_verifier(verifier, collateral)
            .bond_timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .await;
    let now = unix_now();
    let issued = issue_certificate(&client_identity, now - 60, now + 600, None).unwrap();
    let client = client_endpoint();
    let connecting = dial(
        &client,
        plain_client_config(ClientAuth::Certificate(
            issued.cert_der.clone(),
            issued.key_der.clone_key(),
        )),
        addr(&server),
    );
    let acceptor = async {
        let accepting = server.accept().await.unwrap();
        accepting.establish().await
    };
    let prober = async {
        let conn = connecting.await.unwrap();
        // The acceptor's verifier judged the certificate once its handshake completed; give
        // the acceptor's side a moment to process the client's Finished.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_pre_bond_limits(&conn);
        conn.close(0u32.into(), b"done");
    };
    let (accepted, ()) = tokio::join!(acceptor, prober);
    assert!(accepted.is_err(), "no proof was sent, yet the bond formed");
}

/// The same from the dialer's side: an acceptor that never sends its proof (a raw quinn server
/// presenting a valid attested certificate) gets no more from the dialer.
#[tokio::test]
async fn a_server_without_its_bond_proof_gets_the_pre_bond_limits() {
    let server_identity = Identity::generate().unwrap();
    let now = unix_now();
    let issued = attested_certificate(
        &server_identity,
        server_identity.peer_id(),
        now - 60,
        now + 600,
        sample_measurements(),
    );
    let raw = raw_server(&issued);
    let raw_addr = raw.local_addr().unwrap();
    let dialer: Endpoint = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(AttestationLevel::TdxRaTlsBidirectional),
    ))
    .await;
    let prober = async {
        let conn = raw.accept().await.unwrap().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_pre_bond_limits(&conn);
        conn.close(0u32.into(), b"done");
    };
    let (dialed, ()) = tokio::join!(
        dialer.connect(raw_addr, ratls_quic::ExpectedPeer::AnyAllowedByPolicy),
        prober
    );
    assert!(dialed.is_err(), "no proof was sent, yet the bond formed");
}

/// After the bond the limits are quinn's defaults again: both sides open more streams at once
/// than before the bond, and move more than the pre-bond window on one of them.
#[tokio::test]
async fn after_the_bond_streams_and_window_are_raised() {
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(AttestationLevel::TdxRaTlsBidirectional),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(AttestationLevel::TdxRaTlsBidirectional),
    ))
    .await;
    let (accepted, dialed) = pair(
        &server,
        &client,
        ratls_quic::ExpectedPeer::AnyAllowedByPolicy,
    )
    .await;
    let (accepted, dialed) = (accepted.unwrap(), dialed.unwrap());
    let big = vec![7u8; 4 * PRE_BOND_RECEIVE_WINDOW as usize];
    for (opener, peer) in [(&dialed, &accepted), (&accepted, &dialed)] {
        let mut streams = Vec::new();
        for _ in 0..BONDED_STREAMS {
            streams.push(opener.open_bi().await.unwrap());
        }
        let (send, _recv) = &mut streams[0];
        send.write_all(&big).await.unwrap();
        send.finish().unwrap();
        let (_, mut recv) = peer.accept_bi().await.unwrap();
        let got = recv.read_to_end(big.len()).await.unwrap();
        assert_eq!(got.len(), big.len());
    }
}
