use std::io::{Seek, SeekFrom};

use super::*;
use crate::evidence::Role;
use crate::evidence_log::{
    BondEvidence, BondRefusal, CertificateFacts, CheckpointMismatch, CollateralSource,
    QuoteEvidence, Verdict,
};
use crate::identity::Identity;
use crate::identity::PeerId;
use crate::level::AttestationLevel;

/// A formed-bond record whose quote bytes depend on `n`, so every record differs.
pub(crate) fn sample_formed(n: u64) -> RecordBody {
    let quote: Vec<u8> = (0..5000u64).map(|i| (i * 31 + n * 7) as u8).collect();
    RecordBody::BondFormed(BondEvidence {
        client: PeerId::from_bytes([1; 32]),
        server: PeerId::from_bytes([2; 32]),
        recorder: Role::Server,
        subject: Role::Client,
        level: AttestationLevel::TdxRaTlsBidirectional,
        exporter: vec![9; 32],
        certificate: CertificateFacts {
            spki_der: vec![0x30; 44],
            not_before: 1000,
            not_after: 2000 + n,
        },
        cert_quote: Some(QuoteEvidence {
            quote: quote.clone(),
            collateral_digest: [5; 32],
            collateral_source: CollateralSource::File("collateral.json".into()),
        }),
        bond_quote: Some(QuoteEvidence {
            quote: quote.iter().rev().copied().collect(),
            collateral_digest: [5; 32],
            collateral_source: CollateralSource::Service {
                url: "https://pccs.example/sgx/certification/v4".into(),
                fetched_at: 900,
                item_digests: [[6; 32], [7; 32], [8; 32], [9; 32]],
            },
        }),
        verdict: Verdict {
            tcb_status: "UpToDate".into(),
            profile: "app".into(),
        },
    })
}

fn sample_refused(n: u64) -> RecordBody {
    RecordBody::BondRefused(BondRefusal {
        local: PeerId::from_bytes([2; 32]),
        local_role: Role::Server,
        peer: Some(PeerId::from_bytes([3; 32])),
        reason: "measurement".into(),
        detail: format!("attempt {n}"),
        cert_quote_digest: Some([4; 32]),
        bond_quote_digest: None,
        collateral_digest: Some([5; 32]),
    })
}

fn read_records(dir: &Path) -> Vec<Record> {
    let contents = LogContents::read(dir).unwrap();
    assert!(
        contents
            .entries()
            .iter()
            .all(|e| matches!(e, LogEntry::Record { .. })),
        "damaged entries: {:?}",
        contents.entries()
    );
    contents.records().map(|(_, r)| r.clone()).collect()
}

#[test]
fn records_round_trip_through_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, report) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.records, 0);
    let a = store.append(10, sample_formed(0)).unwrap();
    let b = store.append(11, sample_refused(1)).unwrap();
    assert_eq!((a.index, b.index), (0, 1));
    drop(store);
    let (store, report) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        report,
        OpenReport {
            records: 2,
            segments: 1,
            truncated_bytes: 0
        }
    );
    assert_eq!(store.head(), b.digest);
    let records = read_records(tmp.path());
    assert_eq!(records[0].body, sample_formed(0));
    assert_eq!(records[1].body, sample_refused(1));
    assert_eq!(records[1].prev, a.digest);
    assert_eq!(records[0].prev, [0; 32]);
}

#[test]
fn rotation_continues_the_chain_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::default();
    options.set_max_segment_bytes(25_000);
    let (mut store, _) = LogStore::open(tmp.path(), options.clone()).unwrap();
    let mut last = None;
    for n in 0..12 {
        last = Some(store.append(100 + n, sample_formed(n)).unwrap());
    }
    drop(store);
    let (store, report) = LogStore::open(tmp.path(), options).unwrap();
    assert!(report.segments >= 4, "{report:?}");
    assert_eq!(report.records, 12);
    assert_eq!(store.head(), last.unwrap().digest);
    let records = read_records(tmp.path());
    let digests: Vec<_> = LogContents::read(tmp.path())
        .unwrap()
        .records()
        .map(|(d, _)| *d)
        .collect();
    for (i, r) in records.iter().enumerate().skip(1) {
        assert_eq!(r.index, i as u64);
        assert_eq!(r.prev, digests[i - 1], "record {i}");
    }
}

#[test]
fn batch_is_one_group_commit_with_consecutive_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    store.append(1, sample_refused(0)).unwrap();
    let done = store
        .append_batch(
            2,
            vec![sample_formed(1), sample_formed(2), sample_refused(3)],
        )
        .unwrap();
    assert_eq!(done.iter().map(|a| a.index).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(read_records(tmp.path()).len(), 4);
}

#[test]
fn torn_tail_is_cut_at_every_length_and_acknowledged_records_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    for n in 0..3 {
        store.append(n, sample_formed(n)).unwrap();
    }
    let head = store.head();
    drop(store);
    let path = segment_path(tmp.path(), 0);
    let good = fs::read(&path).unwrap();
    let payload = Record {
        index: 3,
        time: 3,
        prev: head,
        body: sample_formed(3),
    }
    .encode()
    .unwrap();
    let torn = codec::frame(&payload).unwrap();
    // Every prefix shorter than the frame, plus a zero-filled tail (an extended file).
    let mut tails: Vec<Vec<u8>> = (1..torn.len())
        .step_by(97)
        .map(|n| torn[..n].to_vec())
        .collect();
    tails.push(torn[..torn.len() - 1].to_vec());
    tails.push(vec![0; 4096]);
    for tail in tails {
        let mut data = good.clone();
        data.extend_from_slice(&tail);
        fs::write(&path, &data).unwrap();
        let (mut store, report) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
        assert_eq!(report.records, 3, "tail of {}", tail.len());
        assert_eq!(report.truncated_bytes, tail.len() as u64);
        assert_eq!(fs::metadata(&path).unwrap().len(), good.len() as u64);
        // The log goes on from the cut.
        store.append(3, sample_formed(3)).unwrap();
        drop(store);
        assert_eq!(read_records(tmp.path()).len(), 4);
        fs::write(&path, &good).unwrap();
    }
}

#[test]
fn damage_before_a_valid_record_is_refused_not_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    let mut offsets = Vec::new();
    for n in 0..3 {
        offsets.push(store.segment_len);
        store.append(n, sample_formed(n)).unwrap();
    }
    drop(store);
    let path = segment_path(tmp.path(), 0);
    let mut data = fs::read(&path).unwrap();
    let at = offsets[1] as usize + 100;
    data[at] ^= 0x20;
    fs::write(&path, &data).unwrap();
    let err = LogStore::open(tmp.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt { segment: 0, offset, defect: FrameDefect::DigestMismatch }
            if offset == offsets[1]),
        "{err:?}"
    );
    // The file was not touched.
    assert_eq!(fs::read(&path).unwrap(), data);
    // The lenient reader names exactly that record and keeps the others.
    let contents = LogContents::read(tmp.path()).unwrap();
    let kinds: Vec<bool> = contents
        .entries()
        .iter()
        .map(|e| matches!(e, LogEntry::Record { .. }))
        .collect();
    assert_eq!(kinds, [true, false, true]);
}

#[test]
fn checkpoint_before_truncation_exposes_it_and_fork_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Identity::generate().unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    let mut sizes = Vec::new();
    for n in 0..4 {
        store.append(n, sample_formed(n)).unwrap();
        sizes.push(store.segment_len);
    }
    let checkpoint = store.checkpoint(&id, 50).unwrap();
    assert_eq!(checkpoint.index, 3);
    drop(store);
    let digests = |dir: &Path| -> Vec<Digest> {
        LogContents::read(dir)
            .unwrap()
            .records()
            .map(|(d, _)| *d)
            .collect()
    };
    checkpoint.check_log(&digests(tmp.path())).unwrap();
    // Cut the log back to two records at a record boundary: it reopens cleanly, and only the
    // checkpoint shows what is missing.
    let path = segment_path(tmp.path(), 0);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(sizes[1]).unwrap();
    drop(file);
    let (mut store, report) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.records, 2);
    assert_eq!(
        checkpoint.check_log(&digests(tmp.path())),
        Err(CheckpointMismatch::Truncated { index: 3, len: 2 })
    );
    // A rewritten history of the same length forks from the checkpoint.
    store.append(2, sample_refused(2)).unwrap();
    store.append(3, sample_refused(3)).unwrap();
    drop(store);
    assert_eq!(
        checkpoint.check_log(&digests(tmp.path())),
        Err(CheckpointMismatch::Forked { index: 3 })
    );
}

#[test]
fn checkpoint_of_empty_log_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Identity::generate().unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    assert!(matches!(store.checkpoint(&id, 1), Err(LogError::Empty)));
}

#[test]
fn reordered_record_breaks_the_chain_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    let mut bounds = vec![store.segment_len];
    for n in 0..3 {
        store.append(n, sample_refused(n)).unwrap();
        bounds.push(store.segment_len);
    }
    drop(store);
    let path = segment_path(tmp.path(), 0);
    let data = fs::read(&path).unwrap();
    let b = |i: usize| bounds[i] as usize;
    let mut swapped = data[..b(0)].to_vec();
    swapped.extend_from_slice(&data[b(1)..b(2)]);
    swapped.extend_from_slice(&data[b(0)..b(1)]);
    swapped.extend_from_slice(&data[b(2)..]);
    fs::write(&path, &swapped).unwrap();
    let err = LogStore::open(tmp.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Chain { index: 0, .. }), "{err:?}");
}

#[test]
#[cfg(feature = "synthetic")]
fn collateral_is_stored_once_by_digest_and_checked_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = crate::tdx::synthetic::SyntheticPki::generate(
        crate::tdx::synthetic::SyntheticPkiParams::new(1_700_000_000),
    )
    .unwrap();
    let collateral = Collateral::new(pki.collateral().clone()).unwrap();
    let (store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    let d1 = store.put_collateral(&collateral).unwrap();
    let d2 = store.put_collateral(&collateral).unwrap();
    assert_eq!(d1, *collateral.digest());
    assert_eq!(d1, d2);
    let files = fs::read_dir(tmp.path().join(COLLATERAL_DIR))
        .unwrap()
        .count();
    assert_eq!(files, 1);
    let loaded = load_collateral(tmp.path(), &d1).unwrap();
    assert_eq!(loaded.digest(), collateral.digest());
    // A changed collateral file is refused.
    let path = collateral_path(tmp.path(), &d1);
    let mut file = OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(10)).unwrap();
    file.write_all(b" ").unwrap();
    drop(file);
    assert!(matches!(
        load_collateral(tmp.path(), &d1),
        Err(LogError::CollateralMismatch { .. })
    ));
}

#[test]
fn segment_gap_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::default();
    options.set_max_segment_bytes(1);
    let (mut store, _) = LogStore::open(tmp.path(), options.clone()).unwrap();
    for n in 0..3 {
        store.append(n, sample_refused(n)).unwrap();
    }
    drop(store);
    fs::remove_file(segment_path(tmp.path(), 1)).unwrap();
    assert!(matches!(
        LogStore::open(tmp.path(), options),
        Err(LogError::Chain { .. })
    ));
}

#[test]
fn frames_by_index_match_the_files_across_segments_and_respect_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Identity::generate().unwrap();
    let mut options = StoreOptions::default();
    options.set_max_segment_bytes(30_000);
    let (mut store, _) = LogStore::open(tmp.path(), options.clone()).unwrap();
    for n in 0..6 {
        store.append(n, sample_formed(n)).unwrap();
    }
    let checkpoint = store.checkpoint(&id, 7).unwrap();
    assert_eq!(store.last_checkpoint(), Some(&checkpoint));
    drop(store);
    let (store, _) = LogStore::open(tmp.path(), options).unwrap();
    assert_eq!(store.last_checkpoint(), Some(&checkpoint));
    let all = store.frames(0, 100, usize::MAX).unwrap();
    assert_eq!(all.len(), 7);
    for (i, frame) in all.iter().enumerate() {
        let span = codec::frame_at(frame, 0).unwrap();
        assert_eq!(span.end, frame.len());
        let record = Record::decode(&frame[span.payload_start..span.payload_end]).unwrap();
        assert_eq!(record.index, i as u64);
    }
    assert_eq!(store.frames(5, 100, usize::MAX).unwrap(), all[5..]);
    assert_eq!(store.frames(2, 2, usize::MAX).unwrap(), all[2..4]);
    // The byte bound stops after the first frame that fits, and always gives one.
    assert_eq!(store.frames(0, 100, 1).unwrap(), all[..1]);
    assert!(store.frames(7, 100, usize::MAX).unwrap().is_empty());
    assert!(store.frames(u64::MAX, 100, usize::MAX).unwrap().is_empty());
}

#[test]
fn retirement_records_load_into_a_refusal_set_and_forged_ones_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let old = Identity::generate().unwrap();
    let good = crate::evidence_log::RetirementMarker::create(&old, 100, None).unwrap();
    let (mut store, _) = LogStore::open(tmp.path(), StoreOptions::default()).unwrap();
    store
        .append(1, RecordBody::Retirement(good.clone()))
        .unwrap();
    let other = Identity::generate().unwrap();
    let mut forged = crate::evidence_log::RetirementMarker::create(&other, 100, None).unwrap();
    let mut forged_bytes = forged.encode();
    forged_bytes[40] ^= 1;
    forged = crate::evidence_log::RetirementMarker::decode(&forged_bytes).unwrap();
    store.append(2, RecordBody::Retirement(forged)).unwrap();
    drop(store);
    let contents = LogContents::read(tmp.path()).unwrap();
    let mut retired = crate::evidence_log::RetiredIdentities::default();
    let loaded = contents
        .retirement_markers()
        .filter(|m| retired.insert((*m).clone()).is_ok())
        .count();
    assert_eq!(loaded, 1);
    assert!(retired.check(&old.peer_id(), 100).is_err());
    assert!(retired.check(&old.peer_id(), 99).is_ok());
    assert!(retired.check(&other.peer_id(), 1000).is_ok());
}

mod hostile {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any bytes in a segment file give a typed error or an opened log, never a panic,
        /// and an opened log keeps only intact records.
        #[test]
        fn hostile_segment_never_panics(
            body in prop::collection::vec(any::<u8>(), 0..2048),
            keep_header in any::<bool>(),
            splice_frame in any::<bool>(),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let mut data = Vec::new();
            if keep_header {
                data.extend_from_slice(&SegmentHeader { seq: 0, first_index: 0 }.encode());
            }
            if splice_frame {
                let record = Record { index: 0, time: 1, prev: [0; 32], body: sample_refused(0) };
                data.extend(codec::frame(&record.encode().unwrap()).unwrap());
            }
            data.extend_from_slice(&body);
            fs::write(segment_path(tmp.path(), 0), &data).unwrap();
            let _ = LogContents::read(tmp.path()).unwrap();
            if let Ok((store, _)) = LogStore::open(tmp.path(), StoreOptions::default()) {
                let len = store.len();
                drop(store);
                let intact = LogContents::read(tmp.path()).unwrap();
                prop_assert_eq!(intact.records().count() as u64, len);
                prop_assert_eq!(intact.entries().len() as u64, len);
            }
        }
    }
}
