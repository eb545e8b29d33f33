//! An endpoint configured with an evidence log records every bond it forms (the peer's full
//! evidence, before the connection is handed out) and every bond it refuses; the log audits
//! clean, and changing one byte of a logged quote fails exactly that record.

use common::{bind, config, pair, pki, policy, provider, verifier, Side};
use ratls_quic::evidence_log::{
    segment_path, Auditor, EvidenceLog, EvidenceSink, LogContents, RecordBody, StoreOptions,
};
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{AttestationLevel, EndpointConfig, ExpectedPeer, Identity, Policy, QuoteVerifier};

mod common;

fn logging_config(identity: Identity, policy: Policy, sink: EvidenceSink) -> EndpointConfig {
    let (verifier, collateral) = verifier();
    EndpointConfig::builder(identity)
        .with_policy(policy)
        .with_quote_provider(provider(sample_measurements()))
        .with_quote_verifier(verifier, collateral)
        .evidence_log(sink)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_bond_is_recorded_with_both_quotes_and_audits_clean() {
    let level = AttestationLevel::TdxRaTlsBidirectional;
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EvidenceLog::open(dir.path(), StoreOptions::default()).unwrap();
    let server_id = Identity::generate().unwrap();
    let server = bind(logging_config(
        server_id.clone(),
        policy(level),
        EvidenceSink::new(log.clone(), true),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(level),
    ))
    .await;
    let mut client_ids = Vec::new();
    for _ in 0..2 {
        let (accepted, dialed) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
        let accepted = accepted.unwrap();
        dialed.unwrap();
        client_ids.push(accepted.peer().peer_id());
    }
    // An impostor with other Measurements is refused at the handshake; that is recorded too.
    let mut wrong = sample_measurements();
    wrong.rtmr[2][0] ^= 1;
    let impostor_id = Identity::generate().unwrap();
    let impostor_peer = impostor_id.peer_id();
    let impostor = bind(config(
        impostor_id,
        Side::Attested(Box::new(wrong)),
        policy(level),
    ))
    .await;
    let (refused, _) = pair(&server, &impostor, ExpectedPeer::AnyAllowedByPolicy).await;
    assert!(refused.is_err());

    let contents = LogContents::read(dir.path()).unwrap();
    let records: Vec<_> = contents.records().map(|(_, r)| r.clone()).collect();
    assert_eq!(records.len(), 3, "{records:?}");
    for (record, client_id) in records.iter().zip(&client_ids) {
        let RecordBody::BondFormed(formed) = &record.body else {
            panic!("{record:?}");
        };
        assert_eq!(formed.subject_id(), *client_id);
        assert_eq!(formed.recorder_id(), server_id.peer_id());
        assert_eq!(formed.level, level);
        assert!(formed.cert_quote.is_some() && formed.bond_quote.is_some());
    }
    let RecordBody::BondRefused(refusal) = &records[2].body else {
        panic!("{:?}", records[2]);
    };
    // The refusal names the identity the impostor's certificate presented.
    assert_eq!(refusal.peer, Some(impostor_peer), "{refusal:?}");

    let verifier = QuoteVerifier::dangerous().trust_root(pki().root_der().to_vec());
    let node_policy = policy(level);
    let report = Auditor::new(&verifier, &node_policy).audit(&contents);
    assert!(report.passed(), "{:?}", report.failed().collect::<Vec<_>>());

    // One changed byte inside the second record's quotes: exactly that record fails.
    let path = segment_path(dir.path(), 0);
    let mut data = std::fs::read(&path).unwrap();
    let second = match &contents.entries()[1] {
        ratls_quic::evidence_log::LogEntry::Record { offset, .. } => *offset as usize,
        other => panic!("{other:?}"),
    };
    data[second + 2000] ^= 0x10;
    std::fs::write(&path, data).unwrap();
    let report =
        Auditor::new(&verifier, &node_policy).audit(&LogContents::read(dir.path()).unwrap());
    assert_eq!(report.failed().map(|r| r.index).collect::<Vec<_>>(), [1]);
}
