//! The reason text a peer refused in the handshake reads in the CONNECTION_CLOSE.
//!
//! quinn closes a failed handshake with CRYPTO_ERROR `0x100 + alert` and, as reason, the text of
//! the rustls error. For a certificate refusal that text is rustls' own rendering of its error
//! enum (`invalid peer certificate: Other(OtherError(..))`), not a reason. This wraps quinn's
//! rustls session and replaces the text with the refusal's [`PeerRejection::wire_reason`] (the
//! short reason of the table in `docs/evidence.md`); the code and the alert are rustls'.
//! Every other part of the session is quinn's, unchanged.

use std::any::Any;
use std::sync::Arc;

use quinn::crypto::{
    self, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, UnsupportedVersion,
};
use quinn::{ConnectError, ConnectionId, Side, TransportErrorCode};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::TransportError;

use crate::tls::{PeerRejection, PendingPeer};

/// TLS alert `certificate_required` (116): rustls refuses a client without a certificate before
/// any verifier runs.
const CERTIFICATE_REQUIRED: u8 = 116;

/// The reason a refused peer reads: the verifier's refusal, or "certificate required" when rustls
/// refused a missing client certificate; `None` for any other failure (rustls' text stays).
fn wire_reason(pending: &PendingPeer, error: &TransportError) -> Option<&'static str> {
    pending.wire_reason().or_else(|| {
        (error.code == TransportErrorCode::crypto(CERTIFICATE_REQUIRED))
            .then(|| PeerRejection::NoCertificate.wire_reason())
    })
}

/// quinn's server crypto for one incoming connection, with the refusal's reason on the wire.
pub(crate) struct ServerCrypto {
    inner: Arc<crypto::rustls::QuicServerConfig>,
    pending: PendingPeer,
}

impl ServerCrypto {
    pub(crate) fn new(inner: crypto::rustls::QuicServerConfig, pending: PendingPeer) -> Self {
        Self {
            inner: Arc::new(inner),
            pending,
        }
    }
}

impl crypto::ServerConfig for ServerCrypto {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.inner.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.inner.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn crypto::Session> {
        Box::new(Session {
            inner: Arc::clone(&self.inner).start_session(version, params),
            pending: self.pending.clone(),
        })
    }
}

/// quinn's client crypto for one dial, with the refusal's reason on the wire.
pub(crate) struct ClientCrypto {
    inner: Arc<crypto::rustls::QuicClientConfig>,
    pending: PendingPeer,
}

impl ClientCrypto {
    pub(crate) fn new(inner: crypto::rustls::QuicClientConfig, pending: PendingPeer) -> Self {
        Self {
            inner: Arc::new(inner),
            pending,
        }
    }
}

impl crypto::ClientConfig for ClientCrypto {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn crypto::Session>, ConnectError> {
        Ok(Box::new(Session {
            inner: Arc::clone(&self.inner).start_session(version, server_name, params)?,
            pending: self.pending.clone(),
        }))
    }
}

/// One connection's session: quinn's, with the close reason of a refusal replaced.
struct Session {
    inner: Box<dyn crypto::Session>,
    pending: PendingPeer,
}

impl crypto::Session for Session {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.inner.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        self.inner.read_handshake(buf).map_err(|mut error| {
            if let Some(reason) = wire_reason(&self.pending, &error) {
                error.reason = reason.to_owned();
            }
            error
        })
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        self.inner.write_handshake(buf)
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.inner.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}
