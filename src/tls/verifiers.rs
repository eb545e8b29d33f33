//! rustls verifiers that run [`PeerCheck`] on the peer certificate inside the handshake.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::verify_tls13_signature;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::peer::{CertifiedPeer, ExpectedPeer, PeerCheck};
use super::refusals::RefusalLog;
use super::PeerRejection;
use crate::evidence::parse_certificate;
use crate::identity::PeerId;

/// Where a verifier leaves its verdict for the connection that ran it: one slot per
/// connection, read once the handshake ends. It also keeps the identity the peer's certificate
/// named, accepted or not, so that a refusal can be recorded with it.
#[derive(Debug, Default)]
pub(crate) struct VerdictSlot {
    verdict: Mutex<Option<Result<CertifiedPeer, PeerRejection>>>,
    presented: Mutex<Option<PeerId>>,
    /// The endpoint's refusal counters and rate-limited log.
    refusals: Arc<RefusalLog>,
}

impl VerdictSlot {
    /// A slot whose refusals are counted in `refusals`.
    pub(crate) fn counting(refusals: Arc<RefusalLog>) -> Self {
        Self {
            refusals,
            ..Self::default()
        }
    }

    /// Takes the verdict, if the verifier ran.
    pub(crate) fn take(&self) -> Option<Result<CertifiedPeer, PeerRejection>> {
        self.verdict
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The wire reason of the refusal, when the verifier ran and refused the peer (the verdict
    /// stays in the slot).
    pub(crate) fn wire_reason(&self) -> Option<&'static str> {
        match &*self.verdict.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(Err(rejection)) => Some(rejection.wire_reason()),
            _ => None,
        }
    }

    /// The identity the peer's certificate named, if the verifier could read one.
    pub(crate) fn presented(&self) -> Option<PeerId> {
        *self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, verdict: Result<CertifiedPeer, PeerRejection>, presented: Option<PeerId>) {
        *self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = presented;
        *self.verdict.lock().unwrap_or_else(PoisonError::into_inner) = Some(verdict);
    }
}

/// Runs the check, records the typed verdict, and returns what rustls needs.
fn judge(
    check: &PeerCheck,
    slot: &VerdictSlot,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    expected: ExpectedPeer,
) -> Result<(), rustls::Error> {
    let verdict = if intermediates.is_empty() {
        check.check(end_entity, now.as_secs(), expected)
    } else {
        Err(PeerRejection::Evidence(
            crate::evidence::EvidenceError::Malformed("self-signed certificates have no chain"),
        ))
    };
    let (result, presented) = match &verdict {
        Ok(peer) => (Ok(()), Some(peer.peer_id())),
        Err(rejection) => {
            // Counted; at most one warn line per reason per interval, whatever the peer sends.
            slot.refusals.log(rejection, now.as_secs());
            // For the record of the refusal: the identity the rejection names (its certificate
            // parsed, self-signature included), else read again only on this path; a
            // certificate too broken to parse names nobody. Reading again verifies the
            // self-signature a second time, which delays the close: avoided where the
            // rejection already carries the identity.
            let presented = match rejection {
                PeerRejection::UnknownSoftwareIdentity(peer) => Some(*peer),
                PeerRejection::UnexpectedPeer { found, .. } => Some(*found),
                PeerRejection::Retired(retired) => Some(retired.retired),
                _ => parse_certificate(end_entity).ok().map(|cert| cert.peer_id),
            };
            (Err(rejection.to_rustls_error()), presented)
        }
    };
    slot.put(verdict, presented);
    result
}

/// Only TLS 1.3 is configured, so a TLS 1.2 signature never needs checking.
const TLS12_REFUSED: rustls::Error =
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered);

/// Verifies the server on the client side: the server's certificate evidence against the
/// client's policy, and that the server is the expected peer.
#[derive(Debug)]
pub(crate) struct AttestedServerVerifier {
    check: Arc<PeerCheck>,
    expected: ExpectedPeer,
    slot: Arc<VerdictSlot>,
}

impl AttestedServerVerifier {
    /// A verifier for one connection; its verdict lands in `slot`.
    pub(crate) fn new(
        check: Arc<PeerCheck>,
        expected: ExpectedPeer,
        slot: Arc<VerdictSlot>,
    ) -> Self {
        Self {
            check,
            expected,
            slot,
        }
    }
}

impl ServerCertVerifier for AttestedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        judge(
            &self.check,
            &self.slot,
            end_entity,
            intermediates,
            now,
            self.expected,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(TLS12_REFUSED)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &crate::crypto::ED25519_ONLY)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::crypto::ED25519_ONLY.supported_schemes()
    }
}

/// Verifies the client on the server side. Client certificates are mandatory.
#[derive(Debug)]
pub(crate) struct AttestedClientVerifier {
    check: Arc<PeerCheck>,
    slot: Arc<VerdictSlot>,
}

impl AttestedClientVerifier {
    /// A verifier for one connection; its verdict lands in `slot`.
    pub(crate) fn new(check: Arc<PeerCheck>, slot: Arc<VerdictSlot>) -> Self {
        Self { check, slot }
    }
}

impl ClientCertVerifier for AttestedClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        judge(
            &self.check,
            &self.slot,
            end_entity,
            intermediates,
            now,
            ExpectedPeer::AnyAllowedByPolicy,
        )?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(TLS12_REFUSED)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &crate::crypto::ED25519_ONLY)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::crypto::ED25519_ONLY.supported_schemes()
    }
}
