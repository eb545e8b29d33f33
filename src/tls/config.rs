//! rustls configurations for attested QUIC: TLS 1.3 only, Ed25519 certificates, mandatory
//! client certificates, no session resumption and no 0-RTT (a resumed handshake would skip the
//! verifiers).

use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::peer::{ExpectedPeer, PeerCheck};
use super::verifiers::{AttestedClientVerifier, AttestedServerVerifier, VerdictSlot};
use crate::evidence::IssuedCertificate;

/// The ALPN protocol both sides require.
pub const ALPN: &[u8] = b"ratls-quic/1";

/// The one crypto provider of the whole stack (ring).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The certificate this side presents, swapped in place when it is renewed. Resolving never
/// blocks on quote generation: it returns whatever is current.
#[derive(Debug)]
pub struct CertificateSlot(RwLock<Arc<CertifiedKey>>);

impl CertificateSlot {
    /// A slot holding `issued`.
    pub fn new(issued: &IssuedCertificate) -> Result<Self, rustls::Error> {
        Ok(Self(RwLock::new(certified_key(issued)?)))
    }

    /// Replaces the current certificate (renewal).
    pub fn replace(&self, issued: &IssuedCertificate) -> Result<(), rustls::Error> {
        let key = certified_key(issued)?;
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }

    /// The current certificate and key.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn certified_key(issued: &IssuedCertificate) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8) = &issued.key_der else {
        return Err(rustls::Error::General("identity key is not PKCS#8".into()));
    };
    let key = rustls::crypto::ring::sign::any_eddsa_type(pkcs8)?;
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

/// A client configuration for one connection; the server verifier's verdict lands in `slot`.
pub fn client_config(
    check: Arc<PeerCheck>,
    certs: Arc<CertificateSlot>,
    expected: ExpectedPeer,
    slot: Arc<VerdictSlot>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AttestedServerVerifier::new(
            check, expected, slot,
        )))
        .with_client_cert_resolver(certs);
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// A server configuration for one connection; the client verifier's verdict lands in `slot`.
pub fn server_config(
    check: Arc<PeerCheck>,
    certs: Arc<CertificateSlot>,
    slot: Arc<VerdictSlot>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AttestedClientVerifier::new(check, slot)))
        .with_cert_resolver(certs);
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}
