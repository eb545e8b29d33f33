//! The rejection matrix over real UDP on loopback, bond half: the proof after the handshake.
//! Each test asserts the typed reason on the refusing side, what the other side observed (the
//! bond refusal close), and that no application connection or stream came out of it.

mod common;

use std::time::Duration;

use common::forge::*;
use common::raw::*;
use common::*;

use common::rejections::*;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::synthetic::SyntheticTcb;
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::{bond_message, EndpointConfig, Error};
use ratls_quic::{issue_certificate, report_data, BindingInput, EvidenceError, Role};
use ratls_quic::{BondFailure, ExpectedPeer, PeerRejection};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy};
use ratls_quic::{QuoteProvider, TcbStatus};

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
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    two_profiles.dangerous().static_collateral();
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
    let config = EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(BIDIRECTIONAL))
        .with_quote_provider(provider(sample_measurements()))
        .with_quote_verifier(quote_verifier, collateral)
        .bond_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let server = bind(config).await;
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
