//! `Link<P>`: one attested connection, one bidirectional stream, length-delimited frames.

use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use std::io;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quinn::{ConnectionError, ReadError, RecvStream, SendStream, WriteError};
use tokio_util::codec::length_delimited::LengthDelimitedCodecError;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::addr::EndpointAddr;
use super::close::{
    ApplicationClose, Cancelled, InvalidAlpn, ProtocolViolation, Success, UnexpectedClose,
};
use super::error::{AcceptError, CloseError, OpenError, RecvError, SendError};
use super::node::LocalNode;
use super::{Datum, Protocol};
use crate::endpoint::{AttestedConnection, PeerInfo};
use crate::identity::PeerId;

/// Largest frame a receiver accepts unless told otherwise ([`Link::set_max_frame_len`]): the
/// framing reserves memory for an announced frame before it arrives, so a peer must not be
/// able to announce gigabytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 << 20;

/// Largest frame the 4-byte length prefix can describe.
const MAX_SEND_FRAME_LEN: usize = u32::MAX as usize;

type Sender = FramedWrite<SendStream, LengthDelimitedCodec>;
type Receiver = FramedRead<RecvStream, LengthDelimitedCodec>;

/// 4-byte big-endian length, then the payload: `LengthDelimitedCodec`'s defaults, as mosaik
/// frames.
fn codec(max_frame_len: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_len)
        .new_codec()
}

/// A bidirectional, framed, typed channel to one attested peer over one QUIC connection and
/// one bidirectional stream, for protocol `P` (its ALPN). The shape of mosaik's
/// `network::link::Link`.
///
/// - The opener writes first: QUIC announces a stream with its first bytes, so
///   [`Link::accept`] returns once the opener's first frame (or just its stream) arrived.
/// - Frames are a 4-byte big-endian length and a payload; [`Link::send`] and [`Link::recv`]
///   encode payloads with [`Datum`] (postcard for serde types). A payload that does not decode
///   closes the link with [`ProtocolViolation`].
/// - Every operation stops when the link's [`CancellationToken`] is cancelled; the connection is
///   then closed with [`Cancelled`] and the operation returns its `Cancelled` error.
/// - The peer passed this crate's handshake verifiers and bond proof before the link exists:
///   [`Link::attestation`] says what was verified.
pub struct Link<P: Protocol> {
    connection: AttestedConnection,
    cancel: CancellationToken,
    sender: Sender,
    receiver: Receiver,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> Link<P> {
    /// Dials `remote` for `P::ALPN` and opens the link's stream, with a token of its own.
    pub async fn open(
        local: &LocalNode,
        remote: impl Into<EndpointAddr>,
    ) -> Result<Self, OpenError> {
        Self::open_with_cancel(local, remote, CancellationToken::new()).await
    }

    /// Dials `remote` for `P::ALPN` (attested handshake and bond proof, at the freshness the
    /// node routes `P::ALPN` with) and opens the link's stream. Cancelling `cancel` stops the
    /// dial, or closes the connection with [`Cancelled`] once it exists.
    pub async fn open_with_cancel(
        local: &LocalNode,
        remote: impl Into<EndpointAddr>,
        cancel: CancellationToken,
    ) -> Result<Self, OpenError> {
        let remote = remote.into();
        let Some(connection) = cancel
            .run_until_cancelled(local.connect(&remote, P::ALPN))
            .await
        else {
            return Err(OpenError::Cancelled);
        };
        let connection = connection?;
        let Some(opened) = cancel.run_until_cancelled(connection.open_bi()).await else {
            close_connection(&connection, Cancelled).await;
            return Err(OpenError::Cancelled);
        };
        let (send, recv) = match opened {
            Ok(streams) => streams,
            Err(error) => {
                close_connection(&connection, Cancelled).await;
                return Err(error.into());
            }
        };
        Ok(Self::new(connection, cancel, send, recv))
    }

    /// Takes the link's stream on an attested connection a router handed over, with a token of
    /// its own.
    pub async fn accept(connection: AttestedConnection) -> Result<Self, AcceptError> {
        Self::accept_with_cancel(connection, CancellationToken::new()).await
    }

    /// Takes the link's stream on an attested connection: waits for the opener's stream. A
    /// connection made for another ALPN is closed with [`InvalidAlpn`]. Cancelling `cancel`
    /// closes the connection with [`Cancelled`].
    pub async fn accept_with_cancel(
        connection: AttestedConnection,
        cancel: CancellationToken,
    ) -> Result<Self, AcceptError> {
        let alpn = connection.alpn().unwrap_or_default();
        if alpn != P::ALPN {
            if let Some(error) = close_connection(&connection, InvalidAlpn).await {
                return Err(error.into());
            }
            return Err(AcceptError::InvalidAlpn {
                expected: P::ALPN,
                received: alpn,
            });
        }
        let Some(accepted) = cancel.run_until_cancelled(connection.accept_bi()).await else {
            close_connection(&connection, Cancelled).await;
            return Err(AcceptError::Cancelled);
        };
        let (send, recv) = accepted?;
        Ok(Self::new(connection, cancel, send, recv))
    }

    fn new(
        connection: AttestedConnection,
        cancel: CancellationToken,
        send: SendStream,
        recv: RecvStream,
    ) -> Self {
        Self {
            connection,
            cancel,
            sender: FramedWrite::new(send, codec(MAX_SEND_FRAME_LEN)),
            receiver: FramedRead::new(recv, codec(DEFAULT_MAX_FRAME_LEN)),
            _protocol: PhantomData,
        }
    }

    /// Puts the halves of [`Self::split`] back together.
    ///
    /// # Panics
    ///
    /// When the halves come from different connections (a programming error); see
    /// [`Self::try_join`].
    pub fn join(sender: LinkSender<P>, receiver: LinkReceiver<P>) -> Self {
        match Self::try_join(sender, receiver) {
            Ok(link) => link,
            Err(_) => panic!("sender and receiver must belong to the same connection"),
        }
    }

    /// Puts the halves of [`Self::split`] back together; gives them back when they come from
    /// different connections. The sender's token becomes the link's.
    #[allow(clippy::result_large_err)]
    pub fn try_join(
        sender: LinkSender<P>,
        receiver: LinkReceiver<P>,
    ) -> Result<Self, (LinkSender<P>, LinkReceiver<P>)> {
        if sender.connection.stable_id() != receiver.connection.stable_id() {
            return Err((sender, receiver));
        }
        Ok(Self {
            connection: sender.connection,
            cancel: sender.cancel,
            sender: sender.sender,
            receiver: receiver.receiver,
            _protocol: PhantomData,
        })
    }

    /// Splits the link into a sending and a receiving half (each with the link's token), to
    /// use from two tasks.
    pub fn split(self) -> (LinkSender<P>, LinkReceiver<P>) {
        (
            LinkSender {
                connection: self.connection.clone(),
                cancel: self.cancel.clone(),
                sender: self.sender,
                _protocol: PhantomData,
            },
            LinkReceiver {
                connection: self.connection,
                cancel: self.cancel,
                receiver: self.receiver,
                _protocol: PhantomData,
            },
        )
    }

    /// The protocol's ALPN.
    pub const fn alpn(&self) -> &'static [u8] {
        P::ALPN
    }

    /// The peer's identity.
    pub fn remote_id(&self) -> PeerId {
        self.connection.peer().peer_id()
    }

    /// The attested connection (dereferences to `quinn::Connection`).
    pub const fn connection(&self) -> &AttestedConnection {
        &self.connection
    }

    /// What was verified about the peer: level, Measurements, quote digests.
    pub fn attestation(&self) -> &PeerInfo {
        self.connection.peer()
    }

    /// Whether the link's token is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Replaces the link's token (to tie an accepted link to a narrower scope).
    pub fn replace_cancel_token(&mut self, cancel: CancellationToken) {
        self.cancel = cancel;
    }

    /// Sets the largest frame this side accepts (default [`DEFAULT_MAX_FRAME_LEN`]). A longer
    /// announced frame fails [`Self::recv`] with [`RecvError::FrameTooLarge`].
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.receiver.decoder_mut().set_max_frame_length(max);
    }

    /// Receives the next frame as a `D`.
    pub async fn recv<D: Datum>(&mut self) -> Result<D, RecvError> {
        self.recv_with_size().await.map(|(datum, _)| datum)
    }

    /// Receives the next frame as a `D`, with the frame's payload length.
    pub async fn recv_with_size<D: Datum>(&mut self) -> Result<(D, usize), RecvError> {
        recv_frame(&self.connection, &self.cancel, &mut self.receiver).await
    }

    /// Encodes `datum` and sends it as one frame; returns the payload length.
    pub async fn send<D: Datum>(&mut self, datum: &D) -> Result<usize, SendError> {
        let bytes = datum.encode().map_err(|e| SendError::Encode(Box::new(e)))?;
        self.send_raw(bytes).await
    }

    /// Sends `bytes` as one frame, unencoded: the caller vouches they are what the peer
    /// expects. (mosaik marks this `unsafe`; nothing here is memory-unsafe, so it is a plain
    /// function, and an `unsafe { }` around a call only draws an `unused_unsafe` warning.)
    pub async fn send_raw(&mut self, bytes: Bytes) -> Result<usize, SendError> {
        send_frame(&self.connection, &self.cancel, &mut self.sender, bytes).await
    }

    /// Closes the link with `reason` and waits until the connection is closed. Fails with
    /// [`CloseError::AlreadyClosed`] when the peer or the transport closed it before.
    pub async fn close(mut self, reason: impl Into<ApplicationClose>) -> Result<(), CloseError> {
        if let Some(existing) = self.connection.close_reason() {
            return Err(CloseError::AlreadyClosed(existing));
        }
        let _ = self
            .cancel
            .run_until_cancelled(SinkExt::<Bytes>::flush(&mut self.sender))
            .await;
        let reason: ApplicationClose = reason.into();
        self.connection.close(reason.error_code, &reason.reason);
        match self
            .cancel
            .run_until_cancelled(self.connection.closed())
            .await
        {
            None => Err(CloseError::Cancelled),
            Some(ConnectionError::LocallyClosed) => Ok(()),
            Some(other) => Err(CloseError::UnexpectedReason(other)),
        }
    }

    /// A future, detached from the link, that ends when the connection closes: `Ok` for a
    /// local close, a [`Success`] close by the peer, or a cancelled token; the error otherwise.
    pub fn closed(
        &self,
    ) -> impl Future<Output = Result<(), ConnectionError>> + Send + Sync + 'static {
        let cancel = self.cancel.clone();
        let connection = self.connection.clone();
        async move {
            match cancel.run_until_cancelled(connection.closed()).await {
                None | Some(ConnectionError::LocallyClosed) => Ok(()),
                Some(ConnectionError::ApplicationClosed(reason)) if reason == Success => Ok(()),
                Some(error) => Err(error),
            }
        }
    }

    /// 32 bytes both peers derive alike from this connection's TLS secrets (RFC 5705/8446
    /// exporter with `label` and the ALPN as context): equal on both sides, different for
    /// every connection and label.
    pub fn shared_random(&self, label: impl AsRef<[u8]>) -> [u8; 32] {
        let mut out = [0u8; 32];
        // Invariant: TLS 1.3 exporters fail only for outputs longer than 255 hash lengths.
        self.connection
            .export_keying_material(&mut out, label.as_ref(), P::ALPN)
            .unwrap_or_else(|_| unreachable!("32-byte exporter output"));
        out
    }
}

impl<P: Protocol> fmt::Debug for Link<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("alpn", &String::from_utf8_lossy(P::ALPN))
            .field("remote_id", &self.remote_id())
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> fmt::Display for Link<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Link<{}:{:?}>",
            String::from_utf8_lossy(P::ALPN),
            self.remote_id()
        )
    }
}

/// The sending half of a [`Link`].
pub struct LinkSender<P: Protocol> {
    connection: AttestedConnection,
    cancel: CancellationToken,
    sender: Sender,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> LinkSender<P> {
    /// As [`Link::send`].
    pub async fn send<D: Datum>(&mut self, datum: &D) -> Result<usize, SendError> {
        let bytes = datum.encode().map_err(|e| SendError::Encode(Box::new(e)))?;
        self.send_raw(bytes).await
    }

    /// As [`Link::send_raw`].
    pub async fn send_raw(&mut self, bytes: Bytes) -> Result<usize, SendError> {
        send_frame(&self.connection, &self.cancel, &mut self.sender, bytes).await
    }

    /// The peer's identity.
    pub fn remote_id(&self) -> PeerId {
        self.connection.peer().peer_id()
    }

    /// The attested connection.
    pub const fn connection(&self) -> &AttestedConnection {
        &self.connection
    }
}

impl<P: Protocol> fmt::Debug for LinkSender<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSender")
            .field("alpn", &String::from_utf8_lossy(P::ALPN))
            .field("remote_id", &self.remote_id())
            .finish_non_exhaustive()
    }
}

/// The receiving half of a [`Link`].
pub struct LinkReceiver<P: Protocol> {
    connection: AttestedConnection,
    cancel: CancellationToken,
    receiver: Receiver,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> LinkReceiver<P> {
    /// As [`Link::recv`].
    pub async fn recv<D: Datum>(&mut self) -> Result<D, RecvError> {
        self.recv_with_size().await.map(|(datum, _)| datum)
    }

    /// As [`Link::recv_with_size`].
    pub async fn recv_with_size<D: Datum>(&mut self) -> Result<(D, usize), RecvError> {
        recv_frame(&self.connection, &self.cancel, &mut self.receiver).await
    }

    /// As [`Link::set_max_frame_len`].
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.receiver.decoder_mut().set_max_frame_length(max);
    }

    /// The peer's identity.
    pub fn remote_id(&self) -> PeerId {
        self.connection.peer().peer_id()
    }

    /// The attested connection.
    pub const fn connection(&self) -> &AttestedConnection {
        &self.connection
    }
}

impl<P: Protocol> fmt::Debug for LinkReceiver<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkReceiver")
            .field("alpn", &String::from_utf8_lossy(P::ALPN))
            .field("remote_id", &self.remote_id())
            .finish_non_exhaustive()
    }
}

async fn recv_frame<D: Datum>(
    connection: &AttestedConnection,
    cancel: &CancellationToken,
    receiver: &mut Receiver,
) -> Result<(D, usize), RecvError> {
    let Some(frame) = cancel.run_until_cancelled(receiver.next()).await else {
        close_connection(connection, Cancelled).await;
        return Err(RecvError::Cancelled);
    };
    let Some(read) = frame else {
        // The peer finished its stream without closing the connection.
        return Err(match close_connection(connection, UnexpectedClose).await {
            Some(error) => error.into(),
            None => RecvError::closed(UnexpectedClose),
        });
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(error) => {
            let max = receiver.decoder().max_frame_length();
            return Err(read_error(connection, error, max).await);
        }
    };
    match D::decode(&bytes) {
        Ok(datum) => Ok((datum, bytes.len())),
        Err(error) => {
            close_connection(connection, ProtocolViolation).await;
            Err(RecvError::Decode(Box::new(error)))
        }
    }
}

async fn read_error(connection: &AttestedConnection, error: io::Error, max: usize) -> RecvError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
    {
        close_connection(connection, ProtocolViolation).await;
        return RecvError::FrameTooLarge { max };
    }
    match error.downcast::<ReadError>() {
        Ok(read) => RecvError::Io(read),
        Err(other) => RecvError::Unknown(other),
    }
}

async fn send_frame(
    connection: &AttestedConnection,
    cancel: &CancellationToken,
    sender: &mut Sender,
    bytes: Bytes,
) -> Result<usize, SendError> {
    let len = bytes.len();
    let Some(sent) = cancel.run_until_cancelled(sender.send(bytes)).await else {
        close_connection(connection, Cancelled).await;
        return Err(SendError::Cancelled);
    };
    match sent {
        Ok(()) => Ok(len),
        Err(error) => match error.downcast::<WriteError>() {
            Ok(write) => Err(SendError::Io(write)),
            Err(other) => Err(SendError::Unknown(other)),
        },
    }
}

/// Closes `connection` with `reason` and waits for it; the earlier close reason when the
/// connection was already closed otherwise.
async fn close_connection(
    connection: &quinn::Connection,
    reason: impl Into<ApplicationClose>,
) -> Option<ConnectionError> {
    let reason = reason.into();
    connection.close(reason.error_code, &reason.reason);
    match connection.closed().await {
        ConnectionError::LocallyClosed => None,
        error => Some(error),
    }
}

/// Closes `connection` with [`InvalidAlpn`] without waiting.
pub(super) fn close_invalid_alpn(connection: &quinn::Connection) {
    let reason: ApplicationClose = InvalidAlpn.into();
    connection.close(reason.error_code, &reason.reason);
}
