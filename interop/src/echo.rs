//! A request/response protocol in mosaik's style: the caller opens a link, sends one request,
//! reads one response and closes with `Success`; the acceptor answers and waits for the close.
//! Inside mosaik the `use` lines would read:
//!
//! ```text
//! use crate::network::{
//!     error::Success, link::{Link, LinkError, Protocol}, LocalNode,
//! };
//! use iroh::{endpoint::Connection, protocol::{AcceptError, ProtocolHandler}, EndpointAddr};
//! ```
//!
//! Everything below them is unchanged.

use ratls_quic::AttestedConnection as Connection;
use ratls_quic::link::{
    AcceptError, EndpointAddr, Link, LinkError, LocalNode, Protocol, ProtocolHandler,
    close::Success,
};
use serde::{Deserialize, Serialize};

/// The echo protocol and its acceptor.
#[derive(Debug)]
pub struct Echo {
    local: LocalNode,
}

/// What the caller asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoRequest {
    /// Echoed back.
    pub seq: u64,
    /// Returned reversed.
    pub text: String,
}

/// What the acceptor answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoResponse {
    /// The request's `seq`.
    pub seq: u64,
    /// The request's text, reversed.
    pub reversed: String,
}

impl Protocol for Echo {
    const ALPN: &'static [u8] = b"/ratls-quic-interop/echo/1.0";
}

impl Echo {
    /// The acceptor of `local`.
    pub const fn new(local: LocalNode) -> Self {
        Self { local }
    }

    /// Calls `peer` once.
    pub async fn call(
        local: &LocalNode,
        peer: impl Into<EndpointAddr>,
        request: &EchoRequest,
    ) -> Result<EchoResponse, LinkError> {
        let mut link = Link::<Self>::open(local, peer).await?;
        link.send(request).await?;
        let response: EchoResponse = link.recv().await?;
        link.close(Success).await?;
        Ok(response)
    }
}

impl ProtocolHandler for Echo {
    fn accept(
        &self,
        connection: Connection,
    ) -> impl Future<Output = Result<(), AcceptError>> + Send {
        let cancel = self.local.termination().child_token();
        async move {
            let remote_id = connection.remote_id();
            let mut link = Link::<Self>::accept_with_cancel(connection, cancel).await?;
            let request: EchoRequest = link.recv().await.map_err(AcceptError::from_err)?;
            let response = EchoResponse {
                seq: request.seq,
                reversed: request.text.chars().rev().collect(),
            };
            link.send(&response).await.map_err(AcceptError::from_err)?;
            if let Err(error) = link.closed().await {
                tracing::trace!(%error, peer = %remote_id, "echo link closed with error");
            }
            Ok(())
        }
    }
}
