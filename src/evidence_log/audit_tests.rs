use std::fs;
use std::path::Path;

use super::*;
use crate::evidence::Role;
use crate::evidence_log::fixture::{Fixture, NOW};
use crate::evidence_log::store::segment_path;
use crate::evidence_log::{codec, BondRefusal, LogStore, Record, StoreOptions};

struct Logged {
    fx: Fixture,
    dir: tempfile::TempDir,
    /// Frame offset of each record in segment 0.
    offsets: Vec<u64>,
}

/// A log of: formed, refused, formed, checkpoint, formed.
fn logged() -> Logged {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open(dir.path(), StoreOptions::default()).unwrap();
    store.put_collateral(&fx.collateral).unwrap();
    store
        .append(NOW, RecordBody::BondFormed(fx.evidence(NOW, [1; 32])))
        .unwrap();
    store
        .append(
            NOW + 1,
            RecordBody::BondRefused(BondRefusal {
                local: fx.server.peer_id(),
                local_role: Role::Server,
                peer: Some(fx.client.peer_id()),
                reason: "measurement".into(),
                detail: "mr_td not in the policy".into(),
                cert_quote_digest: Some([3; 32]),
                bond_quote_digest: None,
                collateral_digest: Some(*fx.collateral.digest()),
            }),
        )
        .unwrap();
    store
        .append(
            NOW + 2,
            RecordBody::BondFormed(fx.evidence(NOW + 2, [2; 32])),
        )
        .unwrap();
    store.checkpoint(&fx.server, NOW + 3).unwrap();
    store
        .append(
            NOW + 4,
            RecordBody::BondFormed(fx.evidence(NOW + 4, [4; 32])),
        )
        .unwrap();
    drop(store);
    let data = fs::read(segment_path(dir.path(), 0)).unwrap();
    let mut offsets: Vec<u64> = codec::scan(&data[32..])
        .into_iter()
        .map(|s| match s {
            codec::Scanned::Frame(span) => 32 + span.offset as u64,
            codec::Scanned::Bad { .. } => panic!("damaged fixture"),
        })
        .collect();
    offsets.push(data.len() as u64);
    Logged { fx, dir, offsets }
}

fn audit(fx: &Fixture, dir: &Path) -> AuditReport {
    let verifier = QuoteVerifier::dangerous().trust_root(fx.pki.root_der().to_vec());
    let policy = Policy::authenticity_only();
    Auditor::new(&verifier, &policy).audit(&LogContents::read(dir).unwrap())
}

fn failed_indexes(report: &AuditReport) -> Vec<u64> {
    report.failed().map(|r| r.index).collect()
}

#[test]
fn honest_log_passes_every_record() {
    let l = logged();
    let report = audit(&l.fx, l.dir.path());
    let failures: Vec<_> = report.failed().map(|r| (r.index, &r.failures)).collect();
    assert!(report.passed(), "{failures:?}");
    let kinds: Vec<_> = report.records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            "bond-formed",
            "bond-refused",
            "bond-formed",
            "checkpoint",
            "bond-formed"
        ]
    );
}

#[test]
fn changed_quote_byte_fails_exactly_that_record() {
    let l = logged();
    let path = segment_path(l.dir.path(), 0);
    let mut data = fs::read(&path).unwrap();
    // Well inside record 2's certificate quote.
    let at = l.offsets[2] as usize + 400;
    data[at] ^= 0x01;
    fs::write(&path, &data).unwrap();
    let report = audit(&l.fx, l.dir.path());
    assert_eq!(failed_indexes(&report), [2]);
    let verdict = report.failed().next().unwrap();
    assert!(
        matches!(verdict.failures[..], [AuditFailure::Damaged(_)]),
        "{verdict:?}"
    );
}

/// Rewrites record `index` of segment 0 with `change` applied to its decoded form, and a
/// frame digest that matches (what a forger who controls the file can do).
fn rewrite(l: &Logged, index: usize, change: impl FnOnce(&mut Record)) {
    let path = segment_path(l.dir.path(), 0);
    let data = fs::read(&path).unwrap();
    let (start, end) = (l.offsets[index] as usize, l.offsets[index + 1] as usize);
    let mut record = Record::decode(&data[start + 8..end - 32]).unwrap();
    change(&mut record);
    let mut out = data[..start].to_vec();
    out.extend(codec::frame(&record.encode().unwrap()).unwrap());
    out.extend_from_slice(&data[end..]);
    fs::write(&path, out).unwrap();
}

#[test]
fn forged_quote_with_recomputed_digest_fails_that_record_and_the_next_link() {
    let l = logged();
    rewrite(&l, 2, |r| {
        if let RecordBody::BondFormed(b) = &mut r.body {
            b.bond_quote.as_mut().unwrap().quote[700] ^= 0x80;
        }
    });
    let report = audit(&l.fx, l.dir.path());
    assert_eq!(failed_indexes(&report), [2, 3]);
    let failures = &report.records[2].failures;
    assert!(
        matches!(failures[..], [AuditFailure::Quote { which: "bond", .. }]),
        "{failures:?}"
    );
    assert!(matches!(
        report.records[3].failures[..],
        [AuditFailure::ChainBroken]
    ));
}

#[test]
fn exporter_not_matching_the_bond_quote_fails_the_binding() {
    let l = logged();
    rewrite(&l, 0, |r| {
        if let RecordBody::BondFormed(b) = &mut r.body {
            b.exporter = vec![9; 32];
        }
    });
    let report = audit(&l.fx, l.dir.path());
    let failures = &report.records[0].failures;
    assert!(
        matches!(failures[..], [AuditFailure::Binding { which: "bond", .. }]),
        "{failures:?}"
    );
}

#[test]
fn quotes_under_another_root_fail() {
    let l = logged();
    let other = Fixture::new();
    let report = audit(&other, l.dir.path());
    assert_eq!(failed_indexes(&report), [0, 2, 4]);
    assert!(report.records[0]
        .failures
        .iter()
        .all(|f| matches!(f, AuditFailure::Quote { .. })));
}

#[test]
fn missing_collateral_fails_the_quotes() {
    let l = logged();
    fs::remove_dir_all(l.dir.path().join("collateral")).unwrap();
    let report = audit(&l.fx, l.dir.path());
    assert_eq!(failed_indexes(&report), [0, 2, 4]);
    assert!(matches!(
        report.records[0].failures[0],
        AuditFailure::Collateral { .. }
    ));
}

#[test]
fn records_of_a_retired_identity_after_retirement_are_flagged() {
    let l = logged();
    let marker = RetirementMarker::create(&l.fx.client, NOW + 2, None).unwrap();
    let verifier = QuoteVerifier::dangerous().trust_root(l.fx.pki.root_der().to_vec());
    let policy = Policy::authenticity_only();
    let report = Auditor::new(&verifier, &policy)
        .with_marker(marker.clone())
        .unwrap()
        .audit(&LogContents::read(l.dir.path()).unwrap());
    assert_eq!(failed_indexes(&report), [2, 4]);
    assert!(matches!(
        report.records[2].failures[..],
        [AuditFailure::Retired(_)]
    ));
    // The same marker as a record in the log has the same effect.
    let (mut store, _) = LogStore::open(l.dir.path(), StoreOptions::default()).unwrap();
    store
        .append(NOW + 5, RecordBody::Retirement(marker))
        .unwrap();
    drop(store);
    assert_eq!(failed_indexes(&audit(&l.fx, l.dir.path())), [2, 4]);
}

#[test]
fn forged_marker_is_refused() {
    let l = logged();
    let good = RetirementMarker::create(&l.fx.client, NOW, None).unwrap();
    let mut bytes = good.encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = RetirementMarker::decode(&bytes).unwrap();
    let verifier = QuoteVerifier::dangerous().trust_root(l.fx.pki.root_der().to_vec());
    let policy = Policy::authenticity_only();
    assert!(Auditor::new(&verifier, &policy)
        .with_marker(forged.clone())
        .is_err());
    let (mut store, _) = LogStore::open(l.dir.path(), StoreOptions::default()).unwrap();
    store
        .append(NOW + 5, RecordBody::Retirement(forged))
        .unwrap();
    drop(store);
    // A forged marker in the log is flagged and retires nobody.
    assert_eq!(failed_indexes(&audit(&l.fx, l.dir.path())), [5]);
}

#[test]
fn external_checkpoint_exposes_truncation() {
    let l = logged();
    let (mut store, _) = LogStore::open(l.dir.path(), StoreOptions::default()).unwrap();
    let checkpoint = store.checkpoint(&l.fx.server, NOW + 10).unwrap();
    drop(store);
    let path = segment_path(l.dir.path(), 0);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(l.offsets[4]).unwrap();
    drop(file);
    let verifier = QuoteVerifier::dangerous().trust_root(l.fx.pki.root_der().to_vec());
    let policy = Policy::authenticity_only();
    let report = Auditor::new(&verifier, &policy)
        .with_checkpoint(checkpoint)
        .audit(&LogContents::read(l.dir.path()).unwrap());
    assert!(report.failed().next().is_none());
    assert!(!report.passed());
    assert_eq!(
        report.checkpoints[0].failure,
        Some(CheckpointMismatch::Truncated { index: 4, len: 4 })
    );
}

/// A record whose collateral came from a service, re-judged by a policy with a `[remote]`
/// section: fresh from a declared service passes; stale, or from another service, fails.
#[test]
fn remote_rules_are_judged_from_the_recorded_source_and_fetch_time() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open(dir.path(), StoreOptions::default()).unwrap();
    store.put_collateral(&fx.collateral).unwrap();
    for (fetched_at, url) in [
        (NOW - 60, "http://pccs.example:8081/"),
        (NOW - 100_000, "http://pccs.example:8081/"),
        (NOW - 60, "http://elsewhere.example/"),
    ] {
        let mut evidence = fx.evidence(NOW, [5; 32]);
        for q in [&mut evidence.cert_quote, &mut evidence.bond_quote]
            .into_iter()
            .flatten()
        {
            q.collateral_source = CollateralSource::Service {
                url: url.into(),
                fetched_at,
                item_digests: [[1; 32]; 4],
            };
        }
        store.append(NOW, RecordBody::BondFormed(evidence)).unwrap();
    }
    drop(store);
    let verifier = QuoteVerifier::dangerous().trust_root(fx.pki.root_der().to_vec());
    let mut policy = Policy::authenticity_only();
    policy.set_remote(Some(crate::RemotePolicy::new(
        vec!["http://pccs.example:8081/".into()],
        3600,
    )));
    let report = Auditor::new(&verifier, &policy).audit(&LogContents::read(dir.path()).unwrap());
    assert_eq!(failed_indexes(&report), [1, 2]);
    for index in [1, 2] {
        assert!(report.records[index].failures.iter().all(|f| matches!(
            f,
            AuditFailure::Quote { source, .. } if source.policy_violation().is_some()
        )));
    }
}
