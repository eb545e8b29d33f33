//! The scenarios a run compares. Each owns its endpoints and times one connection at a time.
//!
//! An attested level is one more [`HandshakeScenario`]: set up its endpoints in a constructor,
//! and in [`HandshakeScenario::one_handshake`] time from `connect` to the connection the
//! application gets (after any bond proof), then the echo, as [`net::timed_connection`] does.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Result;
use quinn::Endpoint;
use serde::Serialize;

use crate::net::{self, Sample, SocketBuffers};
use crate::tls::{self, Credential, PinnedPeer};

/// A boxed, sendable future, so scenarios can live in one list.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a scenario reports about itself, next to its figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScenarioInfo {
    /// One line saying what is measured.
    pub description: String,
    /// DER size of the server certificate, bytes.
    pub server_cert_bytes: usize,
    /// DER size of the client certificate, bytes.
    pub client_cert_bytes: usize,
    /// Socket buffers the kernel granted to the server endpoint.
    pub server_socket: SocketBuffers,
    /// Socket buffers the kernel granted to the client endpoint.
    pub client_socket: SocketBuffers,
}

/// A way of making a connection whose handshake latency is measured.
pub trait HandshakeScenario: Send + Sync {
    /// Short name, used as the row label and JSON key.
    fn name(&self) -> &str;

    /// Certificate sizes, socket buffers, description.
    fn info(&self) -> &ScenarioInfo;

    /// Makes one fresh connection and returns its timings. Connections run one at a time.
    fn one_handshake(&self) -> BoxFuture<'_, Result<Sample>> {
        self.one_handshake_via(self.server_addr())
    }

    /// The server's own address.
    fn server_addr(&self) -> SocketAddr;

    /// As [`Self::one_handshake`], dialing `addr` (a relay in front of the server).
    fn one_handshake_via(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Sample>>;
}

/// Plain quinn mutual TLS with Ed25519 self-signed certificates pinned on both sides.
#[derive(Debug)]
pub struct PlainMtls {
    name: String,
    info: ScenarioInfo,
    server_addr: SocketAddr,
    client: Endpoint,
    client_config: quinn::ClientConfig,
    client_checker: Arc<PinnedPeer>,
    server_checker: Arc<PinnedPeer>,
    // Its endpoint is closed on drop, which ends the accept loop.
    server: net::EchoServer,
}

impl PlainMtls {
    /// Sets up a server and a client endpoint on loopback. `server_padding` bytes of dummy
    /// extension go into the server certificate (0 for none); sockets ask for `socket_buffer`
    /// bytes of send and receive buffer. Must run inside a tokio runtime.
    pub fn setup(name: &str, server_padding: usize, socket_buffer: usize) -> Result<Self> {
        let server_cred = Credential::generate(server_padding)?;
        let client_cred = Credential::generate(0)?;
        let provider = tls::provider();
        let client_checker = PinnedPeer::new(client_cred.cert.clone(), provider.clone());
        let server_checker = PinnedPeer::new(server_cred.cert.clone(), provider);
        let server = net::echo_server(
            tls::server_config(&server_cred, client_checker.clone())?,
            socket_buffer,
        )?;
        let (client, client_config, client_socket) = net::client(
            tls::client_config(&client_cred, server_checker.clone())?,
            socket_buffer,
        )?;
        let description = if server_padding == 0 {
            "plain quinn mTLS, Ed25519 self-signed certs".to_owned()
        } else {
            format!("plain quinn mTLS, server cert padded by {server_padding} B (quote-sized)")
        };
        Ok(Self {
            name: name.to_owned(),
            info: ScenarioInfo {
                description,
                server_cert_bytes: server_cred.cert.len(),
                client_cert_bytes: client_cred.cert.len(),
                server_socket: server.buffers,
                client_socket,
            },
            server_addr: server.endpoint.local_addr()?,
            client,
            client_config,
            client_checker,
            server_checker,
            server,
        })
    }
}

impl PlainMtls {
    /// Certificates checked so far by the server's client verifier and by the client's server
    /// verifier: one each per connection, as resumption is off.
    pub fn verifications(&self) -> (usize, usize) {
        (self.client_checker.checks(), self.server_checker.checks())
    }
}

impl Drop for PlainMtls {
    fn drop(&mut self) {
        // Ends the server's accept loop; connections still open are closed.
        self.server.endpoint.close(0u32.into(), b"scenario done");
        self.client.close(0u32.into(), b"scenario done");
    }
}

impl HandshakeScenario for PlainMtls {
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
        Box::pin(net::timed_connection(
            &self.client,
            &self.client_config,
            addr,
            Some(&self.server.clock),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_connection_runs_both_verifiers() {
        let scenario = PlainMtls::setup("t", 0, 1 << 20).unwrap();
        for _ in 0..3 {
            let sample = scenario.one_handshake().await.unwrap();
            let acceptor = sample.acceptor_handshake.expect("acceptor time");
            assert!(acceptor < sample.connect_echo);
        }
        assert_eq!(scenario.verifications(), (3, 3));
    }

    #[tokio::test]
    async fn client_with_unpinned_certificate_is_refused() {
        let scenario = PlainMtls::setup("t", 0, 1 << 20).unwrap();
        let stranger = Credential::generate(0).unwrap();
        let server_checker =
            PinnedPeer::new(scenario.server_checker.pinned().clone(), tls::provider());
        let (endpoint, config, _) = net::client(
            tls::client_config(&stranger, server_checker).unwrap(),
            1 << 20,
        )
        .unwrap();
        let outcome = net::timed_connection(&endpoint, &config, scenario.server_addr, None).await;
        assert!(outcome.is_err());
        assert_eq!(scenario.verifications().0, 1);
    }
}
