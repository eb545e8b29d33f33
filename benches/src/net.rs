//! Loopback UDP sockets with large buffers, quinn endpoints on them, and the echo service.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, EndpointConfig, TokioRuntime};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

/// Buffer sizes the kernel granted to a socket (Linux reports twice the requested value, capped
/// by `net.core.rmem_max` / `wmem_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SocketBuffers {
    /// SO_RCVBUF as read back.
    pub recv: usize,
    /// SO_SNDBUF as read back.
    pub send: usize,
}

/// A UDP socket on 127.0.0.1 (ephemeral port) whose buffers were asked to be `buffer` bytes.
pub fn loopback_socket(buffer: usize) -> Result<(UdpSocket, SocketBuffers)> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(buffer).context("SO_RCVBUF")?;
    socket.set_send_buffer_size(buffer).context("SO_SNDBUF")?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let buffers = SocketBuffers {
        recv: socket.recv_buffer_size()?,
        send: socket.send_buffer_size()?,
    };
    Ok((socket.into(), buffers))
}

/// A server endpoint running the echo service, and what it reports.
#[derive(Debug)]
pub struct EchoServer {
    /// The endpoint; closing it ends the accept loop.
    pub endpoint: Endpoint,
    /// Socket buffers the kernel granted.
    pub buffers: SocketBuffers,
    /// Acceptor-side handshake times.
    pub clock: AcceptorClock,
}

/// Acceptor-side handshake times reported by an [`EchoServer`]: from the endpoint yielding the
/// connection attempt (first Initial processed) to the connection established on the server.
#[derive(Debug)]
pub struct AcceptorClock {
    times: Mutex<mpsc::Receiver<Duration>>,
}

impl AcceptorClock {
    /// A clock and the sender through which a server reports each connection's time.
    pub fn channel() -> (mpsc::Sender<Duration>, Self) {
        let (sender, times) = mpsc::channel();
        (
            sender,
            Self {
                times: Mutex::new(times),
            },
        )
    }

    /// The time of the latest connection the server established since the last call. With
    /// connections made one at a time, that is the one just made.
    pub fn latest(&self) -> Option<Duration> {
        self.times.lock().ok()?.try_iter().last()
    }
}

/// Starts a server endpoint with the echo service; no NEW_TOKEN address-validation tokens, so
/// every handshake pays the anti-amplification limit as a first contact does.
pub fn echo_server(tls: rustls::ServerConfig, buffer: usize) -> Result<EchoServer> {
    let crypto = QuicServerConfig::try_from(Arc::new(tls))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut tokens = quinn::ValidationTokenConfig::default();
    tokens.sent(0);
    config.validation_token_config(tokens);
    let (socket, buffers) = loopback_socket(buffer)?;
    let endpoint = Endpoint::new(
        EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(TokioRuntime),
    )?;
    let (sender, times) = mpsc::channel();
    tokio::spawn(accept_loop(endpoint.clone(), sender));
    Ok(EchoServer {
        endpoint,
        buffers,
        clock: AcceptorClock {
            times: Mutex::new(times),
        },
    })
}

/// A server endpoint (no address-validation tokens, as [`echo_server`]) handing every
/// established connection to `serve`.
pub fn server_with(
    tls: rustls::ServerConfig,
    buffer: usize,
    serve: fn(Connection),
) -> Result<Endpoint> {
    let crypto = QuicServerConfig::try_from(Arc::new(tls))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut tokens = quinn::ValidationTokenConfig::default();
    tokens.sent(0);
    config.validation_token_config(tokens);
    let (socket, _) = loopback_socket(buffer)?;
    let endpoint = Endpoint::new(
        EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(TokioRuntime),
    )?;
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                if let Ok(connection) = incoming.await {
                    serve(connection);
                }
            });
        }
    });
    Ok(endpoint)
}

/// A client endpoint and the quinn client config for `tls`, with no token store.
pub fn client(
    tls: rustls::ClientConfig,
    buffer: usize,
) -> Result<(Endpoint, quinn::ClientConfig, SocketBuffers)> {
    let crypto = QuicClientConfig::try_from(Arc::new(tls))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.token_store(Arc::new(quinn::NoneTokenStore));
    let (socket, buffers) = loopback_socket(buffer)?;
    let endpoint = Endpoint::new(
        EndpointConfig::default(),
        None,
        socket,
        Arc::new(TokioRuntime),
    )?;
    Ok((endpoint, config, buffers))
}

async fn accept_loop(endpoint: Endpoint, times: mpsc::Sender<Duration>) {
    while let Some(incoming) = endpoint.accept().await {
        let start = Instant::now();
        let times = times.clone();
        tokio::spawn(async move {
            if let Ok(connection) = incoming.await {
                // The clock's owner may be gone at shutdown; nothing to report to then.
                let _ = times.send(start.elapsed());
                // A failed echo shows up on the client as a failed sample.
                let _ = echo_one(&connection).await;
                connection.closed().await;
            }
        });
    }
}

/// Server side of the echo: one bi stream, one byte back.
pub async fn echo_one(connection: &Connection) -> Result<()> {
    let (mut send, mut recv) = connection.accept_bi().await?;
    let mut byte = [0u8; 1];
    recv.read_exact(&mut byte).await?;
    send.write_all(&byte).await?;
    send.finish()?;
    Ok(())
}

/// Client side of the echo: sends one byte on a new bi stream and waits for it to come back.
pub async fn echo_round_trip(connection: &Connection) -> Result<()> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&[0x2a]).await?;
    send.finish()?;
    let mut byte = [0u8; 1];
    recv.read_exact(&mut byte).await?;
    anyhow::ensure!(byte == [0x2a], "echo returned {byte:?}");
    Ok(())
}

/// Timings of one connection, both measured from the call to `connect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Until the connection is established on the client.
    pub handshake: Duration,
    /// Until the 1-byte echo came back on a bi stream.
    pub connect_echo: Duration,
    /// Client-side UDP counters when the connection was established.
    pub client_udp: UdpCounts,
    /// Server side, from the connection attempt yielded to established, when known.
    pub acceptor_handshake: Option<Duration>,
}

/// Client-side UDP counters of one connection, read as soon as the client sees it established
/// (a post-handshake packet or a retransmission processed meanwhile is included). A server
/// flight held back by the anti-amplification limit shows up as extra client datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UdpCounts {
    /// Datagrams the client sent.
    pub datagrams_sent: u64,
    /// Datagrams the client received.
    pub datagrams_received: u64,
    /// Bytes the client received.
    pub bytes_received: u64,
}

impl UdpCounts {
    /// The counters of `connection` now.
    pub fn of(connection: &Connection) -> Self {
        let stats = connection.stats();
        Self {
            datagrams_sent: stats.udp_tx.datagrams,
            datagrams_received: stats.udp_rx.datagrams,
            bytes_received: stats.udp_rx.bytes,
        }
    }
}

/// One timed connection: `connect`, handshake, echo, close. The acceptor's time comes from
/// `acceptor` once the echo is back (the server reports it before it answers).
pub async fn timed_connection(
    endpoint: &Endpoint,
    config: &quinn::ClientConfig,
    server: SocketAddr,
    acceptor: Option<&AcceptorClock>,
) -> Result<Sample> {
    let start = Instant::now();
    let connection = endpoint
        .connect_with(config.clone(), server, crate::tls::SERVER_NAME)?
        .await?;
    let handshake = start.elapsed();
    let client_udp = UdpCounts::of(&connection);
    echo_round_trip(&connection).await?;
    let connect_echo = start.elapsed();
    connection.close(0u32.into(), b"done");
    Ok(Sample {
        handshake,
        connect_echo,
        client_udp,
        acceptor_handshake: acceptor.and_then(AcceptorClock::latest),
    })
}
