//! The local node: one attested endpoint, its address book, and the freshness each ALPN uses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use tokio_util::sync::CancellationToken;

use super::addr::{AddressBook, AddressError, EndpointAddr};
use crate::endpoint::{AlpnRoute, AttestedConnection, Endpoint, Error, RouteError};
use crate::identity::PeerId;
use crate::tls::ExpectedPeer;

/// A node: the attested [`Endpoint`] links are opened from, the [`AddressBook`] they are
/// resolved in, and the route (freshness) of each ALPN. Cheap to clone; clones share all.
#[derive(Clone, Debug)]
pub struct LocalNode(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    addresses: AddressBook,
    routes: RwLock<HashMap<Vec<u8>, AlpnRoute>>,
    termination: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.termination.cancel();
    }
}

impl LocalNode {
    /// A node over `endpoint`, with an empty address book and every ALPN at the policy's
    /// freshness.
    pub fn new(endpoint: Endpoint) -> Self {
        Self(Arc::new(Inner {
            endpoint,
            addresses: AddressBook::new(),
            routes: RwLock::default(),
            termination: CancellationToken::new(),
        }))
    }

    /// This node's identity.
    pub fn id(&self) -> PeerId {
        self.0.endpoint.peer_id()
    }

    /// The attested endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.0.endpoint
    }

    /// Known peer addresses.
    pub fn addresses(&self) -> &AddressBook {
        &self.0.addresses
    }

    /// This node's address: its id and local UDP address.
    pub fn addr(&self) -> std::io::Result<EndpointAddr> {
        Ok(EndpointAddr::new(self.id()).with_ip_addr(self.0.endpoint.local_addr()?))
    }

    /// Cancelled when the last clone of this node is dropped or [`Self::shutdown`] runs.
    pub fn termination(&self) -> &CancellationToken {
        &self.0.termination
    }

    /// Sets how bonds on `route`'s ALPN are made, dialed and accepted alike (see
    /// [`AlpnRoute`]); replaces an earlier route for the same ALPN.
    pub fn set_route(&self, route: AlpnRoute) {
        self.0
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(route.alpn().to_vec(), route);
    }

    /// The route of `alpn`: the one set, or the policy's default freshness.
    pub fn route(&self, alpn: &[u8]) -> Result<AlpnRoute, RouteError> {
        let routes = self.0.routes.read().unwrap_or_else(PoisonError::into_inner);
        match routes.get(alpn) {
            Some(route) => Ok(route.clone()),
            None => AlpnRoute::new(alpn),
        }
    }

    /// Dials `remote` for `alpn`: each direct address in turn (given, else from the address
    /// book) until one connects or a peer refuses.
    pub async fn connect(
        &self,
        remote: &EndpointAddr,
        alpn: &[u8],
    ) -> Result<AttestedConnection, ConnectError> {
        let addrs = self.0.addresses.resolve(remote)?;
        let route = self.route(alpn)?;
        let mut last = None;
        for addr in addrs {
            match self
                .0
                .endpoint
                .connect_alpn(addr, ExpectedPeer::Exactly(remote.id), &route)
                .await
            {
                Ok(conn) => return Ok(conn),
                Err(
                    error @ (Error::Connect(_)
                    | Error::Connection(quinn::ConnectionError::TimedOut)),
                ) => {
                    tracing::debug!(%addr, %error, "address unreachable, trying the next");
                    last = Some(error);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(last.map_or(
            ConnectError::Address(AddressError::Unknown(remote.id)),
            Into::into,
        ))
    }

    /// Stops the node: cancels [`Self::termination`] (links and routers opened with it stop)
    /// and closes the endpoint.
    pub fn shutdown(&self) {
        self.0.termination.cancel();
        self.0.endpoint.close();
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.endpoint.local_addr()
    }
}

/// Why [`LocalNode::connect`] failed; converted into [`super::OpenError`] by `Link::open`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The attested connection failed.
    #[error("{0}")]
    Endpoint(#[from] Error),
    /// The address cannot be dialed.
    #[error("{0}")]
    Address(#[from] AddressError),
    /// The ALPN cannot be routed.
    #[error("{0}")]
    Route(#[from] RouteError),
}

impl From<ConnectError> for super::OpenError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Endpoint(error) => Self::Io(error),
            ConnectError::Address(error) => Self::Address(error),
            ConnectError::Route(error) => Self::Route(error),
        }
    }
}
