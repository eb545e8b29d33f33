//! Peer addresses: a peer's id and where to reach it. This transport dials direct IP addresses
//! (v4 and v6) only; relay URLs, which iroh also carries, are kept for the record but never
//! dialed, and an address with nothing else is refused with [`AddressError::RelayOnly`].

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use crate::identity::PeerId;

/// One way to reach a peer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TransportAddr {
    /// A direct UDP address, v4 or v6.
    Ip(SocketAddr),
    /// An iroh relay URL. Never dialed by this transport (see [`AddressError::RelayOnly`]).
    Relay(String),
}

/// A peer's id and its known addresses (the shape of iroh's `EndpointAddr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointAddr {
    /// The peer's identity; the connection must authenticate exactly this key.
    pub id: PeerId,
    /// Where the peer may be reached.
    pub addrs: BTreeSet<TransportAddr>,
}

impl EndpointAddr {
    /// An address with no transport address: dialing looks the peer up in the address book.
    pub fn new(id: PeerId) -> Self {
        Self {
            id,
            addrs: BTreeSet::new(),
        }
    }

    /// Adds a direct UDP address.
    #[must_use]
    pub fn with_ip_addr(mut self, addr: SocketAddr) -> Self {
        self.addrs.insert(TransportAddr::Ip(addr));
        self
    }

    /// Adds a relay URL (recorded, never dialed).
    #[must_use]
    pub fn with_relay_url(mut self, url: impl Into<String>) -> Self {
        self.addrs.insert(TransportAddr::Relay(url.into()));
        self
    }

    /// The direct addresses, in order.
    pub fn ip_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.iter().filter_map(|addr| match addr {
            TransportAddr::Ip(ip) => Some(*ip),
            TransportAddr::Relay(_) => None,
        })
    }

    /// The direct addresses, or why there are none to dial.
    pub fn dialable(&self) -> Result<Vec<SocketAddr>, AddressError> {
        let direct: Vec<_> = self.ip_addrs().collect();
        if !direct.is_empty() {
            return Ok(direct);
        }
        if self.addrs.is_empty() {
            Err(AddressError::Unknown(self.id))
        } else {
            Err(AddressError::RelayOnly(self.id))
        }
    }
}

impl From<PeerId> for EndpointAddr {
    fn from(id: PeerId) -> Self {
        Self::new(id)
    }
}

impl From<(PeerId, SocketAddr)> for EndpointAddr {
    fn from((id, addr): (PeerId, SocketAddr)) -> Self {
        Self::new(id).with_ip_addr(addr)
    }
}

/// A peer cannot be dialed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Only relay URLs are known for the peer: this transport connects over direct IP only (no
    /// relays, no hole punching), so give it a reachable `SocketAddr`.
    #[error(
        "peer {0} has only relay addresses: relays are not supported, this transport dials \
         direct IP addresses only"
    )]
    RelayOnly(PeerId),
    /// No address is known for the peer, neither given nor in the address book.
    #[error("no address known for peer {0}")]
    Unknown(PeerId),
}

/// Known direct addresses of peers, shared by clones. Relay URLs are not stored.
#[derive(Clone, Debug, Default)]
pub struct AddressBook(Arc<RwLock<HashMap<PeerId, BTreeSet<SocketAddr>>>>);

impl AddressBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the direct addresses of `addr`; refuses an address that has only relay URLs
    /// (or nothing), leaving the book unchanged.
    pub fn insert(&self, addr: &EndpointAddr) -> Result<(), AddressError> {
        let direct = addr.dialable()?;
        if addr.addrs.len() > direct.len() {
            tracing::debug!(peer = %addr.id, "relay URLs ignored: this transport dials direct IP only");
        }
        self.write().entry(addr.id).or_default().extend(direct);
        Ok(())
    }

    /// Replaces the addresses of `peer`.
    pub fn set(&self, peer: PeerId, addrs: impl IntoIterator<Item = SocketAddr>) {
        let addrs: BTreeSet<_> = addrs.into_iter().collect();
        if addrs.is_empty() {
            self.write().remove(&peer);
        } else {
            self.write().insert(peer, addrs);
        }
    }

    /// Forgets `peer`.
    pub fn remove(&self, peer: &PeerId) {
        self.write().remove(peer);
    }

    /// The known address of `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<EndpointAddr> {
        let book = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let addrs = book.get(peer)?;
        Some(EndpointAddr {
            id: *peer,
            addrs: addrs.iter().copied().map(TransportAddr::Ip).collect(),
        })
    }

    /// Where to dial `addr`: its own direct addresses, else the book's. A relay-only address
    /// with nothing in the book is refused as [`AddressError::RelayOnly`].
    pub fn resolve(&self, addr: &EndpointAddr) -> Result<Vec<SocketAddr>, AddressError> {
        match addr.dialable() {
            Ok(direct) => Ok(direct),
            Err(error) => match self.get(&addr.id) {
                Some(known) => known.dialable(),
                None => Err(error),
            },
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PeerId, BTreeSet<SocketAddr>>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    #[test]
    fn relay_only_address_refused_with_a_reason_that_says_so() {
        let relay = EndpointAddr::new(peer(1)).with_relay_url("https://relay.example/");
        let error = relay.dialable().unwrap_err();
        assert_eq!(error, AddressError::RelayOnly(peer(1)));
        assert!(error.to_string().contains("relays are not supported"));
        let book = AddressBook::new();
        assert_eq!(book.insert(&relay), Err(AddressError::RelayOnly(peer(1))));
        assert!(book.get(&peer(1)).is_none());
        assert_eq!(book.resolve(&relay), Err(AddressError::RelayOnly(peer(1))));
        assert_eq!(
            book.resolve(&EndpointAddr::new(peer(2))),
            Err(AddressError::Unknown(peer(2)))
        );
    }

    #[test]
    fn book_maps_peers_to_v4_and_v6_addresses() {
        let v4: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let v6: SocketAddr = "[::1]:4433".parse().unwrap();
        let book = AddressBook::new();
        book.insert(
            &EndpointAddr::new(peer(1))
                .with_ip_addr(v4)
                .with_relay_url("https://relay.example/"),
        )
        .unwrap();
        book.insert(&(peer(1), v6).into()).unwrap();
        let resolved = book.resolve(&peer(1).into()).unwrap();
        assert_eq!(resolved, vec![v4, v6]);
        // A relay-only address of a peer the book knows resolves to the book's addresses.
        let relay = EndpointAddr::new(peer(1)).with_relay_url("https://relay.example/");
        assert_eq!(book.resolve(&relay).unwrap(), vec![v4, v6]);
        // Given direct addresses win over the book.
        let other: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(book.resolve(&(peer(1), other).into()).unwrap(), vec![other]);
        book.remove(&peer(1));
        assert!(book.get(&peer(1)).is_none());
    }
}
