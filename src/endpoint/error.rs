use crate::tdx::QuoteProviderError;
use crate::tls::PeerRejection;

/// Why `connect` or `accept` produced no attested connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer does not serve the ALPN this side asked for (or, on the acceptor, the dialer
    /// asked for one this side does not serve): the connection was closed right after the
    /// handshake with [`super::INVALID_ALPN`], before any bond proof.
    #[error("ALPN {:?} not served (negotiated {:?})", String::from_utf8_lossy(requested), negotiated.as_deref().map(String::from_utf8_lossy))]
    AlpnRefused {
        /// The ALPN asked for.
        requested: Vec<u8>,
        /// The ALPN the handshake settled on, if any.
        negotiated: Option<Vec<u8>>,
    },
    /// The bond proof exchange did not finish in time.
    #[error("bond proof exchange timed out")]
    BondTimeout,
    /// quinn refused to start the connection (bad address, endpoint closing).
    #[error("cannot start connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed; when the peer refused us, this carries its TLS alert
    /// or close reason.
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// This side produced no quote for its bond proof.
    #[error("quote provider: {0}")]
    Provider(#[from] QuoteProviderError),
    /// This side refused the peer; the typed reason.
    #[error("peer refused: {0}")]
    Rejected(#[from] PeerRejection),
    /// A bond-proof stream failed.
    #[error("bond proof stream: {0}")]
    Stream(String),
    /// A TLS configuration for this connection could not be built.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

impl Error {
    /// The typed reason when this side refused the peer.
    pub fn rejection(&self) -> Option<&PeerRejection> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }
}
