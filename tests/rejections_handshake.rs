//! The rejection matrix over real UDP on loopback, handshake half: evidence in the certificate.
//! Each test asserts the typed reason on the refusing side, what the other side observed (the
//! TLS alert), and that no application connection or stream came out of it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::raw::*;
use common::*;
use rustls::AlertDescription;

use common::rejections::*;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::synthetic::{
    SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::{certificate_report_data, EvidenceError, EVIDENCE_VERSION};
use ratls_quic::{
    AttestationError, Collateral, DcapCheck, QuoteProvider, QuoteVerifier, StaticCollateral,
    TcbStatus,
};
use ratls_quic::{Endpoint, EndpointConfig, Error};
use ratls_quic::{ExpectedPeer, PeerRejection};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy, PolicyViolation, Register};

#[tokio::test]
async fn plain_quinn_client_without_evidence_refused_by_bidirectional_server() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let (cert, key) = plain_certificate();
    let client = client_endpoint();
    let connecting = dial(
        &client,
        plain_client_config(ClientAuth::Certificate(cert, key)),
        addr(&server),
    );
    let (accepted, observed) = tokio::join!(accept_one(&server), raw_outcome(connecting));

    assert!(
        matches!(
            rejection(&accepted),
            PeerRejection::BelowFloor {
                required: BIDIRECTIONAL,
                presented: AttestationLevel::Software,
            }
        ),
        "{accepted:?}"
    );
    assert_closed_with_alert(&observed, AlertDescription::CertificateUnknown);
    assert_eq!(server.handshake_checks(), 1);
}

#[tokio::test]
async fn plain_client_with_long_lived_certificate_refused_as_malformed() {
    // rcgen's default validity (1975 to 4096) is longer than any certificate of this transport:
    // the parser refuses it before the level is looked at.
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let (cert, key) = plain_certificate_valid(None);
    let client = client_endpoint();
    let connecting = dial(
        &client,
        plain_client_config(ClientAuth::Certificate(cert, key)),
        addr(&server),
    );
    let (accepted, observed) = tokio::join!(accept_one(&server), raw_outcome(connecting));

    assert!(
        matches!(
            rejection(&accepted),
            PeerRejection::Evidence(EvidenceError::Malformed(_))
        ),
        "{accepted:?}"
    );
    assert_closed_with_alert(&observed, AlertDescription::BadCertificate);
}

#[tokio::test]
async fn server_with_wrong_mrtd_refused_by_client() {
    let mut wrong = sample_measurements();
    wrong.mr_td[0] ^= 0xff;
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(wrong)),
        policy(BIDIRECTIONAL),
    ))
    .await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;

    assert_eq!(measurement_mismatch(rejection(&connected)), Register::MrTd);
    assert_peer_alert(&accepted, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn server_with_wrong_mrtd_refused_by_client_over_ipv6() {
    let loopback6: SocketAddr = "[::1]:0".parse().unwrap();
    let mut wrong = sample_measurements();
    wrong.mr_td[47] ^= 0x80;
    let server = Endpoint::bind(
        loopback6,
        config(
            Identity::generate().unwrap(),
            Side::Attested(Box::new(wrong)),
            policy(BIDIRECTIONAL),
        ),
    )
    .await
    .unwrap();
    let client = Endpoint::bind(
        loopback6,
        config(
            Identity::generate().unwrap(),
            attested(),
            policy(BIDIRECTIONAL),
        ),
    )
    .await
    .unwrap();
    assert!(addr(&server).is_ipv6());
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;

    assert_eq!(measurement_mismatch(rejection(&connected)), Register::MrTd);
    assert_peer_alert(&accepted, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn client_with_wrong_rtmr_refused_by_server() {
    let mut wrong = sample_measurements();
    wrong.rtmr[2][47] ^= 0x01;
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(wrong)),
        policy(BIDIRECTIONAL),
    ))
    .await;
    let (accepted, connected) =
        pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;

    assert_eq!(measurement_mismatch(rejection(&accepted)), Register::Rtmr2);
    assert_peer_alert(&connected, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn debug_td_refused_although_its_measurements_are_pinned() {
    let mut debug = sample_measurements();
    debug.td_attributes[0] |= 0x01;
    assert!(debug.is_debug());
    let mut pinned_debug = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "debug", &debug,
    )]));
    pinned_debug.set_level(BIDIRECTIONAL);
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    pinned_debug.dangerous().static_collateral();
    assert!(!pinned_debug.allows_debug());

    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(debug)),
        policy(BIDIRECTIONAL),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        attested(),
        pinned_debug,
    ))
    .await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;

    assert!(
        matches!(
            rejection(&connected),
            PeerRejection::Quote(AttestationError::Prechecked {
                violation: PolicyViolation::DebugTd,
                ..
            })
        ),
        "{connected:?}"
    );
    assert_peer_alert(&accepted, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn certificate_quote_bound_to_another_key_refused() {
    let identity = Identity::generate().unwrap();
    let other = Identity::generate().unwrap().peer_id();
    let now = unix_now();
    let issued = attested_certificate(
        &identity,
        other,
        now - 60,
        now + 3600,
        sample_measurements(),
    );
    let server = raw_server(&issued);
    let server_addr = server.local_addr().unwrap();
    let client = attested_endpoint(BIDIRECTIONAL).await;

    let accept = async {
        let incoming = server.accept().await.expect("raw server open");
        incoming.await
    };
    let (accepted, connected) = tokio::join!(
        accept,
        client.connect(server_addr, ExpectedPeer::AnyAllowedByPolicy)
    );

    assert!(
        matches!(
            rejection(&connected),
            PeerRejection::Evidence(EvidenceError::BindingMismatch)
        ),
        "{connected:?}"
    );
    let error = accepted.expect_err("the raw server's handshake must fail");
    assert_closed_with_alert(&error, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn expired_client_certificate_refused_with_certificate_expired() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let identity = Identity::generate().unwrap();
    let now = unix_now();
    let (not_before, not_after) = (now - 7200, now - 3600);
    let issued = attested_certificate(
        &identity,
        identity.peer_id(),
        not_before,
        not_after,
        sample_measurements(),
    );
    let (tls, _slot) = attested_client_config(&issued, ExpectedPeer::Exactly(server.peer_id()));
    let client = client_endpoint();
    let connecting = dial(&client, tls, addr(&server));
    let (accepted, observed) = tokio::join!(accept_one(&server), raw_outcome(connecting));

    match rejection(&accepted) {
        PeerRejection::Evidence(EvidenceError::Expired {
            not_after: end,
            now: checked,
        }) => {
            assert_eq!(*end, not_after);
            assert!(*checked > not_after);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    assert_closed_with_alert(&observed, AlertDescription::CertificateExpired);
    assert_eq!(
        u64::from(alert_code(AlertDescription::CertificateExpired)),
        0x12d
    );
}

#[tokio::test]
async fn software_client_refused_by_tdx_local_floor() {
    let server = attested_endpoint(AttestationLevel::TdxLocal).await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Software,
        policy(AttestationLevel::TdxLocal),
    ))
    .await;
    let (accepted, connected) =
        pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;

    assert!(
        matches!(
            rejection(&accepted),
            PeerRejection::BelowFloor {
                required: AttestationLevel::TdxLocal,
                presented: AttestationLevel::Software,
            }
        ),
        "{accepted:?}"
    );
    assert_peer_alert(&connected, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn client_without_certificate_refused_by_bidirectional_server() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = client_endpoint();
    let connecting = dial(
        &client,
        plain_client_config(ClientAuth::None),
        addr(&server),
    );
    let (accepted, observed) = tokio::join!(accept_one(&server), raw_outcome(connecting));

    assert!(
        matches!(rejection(&accepted), PeerRejection::NoCertificate),
        "{accepted:?}"
    );
    assert_closed_with_alert(&observed, AlertDescription::CertificateRequired);
    assert_eq!(
        server.handshake_checks(),
        0,
        "no certificate, nothing to check"
    );
}

#[tokio::test]
async fn unknown_evidence_version_refused_with_bad_certificate() {
    let identity = Identity::generate().unwrap();
    let now = unix_now();
    let (not_before, not_after) = (now - 60, now + 3600);
    let report_data = certificate_report_data(&identity.peer_id(), not_before, not_after).unwrap();
    let quote = provider(sample_measurements()).quote(&report_data).unwrap();
    let version = EVIDENCE_VERSION + 1;
    // Level code 1 is TdxLocal (the index in AttestationLevel::ALL).
    assert_eq!(AttestationLevel::ALL[1], AttestationLevel::TdxLocal);
    let extension = evidence_value(version, 1, &quote, &spki(&identity));
    let issued = certificate_with_extension(&identity, not_before, not_after, extension);
    let server = raw_server(&issued);
    let server_addr = server.local_addr().unwrap();
    let client = attested_endpoint(BIDIRECTIONAL).await;

    let accept = async { server.accept().await.expect("raw server open").await };
    let (accepted, connected) = tokio::join!(
        accept,
        client.connect(server_addr, ExpectedPeer::AnyAllowedByPolicy)
    );

    assert!(
        matches!(
            rejection(&connected),
            PeerRejection::Evidence(EvidenceError::UnknownVersion(v)) if *v == version
        ),
        "{connected:?}"
    );
    let error = accepted.expect_err("the raw server's handshake must fail");
    assert_closed_with_alert(&error, AlertDescription::BadCertificate);
    assert_eq!(
        u64::from(alert_code(AlertDescription::BadCertificate)),
        0x12a
    );
}

#[tokio::test]
async fn unexpected_server_identity_refused_by_client() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    let wanted = Identity::generate().unwrap().peer_id();
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::Exactly(wanted)).await;

    match rejection(&connected) {
        PeerRejection::UnexpectedPeer { expected, found } => {
            assert_eq!(*expected, wanted);
            assert_eq!(*found, server.peer_id());
        }
        other => panic!("expected UnexpectedPeer, got {other:?}"),
    }
    assert_peer_alert(&accepted, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn server_on_out_of_date_tcb_refused_by_client() {
    let stale = Arc::new(SyntheticQuoteProvider::new(
        pki(),
        sample_measurements(),
        SyntheticTcb::OutOfDate,
    ));
    let (quote_verifier, collateral) = verifier();
    let server_config = EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(BIDIRECTIONAL))
        .with_quote_provider(stale)
        .with_quote_verifier(quote_verifier, collateral)
        .build()
        .unwrap();
    let server = bind(server_config).await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;

    assert!(
        matches!(
            rejection(&connected),
            PeerRejection::Quote(AttestationError::Policy {
                violation: PolicyViolation::TcbStatus(TcbStatus::OutOfDate),
                ..
            })
        ),
        "{connected:?}"
    );
    assert_peer_alert(&accepted, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn peer_verified_with_expired_collateral_refused() {
    // The client's collateral ended a day ago: every quote fails DCAP verification, fail closed.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = SyntheticPki::generate(SyntheticPkiParams {
        issued_at_unix: now - 31 * 86_400,
        collateral_lifetime_secs: 30 * 86_400,
    })
    .unwrap();
    let stale_collateral = Arc::new(StaticCollateral(Arc::new(
        Collateral::new(old.collateral().clone()).unwrap(),
    )));
    let old = Arc::new(old);
    let stale_endpoint = || {
        let config = EndpointConfig::builder(Identity::generate().unwrap())
            .with_policy(policy(BIDIRECTIONAL))
            .with_quote_provider(Arc::new(SyntheticQuoteProvider::new(
                Arc::clone(&old),
                sample_measurements(),
                SyntheticTcb::UpToDate,
            )))
            .with_quote_verifier(
                QuoteVerifier::dangerous().trust_root(old.root_der().to_vec()),
                stale_collateral.clone(),
            )
            .build()
            .unwrap();
        bind(config)
    };
    let server = stale_endpoint().await;
    let client = stale_endpoint().await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;

    assert!(
        matches!(
            rejection(&connected),
            PeerRejection::Quote(AttestationError::Dcap {
                check: DcapCheck::CollateralExpired,
                ..
            })
        ),
        "{connected:?}"
    );
    assert_peer_alert(&accepted, AlertDescription::CertificateUnknown);
}

#[tokio::test]
async fn refused_peer_learns_the_kind_of_failure_but_not_the_policy() {
    let mut wrong = sample_measurements();
    wrong.mr_td[0] ^= 0xff;
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(wrong)),
        policy(BIDIRECTIONAL),
    ))
    .await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;

    assert!(
        connected.unwrap_err().to_string().contains("mr_td"),
        "the refusing side knows why"
    );
    let Err(Error::Connection(quinn::ConnectionError::ConnectionClosed(close))) = accepted else {
        panic!("expected the peer's close, got {accepted:?}");
    };
    let reason = String::from_utf8_lossy(&close.reason);
    assert!(reason.contains("quote not accepted by policy"), "{reason}");
    for secret in ["mr_td", "sample", "profile"] {
        assert!(
            !reason.contains(secret),
            "wire reason leaks {secret:?}: {reason}"
        );
    }
}
