//! RFC 8879 certificate compression over QUIC: both directions of a quote-sized certificate
//! travel compressed between the crate's configurations, and a peer that does not offer
//! compression still gets (and accepts) the certificate uncompressed.

mod common;

use common::raw::*;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;

/// One handshake between the crate's server configuration (presenting `server_cert`) and the
/// given client configuration; returns the UDP bytes each side received by the time it saw
/// the handshake complete.
async fn handshake_bytes(
    server_cert: &ratls_quic::IssuedCertificate,
    client_tls: rustls::ClientConfig,
) -> (u64, u64) {
    let server = raw_server(server_cert);
    let server_addr = server.local_addr().unwrap();
    let client = client_endpoint();
    let accept = async {
        let incoming = server.accept().await.unwrap();
        let conn = incoming.await.unwrap();
        conn.stats().udp_rx.bytes
    };
    let connect = async {
        let conn = dial(&client, client_tls, server_addr).await.unwrap();
        conn.stats().udp_rx.bytes
    };
    let (server_rx, client_rx) = tokio::join!(accept, connect);
    (server_rx, client_rx)
}

fn attested(identity: &Identity) -> ratls_quic::IssuedCertificate {
    let now = unix_now();
    attested_certificate(
        identity,
        identity.peer_id(),
        now - 60,
        now + 3600,
        sample_measurements(),
    )
}

#[tokio::test]
async fn quote_sized_certificates_travel_compressed_both_ways() {
    let server_id = Identity::generate().unwrap();
    let client_id = Identity::generate().unwrap();
    let server_cert = attested(&server_id);
    let client_cert = attested(&client_id);
    assert!(server_cert.cert_der.len() > 4000 && client_cert.cert_der.len() > 4000);
    let (tls, _pending) =
        attested_client_config(&client_cert, ExpectedPeer::Exactly(server_id.peer_id()));

    let (server_rx, client_rx) = handshake_bytes(&server_cert, tls).await;

    // Uncompressed, the client receives at least the server's whole certificate, and the
    // server the client's Initial (1,200 bytes) plus the client's whole certificate.
    assert!(
        client_rx < server_cert.cert_der.len() as u64,
        "client received {client_rx} B for a {} B server certificate",
        server_cert.cert_der.len()
    );
    assert!(
        server_rx < 1200 + client_cert.cert_der.len() as u64,
        "server received {server_rx} B for a {} B client certificate",
        client_cert.cert_der.len()
    );
}

#[tokio::test]
async fn a_peer_without_compression_gets_the_certificate_uncompressed() {
    let server_id = Identity::generate().unwrap();
    let client_id = Identity::generate().unwrap();
    let server_cert = attested(&server_id);
    let client_cert = attested(&client_id);
    let (mut tls, pending) =
        attested_client_config(&client_cert, ExpectedPeer::Exactly(server_id.peer_id()));
    tls.cert_decompressors.clear();
    tls.cert_compressors.clear();

    let (server_rx, client_rx) = handshake_bytes(&server_cert, tls).await;

    assert!(client_rx > server_cert.cert_der.len() as u64, "{client_rx}");
    assert!(
        server_rx > 1200 + client_cert.cert_der.len() as u64,
        "{server_rx}"
    );
    // And the certificate was judged as usual.
    assert_eq!(pending.take().unwrap().peer_id(), server_id.peer_id());
}
