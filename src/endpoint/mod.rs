//! The attested QUIC endpoint: bind, connect, accept. A connection is handed out only after the
//! peer passed the verifiers in the handshake and, under per-bond freshness, the bond proof.

mod alpn;
mod batch_queue;
mod batcher;
mod bond;
mod certs;
mod close_reason;
mod config;
mod connection;
mod error;
mod evidence;
mod limits;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::Instrument;

pub use alpn::{
    AlpnRoute, RouteError, INVALID_ALPN, INVALID_ALPN_REASON, KEEP_ALIVE, MAX_ALPN_LEN,
};
pub use batch_queue::{BondQuoteLimits, PeerRate};
pub use batcher::BondQuoteError;
pub use config::{
    ConfigError, EndpointConfig, EndpointConfigBuilder, PeerExpiry, Ready, WantsEvidence,
    WantsPolicy, WantsVerifier, DEFAULT_RETRY_ABOVE_HANDSHAKES, MAX_CERT_LIFETIME,
};
pub use connection::{AttestedConnection, PeerInfo};
pub use error::Error;
pub use evidence::EVIDENCE_UNRECORDED;
pub use limits::{
    BONDED_STREAMS, PRE_BOND_BIDI_STREAMS, PRE_BOND_RECEIVE_WINDOW, PRE_BOND_UNI_STREAMS,
};

use crate::evidence::Role;
use crate::identity::PeerId;
use crate::level::AttestationLevel;
use crate::policy::Freshness;
use crate::tls::{
    AttestedTlsConfig, CertifiedPeer, ExpectedPeer, Parties, PeerRejection, PendingPeer,
};

/// Name sent as SNI. Peers are identified by key, not by name, so it carries nothing.
const SERVER_NAME: &str = "ratls.invalid";

/// An attested QUIC endpoint: dials and accepts connections whose peers satisfy the policy.
#[derive(Debug)]
pub struct Endpoint {
    quic: quinn::Endpoint,
    config: Arc<EndpointConfig>,
    tls: Arc<AttestedTlsConfig>,
    renewal: tokio::task::JoinHandle<()>,
    /// Incoming connections handed out whose handshake has not ended.
    handshakes: Arc<AtomicUsize>,
    /// QUIC Retry packets sent.
    retries: AtomicU64,
}

/// Counts one handshake in progress until dropped.
#[derive(Debug)]
struct HandshakeSlot(Arc<AtomicUsize>);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl Endpoint {
    /// Binds a UDP socket at `addr` and issues this side's first certificate (asking the quote
    /// provider off the executor). Must run inside a tokio runtime.
    pub async fn bind(addr: SocketAddr, config: EndpointConfig) -> Result<Self, ConfigError> {
        let config = Arc::new(config);
        let issued = {
            let config = Arc::clone(&config);
            tokio::task::spawn_blocking(move || {
                certs::issue(
                    &config.identity,
                    config.provider.as_deref(),
                    config.cert_lifetime,
                    certs::unix_now(),
                )
            })
            .await
            .map_err(|e| ConfigError::Io(std::io::Error::other(e)))??
        };
        let tls = AttestedTlsConfig::new(
            Arc::clone(&config.policy),
            config.quote_verifier.clone(),
            Arc::clone(&config.collateral),
            &issued,
            config.is_attested(),
        )?;
        let tls = Arc::new(if config.bond_quote_limits.batching() {
            tls.offer_batched_proofs()
        } else {
            tls
        });
        let socket = bind_socket(addr, config.socket_buffer_bytes)?;
        // Incoming connections get a per-connection configuration in `accept`; this default
        // one only makes quinn accept connections at all.
        let default_server = quic_server_config(tls.server().0)?;
        let quic = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(default_server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        let renewal = tokio::spawn(certs::renew_forever(
            Arc::clone(&config.identity),
            config.provider.clone(),
            config.cert_lifetime,
            Arc::clone(&tls),
        ));
        Ok(Self {
            quic,
            config,
            tls,
            renewal,
            handshakes: Arc::default(),
            retries: AtomicU64::new(0),
        })
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.quic.local_addr()
    }

    /// This side's identity.
    pub fn peer_id(&self) -> PeerId {
        self.config.identity.peer_id()
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// How many peer certificates this endpoint has checked: one per full handshake, so a
    /// resumed handshake (which would skip the verifiers, and is disabled) would not count.
    pub fn handshake_checks(&self) -> u64 {
        self.tls.handshake_checks()
    }

    /// How many peer certificates this endpoint refused in the handshake, by wire reason (the
    /// reasons of the table in `docs/evidence.md`). The log writes at most one `warn` line per
    /// reason per [`crate::REFUSAL_LOG_INTERVAL_SECS`], standing for the refusals since the last.
    pub fn refusal_counts(&self) -> crate::RefusalCounts {
        self.tls.refusal_counts()
    }

    /// The DER certificate this side currently presents.
    pub fn current_certificate(&self) -> rustls::pki_types::CertificateDer<'static> {
        self.tls
            .current_certificate()
            .unwrap_or_else(|| rustls::pki_types::CertificateDer::from(Vec::new()))
    }

    /// Dials `addr` and returns the connection once the peer passed the handshake verifiers
    /// and the bond proof. The dialer waits one round trip more than plain mutual TLS: the
    /// acceptor can compute the exporter, and so send its proof, only once the dialer's Finished
    /// arrived.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: ExpectedPeer,
    ) -> Result<AttestedConnection, Error> {
        self.connect_traced(addr, expected, None).await
    }

    /// As [`Self::connect`], for the application protocol `route` (see [`AlpnRoute`]): the
    /// bond uses the route's freshness (single proofs), and a peer that does not serve the
    /// ALPN is refused with [`Error::AlpnRefused`] right after the handshake (the connection
    /// is closed with [`INVALID_ALPN`]), before any bond proof. Routed connections send QUIC
    /// keep-alives every [`KEEP_ALIVE`].
    pub async fn connect_alpn(
        &self,
        addr: SocketAddr,
        expected: ExpectedPeer,
        route: &AlpnRoute,
    ) -> Result<AttestedConnection, Error> {
        self.connect_traced(addr, expected, Some(route)).await
    }

    /// One dial inside its `bond` span; a refusal is recorded in the evidence log.
    async fn connect_traced(
        &self,
        addr: SocketAddr,
        expected: ExpectedPeer,
        route: Option<&AlpnRoute>,
    ) -> Result<AttestedConnection, Error> {
        let span = tracing::info_span!("bond", side = "dialer", remote = %addr);
        let (tls, pending) = self.tls.client(expected);
        let result = traced(self.dial(addr, tls, &pending, route))
            .instrument(span)
            .await;
        let presented = pending.presented();
        evidence::record_refused(
            &self.config,
            self.peer_id(),
            Role::Client,
            presented,
            &result,
        )
        .await;
        result
    }

    async fn dial(
        &self,
        addr: SocketAddr,
        mut tls: rustls::ClientConfig,
        pending: &PendingPeer,
        route: Option<&AlpnRoute>,
    ) -> Result<AttestedConnection, Error> {
        if let Some(route) = route {
            tls.alpn_protocols = alpn::offered(route);
        }
        let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(Error::NoInitialCipherSuite)?;
        let mut client = quinn::ClientConfig::new(Arc::new(close_reason::ClientCrypto::new(
            quic_tls,
            pending.clone(),
        )));
        client.transport_config(limits::before_bond(route.is_some()));
        let connecting = self.quic.connect_with(client, addr, SERVER_NAME)?;
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(error) => return Err(pending.rejection().map_or(error.into(), Error::Rejected)),
        };
        let peer = pending.take()?;
        if let Some(route) = route {
            let negotiated = alpn::negotiated(&conn);
            if negotiated.as_deref() != Some(route.alpn()) {
                alpn::refuse(&conn);
                return Err(Error::AlpnRefused {
                    requested: route.alpn().to_vec(),
                    negotiated,
                });
            }
        }
        let freshness = self.freshness(route);
        let parties = Parties::new(Role::Client, self.peer_id(), peer.peer_id());
        self.finish_bond(conn, parties, peer, freshness).await
    }

    fn freshness(&self, route: Option<&AlpnRoute>) -> Freshness {
        route.map_or_else(
            || self.config.policy.freshness(),
            |route| route.freshness(&self.config.policy),
        )
    }

    /// The next incoming connection, not yet handshaken (for the link router, which runs each
    /// handshake in its own task). Under load, unvalidated addresses get a Retry first.
    pub(crate) async fn accept_incoming(&self) -> Option<quinn::Incoming> {
        loop {
            let incoming = self.quic.accept().await?;
            if let Some(incoming) = self.validate_under_load(incoming) {
                return Some(incoming);
            }
        }
    }

    /// Answers `incoming` with a QUIC Retry when the endpoint is under load (see
    /// [`EndpointConfigBuilder::retry_above_handshakes`]) and its address is not validated
    /// yet; otherwise hands it back.
    fn validate_under_load(&self, incoming: quinn::Incoming) -> Option<quinn::Incoming> {
        let in_progress = self.handshakes.load(Ordering::Acquire);
        if in_progress < self.config.retry_above_handshakes
            || incoming.remote_address_validated()
            || !incoming.may_retry()
        {
            return Some(incoming);
        }
        match incoming.retry() {
            Ok(()) => {
                self.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(in_progress, "under load: address validation (Retry) sent");
                None
            }
            // quinn refuses only when the address is validated, checked above.
            Err(error) => Some(error.into_incoming()),
        }
    }

    /// How many QUIC Retry packets this endpoint sent to validate addresses under load.
    pub fn retries_sent(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Wraps an incoming connection taken with [`Self::accept_incoming`].
    pub(crate) fn accepting(&self, incoming: quinn::Incoming) -> Accepting<'_> {
        self.handshakes.fetch_add(1, Ordering::AcqRel);
        Accepting {
            endpoint: self,
            incoming,
            slot: HandshakeSlot(Arc::clone(&self.handshakes)),
        }
    }

    /// Waits for the next incoming connection; `None` once the endpoint is closed. The
    /// returned [`Accepting`] runs the handshake and bond proof: await it in its own task so
    /// that one slow peer does not hold up others. While it is held and its handshake has not
    /// ended it counts as a handshake in progress (see
    /// [`EndpointConfigBuilder::retry_above_handshakes`]).
    pub async fn accept(&self) -> Option<Accepting<'_>> {
        let incoming = self.accept_incoming().await?;
        Some(self.accepting(incoming))
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.quic.close(0u32.into(), b"endpoint closed");
    }

    /// Waits until every connection is closed and its close frames are sent: call after
    /// [`Self::close`] (or after closing each connection) before the runtime shuts down.
    pub async fn wait_idle(&self) {
        self.quic.wait_idle().await;
    }

    async fn finish_bond(
        &self,
        conn: quinn::Connection,
        parties: Parties,
        peer: CertifiedPeer,
        freshness: Freshness,
    ) -> Result<AttestedConnection, Error> {
        // Always exchanged, even when neither certificate carries a quote: the acceptor's
        // message, sent only once it accepted, is what tells the dialer it was accepted (TLS 1.3
        // lets the dialer finish its handshake before the acceptor has judged its certificate).
        let check = self.tls.check();
        let ((bond_quote, bond_batch), peer_message) =
            bond::exchange(&conn, &self.config, check, parties, &peer, freshness).await?;
        // The peer proved its bond: from now on it may open streams and send as any peer.
        limits::after_bond(&conn);
        let cert_not_after = peer.not_after();
        let (peer_id, level, cert_quote) = peer.into_parts();
        // An ALPN routed with certificate freshness admits bonds at TdxLocal at most, whatever
        // the handshake computed from the policy's default (the route was checked against the
        // floor when it was made).
        let level = if freshness == Freshness::Certificate && cert_quote.is_some() {
            level.min(AttestationLevel::TdxLocal)
        } else {
            level
        };
        let info = PeerInfo::new(peer_id, level, cert_quote, bond_quote, cert_not_after)
            .with_batch(bond_batch);
        if let Some(sink) = &self.config.evidence {
            evidence::record_formed(sink, &self.config, &conn, parties, &info, &peer_message)
                .await?;
        }
        if self.config.peer_expiry == PeerExpiry::Close {
            tokio::spawn(close_at_expiry(conn.clone(), info.not_after()));
        }
        Ok(AttestedConnection::new(conn, info))
    }
}

/// An incoming connection whose handshake and bond proof have not run yet.
#[derive(Debug)]
pub struct Accepting<'a> {
    endpoint: &'a Endpoint,
    incoming: quinn::Incoming,
    slot: HandshakeSlot,
}

impl Accepting<'_> {
    /// The address the connection comes from (validated only if
    /// [`Self::remote_address_validated`]).
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Whether the peer proved it receives at [`Self::remote_address`] (it answered a Retry).
    pub fn remote_address_validated(&self) -> bool {
        self.incoming.remote_address_validated()
    }

    /// Runs the handshake and the bond proof.
    pub async fn establish(self) -> Result<AttestedConnection, Error> {
        self.establish_traced(None).await
    }

    /// Runs the handshake and the bond proof for a connection to one of `routes` (see
    /// [`AlpnRoute`]). A dialer that offered none of them but the base ALPN is refused right
    /// after the handshake with [`Error::AlpnRefused`] (the connection is closed with
    /// [`INVALID_ALPN`]); the bond uses the freshness of the negotiated route.
    pub async fn establish_routed(self, routes: &[AlpnRoute]) -> Result<AttestedConnection, Error> {
        self.establish_traced(Some(routes)).await
    }

    /// One acceptance inside its `bond` span; a refusal is recorded in the evidence log.
    async fn establish_traced(
        self,
        routes: Option<&[AlpnRoute]>,
    ) -> Result<AttestedConnection, Error> {
        let endpoint = self.endpoint;
        let span = tracing::info_span!("bond", side = "acceptor", remote = %self.remote_address());
        let (tls, pending) = endpoint.tls.server();
        let result = traced(self.run(tls, &pending, routes))
            .instrument(span)
            .await;
        let presented = pending.presented();
        evidence::record_refused(
            &endpoint.config,
            endpoint.peer_id(),
            Role::Server,
            presented,
            &result,
        )
        .await;
        result
    }

    async fn run(
        self,
        mut tls: rustls::ServerConfig,
        pending: &PendingPeer,
        routes: Option<&[AlpnRoute]>,
    ) -> Result<AttestedConnection, Error> {
        let endpoint = self.endpoint;
        if let Some(routes) = routes {
            tls.alpn_protocols = alpn::served(routes);
        }
        let quic_tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(Error::NoInitialCipherSuite)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(
            close_reason::ServerCrypto::new(quic_tls, pending.clone()),
        ));
        server.transport_config(limits::before_bond(false));
        let slot = self.slot;
        let connecting = self.incoming.accept_with(Arc::new(server))?;
        let handshake = connecting.await;
        drop(slot);
        let conn = match handshake {
            Ok(conn) => conn,
            Err(error) => {
                return Err(pending
                    .rejection()
                    .map_or_else(|| missing_certificate(error), Error::Rejected))
            }
        };
        let peer = pending.take()?;
        let route = match routes {
            None => None,
            Some(routes) => {
                let negotiated = alpn::negotiated(&conn);
                let found = routes
                    .iter()
                    .find(|route| Some(route.alpn()) == negotiated.as_deref());
                let Some(route) = found else {
                    tracing::info!(peer = %peer.peer_id(), "peer asked for an ALPN this endpoint does not serve");
                    alpn::refuse(&conn);
                    return Err(Error::AlpnRefused {
                        requested: negotiated.clone().unwrap_or_default(),
                        negotiated,
                    });
                };
                Some(route)
            }
        };
        let freshness = endpoint.freshness(route);
        let parties = Parties::new(Role::Server, endpoint.peer_id(), peer.peer_id());
        endpoint.finish_bond(conn, parties, peer, freshness).await
    }
}

/// Runs one bond (inside its `bond` span) and logs its outcome: the peer and level reached, or
/// the error and the refusal's reason kind, with the time it took.
async fn traced(
    bond: impl std::future::Future<Output = Result<AttestedConnection, Error>>,
) -> Result<AttestedConnection, Error> {
    let started = std::time::Instant::now();
    let result = bond.await;
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match &result {
        Ok(conn) => tracing::info!(
            peer = %conn.peer().peer_id(),
            level = %conn.peer().level(),
            elapsed_us,
            "attested bond established"
        ),
        Err(error) => tracing::info!(
            %error,
            reason = error.rejection().map(PeerRejection::wire_reason),
            elapsed_us,
            "no bond"
        ),
    }
    result
}

fn quic_server_config(tls: rustls::ServerConfig) -> Result<quinn::ServerConfig, ConfigError> {
    let quic_tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(ConfigError::NoInitialCipherSuite)?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(quic_tls)))
}

/// Application close code of a connection whose peer's evidence expired (see
/// [`PeerInfo::not_after`]); the reason text is [`EVIDENCE_EXPIRED_REASON`].
pub const EVIDENCE_EXPIRED: u32 = 0x5241_0002;

/// The reason text sent with [`EVIDENCE_EXPIRED`].
pub const EVIDENCE_EXPIRED_REASON: &str = "peer evidence expired";

/// Closes `conn` with [`EVIDENCE_EXPIRED`] once the second `not_after` (unix) has passed,
/// unless it closed before.
async fn close_at_expiry(conn: quinn::Connection, not_after: u64) {
    let wait = std::time::Duration::from_secs(
        not_after
            .saturating_add(1)
            .saturating_sub(certs::unix_now()),
    );
    tokio::select! {
        () = tokio::time::sleep(wait) => {
            // The timer measures elapsed time; the evidence is dated by the wall clock.
            while certs::unix_now() <= not_after {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            tracing::info!(peer_not_after = not_after, "closing connection: peer evidence expired");
            conn.close(EVIDENCE_EXPIRED.into(), EVIDENCE_EXPIRED_REASON.as_bytes());
        }
        _ = conn.closed() => {}
    }
}

/// rustls refuses a client without a certificate before any verifier runs; name that case.
fn missing_certificate(error: quinn::ConnectionError) -> Error {
    const CERTIFICATE_REQUIRED: u8 = 116;
    match &error {
        quinn::ConnectionError::TransportError(transport)
            if transport.code == quinn::TransportErrorCode::crypto(CERTIFICATE_REQUIRED) =>
        {
            Error::Rejected(PeerRejection::NoCertificate)
        }
        _ => error.into(),
    }
}

fn bind_socket(addr: SocketAddr, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    if let Err(error) = socket.set_recv_buffer_size(buffer) {
        tracing::debug!(%error, "cannot set UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(buffer) {
        tracing::debug!(%error, "cannot set UDP send buffer");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
