//! A node's evidence endpoint: its own UDP socket and ALPN ([`EVIDENCE_ALPN`]), the node's
//! identity in a Software-level certificate, auditors authenticated by theirs and admitted by
//! an allow-list; and the auditor's side, which dials it and pulls the log.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::protocol::EVIDENCE_ALPN;
use super::pull::{pull, serve_connection, AuditAccess, PullError, Pulled};
use super::EvidenceLog;
use crate::evidence::issue_certificate;
use crate::identity::{Identity, PeerId};
use crate::level::AttestationLevel;
use crate::policy::{MeasurementPolicy, Policy};
use crate::tdx::{CollateralStore, QuoteVerifier};
use crate::tls::{AttestedTlsConfig, ExpectedPeer};
use crate::{Collateral, EvidenceError};

/// Lifetime of the evidence endpoint's certificates; renewed at two thirds of it.
pub const EVIDENCE_CERT_LIFETIME: Duration = Duration::from_secs(3600);

/// Most evidence connections served at once; further ones wait to be accepted.
pub const MAX_EVIDENCE_CONNECTIONS: usize = 64;

/// Why the evidence endpoint or an auditor's connection could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceServerError {
    /// The certificate could not be issued.
    #[error("certificate: {0}")]
    Certificate(#[from] EvidenceError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// No cipher suite QUIC can use.
    #[error("no QUIC initial cipher suite: {0}")]
    NoInitialCipherSuite(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The socket could not be bound.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// Dialing failed.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed, or the peer was refused.
    #[error("connection: {0}")]
    Connection(String),
    /// Pulling the log failed.
    #[error("pull: {0}")]
    Pull(#[from] PullError),
}

/// Serves a node's evidence log to the auditors on an allow-list.
#[derive(Debug)]
pub struct EvidenceServer {
    quic: quinn::Endpoint,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for EvidenceServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.quic.close(0u32.into(), b"evidence endpoint closed");
    }
}

impl EvidenceServer {
    /// Binds `addr` and serves `log` as `identity` to the auditors in `allowed`. Must run inside
    /// a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        identity: Arc<Identity>,
        log: EvidenceLog,
        allowed: BTreeSet<PeerId>,
    ) -> Result<Self, EvidenceServerError> {
        let tls = Arc::new(software_tls(&identity, allowed.iter().copied())?);
        let (config, _) = tls.server();
        let quic = quinn::Endpoint::server(quic_server(config)?, addr)?;
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_EVIDENCE_CONNECTIONS));
        let access = AuditAccess::AllowList(allowed);
        let accept = tokio::spawn(accept_forever(
            quic.clone(),
            Arc::clone(&tls),
            log,
            access,
            permits,
        ));
        let renew = tokio::spawn(renew_forever(identity, tls));
        Ok(Self {
            quic,
            tasks: vec![accept, renew],
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.quic.local_addr()
    }
}

async fn accept_forever(
    quic: quinn::Endpoint,
    tls: Arc<AttestedTlsConfig>,
    log: EvidenceLog,
    access: AuditAccess,
    permits: Arc<tokio::sync::Semaphore>,
) {
    while let Some(incoming) = quic.accept().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (config, pending) = tls.server();
        let Ok(server) = quic_server(config) else {
            continue;
        };
        let (log, access) = (log.clone(), access.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(connecting) = incoming.accept_with(Arc::new(server)) else {
                return;
            };
            let Ok(conn) = connecting.await else {
                if let Some(rejection) = pending.rejection() {
                    tracing::info!(%rejection, "evidence connection refused");
                }
                return;
            };
            let Ok(peer) = pending.take() else { return };
            serve_connection(conn, peer.peer_id(), log, access).await;
        });
    }
}

async fn renew_forever(identity: Arc<Identity>, tls: Arc<AttestedTlsConfig>) {
    loop {
        tokio::time::sleep(EVIDENCE_CERT_LIFETIME * 2 / 3).await;
        match certificate(&identity) {
            Ok(issued) => {
                if let Err(error) = tls.renew(&issued) {
                    tracing::warn!(%error, "evidence certificate renewal failed");
                }
            }
            Err(error) => tracing::warn!(%error, "evidence certificate renewal failed"),
        }
    }
}

/// Dials the evidence endpoint at `addr`, which must be `expected`, as `identity`, and pulls the
/// whole log into `mirror`.
pub async fn pull_from(
    addr: SocketAddr,
    expected: PeerId,
    identity: &Identity,
    mirror: &Path,
) -> Result<Pulled, EvidenceServerError> {
    let tls = software_tls(identity, [expected])?;
    let (config, pending) = tls.client(ExpectedPeer::Exactly(expected));
    let mut config = config;
    config.alpn_protocols = vec![EVIDENCE_ALPN.to_vec()];
    let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(config)?;
    let bind: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let quic = quinn::Endpoint::client(bind)?;
    let connecting = quic.connect_with(
        quinn::ClientConfig::new(Arc::new(quic_tls)),
        addr,
        "ratls.invalid",
    )?;
    let conn = connecting.await.map_err(|error| {
        EvidenceServerError::Connection(match pending.rejection() {
            Some(rejection) => rejection.to_string(),
            None => error.to_string(),
        })
    })?;
    let pulled = pull(&conn, mirror).await;
    conn.close(0u32.into(), b"done");
    quic.wait_idle().await;
    Ok(pulled?)
}

/// TLS for an evidence connection: this side's Software certificate; the peer must present a
/// Software certificate of an identity in `allowed`.
fn software_tls(
    identity: &Identity,
    allowed: impl IntoIterator<Item = PeerId>,
) -> Result<AttestedTlsConfig, EvidenceServerError> {
    let mut policy = Policy::new(MeasurementPolicy::new(Vec::new()));
    policy.set_level(AttestationLevel::Software);
    policy.software_allow = allowed
        .into_iter()
        .map(|p| p.attestation_digest())
        .collect();
    // No quote is verified on these connections: with no collateral a peer presenting one is
    // refused (fail closed), and the Measurement policy is empty besides.
    Ok(AttestedTlsConfig::new(
        Arc::new(policy),
        QuoteVerifier::intel(),
        Arc::new(NoCollateral),
        &certificate(identity)?,
        false,
    )?)
}

/// This side's Software certificate, valid from a minute ago for [`EVIDENCE_CERT_LIFETIME`].
fn certificate(identity: &Identity) -> Result<crate::IssuedCertificate, EvidenceError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    issue_certificate(
        identity,
        now.saturating_sub(60),
        now.saturating_add(EVIDENCE_CERT_LIFETIME.as_secs()),
        None,
    )
}

fn quic_server(config: rustls::ServerConfig) -> Result<quinn::ServerConfig, EvidenceServerError> {
    let mut config = config;
    config.alpn_protocols = vec![EVIDENCE_ALPN.to_vec()];
    let quic_tls = quinn::crypto::rustls::QuicServerConfig::try_from(config)?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(quic_tls)))
}

/// Evidence connections verify no quotes.
#[derive(Debug)]
struct NoCollateral;

impl CollateralStore for NoCollateral {
    fn collateral_for(&self, _quote: &[u8]) -> Option<Arc<Collateral>> {
        None
    }
}
