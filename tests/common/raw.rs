//! Peers that do not go through `Endpoint`: plain rustls + quinn clients, and quinn endpoints
//! serving or dialing with certificates built by hand (wrong binding, past validity, unknown
//! evidence version). They stand in for misbehaving or non-attested peers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, PKCS_ED25519};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

use ratls_quic::AttestationLevel;
use ratls_quic::{
    certificate_report_data, ed25519_spki_der, issue_certificate, spki_sha256, IssuedCertificate,
    EVIDENCE_OID, INTEL_TEE_QUOTE_TAG,
};
use ratls_quic::{AttestedTlsConfig, ExpectedPeer, PendingPeer, ALPN};
use ratls_quic::{Identity, PeerId};
use ratls_quic::{Measurements, QuoteProvider};

use super::{policy, provider, verifier};

/// SNI the attested endpoints send; it carries nothing.
pub const SERVER_NAME: &str = "ratls.invalid";

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A certificate for `identity` whose quote (with `measurements`) binds the certificate
/// report_data of `bound_to` over this validity. `bound_to == identity.peer_id()` gives an
/// honest certificate; anything else, a quote bound to another key.
pub fn attested_certificate(
    identity: &Identity,
    bound_to: PeerId,
    not_before: u64,
    not_after: u64,
    measurements: Measurements,
) -> IssuedCertificate {
    let report_data = certificate_report_data(&bound_to, not_before, not_after).unwrap();
    let quote = provider(measurements).quote(&report_data).unwrap();
    issue_certificate(
        identity,
        not_before,
        not_after,
        Some((AttestationLevel::TdxLocal, &quote)),
    )
    .unwrap()
}

/// The evidence extension value of `src/evidence/extension.rs`, written out by hand with any
/// claims version: `60000([quote, << {"ratls-quic": <<[version, level]>>,
/// "pubkey-hash": <<[1, sha256(spki)]>>} >>])`.
pub fn evidence_value(version: u64, level_code: u64, quote: &[u8], spki_der: &[u8]) -> Vec<u8> {
    let mut ratls = Vec::new();
    cbor_head(&mut ratls, 4, 2);
    cbor_head(&mut ratls, 0, version);
    cbor_head(&mut ratls, 0, level_code);

    let mut hash_entry = Vec::new();
    cbor_head(&mut hash_entry, 4, 2);
    cbor_head(&mut hash_entry, 0, 1);
    cbor_bytes(&mut hash_entry, &spki_sha256(spki_der));

    let mut claims = Vec::new();
    cbor_head(&mut claims, 5, 2);
    cbor_text(&mut claims, "ratls-quic");
    cbor_bytes(&mut claims, &ratls);
    cbor_text(&mut claims, "pubkey-hash");
    cbor_bytes(&mut claims, &hash_entry);

    let mut out = Vec::new();
    cbor_head(&mut out, 6, INTEL_TEE_QUOTE_TAG);
    cbor_head(&mut out, 4, 2);
    cbor_bytes(&mut out, quote);
    cbor_bytes(&mut out, &claims);
    out
}

fn cbor_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    match value {
        0..=23 => out.push(m | value as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, value as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

fn cbor_bytes(out: &mut Vec<u8>, value: &[u8]) {
    cbor_head(out, 2, value.len() as u64);
    out.extend_from_slice(value);
}

fn cbor_text(out: &mut Vec<u8>, value: &str) {
    cbor_head(out, 3, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// A certificate shaped like the ones `issue_certificate` makes (self-signed by `identity`,
/// CN "ratls", non-critical evidence extension) but carrying `extension` verbatim.
pub fn certificate_with_extension(
    identity: &Identity,
    not_before: u64,
    not_after: u64,
    extension: Vec<u8>,
) -> IssuedCertificate {
    let mut params = CertificateParams::default();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before as i64).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after as i64).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "ratls");
    let mut ext = CustomExtension::from_oid_content(EVIDENCE_OID, extension);
    ext.set_criticality(false);
    params.custom_extensions.push(ext);
    let key_der = identity.private_key_der().unwrap();
    let PrivateKeyDer::Pkcs8(pkcs8) = &*key_der else {
        panic!("identity key is PKCS#8");
    };
    let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.secret_pkcs8_der()),
        &PKCS_ED25519,
    )
    .unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    IssuedCertificate {
        cert_der: cert.der().clone(),
        key_der,
    }
}

/// A plain rcgen Ed25519 self-signed certificate, no evidence, valid for the next hour.
pub fn plain_certificate() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let now = unix_now() as i64;
    plain_certificate_valid(Some((now - 60, now + 3600)))
}

/// A plain rcgen Ed25519 self-signed certificate, no evidence, with this validity (unix
/// seconds), or rcgen's default (1975 to 4096) with `None`.
pub fn plain_certificate_valid(
    validity: Option<(i64, i64)>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key_pair = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut params = CertificateParams::new(vec!["plain.invalid".to_owned()]).unwrap();
    if let Some((not_before, not_after)) = validity {
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    }
    let cert = params.self_signed(&key_pair).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    (cert.der().clone(), key)
}

/// Accepts any server certificate (the plain client checks nothing but the TLS signature).
#[derive(Debug)]
pub struct AcceptAnyServer;

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How a plain client authenticates itself.
pub enum ClientAuth {
    /// No client certificate at all.
    None,
    /// This certificate and key.
    Certificate(CertificateDer<'static>, PrivateKeyDer<'static>),
}

/// A plain rustls client configuration (TLS 1.3, ALPN of the transport, no verification of the
/// server): what a stock rustls + quinn client looks like.
pub fn plain_client_config(auth: ClientAuth) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnyServer));
    let mut config = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Certificate(cert, key) => {
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    config
}

/// A quinn client endpoint on loopback.
pub fn client_endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap()
}

/// Dials `addr` from a fresh quinn endpoint with `tls`.
pub fn dial(
    endpoint: &quinn::Endpoint,
    tls: rustls::ClientConfig,
    addr: SocketAddr,
) -> quinn::Connecting {
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(quic)), addr, SERVER_NAME)
        .unwrap()
}

/// The crate's TLS configurations presenting `issued`, judging the peer with the sample policy
/// at TdxRaTlsBidirectional: what someone running their own quinn endpoint would use.
pub fn attested_tls(issued: &IssuedCertificate) -> AttestedTlsConfig {
    let (quote_verifier, collateral) = verifier();
    AttestedTlsConfig::new(
        Arc::new(policy(AttestationLevel::TdxRaTlsBidirectional)),
        quote_verifier,
        collateral,
        issued,
        true,
    )
    .unwrap()
}

/// The crate's server configuration presenting `issued` (bidirectional policy for the client).
pub fn raw_server_tls(issued: &IssuedCertificate) -> rustls::ServerConfig {
    attested_tls(issued).server().0
}

/// A quinn server endpoint on loopback with `tls`.
pub fn serve(tls: rustls::ServerConfig) -> quinn::Endpoint {
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A quinn server endpoint on loopback presenting `issued` with the crate's server
/// configuration.
pub fn raw_server(issued: &IssuedCertificate) -> quinn::Endpoint {
    serve(raw_server_tls(issued))
}

/// The crate's client configuration presenting `issued`, judging the server with the sample
/// policy at TdxRaTlsBidirectional; the verdict lands in the returned [`PendingPeer`].
pub fn attested_client_config(
    issued: &IssuedCertificate,
    expected: ExpectedPeer,
) -> (rustls::ClientConfig, PendingPeer) {
    attested_tls(issued).client(expected)
}

/// The exporter value a bond binds, for a connection made outside `Endpoint`.
pub fn exporter(conn: &quinn::Connection) -> [u8; 32] {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, ratls_quic::EXPORTER_LABEL, b"")
        .unwrap();
    out
}

/// Sends `message` as this side's bond proof (the first uni stream it opens). A message longer
/// than the peer's pre-bond window (`PRE_BOND_RECEIVE_WINDOW`) is written only as far as the
/// peer reads it: when the peer refuses it midway, the write ends with the peer's close, which
/// the caller observes on the connection.
pub async fn send_bond_message(conn: &quinn::Connection, message: &[u8]) {
    let mut stream = conn.open_uni().await.unwrap();
    match stream.write_all(message).await {
        Ok(()) => stream.finish().unwrap(),
        Err(quinn::WriteError::ConnectionLost(_)) => {}
        Err(other) => panic!("writing the bond message: {other}"),
    }
}

/// The SPKI of `identity`'s key.
pub fn spki(identity: &Identity) -> [u8; 44] {
    ed25519_spki_der(&identity.peer_id())
}

/// A client session store that counts the TLS 1.3 tickets it is given and asked for.
#[derive(Debug)]
pub struct CountingStore {
    inner: ClientSessionMemoryCache,
    /// Tickets the server sent (inserted by rustls).
    pub tickets_inserted: AtomicUsize,
    /// Tickets found when dialing again.
    pub tickets_taken: AtomicUsize,
}

impl CountingStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: ClientSessionMemoryCache::new(16),
            tickets_inserted: AtomicUsize::new(0),
            tickets_taken: AtomicUsize::new(0),
        })
    }

    pub fn inserted(&self) -> usize {
        self.tickets_inserted.load(Ordering::SeqCst)
    }

    pub fn taken(&self) -> usize {
        self.tickets_taken.load(Ordering::SeqCst)
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.tickets_inserted.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let ticket = self.inner.take_tls13_ticket(server_name);
        if ticket.is_some() {
            self.tickets_taken.fetch_add(1, Ordering::SeqCst);
        }
        ticket
    }
}

/// A client configuration with resumption and 0-RTT switched on, storing tickets in `store`.
pub fn resuming_client_config(auth: ClientAuth, store: Arc<CountingStore>) -> rustls::ClientConfig {
    let mut config = plain_client_config(auth);
    config.resumption = Resumption::store(store);
    config.enable_early_data = true;
    config
}

/// A server session store that counts the sessions it stores (one per ticket sent) and the
/// lookups resuming clients cause.
#[derive(Debug)]
pub struct CountingServerStore {
    inner: Arc<ServerSessionMemoryCache>,
    stored: AtomicUsize,
    looked_up: AtomicUsize,
}

impl CountingServerStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: ServerSessionMemoryCache::new(16),
            stored: AtomicUsize::new(0),
            looked_up: AtomicUsize::new(0),
        })
    }

    pub fn stored(&self) -> usize {
        self.stored.load(Ordering::SeqCst)
    }

    pub fn looked_up(&self) -> usize {
        self.looked_up.load(Ordering::SeqCst)
    }
}

impl StoresServerSessions for CountingServerStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.stored.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.looked_up.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.looked_up.fetch_add(1, Ordering::SeqCst);
        self.inner.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
