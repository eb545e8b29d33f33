//! The attested levels as scenarios: two `ratls_quic::endpoint` endpoints on loopback with the
//! synthetic quote provider, timed from `connect` to the [`AttestedConnection`] the application
//! receives (after the verifiers and, where the policy asks for it, the bond proofs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratls_quic::synthetic::{
    sample_measurements, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::{AttestedConnection, BondQuoteLimits, Endpoint, EndpointConfig, PeerRate};
use ratls_quic::{Collateral, QuoteVerifier, StaticCollateral};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy};

use crate::load::DelayedQuoteProvider;
use crate::net::{self, AcceptorClock, Sample, UdpCounts};
use crate::scenario::{BoxFuture, HandshakeScenario, ScenarioInfo};

/// Which attested level a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Neither side presents a quote; each allows the other's key by digest.
    Software,
    /// The server presents quotes (certificate and per-bond proof); the client does not and is
    /// allowed by key digest. The client's policy floor is TdxLocal.
    TdxLocal,
    /// Both sides present quotes and require the other's: certificate evidence in the
    /// handshake and a fresh bond proof each, after it.
    TdxRaTlsBidirectional,
    /// Both sides present certificate quotes; both policies are TdxLocal with certificate
    /// freshness, so no bond quote is made (the bond messages are empty, the acceptor's still
    /// being its acceptance).
    TdxLocalCertificateFreshness,
}

impl Level {
    fn attestation_level(self) -> AttestationLevel {
        match self {
            Self::Software => AttestationLevel::Software,
            Self::TdxLocal | Self::TdxLocalCertificateFreshness => AttestationLevel::TdxLocal,
            Self::TdxRaTlsBidirectional => AttestationLevel::TdxRaTlsBidirectional,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Software => "ratls endpoint, Software both ways (keys allowed by digest)",
            Self::TdxLocal => {
                "ratls endpoint, attested server (cert quote + bond proof), Software client"
            }
            Self::TdxRaTlsBidirectional => {
                "ratls endpoint, both attested: cert quotes in the handshake, bond proofs after"
            }
            Self::TdxLocalCertificateFreshness => {
                "ratls endpoint, both attested, TdxLocal with certificate freshness: cert quotes only"
            }
        }
    }
}

/// How quotes are verified in an attested scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The default verifier, with its verdict cache.
    Default,
    /// The verifier with its cache turned off: every quote goes through full DCAP verification.
    Uncached,
}

/// Mutually attested (or Software) endpoints of `ratls_quic` on loopback.
#[derive(Debug)]
pub struct AttestedScenario {
    name: String,
    info: ScenarioInfo,
    server_addr: SocketAddr,
    server_peer: ratls_quic::PeerId,
    server: Arc<Endpoint>,
    client: Endpoint,
    clock: AcceptorClock,
}

impl AttestedScenario {
    /// Sets up a server (running the 1-byte echo on every connection it accepts) and a client
    /// endpoint at `level`, both with synthetic quotes under one fresh synthetic PKI whose
    /// collateral window contains the current time. Must run inside a tokio runtime.
    pub async fn setup(
        name: &str,
        level: Level,
        verification: Verification,
        socket_buffer: usize,
    ) -> Result<Self> {
        Self::setup_with(name, level, verification, socket_buffer, None).await
    }

    /// As [`Self::setup`], with quote providers (both sides) that take `quote_delay` per quote,
    /// one at a time per host ([`DelayedQuoteProvider`]), when given.
    pub async fn setup_with(
        name: &str,
        level: Level,
        verification: Verification,
        socket_buffer: usize,
        quote_delay: Option<Duration>,
    ) -> Result<Self> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs();
        let pki = Arc::new(
            SyntheticPki::generate(SyntheticPkiParams::new(now.saturating_sub(86_400)))
                .context("synthetic PKI")?,
        );
        let server_id = Identity::generate().context("server identity")?;
        let client_id = Identity::generate().context("client identity")?;
        let server_peer = server_id.peer_id();
        let (server_policy, client_policy) = match level {
            Level::Software => {
                let mut server = policy(AttestationLevel::Software);
                server
                    .software_allow
                    .insert(client_id.peer_id().attestation_digest());
                let mut client = policy(AttestationLevel::Software);
                client
                    .software_allow
                    .insert(server_id.peer_id().attestation_digest());
                (server, client)
            }
            Level::TdxLocal => {
                let mut server = policy(AttestationLevel::Software);
                server
                    .software_allow
                    .insert(client_id.peer_id().attestation_digest());
                (server, policy(AttestationLevel::TdxLocal))
            }
            Level::TdxRaTlsBidirectional => (
                policy(level.attestation_level()),
                policy(level.attestation_level()),
            ),
            Level::TdxLocalCertificateFreshness => {
                let mut server = policy(level.attestation_level());
                let mut client = policy(level.attestation_level());
                for policy in [&mut server, &mut client] {
                    anyhow::ensure!(
                        policy.dangerous().certificate_freshness(),
                        "certificate freshness refused at TdxLocal"
                    );
                }
                (server, client)
            }
        };
        let server_attested = level != Level::Software;
        let client_attested = matches!(
            level,
            Level::TdxRaTlsBidirectional | Level::TdxLocalCertificateFreshness
        );
        let server_config = config(
            server_id,
            server_policy,
            server_attested.then(|| Arc::clone(&pki)),
            &pki,
            verification,
            socket_buffer,
            quote_delay,
        )?;
        let client_config = config(
            client_id,
            client_policy,
            client_attested.then(|| Arc::clone(&pki)),
            &pki,
            verification,
            socket_buffer,
            quote_delay,
        )?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Arc::new(Endpoint::bind(loopback, server_config).await?);
        let client = Endpoint::bind(loopback, client_config).await?;
        let (times, clock) = AcceptorClock::channel();
        tokio::spawn(accept_loop(Arc::clone(&server), times));
        // The endpoint does not expose its socket: read back what the kernel grants for the same
        // request on a probe socket.
        let (_probe, granted) = net::loopback_socket(socket_buffer)?;
        let description = match verification {
            Verification::Default => level.describe().to_owned(),
            Verification::Uncached => format!("{}; verdict cache off", level.describe()),
        };
        Ok(Self {
            name: name.to_owned(),
            info: ScenarioInfo {
                description,
                server_cert_bytes: server.current_certificate().len(),
                client_cert_bytes: client.current_certificate().len(),
                server_socket: granted,
                client_socket: granted,
            },
            server_addr: server.local_addr()?,
            server_peer,
            server,
            client,
            clock,
        })
    }

    /// Peer certificates checked so far by the server and by the client: one each per
    /// connection, as resumption is off.
    pub fn verifications(&self) -> (u64, u64) {
        (
            self.server.handshake_checks(),
            self.client.handshake_checks(),
        )
    }

    async fn timed(&self, server: SocketAddr) -> Result<Sample> {
        let start = Instant::now();
        let connection = self
            .client
            .connect(server, ExpectedPeer::Exactly(self.server_peer))
            .await?;
        let handshake = start.elapsed();
        let client_udp = UdpCounts::of(&connection);
        net::echo_round_trip(&connection).await?;
        let connect_echo = start.elapsed();
        connection.close(0u32.into(), b"done");
        Ok(Sample {
            handshake,
            connect_echo,
            client_udp,
            acceptor_handshake: self.clock.latest(),
        })
    }
}

impl Drop for AttestedScenario {
    fn drop(&mut self) {
        // Ends the server's accept loop; connections still open are closed.
        self.server.close();
        self.client.close();
    }
}

impl HandshakeScenario for AttestedScenario {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> &ScenarioInfo {
        &self.info
    }

    fn server_addr(&self) -> SocketAddr {
        self.server_addr
    }

    fn one_handshake_via(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Sample>> {
        Box::pin(self.timed(addr))
    }
}

/// A policy pinning the synthetic sample Measurements, with floor `level`.
pub(crate) fn policy(level: AttestationLevel) -> Policy {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(level);
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    if level >= AttestationLevel::TdxRemote {
        policy.dangerous().static_collateral();
    }
    policy
}

/// An endpoint configuration under `pki`: quotes from the synthetic provider when `quotes` is
/// given (each after `quote_delay`, serialised, when that is given), the per-peer bond quote
/// rate lifted.
pub(crate) fn config(
    identity: Identity,
    policy: Policy,
    quotes: Option<Arc<SyntheticPki>>,
    pki: &SyntheticPki,
    verification: Verification,
    socket_buffer: usize,
    quote_delay: Option<Duration>,
) -> Result<EndpointConfig> {
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let verifier = match verification {
        Verification::Default => verifier,
        Verification::Uncached => verifier.without_cache(),
    };
    let collateral = Arc::new(StaticCollateral(Arc::new(Collateral::new(
        pki.collateral().clone(),
    )?)));
    let builder = EndpointConfig::builder(identity).with_policy(policy);
    let builder = match quotes {
        Some(pki) => {
            let synthetic =
                SyntheticQuoteProvider::new(pki, sample_measurements(), SyntheticTcb::UpToDate);
            match quote_delay {
                Some(delay) => builder
                    .with_quote_provider(Arc::new(DelayedQuoteProvider::new(synthetic, delay))),
                None => builder.with_quote_provider(Arc::new(synthetic)),
            }
        }
        None => builder.without_quotes(),
    };
    // The bench dials one peer back to back, hundreds of times a second: far above the default
    // per-peer bond quote rate (meant for hardware quote rates, tens a second), which would
    // slow it to that rate (each bond waiting for its peer's next token). Latency is measured
    // with the limit out of the way; the load cells keep theirs.
    let mut limits = BondQuoteLimits::default();
    limits.peer_rate(PeerRate::new(u32::MAX, 1e9));
    Ok(builder
        .with_quote_verifier(verifier, collateral)
        .socket_buffer_bytes(socket_buffer)
        .bond_quotes(limits)
        .build()?)
}

/// Accepts connections one after the other (the harness makes them one at a time), reports
/// each one's time from the endpoint yielding it to the [`AttestedConnection`], then answers
/// the echo in its own task.
async fn accept_loop(endpoint: Arc<Endpoint>, times: std::sync::mpsc::Sender<Duration>) {
    while let Some(accepting) = endpoint.accept().await {
        let start = Instant::now();
        let Ok(connection) = accepting.establish().await else {
            // A refused or failed attempt shows up on the client as a failed sample.
            continue;
        };
        // The clock's owner may be gone at shutdown; nothing to report to then.
        let _ = times.send(start.elapsed());
        tokio::spawn(serve(connection));
    }
}

async fn serve(connection: AttestedConnection) {
    // A failed echo shows up on the client as a failed sample.
    let _ = net::echo_one(&connection).await;
    connection.closed().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_level_bonds_and_runs_the_verifiers_per_connection() {
        for level in [
            Level::Software,
            Level::TdxLocal,
            Level::TdxRaTlsBidirectional,
        ] {
            let scenario = AttestedScenario::setup("t", level, Verification::Default, 1 << 20)
                .await
                .unwrap();
            for _ in 0..2 {
                let sample = scenario.one_handshake().await.unwrap();
                assert!(sample.acceptor_handshake.is_some(), "{level:?}");
                assert!(sample.handshake <= sample.connect_echo, "{level:?}");
            }
            assert_eq!(scenario.verifications(), (2, 2), "{level:?}");
            let quoted = scenario.info().server_cert_bytes > 4000;
            assert_eq!(quoted, level != Level::Software, "{level:?}");
        }
    }
}
