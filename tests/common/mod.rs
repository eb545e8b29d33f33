//! Shared fixtures for endpoint tests: a synthetic PKI, identities, policies and endpoints on
//! loopback.

#![allow(dead_code, unreachable_pub)]

pub mod evlog;
pub mod forge;
pub mod raw;
pub mod rejections;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ratls_quic::synthetic::{
    sample_measurements, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::{AttestedConnection, Endpoint, EndpointConfig, Error};
use ratls_quic::{Collateral, Measurements, QuoteVerifier, StaticCollateral};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy};

/// One synthetic PKI per test binary, valid around the real clock (endpoints use it).
pub fn pki() -> Arc<SyntheticPki> {
    static PKI: OnceLock<Arc<SyntheticPki>> = OnceLock::new();
    Arc::clone(PKI.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(now - 86_400)).unwrap())
    }))
}

pub fn provider(measurements: Measurements) -> Arc<SyntheticQuoteProvider> {
    Arc::new(SyntheticQuoteProvider::new(
        pki(),
        measurements,
        SyntheticTcb::UpToDate,
    ))
}

/// A policy pinning the sample Measurements, at `level`. These fixtures verify with the
/// synthetic PKI's static collateral ([`verifier`]), so from TdxRemote up the policy takes the
/// explicit opt-out `Policy::dangerous().static_collateral()`; the TdxRemote check itself is
/// tested through the loopback collateral service (endpoint_remote.rs, endpoint_collateral_service.rs)
/// with [`remote_policy`].
pub fn policy(level: AttestationLevel) -> Policy {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(level);
    if level >= AttestationLevel::TdxRemote {
        policy.dangerous().static_collateral();
    }
    policy
}

/// A policy pinning the sample Measurements at `level` whose `[remote]` section declares the
/// collateral service `url` (no opt-out).
pub fn remote_policy(level: AttestationLevel, url: &str, max_age_secs: u64) -> Policy {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(level);
    policy.set_remote(Some(ratls_quic::RemotePolicy::new(
        vec![url.to_owned()],
        max_age_secs,
    )));
    policy
}

pub fn verifier() -> (QuoteVerifier, Arc<StaticCollateral>) {
    let pki = pki();
    (
        QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec()),
        Arc::new(StaticCollateral(Arc::new(
            Collateral::new(pki.collateral().clone()).unwrap(),
        ))),
    )
}

/// How one side presents itself.
pub enum Side {
    /// No quote.
    Software,
    /// Synthetic quotes with these Measurements.
    Attested(Box<Measurements>),
}

pub fn config(identity: Identity, side: Side, policy: Policy) -> EndpointConfig {
    let (verifier, collateral) = verifier();
    let builder = EndpointConfig::builder(identity).with_policy(policy);
    let builder = match side {
        Side::Software => builder.without_quotes(),
        Side::Attested(m) => builder.with_quote_provider(provider(*m)),
    };
    builder
        .with_quote_verifier(verifier, collateral)
        .build()
        .unwrap()
}

pub async fn bind(config: EndpointConfig) -> Endpoint {
    Endpoint::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

pub fn addr(endpoint: &Endpoint) -> SocketAddr {
    endpoint.local_addr().unwrap()
}

/// Accepts one connection on `server` while `client` dials it; returns both outcomes.
pub async fn pair(
    server: &Endpoint,
    client: &Endpoint,
    expected: ExpectedPeer,
) -> (
    Result<AttestedConnection, Error>,
    Result<AttestedConnection, Error>,
) {
    let accept = async {
        let accepting = server.accept().await.expect("endpoint open");
        accepting.establish().await
    };
    let connect = client.connect(addr(server), expected);
    tokio::join!(accept, connect)
}

/// Sends `message` on a new bi stream and returns the peer's echo (run `echo_once` there).
pub async fn round_trip(conn: &AttestedConnection, message: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(message).await.unwrap();
    send.finish().unwrap();
    recv.read_to_end(1 << 16).await.unwrap()
}

/// Accepts one bi stream and echoes it back.
pub async fn echo_once(conn: &AttestedConnection) {
    let (mut send, mut recv) = conn.accept_bi().await.unwrap();
    let data = recv.read_to_end(1 << 16).await.unwrap();
    send.write_all(&data).await.unwrap();
    send.finish().unwrap();
}

/// The QUIC error code of TLS alert `alert` (CRYPTO_ERROR `0x100 + alert`).
pub fn alert_code(alert: rustls::AlertDescription) -> quinn::TransportErrorCode {
    quinn::TransportErrorCode::crypto(u8::from(alert))
}

/// Asserts that the peer closed the connection with TLS alert `alert`.
#[track_caller]
pub fn assert_closed_with_alert(error: &quinn::ConnectionError, alert: rustls::AlertDescription) {
    match error {
        quinn::ConnectionError::ConnectionClosed(close) => {
            assert_eq!(close.error_code, alert_code(alert), "{close:?}")
        }
        other => panic!("expected the peer's alert {alert:?}, got {other:?}"),
    }
}

/// Asserts that `connect`/`establish` failed because the peer closed the connection with TLS
/// alert `alert`.
#[track_caller]
pub fn assert_peer_alert(
    result: &Result<AttestedConnection, Error>,
    alert: rustls::AlertDescription,
) {
    match result {
        Err(Error::Connection(error)) => assert_closed_with_alert(error, alert),
        other => panic!("expected the peer's alert {alert:?}, got {other:?}"),
    }
}

/// Asserts that the peer closed the connection because it refused our bond proof.
#[track_caller]
pub fn assert_bond_refused(error: &quinn::ConnectionError) {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(
            close.error_code,
            quinn::VarInt::from_u32(ratls_quic::BOND_REFUSED),
            "{close:?}"
        ),
        other => panic!("expected the bond refusal close, got {other:?}"),
    }
}

/// What a raw peer's connection attempt came to: the handshake error, or, if its side of the
/// handshake completed, the error that ends the connection before any stream arrives.
pub async fn raw_outcome(connecting: quinn::Connecting) -> quinn::ConnectionError {
    match connecting.await {
        Err(error) => error,
        Ok(conn) => match conn.accept_bi().await {
            Err(error) => error,
            Ok(_) => panic!("the refusing side opened an application stream"),
        },
    }
}

/// Runs `establish` on the next incoming connection of `server`.
pub async fn accept_one(server: &Endpoint) -> Result<AttestedConnection, Error> {
    server
        .accept()
        .await
        .expect("endpoint open")
        .establish()
        .await
}
