//! Link errors: the variants of mosaik's link errors, with `close_reason()` and `is_cancelled()`
//! accessors, plus what attestation and addressing add.

use std::io;

use quinn::{ConnectionError, ReadError, WriteError};

use super::addr::AddressError;
use super::close::ApplicationClose;
use crate::endpoint::{Error as EndpointError, RouteError};

/// The application close in a connection error, when the peer (or this side) closed with one.
fn application_close(error: &ConnectionError) -> Option<&ApplicationClose> {
    match error {
        ConnectionError::ApplicationClosed(reason) => Some(reason),
        _ => None,
    }
}

/// Boxed encoding or decoding failure of a [`super::Datum`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any link operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Opening failed.
    #[error("{0}")]
    Open(OpenError),
    /// Accepting failed.
    #[error("{0}")]
    Accept(AcceptError),
    /// Receiving failed.
    #[error("{0}")]
    Recv(RecvError),
    /// Sending failed.
    #[error("{0}")]
    Write(SendError),
    /// Closing failed.
    #[error("{0}")]
    Close(CloseError),
    /// The operation was cancelled.
    #[error("Operation cancelled")]
    Cancelled,
}

/// Opening a link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The attested connection failed: the handshake or the bond proof was refused (by either
    /// side; this side's typed reason is in [`EndpointError::Rejected`]), the peer closed, or
    /// the peer does not serve the ALPN ([`EndpointError::AlpnRefused`]).
    #[error("{0}")]
    Io(#[from] EndpointError),
    /// The remote address cannot be dialed (no direct address, relay only).
    #[error("{0}")]
    Address(#[from] AddressError),
    /// The protocol's ALPN cannot be routed.
    #[error("{0}")]
    Route(#[from] RouteError),
    /// The open was cancelled.
    #[error("Operation cancelled")]
    Cancelled,
}

/// Accepting a link on an attested connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The connection failed or was closed.
    #[error("{0}")]
    Io(#[from] ConnectionError),
    /// The connection was made for another ALPN; it was closed with
    /// [`InvalidAlpn`](super::close::InvalidAlpn).
    #[error("Invalid ALPN: expected {expected:?}, received {received:?}")]
    InvalidAlpn {
        /// The ALPN of the protocol accepting.
        expected: &'static [u8],
        /// The ALPN of the connection.
        received: Vec<u8>,
    },
    /// The accept was cancelled.
    #[error("Operation cancelled")]
    Cancelled,
    /// A protocol handler failed after the link was accepted (see [`AcceptError::from_err`]).
    #[error("{0}")]
    Handler(BoxError),
}

/// Receiving from a link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The stream or connection failed.
    #[error("{0}")]
    Io(#[from] ReadError),
    /// A frame arrived but is not a valid value of the expected type; the link was closed with
    /// [`ProtocolViolation`](super::close::ProtocolViolation).
    #[error("{0}")]
    Decode(BoxError),
    /// A frame longer than the receiver's limit was announced; the link was closed with
    /// [`ProtocolViolation`](super::close::ProtocolViolation) before reading it.
    #[error("frame longer than {max} bytes")]
    FrameTooLarge {
        /// The receiver's limit.
        max: usize,
    },
    /// Another I/O failure of the framing layer.
    #[error("{0}")]
    Unknown(io::Error),
    /// The receive was cancelled; the link was closed with
    /// [`Cancelled`](super::close::Cancelled).
    #[error("Operation cancelled")]
    Cancelled,
}

/// Sending on a link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The value could not be encoded.
    #[error("{0}")]
    Encode(BoxError),
    /// The stream or connection failed.
    #[error("{0}")]
    Io(#[from] WriteError),
    /// Another I/O failure of the framing layer (a frame of 4 GiB or more).
    #[error("{0}")]
    Unknown(io::Error),
    /// The send was cancelled; the link was closed with
    /// [`Cancelled`](super::close::Cancelled).
    #[error("Operation cancelled")]
    Cancelled,
}

/// Closing a link did not end as a local close.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// The link was closed before (by the peer, or by the transport).
    #[error("{0}")]
    AlreadyClosed(ConnectionError),
    /// The connection ended for another reason than this side's close.
    #[error("{0}")]
    UnexpectedReason(ConnectionError),
    /// Waiting for the close was cancelled.
    #[error("Operation cancelled")]
    Cancelled,
}

impl From<ApplicationClose> for RecvError {
    fn from(reason: ApplicationClose) -> Self {
        Self::Io(ReadError::ConnectionLost(
            ConnectionError::ApplicationClosed(reason),
        ))
    }
}

impl From<ConnectionError> for RecvError {
    fn from(error: ConnectionError) -> Self {
        Self::Io(ReadError::ConnectionLost(error))
    }
}

impl From<ConnectionError> for SendError {
    fn from(error: ConnectionError) -> Self {
        Self::Io(WriteError::ConnectionLost(error))
    }
}

impl From<ApplicationClose> for AcceptError {
    fn from(reason: ApplicationClose) -> Self {
        Self::Io(ConnectionError::ApplicationClosed(reason))
    }
}

impl From<ConnectionError> for OpenError {
    fn from(error: ConnectionError) -> Self {
        Self::Io(EndpointError::Connection(error))
    }
}

impl RecvError {
    /// A receive error for a link closed with `reason`.
    pub fn closed(reason: impl Into<ApplicationClose>) -> Self {
        Self::from(reason.into())
    }

    /// The application close, when the connection was closed with one.
    pub fn close_reason(&self) -> Option<&ApplicationClose> {
        match self {
            Self::Io(ReadError::ConnectionLost(error)) => application_close(error),
            _ => None,
        }
    }

    /// Whether this side cancelled the operation.
    pub const fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }
}

impl SendError {
    /// The application close, when the connection was closed with one.
    pub fn close_reason(&self) -> Option<&ApplicationClose> {
        match self {
            Self::Io(WriteError::ConnectionLost(error)) => application_close(error),
            _ => None,
        }
    }

    /// Whether this side cancelled the operation.
    pub const fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }
}

impl AcceptError {
    /// Wraps any error of a protocol handler, as iroh's `AcceptError::from_err` does for
    /// mosaik's handlers.
    pub fn from_err(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Handler(Box::new(error))
    }

    /// The application close, when the connection was closed with one.
    pub fn close_reason(&self) -> Option<&ApplicationClose> {
        match self {
            Self::Io(error) => application_close(error),
            _ => None,
        }
    }

    /// Whether this side cancelled the operation.
    pub const fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }
}

impl OpenError {
    /// The application close, when the connection was closed with one (by the peer: its
    /// [`InvalidAlpn`](super::close::InvalidAlpn), its bond refusal, or any other reason).
    pub fn close_reason(&self) -> Option<&ApplicationClose> {
        match self {
            Self::Io(EndpointError::Connection(error)) => application_close(error),
            _ => None,
        }
    }

    /// Whether this side cancelled the operation.
    pub const fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }

    /// Whether the peer does not serve the protocol's ALPN: either side found it right after
    /// the handshake and closed with [`InvalidAlpn`](super::close::InvalidAlpn).
    pub fn is_invalid_alpn(&self) -> bool {
        match self {
            Self::Io(EndpointError::AlpnRefused { .. }) => true,
            _ => self
                .close_reason()
                .is_some_and(|close| close == super::close::InvalidAlpn),
        }
    }
}

impl CloseError {
    /// The application close, when the connection ended with one.
    pub fn close_reason(&self) -> Option<&ApplicationClose> {
        match self {
            Self::UnexpectedReason(error) => application_close(error),
            _ => None,
        }
    }

    /// Whether this side cancelled the operation.
    pub const fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }

    /// Whether the link was closed before `close` was called.
    pub const fn was_already_closed(&self) -> bool {
        matches!(self, Self::AlreadyClosed(_))
    }
}

impl LinkError {
    /// Whether this side cancelled the operation.
    pub const fn is_cancelled(&self) -> bool {
        match self {
            Self::Open(error) => error.is_cancelled(),
            Self::Accept(error) => error.is_cancelled(),
            Self::Recv(error) => error.is_cancelled(),
            Self::Write(error) => error.is_cancelled(),
            Self::Close(error) => error.is_cancelled(),
            Self::Cancelled => true,
        }
    }

    /// The application close, when the connection ended with one.
    pub fn close_reason(&self) -> Option<&ApplicationClose> {
        match self {
            Self::Open(error) => error.close_reason(),
            Self::Accept(error) => error.close_reason(),
            Self::Recv(error) => error.close_reason(),
            Self::Write(error) => error.close_reason(),
            Self::Close(error) => error.close_reason(),
            Self::Cancelled => None,
        }
    }
}

macro_rules! into_link_error {
    ($from:ident, $variant:ident) => {
        impl From<$from> for LinkError {
            fn from(error: $from) -> Self {
                if error.is_cancelled() {
                    Self::Cancelled
                } else {
                    Self::$variant(error)
                }
            }
        }
    };
}

into_link_error!(OpenError, Open);
into_link_error!(AcceptError, Accept);
into_link_error!(RecvError, Recv);
into_link_error!(SendError, Write);
into_link_error!(CloseError, Close);

impl From<tokio::time::error::Elapsed> for LinkError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        Self::Cancelled
    }
}
