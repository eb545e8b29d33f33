//! The evidence protocol over real QUIC on loopback: an auditor bonded with a node pulls its
//! log in bounded batches, with the collateral, and audits the copy; a peer off the allow-list
//! is refused; a malformed request gets an error and the server goes on serving.

use std::collections::BTreeSet;
use std::sync::Arc;

use common::evlog::evidence;
use common::{bind, config, pair, policy, Side};
use ratls_quic::evidence_log::protocol::{self, Request, ResponseError, Status};
use ratls_quic::evidence_log::{
    pull, serve_connection, AuditAccess, Auditor, EvidenceLog, LogContents, PullError, RecordBody,
    StoreOptions,
};
use ratls_quic::synthetic::{sample_measurements, SyntheticPki, SyntheticPkiParams};
use ratls_quic::AttestationLevel;
use ratls_quic::Endpoint;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::Policy;
use ratls_quic::{Collateral, QuoteVerifier};

mod common;

const ISSUED: u64 = 1_800_000_000;
const NOW: u64 = ISSUED + 3600;
/// More than one batch.
const RECORDS: u64 = 300;

struct Node {
    log: EvidenceLog,
    identity: Arc<Identity>,
    pki: SyntheticPki,
    _dir: tempfile::TempDir,
}

async fn node_log() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EvidenceLog::open(dir.path(), StoreOptions::default()).unwrap();
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(ISSUED)).unwrap();
    let collateral = Arc::new(Collateral::new(pki.collateral().clone()).unwrap());
    log.put_collateral(Arc::clone(&collateral)).await.unwrap();
    let client = Identity::generate().unwrap();
    let identity = Arc::new(Identity::generate().unwrap());
    let bodies: Vec<_> = (0..RECORDS)
        .map(|i| RecordBody::BondFormed(evidence(&pki, &collateral, &client, &identity, NOW + i)))
        .collect();
    for chunk in bodies.chunks(50) {
        log.append(NOW, chunk.to_vec()).await.unwrap();
    }
    log.checkpoint(Arc::clone(&identity), NOW + RECORDS)
        .await
        .unwrap();
    Node {
        log,
        identity,
        pki,
        _dir: dir,
    }
}

/// The auditor's side of a bond with the node, and both endpoints (kept alive with it).
struct Bonded {
    conn: quinn::Connection,
    _endpoints: (Endpoint, Endpoint),
}

/// A node endpoint and an auditor endpoint (Software identity) bonded; the node serves its log
/// on the connection with `access`.
async fn bonded(
    node: &Node,
    auditor: &Identity,
    access: impl FnOnce(&Identity) -> AuditAccess,
) -> Bonded {
    let server = bind(config(
        Identity::clone(&node.identity),
        Side::Attested(Box::new(sample_measurements())),
        policy(AttestationLevel::Software).tap_software(auditor),
    ))
    .await;
    let client = bind(config(
        auditor.clone(),
        Side::Software,
        policy(AttestationLevel::TdxLocal),
    ))
    .await;
    let (accepted, dialed) = pair(
        &server,
        &client,
        ExpectedPeer::Exactly(node.identity.peer_id()),
    )
    .await;
    let accepted = accepted.unwrap();
    let dialed = dialed.unwrap();
    let peer = accepted.peer().peer_id();
    tokio::spawn(serve_connection(
        accepted.connection().clone(),
        peer,
        node.log.clone(),
        access(auditor),
    ));
    Bonded {
        conn: dialed.connection().clone(),
        _endpoints: (server, client),
    }
}

trait TapSoftware {
    fn tap_software(self, peer: &Identity) -> Self;
}

impl TapSoftware for Policy {
    /// Admits `peer` at the Software level.
    fn tap_software(mut self, peer: &Identity) -> Self {
        self.software_allow.insert(peer.attestation_digest());
        self
    }
}

#[tokio::test]
async fn auditor_pulls_the_whole_log_and_the_copy_audits_clean() {
    let node = node_log().await;
    let auditor = Identity::generate().unwrap();
    let Bonded { conn, .. } = &bonded(&node, &auditor, |a| {
        AuditAccess::AllowList(BTreeSet::from([a.peer_id()]))
    })
    .await;
    let mirror = tempfile::tempdir().unwrap();
    let pulled = pull(conn, mirror.path()).await.unwrap();
    assert_eq!(pulled.records, RECORDS + 1);
    assert_eq!(pulled.collateral, 1);
    let checkpoint = pulled.checkpoint.unwrap();
    assert_eq!(checkpoint.signer, node.identity.peer_id());
    assert_eq!(checkpoint.index, RECORDS - 1);

    let verifier = QuoteVerifier::dangerous().trust_root(node.pki.root_der().to_vec());
    let policy = Policy::authenticity_only();
    let copy = LogContents::read(mirror.path()).unwrap();
    let report = Auditor::new(&verifier, &policy)
        .with_checkpoint(checkpoint)
        .audit(&copy);
    assert!(report.passed(), "{:?}", report.failed().next());
    assert_eq!(report.records.len() as u64, RECORDS + 1);
}

#[tokio::test]
async fn peer_off_the_allow_list_is_refused() {
    let node = node_log().await;
    let auditor = Identity::generate().unwrap();
    let someone_else = Identity::generate().unwrap().peer_id();
    let Bonded { conn, .. } = &bonded(&node, &auditor, |_| {
        AuditAccess::AllowList(BTreeSet::from([someone_else]))
    })
    .await;
    let mirror = tempfile::tempdir().unwrap();
    let error = pull(conn, mirror.path()).await.unwrap_err();
    assert!(
        matches!(
            error,
            PullError::Response(ResponseError::Status(Status::Refused))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn malformed_request_gets_bad_request_and_serving_goes_on() {
    let node = node_log().await;
    let auditor = Identity::generate().unwrap();
    let Bonded { conn, .. } = &bonded(&node, &auditor, |_| AuditAccess::Public).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(b"RQEP\x01\x09garbage").await.unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(1024).await.unwrap();
    assert_eq!(answer, protocol::encode_status(Status::BadRequest));
    // An oversized request is refused the same way.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0u8; 4096]).await.unwrap();
    let _ = send.finish();
    let answer = recv.read_to_end(1024).await.unwrap();
    assert_eq!(answer, protocol::encode_status(Status::BadRequest));
    // The next well-formed request is answered.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&Request::Records { from: 0, max: 1 }.encode())
        .await
        .unwrap();
    send.finish().unwrap();
    let batch = protocol::decode_records(&recv.read_to_end(1 << 20).await.unwrap()).unwrap();
    assert_eq!(batch.frames.len(), 1);
    assert_eq!(batch.log_len, RECORDS + 1);
}

#[tokio::test]
async fn checkpoints_are_signed_at_an_interval_while_the_log_grows() {
    let node = node_log().await;
    let task = node.log.checkpoint_every(
        Arc::clone(&node.identity),
        std::time::Duration::from_millis(20),
    );
    // The log ends with a checkpoint already: ticks sign nothing until a record arrives.
    let before = node.log.record_count().await.unwrap();
    let body = RecordBody::BondRefused(ratls_quic::evidence_log::BondRefusal {
        local: node.identity.peer_id(),
        local_role: ratls_quic::Role::Server,
        peer: None,
        reason: "test".into(),
        detail: String::new(),
        cert_quote_digest: None,
        bond_quote_digest: None,
        collateral_digest: None,
    });
    node.log.append(NOW, vec![body]).await.unwrap();
    // Wait (bounded) for the next checkpoint to cover the new record.
    let mut covered = false;
    for _ in 0..500 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if node.log.record_count().await.unwrap() == before + 2 {
            covered = true;
            break;
        }
    }
    assert!(covered, "no checkpoint was signed after the log grew");
    // Ticks with nothing new sign nothing.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    task.abort();
    let copy = LogContents::read(node.log.dir()).unwrap();
    let (_, last) = copy.records().last().unwrap();
    let RecordBody::Checkpoint(c) = &last.body else {
        panic!("{last:?}");
    };
    assert_eq!(c.index, before);
    assert_eq!(c.signer, node.identity.peer_id());
    assert_eq!(copy.records().count() as u64, before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_each_gets_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EvidenceLog::open(dir.path(), StoreOptions::default()).unwrap();
    let body = |n: u64| {
        RecordBody::BondRefused(ratls_quic::evidence_log::BondRefusal {
            local: Identity::generate().unwrap().peer_id(),
            local_role: ratls_quic::Role::Server,
            peer: None,
            reason: "test".into(),
            detail: format!("append {n}"),
            cert_quote_digest: None,
            bond_quote_digest: None,
            collateral_digest: None,
        })
    };
    let tasks: Vec<_> = (0..64u64)
        .map(|n| {
            let log = log.clone();
            let bodies = vec![body(n), body(n + 1000)];
            tokio::spawn(async move { (n, log.append(NOW + n, bodies).await.unwrap()) })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut answers = Vec::new();
    for task in tasks {
        let (n, appended) = task.await.unwrap();
        // Each append's two records are consecutive: one group keeps an append together.
        assert_eq!(appended.len(), 2);
        assert_eq!(appended[1].index, appended[0].index + 1);
        for a in &appended {
            assert!(seen.insert(a.index), "index {} given twice", a.index);
        }
        answers.push((n, appended));
    }
    assert_eq!(seen, (0..128).collect::<BTreeSet<u64>>());
    let commits = log.commits().await.unwrap();
    println!("64 concurrent appends, {commits} commits");
    assert!(commits <= 64);
    // Every acknowledged record is in the log with its digest, time and content.
    let copy = LogContents::read(dir.path()).unwrap();
    let records: Vec<_> = copy.records().map(|(d, r)| (*d, r.clone())).collect();
    for (n, appended) in answers {
        for (a, detail) in appended.iter().zip([n, n + 1000]) {
            let (digest, record) = &records[a.index as usize];
            assert_eq!(*digest, a.digest);
            assert_eq!(record.time, NOW + n);
            let RecordBody::BondRefused(r) = &record.body else {
                panic!()
            };
            assert_eq!(r.detail, format!("append {detail}"));
        }
    }
}
