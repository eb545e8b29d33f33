//! The evidence sink on real bonds over QUIC on loopback: the accepting side records its
//! peer's evidence from the live connection, refusals are recorded too, and the log audits
//! clean against the PKI and policy the endpoints used.

use std::sync::Arc;

use common::{bind, config, pair, pki, policy, Side};
use ratls_quic::evidence_log::{refusal, FormedBond};
use ratls_quic::evidence_log::{
    Auditor, BondOutcome, EvidenceLog, EvidenceSink, LogContents, RecordBody, StoreOptions,
};
use ratls_quic::evidence_log::{CollateralSource, SinkError};
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::AttestationLevel;
use ratls_quic::CollateralProvenance;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::Role;
use ratls_quic::{Collateral, CollateralStore, QuoteVerifier, StaticCollateral};

mod common;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn formed_and_refused_bonds_are_recorded_and_audit_clean() {
    let mut node_policy = policy(AttestationLevel::TdxLocal);
    assert!(node_policy.dangerous().certificate_freshness());
    let server_id = Identity::generate().unwrap();
    let server = bind(config(
        server_id.clone(),
        Side::Attested(Box::new(sample_measurements())),
        node_policy.clone(),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        node_policy.clone(),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EvidenceLog::open(dir.path(), StoreOptions::default()).unwrap();
    let sink = EvidenceSink::new(log, true);
    // Collateral as a fetching store holds it: with where and when it came from.
    let collateral = StaticCollateral(Arc::new(
        Collateral::new(pki().collateral().clone())
            .unwrap()
            .with_provenance(CollateralProvenance {
                source: "https://pccs.example:8081/sgx/certification/v4".into(),
                fetched_at: 1_234_567,
                item_digests: [[1; 32], [2; 32], [3; 32], [4; 32]],
            }),
    ));

    let (accepted, dialed) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let accepted = accepted.unwrap();
    dialed.unwrap();
    let info = accepted.peer();
    let now = unix_now();
    sink.formed(
        now,
        FormedBond {
            conn: accepted.connection(),
            role: Role::Server,
            client: info.peer_id(),
            server: server_id.peer_id(),
            level: info.level(),
            cert_quote: info.certificate_quote(),
            bond_quote: None,
            collateral: &collateral,
        },
    )
    .await
    .unwrap();

    // An impostor with other Measurements is refused; the refusal is recorded.
    let mut wrong = sample_measurements();
    wrong.mr_td[0] ^= 1;
    let impostor = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(wrong)),
        node_policy.clone(),
    ))
    .await;
    let (refused, _) = pair(&server, &impostor, ExpectedPeer::AnyAllowedByPolicy).await;
    let Err(ratls_quic::Error::Rejected(rejection)) = refused else {
        panic!("impostor accepted: {refused:?}");
    };
    sink.refused(
        now,
        refusal(server_id.peer_id(), Role::Server, None, &rejection),
    )
    .await
    .unwrap();

    let contents = LogContents::read(dir.path()).unwrap();
    let records: Vec<_> = contents.records().map(|(_, r)| r.clone()).collect();
    assert_eq!(records.len(), 2);
    let RecordBody::BondFormed(formed) = &records[0].body else {
        panic!("{:?}", records[0]);
    };
    assert_eq!(formed.subject_id(), info.peer_id());
    assert_eq!(
        formed.cert_quote.as_ref().unwrap().collateral_source,
        CollateralSource::Service {
            url: "https://pccs.example:8081/sgx/certification/v4".into(),
            fetched_at: 1_234_567,
            item_digests: [[1; 32], [2; 32], [3; 32], [4; 32]],
        }
    );
    let RecordBody::BondRefused(refused) = &records[1].body else {
        panic!("{:?}", records[1]);
    };
    assert_eq!(refused.reason, "Measurements");
    assert!(refused.cert_quote_digest.is_some());

    let verifier = QuoteVerifier::dangerous().trust_root(pki().root_der().to_vec());
    let report = Auditor::new(&verifier, &node_policy).audit(&contents);
    assert!(report.passed(), "{:?}", report.failed().collect::<Vec<_>>());

    // The public outcome carries the digest the endpoint reported, and verifies.
    let outcome = BondOutcome::from_evidence(&server_id, formed, now).unwrap();
    outcome.verify().unwrap();
    assert_eq!(
        outcome.facts().cert_quote_digest.as_ref(),
        info.quote_digest()
    );
}

/// A store that has lost its collateral.
#[derive(Debug)]
struct NoCollateral;

impl CollateralStore for NoCollateral {
    fn collateral_for(&self, _quote: &[u8]) -> Option<Arc<Collateral>> {
        None
    }
}

#[tokio::test]
async fn unrecordable_bond_fails_only_when_the_log_is_required() {
    let mut node_policy = policy(AttestationLevel::TdxLocal);
    assert!(node_policy.dangerous().certificate_freshness());
    let server_id = Identity::generate().unwrap();
    let server = bind(config(
        server_id.clone(),
        Side::Attested(Box::new(sample_measurements())),
        node_policy.clone(),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        node_policy,
    ))
    .await;
    let (accepted, _dialed) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let accepted = accepted.unwrap();
    let info = accepted.peer();
    let bond = FormedBond {
        conn: accepted.connection(),
        role: Role::Server,
        client: info.peer_id(),
        server: server_id.peer_id(),
        level: info.level(),
        cert_quote: info.certificate_quote(),
        bond_quote: None,
        collateral: &NoCollateral,
    };
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EvidenceLog::open(dir.path(), StoreOptions::default()).unwrap();
    let required = EvidenceSink::new(log.clone(), true);
    assert!(matches!(
        required.formed(unix_now(), bond).await,
        Err(SinkError::MissingCollateral)
    ));
    let optional = EvidenceSink::new(log.clone(), false);
    optional.formed(unix_now(), bond).await.unwrap();
    assert_eq!(log.record_count().await.unwrap(), 0);
}
