use crate::evidence::EvidenceError;
use crate::tdx::QuoteProviderError;
use crate::tls::PeerRejection;

/// Why `connect` or `accept` produced no attested connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer does not serve the ALPN this side asked for (or, on the acceptor, the dialer
    /// asked for one this side does not serve): the connection was closed right after the
    /// handshake with [`crate::INVALID_ALPN`], before any bond proof.
    #[error(
        "ALPN {:?} not served (negotiated {:?})",
        String::from_utf8_lossy(requested),
        negotiated.as_deref().map(String::from_utf8_lossy)
    )]
    AlpnRefused {
        /// The ALPN asked for.
        requested: Vec<u8>,
        /// The ALPN the handshake settled on, if any.
        negotiated: Option<Vec<u8>>,
    },
    /// This side's bond report_data could not be computed.
    #[error("bond binding: {0}")]
    Binding(#[source] EvidenceError),
    /// This side made no bond quote: the peer is over its rate, the request waited too long, or
    /// the provider failed.
    #[error("bond quote: {0}")]
    BondQuote(#[from] super::BondQuoteError),
    /// Finishing this side's bond-proof stream failed.
    #[error("bond proof stream could not be finished: {0}")]
    BondStreamFinish(#[source] quinn::ClosedStream),
    /// Reading the peer's bond-proof stream failed (other than by a lost connection).
    #[error("reading the peer's bond proof: {0}")]
    BondStreamRead(#[source] quinn::ReadToEndError),
    /// Writing this side's bond proof failed (other than by a lost connection).
    #[error("writing the bond proof: {0}")]
    BondStreamWrite(#[source] quinn::WriteError),
    /// The bond proof exchange did not finish in time.
    #[error("bond proof exchange timed out")]
    BondTimeout,
    /// The TLS configuration offers no cipher suite QUIC can protect its Initial packets with.
    #[error("no QUIC initial cipher suite: {0}")]
    NoInitialCipherSuite(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    /// quinn refused to start the connection (bad address, endpoint closing).
    #[error("cannot start connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed; when the peer refused us, this carries its TLS alert
    /// or close reason.
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The bond formed but could not be recorded in the required evidence log.
    #[error("evidence log: {0}")]
    EvidenceLog(#[source] crate::evidence_log::SinkError),
    /// The TLS exporter of the connection was not available (the handshake did not complete).
    #[error("TLS exporter unavailable")]
    ExporterUnavailable,
    /// This side produced no quote for its bond proof.
    #[error("quote provider: {0}")]
    Provider(#[from] QuoteProviderError),
    /// This side refused the peer; the typed reason.
    #[error("peer refused: {0}")]
    Rejected(#[from] PeerRejection),
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
