//! `ratls_quic::link` over real UDP on loopback, both sides attested with synthetic quotes:
//! every `Link` method, cancellation at each await point, close codes both ways, the ALPN
//! router, per-ALPN freshness, addresses.

mod common;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ratls_quic::link::close::{groups, Cancelled, InvalidAlpn, ProtocolViolation, Success};
use ratls_quic::link::{
    AcceptError, AddressError, CancellationToken, CloseError, Datum, EndpointAddr, Link, LocalNode,
    OpenError, Protocol, ProtocolHandler, RecvError, Router, SendError,
};
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::Measurements;
use ratls_quic::{AlpnRoute, Error as EndpointError};
use ratls_quic::{AttestationLevel, AttestedConnection as Connection};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

struct Echo;
impl Protocol for Echo {
    const ALPN: &'static [u8] = b"/test/echo/1.0";
}

struct Other;
impl Protocol for Other {
    const ALPN: &'static [u8] = b"/test/other/1.0";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping {
    seq: u64,
    body: String,
}

/// Hands each attested connection to the test.
#[derive(Debug)]
struct Handoff(mpsc::UnboundedSender<Connection>);

impl ProtocolHandler for Handoff {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let _ = self.0.send(connection);
        Ok(())
    }
}

/// Fails the test instead of hanging it (not a timing assertion: the bound is generous).
async fn guard<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("test did not finish")
}

fn bidirectional() -> AttestationLevel {
    AttestationLevel::TdxRaTlsBidirectional
}

async fn node_with(measurements: Measurements, level: AttestationLevel) -> LocalNode {
    LocalNode::new(
        bind(config(
            ratls_quic::Identity::generate().unwrap(),
            Side::Attested(Box::new(measurements)),
            policy(level),
        ))
        .await,
    )
}

async fn node() -> LocalNode {
    node_with(sample_measurements(), bidirectional()).await
}

fn serve(node: &LocalNode, alpn: &[u8]) -> (Router, mpsc::UnboundedReceiver<Connection>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router::builder(node.clone())
        .accept(alpn, Handoff(tx))
        .spawn()
        .unwrap();
    (router, rx)
}

/// An opened and an accepted `Link<Echo>` between two fresh nodes; the opener sent `first`.
async fn linked() -> (Link<Echo>, Link<Echo>, LocalNode, LocalNode, Router) {
    let server = node().await;
    let client = node().await;
    let (router, mut rx) = serve(&server, Echo::ALPN);
    let mut opened = Link::<Echo>::open(&client, server.addr().unwrap())
        .await
        .unwrap();
    opened
        .send(&Ping {
            seq: 0,
            body: "hello".into(),
        })
        .await
        .unwrap();
    let mut accepted = Link::<Echo>::accept(rx.recv().await.unwrap())
        .await
        .unwrap();
    let first: Ping = accepted.recv().await.unwrap();
    assert_eq!(first.body, "hello");
    (opened, accepted, client, server, router)
}

#[track_caller]
fn assert_code(close: Option<&ratls_quic::link::ApplicationClose>, code: u32) {
    let close = close.expect("an application close");
    assert_eq!(close.error_code.into_inner(), u64::from(code), "{close:?}");
}

#[tokio::test]
async fn every_link_method_over_an_attested_bond() {
    guard(async {
        let (mut a, mut b, client, server, _router) = linked().await;
        assert_eq!(a.alpn(), Echo::ALPN);
        assert_eq!(b.alpn(), Echo::ALPN);
        assert_eq!(a.remote_id(), server.id());
        assert_eq!(b.remote_id(), client.id());
        assert_eq!(a.connection().alpn().as_deref(), Some(Echo::ALPN));
        for link in [&a, &b] {
            let seen = link.attestation();
            assert_eq!(seen.level(), bidirectional());
            assert_eq!(seen.measurements(), Some(&sample_measurements()));
            assert!(seen.bond_quote().is_some());
            assert!(!link.is_cancelled());
        }
        assert!(format!("{a}").contains("/test/echo/1.0"));

        // send / recv_with_size, both directions.
        let ping = Ping {
            seq: 7,
            body: "x".repeat(1000),
        };
        let sent = b.send(&ping).await.unwrap();
        assert_eq!(sent, ping.encode().unwrap().len());
        let (got, size): (Ping, usize) = a.recv_with_size().await.unwrap();
        assert_eq!((got, size), (ping.clone(), sent));
        // send_raw carries bytes as they are; the peer decodes them as the type they encode.
        let raw = ping.encode().unwrap();
        assert_eq!(a.send_raw(raw.clone()).await.unwrap(), raw.len());
        assert_eq!(b.recv::<Ping>().await.unwrap(), ping);
        // An empty frame is a valid frame.
        a.send_raw(Bytes::new()).await.unwrap();
        assert_eq!(b.recv_with_size::<()>().await.unwrap(), ((), 0));

        // shared_random: equal on both sides, different per label.
        assert_eq!(a.shared_random("group"), b.shared_random("group"));
        assert_ne!(a.shared_random("group"), a.shared_random("other"));
        assert_ne!(a.shared_random("group"), [0u8; 32]);

        // replace_cancel_token: the new token governs the link.
        let token = CancellationToken::new();
        a.replace_cancel_token(token.clone());
        assert!(!a.is_cancelled());
        token.cancel();
        assert!(a.is_cancelled());
        a.replace_cancel_token(CancellationToken::new());
        assert!(!a.is_cancelled());

        // close(Success): the peer's detached closed() is Ok, and so is the closer's.
        let peer_closed = b.closed();
        let own_closed = a.closed();
        a.close(Success).await.unwrap();
        peer_closed.await.unwrap();
        own_closed.await.unwrap();
        // Closing a link the peer closed reports the peer's reason.
        match b.close(ProtocolViolation).await {
            Err(CloseError::AlreadyClosed(reason)) => {
                let error = CloseError::AlreadyClosed(reason);
                assert!(error.was_already_closed());
            }
            other => panic!("expected AlreadyClosed, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn shared_random_differs_across_connections() {
    guard(async {
        let server = node().await;
        let client = node().await;
        let (_router, mut rx) = serve(&server, Echo::ALPN);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut a = Link::<Echo>::open(&client, server.addr().unwrap())
                .await
                .unwrap();
            a.send(&1u8).await.unwrap();
            let b = Link::<Echo>::accept(rx.recv().await.unwrap())
                .await
                .unwrap();
            assert_eq!(a.shared_random("x"), b.shared_random("x"));
            seen.push(a.shared_random("x"));
        }
        assert_ne!(seen[0], seen[1]);
    })
    .await;
}

#[tokio::test]
async fn close_codes_reach_the_peer_both_ways() {
    guard(async {
        // Opener closes: the acceptor's recv and closed() carry the code.
        let (a, mut b, ..) = linked().await;
        let closed = b.closed();
        a.close(ProtocolViolation).await.unwrap();
        let error = b.recv::<Ping>().await.unwrap_err();
        assert!(error.close_reason().unwrap() == ProtocolViolation);
        match closed.await {
            Err(quinn::ConnectionError::ApplicationClosed(close)) => {
                assert!(close == ProtocolViolation)
            }
            other => panic!("expected ProtocolViolation, got {other:?}"),
        }

        // Acceptor closes with a subsystem code: the opener's send or recv carries it.
        let (mut a, b, ..) = linked().await;
        b.close(groups::InvalidProof).await.unwrap();
        let error = a.recv::<Ping>().await.unwrap_err();
        assert_code(error.close_reason(), 30_405);
        let error = a.send(&1u8).await.unwrap_err();
        assert!(matches!(error, SendError::Io(_)));
        assert_code(error.close_reason(), 30_405);
        let error = ratls_quic::link::LinkError::from(error);
        assert!(!error.is_cancelled());
        assert_code(error.close_reason(), 30_405);
    })
    .await;
}

#[tokio::test]
async fn unknown_alpn_refused_with_code_100_and_never_reaches_a_handler() {
    guard(async {
        let server = node().await;
        let client = node().await;
        let (_router, mut rx) = serve(&server, Echo::ALPN);
        let error = Link::<Other>::open(&client, server.addr().unwrap())
            .await
            .unwrap_err();
        assert!(error.is_invalid_alpn(), "{error:?}");
        // The endpoint also speaks for itself: the base ALPN is not routed on a router either.
        let error = client
            .endpoint()
            .connect(
                server.local_addr().unwrap(),
                ratls_quic::ExpectedPeer::Exactly(server.id()),
            )
            .await
            .unwrap_err();
        match error {
            EndpointError::Connection(quinn::ConnectionError::ApplicationClosed(close)) => {
                assert!(close == InvalidAlpn)
            }
            EndpointError::AlpnRefused { .. } => {}
            other => panic!("expected an ALPN refusal, got {other:?}"),
        }
        // A served ALPN still works, and only it reached the handler.
        let mut a = Link::<Echo>::open(&client, server.addr().unwrap())
            .await
            .unwrap();
        a.send(&1u8).await.unwrap();
        let conn = rx.recv().await.unwrap();
        assert_eq!(conn.alpn().as_deref(), Some(Echo::ALPN));
        assert!(rx.try_recv().is_err());
    })
    .await;
}

#[tokio::test]
async fn accepting_with_the_wrong_protocol_closes_with_invalid_alpn() {
    guard(async {
        let server = node().await;
        let client = node().await;
        let (_router, mut rx) = serve(&server, Echo::ALPN);
        let mut a = Link::<Echo>::open(&client, server.addr().unwrap())
            .await
            .unwrap();
        a.send(&1u8).await.unwrap();
        match Link::<Other>::accept(rx.recv().await.unwrap()).await {
            Err(AcceptError::InvalidAlpn { expected, received }) => {
                assert_eq!(expected, Other::ALPN);
                assert_eq!(received, Echo::ALPN);
            }
            other => panic!("expected InvalidAlpn, got {other:?}"),
        }
        let error = a.recv::<u8>().await.unwrap_err();
        assert!(error.close_reason().unwrap() == InvalidAlpn);
    })
    .await;
}

#[tokio::test]
async fn refused_peer_never_reaches_a_handler() {
    guard(async {
        let server = node().await;
        let mut other = sample_measurements();
        other.mr_td[0] ^= 1;
        let intruder = node_with(other, bidirectional()).await;
        let (_router, mut rx) = serve(&server, Echo::ALPN);
        let error = Link::<Echo>::open(&intruder, server.addr().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(error, OpenError::Io(_)), "{error:?}");
        // The intruder also refuses the server (it pins other Measurements).
        // A good client then gets through, and it is the first connection the handler sees.
        let client = node().await;
        let mut a = Link::<Echo>::open(&client, server.addr().unwrap())
            .await
            .unwrap();
        a.send(&1u8).await.unwrap();
        let conn = rx.recv().await.unwrap();
        assert_eq!(conn.peer().peer_id(), client.id());
    })
    .await;
}

#[tokio::test]
async fn split_and_join() {
    guard(async {
        let (a, b, ..) = linked().await;
        let (mut a_tx, mut a_rx) = a.split();
        let (mut b_tx, mut b_rx) = b.split();
        assert_eq!(a_tx.connection().stable_id(), a_rx.connection().stable_id());
        assert_eq!(a_tx.remote_id(), a_rx.remote_id());
        assert_eq!(b_tx.remote_id(), b_rx.remote_id());
        assert_ne!(a_tx.remote_id(), b_rx.remote_id());
        let sender = tokio::spawn(async move {
            for seq in 0..50u64 {
                a_tx.send(&Ping {
                    seq,
                    body: String::new(),
                })
                .await
                .unwrap();
            }
            a_tx
        });
        let echo = tokio::spawn(async move {
            for _ in 0..50 {
                let ping: Ping = b_rx.recv().await.unwrap();
                b_tx.send(&ping.seq).await.unwrap();
            }
            (b_tx, b_rx)
        });
        for seq in 0..50u64 {
            assert_eq!(a_rx.recv::<u64>().await.unwrap(), seq);
        }
        let a_tx = sender.await.unwrap();
        let (b_tx, b_rx) = echo.await.unwrap();
        // Halves of different connections do not join.
        let Err((a_tx, b_rx)) = Link::try_join(a_tx, b_rx) else {
            panic!("halves of two connections joined");
        };
        let mut a = Link::join(a_tx, a_rx);
        let mut b = Link::join(b_tx, b_rx);
        a.send(&9u8).await.unwrap();
        assert_eq!(b.recv::<u8>().await.unwrap(), 9);
    })
    .await;
}

#[test]
#[should_panic(expected = "same connection")]
fn join_of_different_connections_panics() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (a, b, ..) = linked().await;
        let (a_tx, _) = a.split();
        let (_, b_rx) = b.split();
        let _ = Link::join(a_tx, b_rx);
    });
}

#[tokio::test]
async fn cancelled_open_before_and_during_the_dial() {
    guard(async {
        let server = node().await;
        let client = node().await;
        let cancel = CancellationToken::new();
        cancel.cancel();
        let error = Link::<Echo>::open_with_cancel(&client, server.addr().unwrap(), cancel)
            .await
            .unwrap_err();
        assert!(error.is_cancelled());

        // Nothing answers at this address: the dial hangs until cancelled.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            later.cancel();
        });
        let error = Link::<Echo>::open_with_cancel(
            &client,
            (server.id(), silent.local_addr().unwrap()),
            cancel,
        )
        .await
        .unwrap_err();
        assert!(error.is_cancelled(), "{error:?}");
        assert!(ratls_quic::link::LinkError::from(error).is_cancelled());
    })
    .await;
}

#[tokio::test]
async fn cancelled_accept_closes_with_cancelled() {
    guard(async {
        let server = node().await;
        let client = node().await;
        let (_router, mut rx) = serve(&server, Echo::ALPN);
        // The opener sends nothing, so the acceptor waits for its stream until cancelled.
        let mut a = Link::<Echo>::open(&client, server.addr().unwrap())
            .await
            .unwrap();
        let conn = rx.recv().await.unwrap();
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        let accept = tokio::spawn(Link::<Echo>::accept_with_cancel(conn, cancel));
        tokio::time::sleep(Duration::from_millis(100)).await;
        later.cancel();
        let error = accept.await.unwrap().unwrap_err();
        assert!(error.is_cancelled());
        let error = a.recv::<u8>().await.unwrap_err();
        assert!(error.close_reason().unwrap() == Cancelled);
    })
    .await;
}

#[tokio::test]
async fn cancelled_recv_closes_with_cancelled() {
    guard(async {
        let (mut a, mut b, ..) = linked().await;
        let cancel = CancellationToken::new();
        b.replace_cancel_token(cancel.clone());
        let recv = tokio::spawn(async move { b.recv::<Ping>().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
        let error = recv.await.unwrap().unwrap_err();
        assert!(matches!(error, RecvError::Cancelled));
        assert!(error.is_cancelled());
        let error = a.recv::<u8>().await.unwrap_err();
        assert_code(error.close_reason(), 102);
    })
    .await;
}

#[tokio::test]
async fn cancelled_send_blocked_by_flow_control() {
    guard(async {
        let (mut a, b, ..) = linked().await;
        let cancel = CancellationToken::new();
        a.replace_cancel_token(cancel.clone());
        // The peer never reads: sends block once the flow-control window is full.
        let send = tokio::spawn(async move {
            let chunk = Bytes::from(vec![0u8; 1 << 20]);
            for _ in 0..1000 {
                a.send_raw(chunk.clone()).await?;
            }
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        let error: SendError = send.await.unwrap().unwrap_err();
        assert!(error.is_cancelled(), "{error:?}");
        match b.closed().await {
            Err(quinn::ConnectionError::ApplicationClosed(close)) => assert!(close == Cancelled),
            other => panic!("expected Cancelled, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn cancelled_close_and_closed() {
    guard(async {
        let (mut a, b, ..) = linked().await;
        let cancel = CancellationToken::new();
        cancel.cancel();
        a.replace_cancel_token(cancel);
        // A cancelled token: closed() resolves Ok at once, close() cannot confirm.
        a.closed().await.unwrap();
        assert_eq!(a.close(Success).await, Err(CloseError::Cancelled));
        // The close frame was still sent.
        b.closed().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn undecodable_and_oversized_frames_are_protocol_violations() {
    guard(async {
        let (mut a, mut b, ..) = linked().await;
        // Invalid UTF-8 where a String is expected.
        a.send_raw(Bytes::from_static(&[1, 2, 0xff])).await.unwrap();
        let error = b.recv::<Ping>().await.unwrap_err();
        assert!(matches!(error, RecvError::Decode(_)), "{error:?}");
        let error = a.recv::<u8>().await.unwrap_err();
        assert!(error.close_reason().unwrap() == ProtocolViolation);

        let (mut a, mut b, ..) = linked().await;
        b.set_max_frame_len(16);
        let mut frame = vec![0u8; 16];
        frame[0] = 15; // postcard: a 15-byte Vec<u8>, 16 bytes in all
        a.send_raw(Bytes::from(frame)).await.unwrap();
        let (value, size) = b.recv_with_size::<Vec<u8>>().await.unwrap();
        assert_eq!((value.len(), size), (15, 16));
        a.send_raw(Bytes::from(vec![0u8; 17])).await.unwrap();
        let error = b.recv::<Vec<u8>>().await.unwrap_err();
        assert!(
            matches!(error, RecvError::FrameTooLarge { max: 16 }),
            "{error:?}"
        );
        let error = a.recv::<u8>().await.unwrap_err();
        assert!(error.close_reason().unwrap() == ProtocolViolation);
    })
    .await;
}

#[tokio::test]
async fn per_alpn_freshness_certificate_for_calls_per_bond_for_committees() {
    guard(async {
        let level = AttestationLevel::TdxLocal;
        let server = node_with(sample_measurements(), level).await;
        let client = node_with(sample_measurements(), level).await;
        let calls = |node: &LocalNode| {
            AlpnRoute::dangerous_certificate_freshness(
                Other::ALPN,
                node.endpoint().config().policy(),
            )
            .unwrap()
        };
        client.set_route(calls(&client));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _router = Router::builder(server.clone())
            .accept_route(calls(&server), Handoff(tx.clone()))
            .accept_route(AlpnRoute::per_bond(Echo::ALPN).unwrap(), Handoff(tx))
            .spawn()
            .unwrap();

        let mut call = Link::<Other>::open(&client, server.addr().unwrap())
            .await
            .unwrap();
        call.send(&1u8).await.unwrap();
        let accepted = Link::<Other>::accept(rx.recv().await.unwrap())
            .await
            .unwrap();
        for link_seen in [call.attestation(), accepted.attestation()] {
            assert_eq!(link_seen.level(), AttestationLevel::TdxLocal);
            assert!(link_seen.bond_quote().is_none(), "no quote per call");
            assert!(link_seen.certificate_quote().is_some());
        }

        let mut bond = Link::<Echo>::open(&client, server.addr().unwrap())
            .await
            .unwrap();
        bond.send(&1u8).await.unwrap();
        let accepted = Link::<Echo>::accept(rx.recv().await.unwrap())
            .await
            .unwrap();
        for link_seen in [bond.attestation(), accepted.attestation()] {
            assert!(link_seen.bond_quote().is_some(), "a fresh quote per bond");
        }

        // A dialer that routes the calls ALPN per bond is refused: the acceptor sends no quote.
        let strict = node_with(sample_measurements(), level).await;
        let error = Link::<Other>::open(&strict, server.addr().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(error, OpenError::Io(EndpointError::Rejected(_))),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn certificate_freshness_refused_for_an_alpn_at_the_bidirectional_floor() {
    let node = node().await;
    assert!(AlpnRoute::dangerous_certificate_freshness(
        Echo::ALPN,
        node.endpoint().config().policy()
    )
    .is_err());
}

#[tokio::test]
async fn links_over_ipv6_and_through_the_address_book() {
    guard(async {
        let v6 = |m| async move {
            LocalNode::new(
                ratls_quic::Endpoint::bind(
                    "[::1]:0".parse().unwrap(),
                    config(
                        ratls_quic::Identity::generate().unwrap(),
                        Side::Attested(Box::new(m)),
                        policy(bidirectional()),
                    ),
                )
                .await
                .unwrap(),
            )
        };
        let server = v6(sample_measurements()).await;
        let client = v6(sample_measurements()).await;
        let (_router, mut rx) = serve(&server, Echo::ALPN);
        assert!(server.local_addr().unwrap().is_ipv6());
        client.addresses().insert(&server.addr().unwrap()).unwrap();
        // Dial by id alone: the address book knows where.
        let mut a = Link::<Echo>::open(&client, server.id()).await.unwrap();
        a.send(&5u8).await.unwrap();
        let mut b = Link::<Echo>::accept(rx.recv().await.unwrap())
            .await
            .unwrap();
        assert_eq!(b.recv::<u8>().await.unwrap(), 5);
    })
    .await;
}

#[tokio::test]
async fn relay_only_and_unknown_addresses_refused() {
    let client = node().await;
    let server = node().await;
    let relay = EndpointAddr::new(server.id()).with_relay_url("https://relay.example./");
    match Link::<Echo>::open(&client, relay).await {
        Err(OpenError::Address(AddressError::RelayOnly(id))) => assert_eq!(id, server.id()),
        other => panic!("expected RelayOnly, got {other:?}"),
    }
    match Link::<Echo>::open(&client, server.id()).await {
        Err(OpenError::Address(AddressError::Unknown(id))) => assert_eq!(id, server.id()),
        other => panic!("expected Unknown, got {other:?}"),
    }
}
