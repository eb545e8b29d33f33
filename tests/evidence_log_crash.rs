//! A writer process is killed (SIGKILL) at random moments while it appends to an evidence log,
//! many times over. After every kill the log reopens, a torn tail (if any) is cut, every record
//! the writer acknowledged is present and unchanged, and the chain verifies.
//!
//! The writer is this test binary itself, re-run with `RATLS_EVLOG_CHILD` naming the log
//! directory; it prints `ack INDEX DIGEST` after each append returned.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratls_quic::evidence_log::{
    BondEvidence, BondRefusal, CertificateFacts, CollateralSource, LogContents, LogEntry, LogStore,
    QuoteEvidence, RecordBody, StoreOptions, Verdict,
};
use ratls_quic::AttestationLevel;
use ratls_quic::PeerId;
use ratls_quic::Role;

const CHILD_ENV: &str = "RATLS_EVLOG_CHILD";
const SEGMENT_BYTES: u64 = 256 * 1024;
const KILLS: usize = 40;

/// The record body written at `index`: large (three pages and more), and a function of the
/// index so the parent can check every byte.
fn body(index: u64) -> RecordBody {
    if index % 5 == 4 {
        return RecordBody::BondRefused(BondRefusal {
            local: PeerId::from_bytes([2; 32]),
            local_role: Role::Server,
            peer: Some(PeerId::from_bytes([3; 32])),
            reason: "measurement".into(),
            detail: format!("refusal {index}"),
            cert_quote_digest: Some([index as u8; 32]),
            bond_quote_digest: None,
            collateral_digest: None,
        });
    }
    let quote = |salt: u64| -> Vec<u8> {
        (0..6000u64)
            .map(|i| (i.wrapping_mul(131) ^ index.wrapping_mul(7) ^ salt) as u8)
            .collect()
    };
    RecordBody::BondFormed(BondEvidence {
        client: PeerId::from_bytes([1; 32]),
        server: PeerId::from_bytes([2; 32]),
        recorder: Role::Server,
        subject: Role::Client,
        level: AttestationLevel::TdxRaTlsBidirectional,
        exporter: index.to_be_bytes().repeat(4),
        certificate: CertificateFacts {
            spki_der: vec![0x30; 44],
            not_before: 1000,
            not_after: 2000 + index,
        },
        cert_quote: Some(QuoteEvidence {
            quote: quote(1),
            collateral_digest: [5; 32],
            collateral_source: CollateralSource::File("collateral.json".into()),
        }),
        bond_quote: Some(QuoteEvidence {
            quote: quote(2),
            collateral_digest: [5; 32],
            collateral_source: CollateralSource::File("collateral.json".into()),
        }),
        verdict: Verdict {
            tcb_status: "UpToDate".into(),
            profile: "app".into(),
        },
    })
}

fn options() -> StoreOptions {
    let mut options = StoreOptions::default();
    options.set_max_segment_bytes(SEGMENT_BYTES);
    options
}

/// Child mode: open (repairing), then append forever, single records and group commits of
/// three and thirty, printing each acknowledged index.
fn child(dir: &Path) -> ! {
    let (mut store, _) = LogStore::open(dir, options()).expect("child opens the log");
    let mut out = std::io::stdout().lock();
    loop {
        let next = store.len();
        // Large group commits make a kill inside the write itself (a torn tail) likely.
        let batch = match next % 10 {
            0 => 30,
            3 | 6 => 3,
            _ => 1,
        };
        let done = if batch > 1 {
            store
                .append_batch(next, (next..next + batch).map(body).collect())
                .expect("batch append")
        } else {
            vec![store.append(next, body(next)).expect("append")]
        };
        for appended in done {
            writeln!(
                out,
                "ack {} {}",
                appended.index,
                hex::encode(appended.digest)
            )
            .unwrap();
        }
        out.flush().unwrap();
    }
}

/// A small xorshift generator: the kill times need no cryptographic randomness, and the seed
/// is printed so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn killed_writer_loses_no_acknowledged_record() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let seed = std::env::var("RATLS_EVLOG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("seed {seed}");
    let mut rng = XorShift(seed);
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut torn_tails = 0;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "killed_writer_loses_no_acknowledged_record",
                "--nocapture",
            ])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stdout.read_to_end(&mut text);
            text
        });
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 180));
        child.kill().unwrap();
        child.wait().unwrap();
        let text = String::from_utf8(reader.join().unwrap()).unwrap();
        // Only whole lines: a line cut by the kill was not printed in full.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in complete.lines() {
            let Some(rest) = line.strip_prefix("ack ") else {
                continue;
            };
            let (index, digest) = rest.split_once(' ').unwrap();
            acked.insert(index.parse().unwrap(), digest.to_owned());
        }

        let (store, report) = LogStore::open(tmp.path(), options())
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen failed: {e}"));
        if report.truncated_bytes > 0 {
            torn_tails += 1;
        }
        drop(store);
        check_log(tmp.path(), &acked, round, seed);
    }
    let records = LogContents::read(tmp.path()).unwrap().records().count();
    println!(
        "{KILLS} kills, {} acknowledged records, {records} in the log, {torn_tails} torn tails cut",
        acked.len()
    );
    assert!(!acked.is_empty(), "the writer never acknowledged a record");
}

/// Every entry is intact, indexes run from 0 without gaps, each record names its
/// predecessor's digest and has the content written at its index, and every acknowledged
/// record is there with the acknowledged digest.
fn check_log(dir: &Path, acked: &BTreeMap<u64, String>, round: usize, seed: u64) {
    let contents = LogContents::read(dir).unwrap();
    let mut head = [0u8; 32];
    let mut digests = Vec::new();
    for (position, entry) in contents.entries().iter().enumerate() {
        let LogEntry::Record { digest, record, .. } = entry else {
            panic!("round {round} (seed {seed}): damaged entry after reopen: {entry:?}");
        };
        assert_eq!(record.index, position as u64, "round {round}");
        assert_eq!(
            record.prev, head,
            "round {round}: chain broken at {position}"
        );
        assert_eq!(
            record.body,
            body(record.index),
            "round {round}: record {position}"
        );
        head = *digest;
        digests.push(hex::encode(digest));
    }
    for (index, digest) in acked {
        let found = digests.get(*index as usize);
        assert_eq!(
            found,
            Some(digest),
            "round {round} (seed {seed}): acknowledged record {index} lost or changed"
        );
    }
}
