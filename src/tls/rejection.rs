//! Why a peer was refused, and the one place where that becomes a TLS alert.

use std::sync::Arc;

use rustls::{CertificateError, OtherError};

use crate::evidence::EvidenceError;
use crate::identity::PeerId;
use crate::level::AttestationLevel;
use crate::policy::AttestationError;

/// Why a peer was refused. The refusing side keeps this typed reason (returned from
/// `connect`/`accept` and logged); only the TLS alert or close code crosses the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRejection {
    /// The peer's attestation level is below the policy floor. Alert `certificate_unknown`.
    #[error("peer reached level {presented}, policy requires at least {required}")]
    BelowFloor {
        /// The policy floor.
        required: AttestationLevel,
        /// What the peer presented.
        presented: AttestationLevel,
    },
    /// The bond proof after the handshake failed (no TLS alert: the connection is closed with an
    /// application error code).
    #[error("bond proof refused: {0}")]
    Bond(#[from] BondFailure),
    /// The certificate or its evidence is malformed, unbound, or outside its validity. Alert
    /// `bad_certificate` (malformed), `certificate_expired` (validity) or `certificate_unknown`.
    #[error("certificate evidence: {0}")]
    Evidence(#[from] EvidenceError),
    /// No collateral for the peer's quote; verification fails closed. Alert
    /// `certificate_unknown`.
    #[error("no collateral available for the peer's quote")]
    MissingCollateral,
    /// The peer presented no certificate. Alert `certificate_required`.
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The quote in the certificate is not authentic or the policy refuses it. Alert
    /// `certificate_unknown`.
    #[error("certificate quote: {0}")]
    Quote(#[from] AttestationError),
    /// A retirement marker retired the peer's identity at or before `now`. Alert
    /// `certificate_revoked`.
    #[error("peer identity retired: {0}")]
    Retired(crate::evidence_log::RetiredIdentity),
    /// The peer is not the one the caller asked for. Alert `certificate_unknown`.
    #[error("expected peer {expected}, found {found}")]
    UnexpectedPeer {
        /// The identity asked for.
        expected: PeerId,
        /// The identity presented.
        found: PeerId,
    },
    /// A Software-level peer whose identity digest is not on the allow-list. Alert
    /// `certificate_unknown`.
    #[error(
        "software peer {0} (sw digest {digest}) is not on the policy's allow-list",
        digest = hex::encode(.0.attestation_digest())
    )]
    UnknownSoftwareIdentity(PeerId),
}

/// Why a bond proof was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BondFailure {
    /// The proof's report_data does not bind this connection, these roles and these peers
    /// (a proof replayed from another connection, or with the roles swapped).
    #[error("bond proof is not bound to this connection and role: {0}")]
    Binding(EvidenceError),
    /// The proof message does not follow the format.
    #[error("malformed bond proof: {0}")]
    Malformed(&'static str),
    /// The proof quote's Measurements differ from those of the certificate quote.
    #[error("bond proof Measurements differ from the certificate's")]
    MeasurementsChanged,
    /// No collateral for the proof quote; verification fails closed.
    #[error("no collateral available for the bond proof quote")]
    MissingCollateral,
    /// An attested peer sent no proof although the policy requires per-bond freshness.
    #[error("peer sent no bond proof; the policy requires per-bond freshness")]
    Missing,
    /// The proof quote comes from another platform than the certificate quote.
    #[error("bond proof comes from another platform than the certificate quote")]
    PlatformChanged,
    /// The proof quote is not authentic or the policy refuses it.
    #[error("bond proof quote: {0}")]
    Quote(AttestationError),
    /// The proof quote is the certificate's quote again.
    #[error("bond proof reuses the certificate quote")]
    Replayed,
    /// A Software peer sent a quote in its bond proof, or an attested one sent an unexpected
    /// message.
    #[error("unexpected bond proof: {0}")]
    Unexpected(&'static str),
}

impl BondFailure {
    /// What the refused peer is told in the close reason: the kind of failure only.
    pub fn wire_reason(&self) -> &'static str {
        match self {
            Self::Binding(_) => "bond proof not bound to this connection",
            Self::Malformed(_) => "bond proof malformed",
            Self::MeasurementsChanged => "bond proof measurements differ from the certificate",
            Self::Missing => "bond proof required",
            Self::MissingCollateral => "no collateral for the bond proof quote",
            Self::PlatformChanged => "bond proof from another platform",
            Self::Quote(_) => "bond proof quote not accepted",
            Self::Replayed => "bond proof replays the certificate quote",
            Self::Unexpected(_) => "unexpected bond proof",
        }
    }
}

impl PeerRejection {
    /// What the refused peer is told besides the alert: the kind of failure, never the policy's
    /// details (profile names, expected registers, TCB rules stay local).
    pub fn wire_reason(&self) -> &'static str {
        match self {
            Self::BelowFloor { .. } => "attestation level below the required floor",
            Self::Bond(_) => "bond proof refused",
            Self::Evidence(evidence) => evidence_wire_reason(evidence),
            Self::MissingCollateral => "no collateral for the quote",
            Self::NoCertificate => "certificate required",
            Self::Quote(AttestationError::Policy { .. } | AttestationError::Prechecked { .. }) => {
                "quote not accepted by policy"
            }
            Self::Quote(AttestationError::Busy) => "verifier busy, try again",
            Self::Quote(_) => "quote not authentic",
            Self::UnexpectedPeer { .. } => "unexpected peer identity",
            Self::UnknownSoftwareIdentity(_) => "identity not allowed",
            Self::Retired(_) => "identity retired",
        }
    }

    /// The rustls error (and so the TLS alert) this rejection is reported with. The typed
    /// rejection stays with the caller; the error carries only [`Self::wire_reason`].
    pub fn to_rustls_error(&self) -> rustls::Error {
        use EvidenceError as E;
        let certificate_error = match &self {
            Self::NoCertificate => {
                return rustls::Error::NoCertificatesPresented;
            }
            Self::Evidence(evidence) if is_malformed(evidence) => CertificateError::BadEncoding,
            Self::Evidence(E::Expired { .. }) => CertificateError::Expired,
            Self::Evidence(E::NotYetValid { .. }) => CertificateError::NotValidYet,
            Self::Retired(_) => CertificateError::Revoked,
            _ => CertificateError::Other(OtherError(Arc::new(RejectedPeer(self.wire_reason())))),
        };
        rustls::Error::InvalidCertificate(certificate_error)
    }
}

/// Evidence that does not follow the certificate profile of `docs/evidence.md`: alert
/// `bad_certificate`. An empty quote and a `pubkey-hash` that names another key are such
/// (`parse_certificate` refuses both before any quote is looked at).
fn is_malformed(error: &EvidenceError) -> bool {
    use EvidenceError as E;
    matches!(
        error,
        E::Malformed(_)
            | E::TooLarge { .. }
            | E::DuplicateExtension
            | E::UnknownVersion(_)
            | E::UnsupportedAlgorithm
            | E::BadSignature
            | E::Missing(_)
            | E::PubkeyMismatch
    )
}

/// The short reason of an evidence failure: malformed, outside its validity, or not bound.
fn evidence_wire_reason(error: &EvidenceError) -> &'static str {
    match error {
        EvidenceError::Expired { .. } | EvidenceError::NotYetValid { .. } => {
            "certificate outside its validity period"
        }
        error if is_malformed(error) => "certificate evidence malformed",
        _ => "certificate evidence not bound to the certificate",
    }
}

/// The wire reason of a [`PeerRejection`], as carried inside a rustls error (and so in the
/// QUIC close reason the peer reads).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RejectedPeer(pub &'static str);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{AlertDescription, CertificateError};

    use super::*;
    use crate::identity::Identity;
    use crate::tdx::{DcapCheck, DcapError};

    /// The one place where a rejection becomes a rustls error, and so a TLS alert: one assertion
    /// per row, the rustls `CertificateError` and the alert it is sent as.
    #[test]
    fn rejections_map_to_the_documented_alerts() {
        use CertificateError as C;
        let pid = Identity::generate().unwrap().peer_id();
        let dcap_failure = || AttestationError::Dcap {
            check: DcapCheck::QuoteSignature,
            source: DcapError::new(std::fmt::Error),
        };
        let rows: Vec<(PeerRejection, C, AlertDescription)> = vec![
            (
                PeerRejection::Evidence(EvidenceError::Malformed("x")),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::Evidence(EvidenceError::TooLarge {
                    what: "quote",
                    len: 2,
                    max: 1,
                }),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::Evidence(EvidenceError::DuplicateExtension),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::Evidence(EvidenceError::UnknownVersion(2)),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::Evidence(EvidenceError::UnsupportedAlgorithm),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::Evidence(EvidenceError::BadSignature),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::Evidence(EvidenceError::Expired {
                    not_after: 1,
                    now: 2,
                }),
                C::Expired,
                AlertDescription::CertificateExpired,
            ),
            (
                PeerRejection::Evidence(EvidenceError::NotYetValid {
                    not_before: 2,
                    now: 1,
                }),
                C::NotValidYet,
                AlertDescription::CertificateExpired,
            ),
            (
                PeerRejection::Evidence(EvidenceError::BindingMismatch),
                other(),
                AlertDescription::CertificateUnknown,
            ),
            (
                PeerRejection::Evidence(EvidenceError::PubkeyMismatch),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::Evidence(EvidenceError::Missing("quote")),
                C::BadEncoding,
                AlertDescription::BadCertificate,
            ),
            (
                PeerRejection::BelowFloor {
                    required: AttestationLevel::TdxRaTlsBidirectional,
                    presented: AttestationLevel::Software,
                },
                other(),
                AlertDescription::CertificateUnknown,
            ),
            (
                PeerRejection::MissingCollateral,
                other(),
                AlertDescription::CertificateUnknown,
            ),
            (
                PeerRejection::Quote(dcap_failure()),
                other(),
                AlertDescription::CertificateUnknown,
            ),
            (
                PeerRejection::UnexpectedPeer {
                    expected: pid,
                    found: pid,
                },
                other(),
                AlertDescription::CertificateUnknown,
            ),
            (
                PeerRejection::UnknownSoftwareIdentity(pid),
                other(),
                AlertDescription::CertificateUnknown,
            ),
            (
                PeerRejection::Retired(crate::evidence_log::RetiredIdentity {
                    retired: pid,
                    since: 1,
                    successor: None,
                }),
                C::Revoked,
                AlertDescription::CertificateRevoked,
            ),
            (
                PeerRejection::Bond(BondFailure::Missing),
                other(),
                AlertDescription::CertificateUnknown,
            ),
        ];
        for (rejection, want, alert) in rows {
            let got = match rejection.to_rustls_error() {
                rustls::Error::InvalidCertificate(error) => error,
                error => panic!("{rejection:?} maps to {error:?}, not a certificate error"),
            };
            match (&got, &want) {
                (C::Other(carried), C::Other(_)) => assert_eq!(
                    carried.to_string(),
                    rejection.wire_reason(),
                    "{rejection:?}: Other carries only the wire reason"
                ),
                _ => assert_eq!(got, want, "{rejection:?}"),
            }
            assert_eq!(AlertDescription::from(got), alert, "{rejection:?}");
        }
        // No certificate at all is not a certificate error: rustls sends certificate_required.
        assert!(matches!(
            PeerRejection::NoCertificate.to_rustls_error(),
            rustls::Error::NoCertificatesPresented
        ));
    }

    /// A placeholder for "some `CertificateError::Other`": the table compares the variant and the
    /// message separately.
    fn other() -> CertificateError {
        CertificateError::Other(OtherError(Arc::new(RejectedPeer(""))))
    }
}
