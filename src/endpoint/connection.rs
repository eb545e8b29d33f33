use core::ops::Deref;

use crate::evidence::BatchPosition;
use crate::identity::PeerId;
use crate::level::AttestationLevel;
use crate::policy::VerifiedQuote;
use crate::tdx::{Measurements, TcbStatus};

/// What this side verified about the peer of an [`AttestedConnection`].
#[derive(Clone, Debug)]
pub struct PeerInfo {
    peer_id: PeerId,
    level: AttestationLevel,
    cert_quote: Option<VerifiedQuote>,
    bond_quote: Option<VerifiedQuote>,
    bond_batch: Option<BatchPosition>,
    not_after: u64,
}

impl PeerInfo {
    pub(crate) fn new(
        peer_id: PeerId,
        level: AttestationLevel,
        cert_quote: Option<VerifiedQuote>,
        bond_quote: Option<VerifiedQuote>,
        cert_not_after: u64,
    ) -> Self {
        let not_after = [&cert_quote, &bond_quote]
            .into_iter()
            .flatten()
            .filter_map(|quote| quote.valid_until())
            // The verification window excludes its end second; a certificate's includes it.
            .map(|until| until.saturating_sub(1))
            .fold(cert_not_after, u64::min);
        Self {
            peer_id,
            level,
            cert_quote,
            bond_quote,
            bond_batch: None,
            not_after,
        }
    }

    /// The last second (unix) at which everything this bond was admitted on still holds: the
    /// earliest of the peer certificate's `not_after` and, for an attested peer, the end of its
    /// quotes' verification ([`crate::AuthenticQuote::valid_until`]: the PCK leaf and the other
    /// certificates, the collateral's next updates). After it the endpoint closes the
    /// connection with [`crate::EVIDENCE_EXPIRED`] unless configured otherwise
    /// ([`crate::PeerExpiry`]).
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// Records where this bond's leaf sits in the batch its bond quote served.
    pub(crate) fn with_batch(mut self, batch: Option<BatchPosition>) -> Self {
        self.bond_batch = batch;
        self
    }

    /// The peer's identity (its Ed25519 public key).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The level the bond reached.
    pub fn level(&self) -> AttestationLevel {
        self.level
    }

    /// The peer's verified Measurements; `None` for a Software peer.
    pub fn measurements(&self) -> Option<&Measurements> {
        self.cert_quote.as_ref().map(|q| q.measurements())
    }

    /// The peer platform's TCB status; `None` for a Software peer.
    pub fn tcb_status(&self) -> Option<TcbStatus> {
        self.cert_quote.as_ref().map(|q| q.tcb_status())
    }

    /// blake3 of the quote that admitted this bond: the bond proof's quote under per-bond
    /// freshness, the certificate's otherwise; `None` for a Software peer.
    pub fn quote_digest(&self) -> Option<&[u8; 32]> {
        self.bond_quote
            .as_ref()
            .or(self.cert_quote.as_ref())
            .map(|q| q.quote_digest())
    }

    /// The verified quote from the peer's certificate.
    pub fn certificate_quote(&self) -> Option<&VerifiedQuote> {
        self.cert_quote.as_ref()
    }

    /// The verified bond-proof quote (per-bond freshness).
    pub fn bond_quote(&self) -> Option<&VerifiedQuote> {
        self.bond_quote.as_ref()
    }

    /// When the bond quote served a batch of bonds: this bond's leaf index, the leaf count and
    /// the audit path. With the quote, both identities, the role and the connection's exporter,
    /// an auditor re-verifies the binding the same way ([`crate::verify_batch_binding`]); a
    /// quote digest alone no longer names one bond. `None` for a single proof.
    pub fn bond_batch(&self) -> Option<&BatchPosition> {
        self.bond_batch.as_ref()
    }
}

/// A QUIC connection whose peer passed the handshake verifiers and, where required, the bond
/// proof. Dereferences to [`quinn::Connection`] for streams and datagrams.
#[derive(Clone, Debug)]
pub struct AttestedConnection {
    inner: quinn::Connection,
    peer: PeerInfo,
}

impl AttestedConnection {
    pub(crate) fn new(inner: quinn::Connection, peer: PeerInfo) -> Self {
        Self { inner, peer }
    }

    /// What was verified about the peer.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// The underlying QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.inner
    }

    /// See [`PeerInfo::not_after`].
    pub fn not_after(&self) -> u64 {
        self.peer.not_after()
    }

    /// The peer's identity (the name iroh's `Connection::remote_id` gives it).
    pub fn remote_id(&self) -> PeerId {
        self.peer.peer_id()
    }

    /// The ALPN the handshake settled on.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        super::alpn::negotiated(&self.inner)
    }

    /// Gives up the attestation facts and returns the QUIC connection.
    pub fn into_inner(self) -> quinn::Connection {
        self.inner
    }
}

impl Deref for AttestedConnection {
    type Target = quinn::Connection;

    fn deref(&self) -> &quinn::Connection {
        &self.inner
    }
}
