//! rustls configurations for attested QUIC: TLS 1.3 only, Ed25519 certificates, mandatory
//! client certificates, no session resumption and no 0-RTT (a resumed handshake would skip the
//! verifiers).

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::compress::{CertCompressor, CertDecompressor, CompressionCache};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ConfigBuilder, ServerConfig, SignatureScheme, WantsVerifier};

use super::bond::Parties;
use super::peer::{CertifiedPeer, ExpectedPeer, PeerCheck};
use super::refusals::{RefusalCounts, RefusalLog};
use super::verifiers::{AttestedClientVerifier, AttestedServerVerifier, VerdictSlot};
use super::{BondFailure, PeerRejection};
use crate::evidence::{IssuedCertificate, Role};
use crate::identity::PeerId;
use crate::policy::{Policy, VerifiedQuote};
use crate::tdx::{CollateralStore, QuoteVerifier};

/// The ALPN protocol both sides require: bond proofs are single proofs (message version 1).
pub const ALPN: &[u8] = b"ratls-quic/1";

/// The ALPN protocol of a side that also takes batched bond proofs (message version 2). It is
/// offered before [`ALPN`]; a connection on which both sides offered it may carry batched
/// proofs, any other carries single proofs only (see [`AttestedTlsConfig::offer_batched_proofs`]).
pub const ALPN_BATCHED: &[u8] = b"ratls-quic/2";

/// The certificate this side presents, swapped in place when it is renewed. Resolving never
/// blocks on quote generation: it returns whatever is current.
#[derive(Debug)]
pub(crate) struct CertificateSlot(RwLock<Arc<CertifiedKey>>);

impl CertificateSlot {
    /// A slot holding `issued`.
    pub(crate) fn new(issued: &IssuedCertificate) -> Result<Self, rustls::Error> {
        Ok(Self(RwLock::new(certified_key(issued)?)))
    }

    /// Replaces the current certificate (renewal).
    pub(crate) fn replace(&self, issued: &IssuedCertificate) -> Result<(), rustls::Error> {
        let key = certified_key(issued)?;
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }

    /// The current certificate and key.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn certified_key(issued: &IssuedCertificate) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8) = &*issued.key_der else {
        return Err(rustls::Error::General("identity key is not PKCS#8".into()));
    };
    let key = crate::crypto::identity_signing_key(pkcs8)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![issued.cert_der.clone()],
        key,
    )))
}

impl ResolvesServerCert for CertificateSlot {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertificateSlot {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        sigschemes
            .contains(&SignatureScheme::ED25519)
            .then(|| self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The verdict of one connection's verifier, read once its handshake ended.
#[derive(Clone, Debug)]
pub struct PendingPeer(Arc<VerdictSlot>);

impl PendingPeer {
    /// What the verifier established about the peer. A handshake that completed without the
    /// verifier running is refused as [`PeerRejection::NoCertificate`]: never accept it.
    pub fn take(&self) -> Result<CertifiedPeer, PeerRejection> {
        self.0.take().unwrap_or(Err(PeerRejection::NoCertificate))
    }

    /// The identity the peer's certificate named, whether or not it was accepted (`None` when
    /// no certificate arrived or it could not be read).
    pub fn presented(&self) -> Option<PeerId> {
        self.0.presented()
    }

    /// The short reason the refused peer is told ([`PeerRejection::wire_reason`]), when the
    /// verifier ran and refused it; the typed rejection stays for [`Self::rejection`].
    pub fn wire_reason(&self) -> Option<&'static str> {
        self.0.wire_reason()
    }

    /// The typed rejection, when the verifier ran and refused the peer.
    pub fn rejection(&self) -> Option<PeerRejection> {
        match self.0.take() {
            Some(Err(rejection)) => Some(rejection),
            _ => None,
        }
    }
}

/// The attested TLS side of an endpoint: certificate, verifiers and bond judgement, for
/// [`crate::Endpoint`] or for a quinn endpoint of your own.
///
/// Built once per endpoint; each connection takes a configuration from [`Self::client`] or
/// [`Self::server`] whose verifier reports to that connection's [`PendingPeer`] (rustls gives a
/// verifier no connection of its own, so the verdict needs a configuration per connection; the
/// parts that cost are shared). After the handshake, the bond proof is judged with
/// [`Self::judge_bond`].
#[derive(Debug)]
pub struct AttestedTlsConfig {
    check: Arc<PeerCheck>,
    certs: Arc<CertificateSlot>,
    client: rustls::ClientConfig,
    server: ConfigBuilder<ServerConfig, WantsVerifier>,
    alpn: Vec<Vec<u8>>,
    refusals: Arc<RefusalLog>,
    /// This side's compressed certificate, shared by every per-connection configuration so
    /// that it is compressed once per certificate, not once per connection.
    compression: Arc<CompressionCache>,
}

/// RFC 8879 certificate compression, both ways: zlib only. A certificate carrying a ~5 KB
/// quote compresses to about 55% (brotli would save another ~10% for four more crates), which
/// keeps the server's first flight under QUIC's anti-amplification limit. rustls refuses a
/// compressed certificate that announces more than 64 KiB before allocating for it, and one
/// that decompresses to any other length than announced.
fn cert_compressors() -> Vec<&'static dyn CertCompressor> {
    vec![rustls::compress::ZLIB_COMPRESSOR]
}

fn cert_decompressors() -> Vec<&'static dyn CertDecompressor> {
    vec![rustls::compress::ZLIB_DECOMPRESSOR]
}

impl AttestedTlsConfig {
    /// Configurations presenting `certificate` and judging peers by `policy`, with
    /// `quote_verifier` and `collateral`. `local_attested` says whether this side presents
    /// quotes (in its certificate and its bond proofs): with both sides attested under per-bond
    /// freshness a peer reaches TdxRaTlsBidirectional, otherwise at most TdxLocal.
    pub fn new(
        policy: Arc<Policy>,
        quote_verifier: QuoteVerifier,
        collateral: Arc<dyn CollateralStore>,
        certificate: &IssuedCertificate,
        local_attested: bool,
    ) -> Result<Self, rustls::Error> {
        let check = Arc::new(PeerCheck::new(
            policy,
            quote_verifier,
            collateral,
            local_attested,
        ));
        let certs = Arc::new(CertificateSlot::new(certificate)?);
        let placeholder = Arc::new(AttestedServerVerifier::new(
            Arc::clone(&check),
            ExpectedPeer::AnyAllowedByPolicy,
            Arc::default(),
        ));
        let mut client = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(placeholder)
            .with_client_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesClientCert>);
        client.resumption = Resumption::disabled();
        client.enable_early_data = false;
        client.alpn_protocols = vec![ALPN.to_vec()];
        client.cert_compressors = cert_compressors();
        client.cert_decompressors = cert_decompressors();
        let server = ServerConfig::builder_with_provider(crate::crypto::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        Ok(Self {
            check,
            certs,
            client,
            server,
            alpn: vec![ALPN.to_vec()],
            refusals: Arc::default(),
            compression: Arc::new(CompressionCache::default()),
        })
    }

    /// Offers batched bond proofs: both sides list [`ALPN_BATCHED`] before [`ALPN`], so a peer
    /// that offers it too negotiates batched proofs and one that knows only single proofs
    /// negotiates [`ALPN`] and is sent single proofs. A side that offers it must accept both
    /// message versions (the judgement of [`Self::judge_bond`] does).
    pub fn offer_batched_proofs(mut self) -> Self {
        self.alpn = vec![ALPN_BATCHED.to_vec(), ALPN.to_vec()];
        self.client.alpn_protocols = self.alpn.clone();
        self
    }

    /// Whether a connection whose negotiated ALPN protocol is `protocol` takes batched proofs.
    pub fn batched_proofs_negotiated(protocol: Option<&[u8]>) -> bool {
        protocol == Some(ALPN_BATCHED)
    }

    /// A client configuration for one connection to `expected`.
    pub fn client(&self, expected: ExpectedPeer) -> (rustls::ClientConfig, PendingPeer) {
        let slot = Arc::new(VerdictSlot::counting(Arc::clone(&self.refusals)));
        let mut config = self.client.clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(AttestedServerVerifier::new(
                Arc::clone(&self.check),
                expected,
                Arc::clone(&slot),
            )));
        (config, PendingPeer(slot))
    }

    /// A server configuration for one incoming connection.
    pub fn server(&self) -> (ServerConfig, PendingPeer) {
        let slot = Arc::new(VerdictSlot::counting(Arc::clone(&self.refusals)));
        let mut config = self
            .server
            .clone()
            .with_client_cert_verifier(Arc::new(AttestedClientVerifier::new(
                Arc::clone(&self.check),
                Arc::clone(&slot),
            )))
            .with_cert_resolver(Arc::clone(&self.certs) as Arc<dyn ResolvesServerCert>);
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        config.max_early_data_size = 0;
        config.alpn_protocols = self.alpn.clone();
        config.cert_compressors = cert_compressors();
        config.cert_decompressors = cert_decompressors();
        config.cert_compression_cache = Arc::clone(&self.compression);
        (config, PendingPeer(slot))
    }

    /// Presents `certificate` from now on (renewal with the same key).
    pub fn renew(&self, certificate: &IssuedCertificate) -> Result<(), rustls::Error> {
        self.certs.replace(certificate)
    }

    /// The DER certificate this side currently presents.
    pub fn current_certificate(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        self.certs.current().cert.first().cloned()
    }

    /// How many peer certificates the verifiers of these configurations refused, by wire reason.
    /// Every refusal counts; the log carries at most one `warn` line per reason per
    /// [`crate::REFUSAL_LOG_INTERVAL_SECS`].
    pub fn refusal_counts(&self) -> RefusalCounts {
        self.refusals.counts()
    }

    /// How many peer certificates these configurations have judged: one per full handshake.
    pub fn handshake_checks(&self) -> u64 {
        self.check.checks_run()
    }

    /// Judges the peer's bond proof `message` on a connection whose TLS exporter (label
    /// [`crate::EXPORTER_LABEL`], empty context, 32 bytes) is `exporter`, at `now` (unix
    /// seconds). `local` is this side's identity and `role` its role on the connection.
    pub fn judge_bond(
        &self,
        role: Role,
        local: PeerId,
        peer: &CertifiedPeer,
        exporter: &[u8; 32],
        message: &[u8],
        now: u64,
    ) -> Result<Option<VerifiedQuote>, BondFailure> {
        let parties = Parties::new(role, local, peer.peer_id());
        let freshness = self.check.policy().freshness();
        self.check
            .judge_bond(freshness, parties, peer, exporter, message, now)
    }

    pub(crate) fn check(&self) -> &Arc<PeerCheck> {
        &self.check
    }
}
