//! A userspace UDP relay on loopback that delays every datagram by a fixed time each way, to
//! count the round trips a handshake takes on a path with real latency.
//!
//! The relay is bounded (at most `max_queued` datagrams wait in each direction; more are
//! dropped and counted) and stops by itself once its lifetime is over, or when dropped.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Largest datagram the relay forwards (QUIC on loopback stays far below).
const MAX_DATAGRAM: usize = 65_535;

/// A running delay relay: dial [`Self::addr`] instead of the server.
#[derive(Debug)]
pub struct DelayRelay {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<RelayCounters>,
}

/// What a relay forwarded and dropped.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Datagrams from the client forwarded to the server.
    pub to_server: AtomicU64,
    /// Datagrams from the server forwarded to the client.
    pub to_client: AtomicU64,
    /// Datagrams dropped because a direction's queue was full.
    pub dropped: AtomicU64,
}

impl DelayRelay {
    /// Relays between one client (the latest address that sent to [`Self::addr`]) and `server`,
    /// delaying each datagram by `one_way`, for at most `lifetime`. Must run inside a tokio
    /// runtime.
    pub async fn start(
        server: SocketAddr,
        one_way: Duration,
        lifetime: Duration,
        max_queued: usize,
    ) -> Result<Self> {
        let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        let back = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let counters = Arc::new(RelayCounters::default());
        let deadline = Instant::now() + lifetime;
        let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));

        let (to_server, to_server_rx) = mpsc::channel::<(Instant, Vec<u8>)>(max_queued.max(1));
        let (to_client, to_client_rx) = mpsc::channel::<(Instant, Vec<u8>)>(max_queued.max(1));

        let from_client = {
            let (front, client, counters) = (
                Arc::clone(&front),
                Arc::clone(&client),
                Arc::clone(&counters),
            );
            tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    let received = tokio::select! {
                        r = front.recv_from(&mut buf) => r,
                        () = tokio::time::sleep_until(deadline) => return,
                    };
                    let Ok((len, from)) = received else { return };
                    if let Ok(mut slot) = client.lock() {
                        *slot = Some(from);
                    }
                    let packet = buf.get(..len).unwrap_or_default().to_vec();
                    if to_server
                        .try_send((Instant::now() + one_way, packet))
                        .is_err()
                    {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let from_server = {
            let (back, counters) = (Arc::clone(&back), Arc::clone(&counters));
            tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    let received = tokio::select! {
                        r = back.recv(&mut buf) => r,
                        () = tokio::time::sleep_until(deadline) => return,
                    };
                    let Ok(len) = received else { return };
                    let packet = buf.get(..len).unwrap_or_default().to_vec();
                    if to_client
                        .try_send((Instant::now() + one_way, packet))
                        .is_err()
                    {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let deliver_server = {
            let (back, counters) = (Arc::clone(&back), Arc::clone(&counters));
            tokio::spawn(deliver(to_server_rx, deadline, move |packet| {
                let (back, counters) = (Arc::clone(&back), Arc::clone(&counters));
                async move {
                    if back.send(&packet).await.is_ok() {
                        counters.to_server.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }))
        };
        let deliver_client = {
            let (front, counters) = (Arc::clone(&front), Arc::clone(&counters));
            tokio::spawn(deliver(to_client_rx, deadline, move |packet| {
                let (front, client, counters) = (
                    Arc::clone(&front),
                    Arc::clone(&client),
                    Arc::clone(&counters),
                );
                async move {
                    let to = client.lock().ok().and_then(|slot| *slot);
                    if let Some(to) = to {
                        if front.send_to(&packet, to).await.is_ok() {
                            counters.to_client.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }))
        };
        Ok(Self {
            addr,
            tasks: vec![from_client, from_server, deliver_server, deliver_client],
            counters,
        })
    }

    /// The address to dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams forwarded and dropped so far.
    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Sends each queued datagram once its time has come, in arrival order, until `deadline`.
async fn deliver<F, Fut>(mut queue: mpsc::Receiver<(Instant, Vec<u8>)>, deadline: Instant, send: F)
where
    F: Fn(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut pending: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    loop {
        let next = tokio::select! {
            item = queue.recv() => item,
            () = tokio::time::sleep_until(deadline) => return,
        };
        let Some(item) = next else { return };
        pending.push_back(item);
        while let Some((due, packet)) = pending.pop_front() {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
            send(packet).await;
            // Whatever arrived meanwhile is due later; take it in order.
            while let Ok(item) = queue.try_recv() {
                pending.push_back(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_both_ways_and_stops_by_itself() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let relay = DelayRelay::start(
            server.local_addr().unwrap(),
            Duration::from_millis(20),
            Duration::from_millis(500),
            16,
        )
        .await
        .unwrap();
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let start = std::time::Instant::now();
        client.send_to(b"ping", relay.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let (len, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"ping");
        server.send_to(b"pong", from).await.unwrap();
        let len = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"pong");
        assert!(start.elapsed() >= Duration::from_millis(40));
        // After its lifetime the relay forwards nothing.
        tokio::time::sleep(Duration::from_millis(600)).await;
        client.send_to(b"late", relay.addr()).await.unwrap();
        let late = tokio::time::timeout(Duration::from_millis(200), server.recv(&mut buf)).await;
        assert!(late.is_err());
        assert_eq!(relay.counters().to_server.load(Ordering::Relaxed), 1);
    }
}
