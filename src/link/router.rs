//! The ALPN router: accepts connections on the node's endpoint, runs each handshake and bond
//! proof in its own task, and hands the attested connection to the handler of its ALPN.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::AcceptError;
use super::node::LocalNode;
use crate::endpoint::{AlpnRoute, AttestedConnection, Error as EndpointError, RouteError};

/// Serves one ALPN: gets each attested connection made for it (the shape of iroh's
/// `ProtocolHandler`). Runs in the connection's own task.
pub trait ProtocolHandler: fmt::Debug + Send + Sync + 'static {
    /// Handles one connection whose peer passed the handshake verifiers and the bond proof.
    /// An error is logged; the connection is the handler's to close.
    fn accept(
        &self,
        connection: AttestedConnection,
    ) -> impl Future<Output = Result<(), AcceptError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

trait DynHandler: fmt::Debug + Send + Sync + 'static {
    fn accept_boxed(
        &self,
        connection: AttestedConnection,
    ) -> BoxFuture<'_, Result<(), AcceptError>>;
}

impl<H: ProtocolHandler> DynHandler for H {
    fn accept_boxed(
        &self,
        connection: AttestedConnection,
    ) -> BoxFuture<'_, Result<(), AcceptError>> {
        Box::pin(self.accept(connection))
    }
}

/// An incoming connection the router refused before any handler saw it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refusal {
    /// Where it came from (not validated).
    pub remote: SocketAddr,
    /// Why: this side's typed rejection, the peer's close, an ALPN not served.
    pub error: EndpointError,
}

/// Collects handlers; see [`Router::builder`].
#[derive(Debug)]
pub struct RouterBuilder {
    node: LocalNode,
    handlers: Vec<(AlpnRoute, Arc<dyn DynHandler>)>,
    error: Option<RouteError>,
    refusals: Option<mpsc::UnboundedSender<Refusal>>,
}

impl RouterBuilder {
    /// Serves `alpn` with `handler`, at the freshness the node routes `alpn` with (the policy's
    /// default unless [`LocalNode::set_route`] said otherwise).
    #[must_use]
    pub fn accept(mut self, alpn: impl AsRef<[u8]>, handler: impl ProtocolHandler) -> Self {
        match self.node.route(alpn.as_ref()) {
            Ok(route) => self.handlers.push((route, Arc::new(handler))),
            Err(error) => self.error = self.error.or(Some(error)),
        }
        self
    }

    /// Serves `route`'s ALPN with `handler`, at the route's freshness, and routes dials from
    /// this node the same way.
    #[must_use]
    pub fn accept_route(mut self, route: AlpnRoute, handler: impl ProtocolHandler) -> Self {
        self.node.set_route(route.clone());
        self.handlers.push((route, Arc::new(handler)));
        self
    }

    /// Reports each refused incoming connection on `refusals` (they are logged either way).
    #[must_use]
    pub fn on_refusal(mut self, refusals: mpsc::UnboundedSender<Refusal>) -> Self {
        self.refusals = Some(refusals);
        self
    }

    /// Starts accepting. Fails when an ALPN was not a valid name.
    pub fn spawn(self) -> Result<Router, RouteError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let cancel = self.node.termination().child_token();
        let routes: Arc<[AlpnRoute]> = self
            .handlers
            .iter()
            .map(|(route, _)| route.clone())
            .collect();
        let handlers: Arc<HashMap<Vec<u8>, Arc<dyn DynHandler>>> = Arc::new(
            self.handlers
                .into_iter()
                .map(|(route, handler)| (route.alpn().to_vec(), handler))
                .collect(),
        );
        for route in routes.iter() {
            tracing::info!(
                alpn = %String::from_utf8_lossy(route.alpn()),
                freshness = ?route.freshness(self.node.endpoint().config().policy()),
                "serving ALPN"
            );
        }
        let task = tokio::spawn(accept_loop(
            self.node.clone(),
            routes,
            handlers,
            self.refusals,
            cancel.clone(),
        ));
        Ok(Router {
            node: self.node,
            cancel,
            task,
        })
    }
}

/// A running router. Dropping it stops accepting (connections already handed out go on).
#[derive(Debug)]
pub struct Router {
    node: LocalNode,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Router {
    /// Starts a router on `node`.
    pub fn builder(node: LocalNode) -> RouterBuilder {
        RouterBuilder {
            node,
            handlers: Vec::new(),
            error: None,
            refusals: None,
        }
    }

    /// The node.
    pub fn node(&self) -> &LocalNode {
        &self.node
    }

    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    node: LocalNode,
    routes: Arc<[AlpnRoute]>,
    handlers: Arc<HashMap<Vec<u8>, Arc<dyn DynHandler>>>,
    refusals: Option<mpsc::UnboundedSender<Refusal>>,
    cancel: CancellationToken,
) {
    loop {
        let Some(Some(incoming)) = cancel
            .run_until_cancelled(node.endpoint().accept_incoming())
            .await
        else {
            return;
        };
        let node = node.clone();
        let routes = Arc::clone(&routes);
        let handlers = Arc::clone(&handlers);
        let cancel = cancel.clone();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let establish = node
                .endpoint()
                .accepting(incoming)
                .establish_routed(&routes);
            let Some(established) = cancel.run_until_cancelled(establish).await else {
                return;
            };
            let connection = match established {
                Ok(connection) => connection,
                Err(error) => {
                    if let EndpointError::AlpnRefused { requested, .. } = &error {
                        tracing::info!(%remote, alpn = %String::from_utf8_lossy(requested), "refused: ALPN not served");
                    } else {
                        tracing::info!(%remote, %error, "incoming connection refused");
                    }
                    if let Some(refusals) = refusals {
                        let _ = refusals.send(Refusal { remote, error });
                    }
                    return;
                }
            };
            let alpn = connection.alpn().unwrap_or_default();
            // establish_routed admits only the routes' ALPNs, each of which has a handler.
            let Some(handler) = handlers.get(&alpn) else {
                super::stream::close_invalid_alpn(&connection);
                return;
            };
            let peer = connection.peer().peer_id();
            if let Err(error) = handler.accept_boxed(connection).await {
                tracing::debug!(%peer, alpn = %String::from_utf8_lossy(&alpn), %error, "handler ended with an error");
            }
        });
    }
}
