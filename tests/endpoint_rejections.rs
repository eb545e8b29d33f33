//! The rejection matrix over real UDP on loopback. Each test asserts the typed reason on the
//! refusing side, what the other side observed (the TLS alert, or the bond refusal close), and
//! that no application connection or stream came out of it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::forge::*;
use common::raw::*;
use common::*;
use rustls::AlertDescription;

use ratls_quic::synthetic::sample_measurements;
use ratls_quic::synthetic::{
    SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::{bond_message, Endpoint, EndpointConfig, Error};
use ratls_quic::{
    certificate_report_data, issue_certificate, report_data, BindingInput, EvidenceError, Role,
    EVIDENCE_VERSION,
};
use ratls_quic::{
    AttestationError, Collateral, DcapCheck, QuoteProvider, QuoteVerifier, StaticCollateral,
    TcbStatus,
};
use ratls_quic::{BondFailure, ExpectedPeer, PeerRejection};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy, PolicyViolation, Register};

const BIDIRECTIONAL: AttestationLevel = AttestationLevel::TdxRaTlsBidirectional;

fn attested() -> Side {
    Side::Attested(Box::new(sample_measurements()))
}

/// An attested endpoint with the sample Measurements and the sample policy at `level`.
async fn attested_endpoint(level: AttestationLevel) -> Endpoint {
    bind(config(
        Identity::generate().unwrap(),
        attested(),
        policy(level),
    ))
    .await
}

/// The single profile mismatch of a Measurements violation.
#[track_caller]
fn measurement_mismatch(rejection: &PeerRejection) -> Register {
    match rejection {
        PeerRejection::Quote(AttestationError::Policy {
            violation: PolicyViolation::Measurements(mismatch),
            ..
        }) => {
            assert_eq!(mismatch.mismatches.len(), 1, "{mismatch:?}");
            assert_eq!(mismatch.mismatches[0].0, "sample");
            mismatch.mismatches[0].1
        }
        other => panic!("expected a Measurements violation, got {other:?}"),
    }
}

#[track_caller]
fn rejection<T: std::fmt::Debug>(result: &Result<T, Error>) -> &PeerRejection {
    match result {
        Err(Error::Rejected(rejection)) => rejection,
        other => panic!("expected a typed rejection, got {other:?}"),
    }
}

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
            PeerRejection::Quote(AttestationError::Policy {
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
async fn bond_proof_replayed_from_an_earlier_connection_refused() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let forger = ForgingClient::new();

    // Connection 1: an honest proof, bound to this connection's exporter, is accepted.
    let first = async {
        let (conn, exporter) = forger.dial(&server).await;
        let quote = forger.quote(&forger.honest_input(&server, &exporter));
        send_bond_message(&conn, &bond_message(Some(&quote))).await;
        (conn, exporter, quote)
    };
    let (accepted, (_first_conn, first_exporter, first_quote)) =
        tokio::join!(accept_one(&server), first);
    let accepted = accepted.expect("the honest proof of connection 1 is accepted");
    assert_eq!(accepted.peer().peer_id(), forger.identity.peer_id());
    assert!(accepted.peer().bond_quote().is_some());

    // Connection 2: the same quote again, bound to connection 1's exporter.
    let failure = forged_bond(&server, &forger, |exporter| {
        assert_ne!(*exporter, first_exporter, "exporters differ per connection");
        bond_message(Some(&first_quote))
    })
    .await;
    assert!(
        matches!(
            failure,
            BondFailure::Binding(EvidenceError::BindingMismatch)
        ),
        "{failure:?}"
    );
    assert_eq!(server.handshake_checks(), 2);
}

#[tokio::test]
async fn bond_proof_with_roles_swapped_refused() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let forger = ForgingClient::new();
    // The client proves itself as if it were the server of this very connection.
    let failure = forged_bond(&server, &forger, |exporter| {
        let quote = forger.quote(&BindingInput::Bond {
            role: Role::Server,
            client: forger.identity.peer_id(),
            server: server.peer_id(),
            exporter,
        });
        bond_message(Some(&quote))
    })
    .await;
    assert!(
        matches!(
            failure,
            BondFailure::Binding(EvidenceError::BindingMismatch)
        ),
        "{failure:?}"
    );
}

#[tokio::test]
async fn certificate_quote_sent_as_bond_proof_refused() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let forger = ForgingClient::new();
    let cert_quote = forger.certificate_quote();
    let failure = forged_bond(&server, &forger, |_| bond_message(Some(&cert_quote))).await;
    assert!(matches!(failure, BondFailure::Replayed), "{failure:?}");
}

#[tokio::test]
async fn attested_client_without_bond_proof_refused() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let forger = ForgingClient::new();
    let failure = forged_bond(&server, &forger, |_| bond_message(None)).await;
    assert!(matches!(failure, BondFailure::Missing), "{failure:?}");
}

#[tokio::test]
async fn bond_proof_with_other_measurements_than_the_certificate_refused() {
    // The server accepts two profiles; the proof must still match the certificate's quote.
    let mut other = sample_measurements();
    other.rtmr[3] = [0x33; 48];
    let mut two_profiles = Policy::new(MeasurementPolicy::new(vec![
        MeasurementProfile::exact("sample", &sample_measurements()),
        MeasurementProfile::exact("other", &other),
    ]));
    two_profiles.set_level(BIDIRECTIONAL);
    let server = bind(config(
        Identity::generate().unwrap(),
        attested(),
        two_profiles,
    ))
    .await;
    let forger = ForgingClient::new();
    let failure = forged_bond(&server, &forger, |exporter| {
        let quote = forger.quote_with(&forger.honest_input(&server, exporter), other);
        bond_message(Some(&quote))
    })
    .await;
    assert!(
        matches!(failure, BondFailure::MeasurementsChanged),
        "{failure:?}"
    );
}

#[tokio::test]
async fn bond_proof_from_another_platform_than_the_certificate_refused() {
    // The server accepts both TCB levels; the proof must still come from the certificate's
    // platform (same PCK chain).
    let mut two_levels = policy(BIDIRECTIONAL);
    two_levels.tcb.accept(TcbStatus::SwHardeningNeeded);
    let server = bind(config(
        Identity::generate().unwrap(),
        attested(),
        two_levels,
    ))
    .await;
    let forger = ForgingClient::new();
    let failure = forged_bond(&server, &forger, |exporter| {
        let quote = forger.quote_on(
            &forger.honest_input(&server, exporter),
            sample_measurements(),
            SyntheticTcb::SwHardeningNeeded,
        );
        bond_message(Some(&quote))
    })
    .await;
    assert!(
        matches!(failure, BondFailure::PlatformChanged),
        "{failure:?}"
    );
}

#[tokio::test]
async fn software_client_sending_a_quote_as_bond_proof_refused() {
    let client_id = Identity::generate().unwrap();
    let mut software_floor = policy(AttestationLevel::Software);
    software_floor
        .software_allow
        .insert(client_id.attestation_digest());
    let server = bind(config(
        Identity::generate().unwrap(),
        attested(),
        software_floor,
    ))
    .await;
    let now = unix_now();
    let issued = issue_certificate(&client_id, now - 60, now + 3600, None).unwrap();
    let (tls, _slot) = attested_client_config(&issued, ExpectedPeer::Exactly(server.peer_id()));
    let client = client_endpoint();
    let forge = async {
        let conn = dial(&client, tls, addr(&server)).await.unwrap();
        let exporter = exporter(&conn);
        let report_data = report_data(&BindingInput::Bond {
            role: Role::Client,
            client: client_id.peer_id(),
            server: server.peer_id(),
            exporter: &exporter,
        })
        .unwrap();
        let quote = provider(sample_measurements()).quote(&report_data).unwrap();
        send_bond_message(&conn, &bond_message(Some(&quote))).await;
        conn.accept_bi()
            .await
            .expect_err("no stream on a refused bond")
    };
    let (refused, observed) = tokio::join!(accept_one(&server), forge);

    assert!(
        matches!(
            rejection(&refused),
            PeerRejection::Bond(BondFailure::Unexpected(_))
        ),
        "{refused:?}"
    );
    assert_bond_refused(&observed);
}

#[tokio::test]
async fn malformed_bond_message_refused() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let forger = ForgingClient::new();
    let failure = forged_bond(&server, &forger, |exporter| {
        let quote = forger.quote(&forger.honest_input(&server, exporter));
        let mut message = bond_message(Some(&quote));
        message[0] = b'X';
        message
    })
    .await;
    assert!(matches!(failure, BondFailure::Malformed(_)), "{failure:?}");
}

/// The dialer's own proof is judged by the acceptor after the dialer already verified the
/// acceptor's proof, so `connect` may return before the refusal arrives. Whatever it returns,
/// the refusal reaches it as the bond close and no application stream works.
#[tokio::test]
async fn dialer_whose_proof_is_refused_gets_no_usable_connection() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let mut certificate_only = policy(AttestationLevel::TdxLocal);
    assert!(certificate_only.dangerous().certificate_freshness());
    let client = bind(config(
        Identity::generate().unwrap(),
        attested(),
        certificate_only,
    ))
    .await;
    let (accepted, connected) =
        pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;

    assert!(
        matches!(
            rejection(&accepted),
            PeerRejection::Bond(BondFailure::Missing)
        ),
        "{accepted:?}"
    );
    // The acceptor sends its proof only after accepting the dialer's, so the dialer never
    // holds a connection the acceptor refused.
    let observed = match connected {
        Err(Error::Connection(error)) => error,
        Ok(_) => panic!("the dialer got a connection the acceptor refused"),
        Err(other) => panic!("expected the bond refusal, got {other:?}"),
    };
    assert_bond_refused(&observed);
}

#[tokio::test]
async fn silent_client_refused_when_the_bond_proof_times_out() {
    let (quote_verifier, collateral) = verifier();
    let mut builder = EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(BIDIRECTIONAL))
        .with_quote_provider(provider(sample_measurements()))
        .with_quote_verifier(quote_verifier, collateral);
    builder.bond_timeout(Duration::from_millis(300));
    let server = bind(builder.build().unwrap()).await;
    let forger = ForgingClient::new();

    let silent = async {
        let (conn, _exporter) = forger.dial(&server).await;
        conn.accept_bi()
            .await
            .expect_err("no stream on a refused bond")
    };
    let (refused, observed) = tokio::join!(accept_one(&server), silent);

    assert!(matches!(refused, Err(Error::BondTimeout)), "{refused:?}");
    assert_bond_refused(&observed);
}

#[tokio::test]
async fn oversized_bond_message_refused() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let forger = ForgingClient::new();
    let failure = forged_bond(&server, &forger, |exporter| {
        let quote = forger.quote(&forger.honest_input(&server, exporter));
        let mut message = bond_message(Some(&quote));
        message.resize(64 << 10, 0);
        message
    })
    .await;
    assert!(matches!(failure, BondFailure::Malformed(_)), "{failure:?}");
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
async fn every_connection_runs_the_verifiers_on_both_sides() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    for round in 1..=2u64 {
        let (accepted, connected) =
            pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;
        let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
        assert_eq!(server.handshake_checks(), round);
        assert_eq!(client.handshake_checks(), round);
        let ((), reply) = tokio::join!(echo_once(&accepted), round_trip(&connected, b"again"));
        assert_eq!(reply, b"again");
    }
}

#[tokio::test]
async fn resuming_client_gets_no_ticket_and_no_0rtt() {
    let client_id = Identity::generate().unwrap();
    let mut server_policy = policy(AttestationLevel::Software);
    server_policy
        .software_allow
        .insert(client_id.attestation_digest());
    let server = bind(config(
        Identity::generate().unwrap(),
        attested(),
        server_policy,
    ))
    .await;

    let now = unix_now();
    let issued = issue_certificate(&client_id, now - 60, now + 3600, None).unwrap();
    let store = CountingStore::new();
    let tls = resuming_client_config(
        ClientAuth::Certificate(issued.cert_der.clone(), issued.key_der.clone_key()),
        Arc::clone(&store),
    );
    let client = client_endpoint();
    for round in 1..=2u64 {
        let dialed = async {
            let connecting = dial(&client, tls.clone(), addr(&server));
            let Err(connecting) = connecting.into_0rtt() else {
                panic!("0-RTT offered on round {round}")
            };
            let conn = connecting.await.unwrap();
            send_bond_message(&conn, &bond_message(None)).await;
            conn
        };
        let (accepted, conn) = tokio::join!(accept_one(&server), dialed);
        let accepted = accepted.unwrap();
        assert_eq!(accepted.peer().level(), AttestationLevel::Software);
        // A full round trip after the handshake: a ticket would have arrived before the reply.
        let echo = async {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(b"ticket?").await.unwrap();
            send.finish().unwrap();
            recv.read_to_end(1 << 10).await.unwrap()
        };
        let ((), reply) = tokio::join!(echo_once(&accepted), echo);
        assert_eq!(reply, b"ticket?");
        assert_eq!(store.inserted(), 0, "the server sent a session ticket");
        assert_eq!(store.taken(), 0);
        assert_eq!(server.handshake_checks(), round);
    }
}

#[tokio::test]
async fn attested_client_ignores_tickets_and_runs_its_verifier_every_time() {
    // A server that does hand out session tickets, with an honest certificate and bond proofs.
    let server_id = Identity::generate().unwrap();
    let now = unix_now();
    let issued = attested_certificate(
        &server_id,
        server_id.peer_id(),
        now - 60,
        now + 3600,
        sample_measurements(),
    );
    let sessions = CountingServerStore::new();
    let mut tls = raw_server_tls(&issued);
    tls.session_storage = Arc::clone(&sessions) as Arc<dyn rustls::server::StoresServerSessions>;
    tls.send_tls13_tickets = 2;
    let server = serve(tls);
    let server_addr = server.local_addr().unwrap();
    let client = attested_endpoint(BIDIRECTIONAL).await;

    for round in 1..=2u64 {
        let serve_one = async {
            let conn = server.accept().await.unwrap().await.unwrap();
            let exporter = exporter(&conn);
            let report_data = report_data(&BindingInput::Bond {
                role: Role::Server,
                client: client.peer_id(),
                server: server_id.peer_id(),
                exporter: &exporter,
            })
            .unwrap();
            let quote = provider(sample_measurements()).quote(&report_data).unwrap();
            send_bond_message(&conn, &bond_message(Some(&quote))).await;
            let mut proof = conn.accept_uni().await.unwrap();
            proof.read_to_end(16 << 10).await.unwrap();
            conn
        };
        let (_conn, connected) = tokio::join!(
            serve_one,
            client.connect(server_addr, ExpectedPeer::Exactly(server_id.peer_id()))
        );
        let connected = connected.unwrap();
        assert_eq!(connected.peer().level(), BIDIRECTIONAL);
        assert_eq!(
            client.handshake_checks(),
            round,
            "the client verifier ran again"
        );
        assert!(sessions.stored() > 0, "the server offered tickets");
        assert_eq!(sessions.looked_up(), 0, "the client never offered one back");
    }
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
