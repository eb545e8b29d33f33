//! Plain mutual-TLS material: Ed25519 self-signed certificates (rcgen), verifiers that accept
//! exactly one pinned peer certificate, and rustls configurations with resumption and 0-RTT off.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::NoServerSessionStorage;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// Server name the client asks for and the certificates carry.
pub const SERVER_NAME: &str = "localhost";

/// Padding extension OID, under IANA's enterprise number reserved for documentation (RFC 5612).
const PADDING_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 1];

/// The one crypto provider of the benchmark: ring, key exchange X25519 only.
pub fn provider() -> Arc<CryptoProvider> {
    let ring = rustls::crypto::ring::default_provider();
    Arc::new(CryptoProvider {
        kx_groups: vec![rustls::crypto::ring::kx_group::X25519],
        ..ring
    })
}

/// An Ed25519 key and its self-signed certificate.
pub struct Credential {
    /// DER certificate.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("cert_len", &self.cert.len())
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Generates a fresh key and a self-signed certificate for [`SERVER_NAME`]. With
    /// `padding > 0` the certificate carries a non-critical dummy extension holding an OCTET
    /// STRING of that many zero bytes, standing in for a quote.
    pub fn generate(padding: usize) -> Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
        if padding > 0 {
            let mut ext =
                rcgen::CustomExtension::from_oid_content(PADDING_OID, der_octet_string(padding));
            ext.set_criticality(false);
            params.custom_extensions.push(ext);
        }
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )
    }
}

/// DER OCTET STRING of `len` zero bytes.
fn der_octet_string(len: usize) -> Vec<u8> {
    let len_bytes = len.to_be_bytes();
    let significant: Vec<u8> = len_bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut out = vec![0x04];
    if len < 0x80 {
        out.extend_from_slice(&significant);
        if significant.is_empty() {
            out.push(0);
        }
    } else {
        // At most 8 length bytes for a usize, so the count fits 7 bits.
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(&significant);
    }
    out.resize(out.len() + len, 0);
    out
}

/// Accepts exactly one certificate, byte for byte, and checks TLS 1.3 signatures with it.
/// Counts the certificates it was asked to verify, so tests can prove every connection runs it.
#[derive(Debug)]
pub struct PinnedPeer {
    pinned: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
    checks: AtomicUsize,
}

impl PinnedPeer {
    /// A verifier for `pinned`, checking signatures with `provider`'s algorithms.
    pub fn new(pinned: CertificateDer<'static>, provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(Self {
            pinned,
            provider,
            checks: AtomicUsize::new(0),
        })
    }

    /// The one certificate this verifier accepts.
    pub fn pinned(&self) -> &CertificateDer<'static> {
        &self.pinned
    }

    /// How many peer certificates this verifier has checked, accepted or not.
    pub fn checks(&self) -> usize {
        self.checks.load(Ordering::Relaxed)
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), Error> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if intermediates.is_empty() && end_entity.as_ref() == self.pinned.as_ref() {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
    }

    fn tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ServerCertVerifier for PinnedPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for PinnedPeer {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// Client config: TLS 1.3 only, presents `own`, checks the server with `server` (a
/// [`PinnedPeer`]), resumption and 0-RTT off.
pub fn client_config(own: &Credential, server: Arc<PinnedPeer>) -> Result<rustls::ClientConfig> {
    let provider = server.provider.clone();
    let (chain, key) = own.chain_and_key();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server)
        .with_client_auth_cert(chain, key)
        .context("client certificate")?;
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    no_certificate_compression(&mut config.cert_compressors, &mut config.cert_decompressors);
    Ok(config)
}

/// Server config: TLS 1.3 only, presents `own`, requires a client certificate and checks it with
/// `client` (a [`PinnedPeer`]); no session storage, no tickets, no early data.
pub fn server_config(own: &Credential, client: Arc<PinnedPeer>) -> Result<rustls::ServerConfig> {
    let provider = client.provider.clone();
    let (chain, key) = own.chain_and_key();
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client)
        .with_single_cert(chain, key)
        .context("server certificate")?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    no_certificate_compression(&mut config.cert_compressors, &mut config.cert_decompressors);
    Ok(config)
}

/// The baselines keep the settings they were measured with before the crate turned on
/// certificate compression (rustls's `zlib` feature, unified across the workspace, would
/// otherwise compress their certificates too, and the zero padding of the quote-sized one to
/// almost nothing).
fn no_certificate_compression(
    compressors: &mut Vec<&'static dyn rustls::compress::CertCompressor>,
    decompressors: &mut Vec<&'static dyn rustls::compress::CertDecompressor>,
) {
    compressors.clear();
    decompressors.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_string_lengths_are_der() {
        assert_eq!(der_octet_string(0), vec![0x04, 0x00]);
        assert_eq!(der_octet_string(3), vec![0x04, 0x03, 0, 0, 0]);
        let long = der_octet_string(5000);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x13, 0x88]);
        assert_eq!(long.len(), 4 + 5000);
    }

    #[test]
    fn padded_certificate_grows_by_the_padding() {
        let plain = Credential::generate(0).unwrap();
        let padded = Credential::generate(5000).unwrap();
        assert!(padded.cert.len() > plain.cert.len() + 5000);
    }

    #[test]
    fn pinned_verifier_refuses_another_certificate() {
        let a = Credential::generate(0).unwrap();
        let b = Credential::generate(0).unwrap();
        let verifier = PinnedPeer::new(a.cert.clone(), provider());
        assert!(verifier.check(&a.cert, &[]).is_ok());
        assert!(verifier.check(&b.cert, &[]).is_err());
        assert!(verifier
            .check(&a.cert, std::slice::from_ref(&b.cert))
            .is_err());
    }
}
