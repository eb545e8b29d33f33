//! The log on disk: a directory of segment files and the collateral they reference.
//!
//! ```text
//! DIR/segment-00000000.rqel   header (32 bytes), then frames
//! DIR/segment-00000001.rqel   the chain continues: its first record names the last of 0
//! DIR/collateral/<blake3 hex>.json
//! ```
//!
//! **Durability.** [`LogStore::append`] writes the frame and calls `fdatasync` before it
//! returns; [`LogStore::append_batch`] is a group commit: one write and one `fdatasync` for the
//! whole batch, and no record of the batch is acknowledged before that. A new segment is
//! written to a temporary file, synced, renamed into place and the directory synced before any
//! record goes into it; collateral files likewise, before the record naming them.
//!
//! **Opening.** Every segment is read and its chain checked. In the last segment, a damaged
//! stretch after which no valid frame follows is a torn tail (a crash during a write) and is
//! cut off; since appends are acknowledged only after the sync, the cut never removes an
//! acknowledged record. Damage anywhere else is refused with [`LogError::Corrupt`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::codec::{self, Digest, FrameDefect, Scanned, SegmentHeader, SEGMENT_HEADER_LEN};
use super::{Checkpoint, FormatError, LogError, Record, RecordBody};
use crate::identity::Identity;
use crate::tdx::Collateral;

/// Default segment size before rotation.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Name of the collateral directory inside the log directory.
pub const COLLATERAL_DIR: &str = "collateral";

/// Knobs of a [`LogStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    max_segment_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
        }
    }
}

impl StoreOptions {
    /// Starts a new segment once the current one would grow past `bytes` (default 64 MiB). A
    /// segment always takes at least one record or batch, so it may exceed this by one.
    pub fn set_max_segment_bytes(&mut self, bytes: u64) -> &mut Self {
        self.max_segment_bytes = bytes;
        self
    }
}

/// What [`LogStore::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records in the log.
    pub records: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes of a torn tail cut off the last segment (0 if none).
    pub truncated_bytes: u64,
}

/// Where an appended record went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its index.
    pub index: u64,
    /// Its digest (the new chain head).
    pub digest: Digest,
}

/// An open log, for appending. One writer per directory.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    options: StoreOptions,
    file: File,
    seq: u64,
    segment_len: u64,
    next_index: u64,
    head: Digest,
    poisoned: bool,
    /// Where every record's frame is, by index.
    locations: Vec<Location>,
    last_checkpoint: Option<Checkpoint>,
    commits: u64,
}

/// Where a record's frame lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    seq: u64,
    offset: u64,
    len: u32,
}

/// Internal state found by [`LogStore::open`].
struct Opened {
    seq: u64,
    segment_len: u64,
    next_index: u64,
    head: Digest,
    locations: Vec<Location>,
    last_checkpoint: Option<Checkpoint>,
}

impl LogStore {
    /// Opens the log in `dir`, creating it if needed, cutting a torn tail (see the module docs).
    pub fn open(dir: &Path, options: StoreOptions) -> Result<(Self, OpenReport), LogError> {
        create_dir(dir)?;
        create_dir(&dir.join(COLLATERAL_DIR))?;
        let seqs = segment_seqs(dir)?;
        let mut report = OpenReport::default();
        let mut next_index = 0u64;
        let mut head = [0u8; 32];
        let mut locations = Vec::new();
        let mut last_checkpoint = None;
        let Some(&last) = seqs.last() else {
            let (file, segment_len) = create_segment(dir, 0, 0)?;
            report.segments = 1;
            let opened = Opened {
                seq: 0,
                segment_len,
                next_index: 0,
                head,
                locations,
                last_checkpoint,
            };
            return Ok((Self::with(dir, options, file, opened), report));
        };
        let mut valid_len = 0u64;
        for &seq in &seqs {
            let path = segment_path(dir, seq);
            let data = fs::read(&path).map_err(io(&path))?;
            let header = SegmentHeader::decode(&data).map_err(format(&path))?;
            if header.seq != seq || header.first_index != next_index {
                return Err(LogError::Chain {
                    index: next_index,
                    what: "segment header does not continue the previous segment",
                });
            }
            let body = data.get(SEGMENT_HEADER_LEN..).unwrap_or_default();
            let scanned = codec::scan(body);
            valid_len = data.len() as u64;
            for (i, entry) in scanned.iter().enumerate() {
                match *entry {
                    Scanned::Frame(span) => {
                        let payload = body
                            .get(span.payload_start..span.payload_end)
                            .unwrap_or_default();
                        let record = Record::decode(payload).map_err(format(&path))?;
                        check_link(&record, next_index, &head)?;
                        if let RecordBody::Checkpoint(c) = record.body {
                            last_checkpoint = Some(c);
                        }
                        locations.push(Location {
                            seq,
                            offset: (SEGMENT_HEADER_LEN + span.offset) as u64,
                            len: (span.end - span.offset) as u32,
                        });
                        head = span.digest;
                        next_index += 1;
                    }
                    Scanned::Bad { offset, defect, .. } => {
                        let valid_after = scanned[i + 1..]
                            .iter()
                            .any(|e| matches!(e, Scanned::Frame(_)));
                        if seq != last || valid_after {
                            return Err(LogError::Corrupt {
                                segment: seq,
                                offset: (SEGMENT_HEADER_LEN + offset) as u64,
                                defect,
                            });
                        }
                        valid_len = (SEGMENT_HEADER_LEN + offset) as u64;
                        report.truncated_bytes = data.len() as u64 - valid_len;
                        break;
                    }
                }
            }
        }
        let path = segment_path(dir, last);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                segment = last,
                bytes = report.truncated_bytes,
                "evidence log: cutting a torn tail"
            );
            file.set_len(valid_len).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        report.records = next_index;
        report.segments = seqs.len() as u64;
        let opened = Opened {
            seq: last,
            segment_len: valid_len,
            next_index,
            head,
            locations,
            last_checkpoint,
        };
        Ok((Self::with(dir, options, file, opened), report))
    }

    fn with(dir: &Path, options: StoreOptions, file: File, opened: Opened) -> Self {
        Self {
            dir: dir.to_path_buf(),
            options,
            file,
            seq: opened.seq,
            segment_len: opened.segment_len,
            next_index: opened.next_index,
            head: opened.head,
            poisoned: false,
            locations: opened.locations,
            last_checkpoint: opened.last_checkpoint,
            commits: 0,
        }
    }

    /// How many commits (write and sync) this store made since it was opened.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The most recent checkpoint in the log.
    pub fn last_checkpoint(&self) -> Option<&Checkpoint> {
        self.last_checkpoint.as_ref()
    }

    /// The frames (as stored: magic, length, payload, digest) of records `from..`, at most
    /// `max_records` of them and, past the first, at most `max_bytes` in all.
    pub fn frames(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, LogError> {
        use std::io::{Read, Seek, SeekFrom};

        let start = usize::try_from(from).unwrap_or(usize::MAX);
        let wanted = self.locations.get(start..).unwrap_or_default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut total = 0usize;
        let mut open: Option<(u64, File)> = None;
        for location in wanted.iter().take(max_records) {
            let len = location.len as usize;
            if !out.is_empty() && total + len > max_bytes {
                break;
            }
            let path = segment_path(&self.dir, location.seq);
            let file = match &mut open {
                Some((seq, file)) if *seq == location.seq => file,
                _ => {
                    let file = File::open(&path).map_err(io(&path))?;
                    &mut open.insert((location.seq, file)).1
                }
            };
            let mut frame = vec![0u8; len];
            file.seek(SeekFrom::Start(location.offset))
                .and_then(|_| file.read_exact(&mut frame))
                .map_err(io(&path))?;
            total += len;
            out.push(frame);
        }
        Ok(out)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.next_index
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.next_index == 0
    }

    /// Digest of the last record (all zero for an empty log).
    pub fn head(&self) -> Digest {
        self.head
    }

    /// Appends one record written at `time`; it is on stable storage when this returns.
    pub fn append(&mut self, time: u64, body: RecordBody) -> Result<Appended, LogError> {
        let mut done = self.append_batch(time, vec![body])?;
        done.pop().ok_or(LogError::Empty)
    }

    /// Appends records written at `time` in one write and one sync (group commit); all are on
    /// stable storage when this returns, none before.
    pub fn append_batch(
        &mut self,
        time: u64,
        bodies: Vec<RecordBody>,
    ) -> Result<Vec<Appended>, LogError> {
        self.append_timed(bodies.into_iter().map(|b| (time, b)).collect())
    }

    /// As [`Self::append_batch`], each record with its own time.
    pub fn append_timed(
        &mut self,
        bodies: Vec<(u64, RecordBody)>,
    ) -> Result<Vec<Appended>, LogError> {
        if self.poisoned {
            return Err(LogError::Io {
                path: self.segment_path(),
                source: std::io::Error::other("an earlier write failed and could not be undone"),
            });
        }
        let mut buffer = Vec::new();
        let mut appended = Vec::with_capacity(bodies.len());
        let mut frame_lens = Vec::with_capacity(bodies.len());
        let mut checkpoint = None;
        let (mut index, mut head) = (self.next_index, self.head);
        for (time, body) in bodies {
            let record = Record {
                index,
                time,
                prev: head,
                body,
            };
            if let RecordBody::Checkpoint(c) = &record.body {
                checkpoint = Some(c.clone());
            }
            let payload = record.encode().map_err(|source| LogError::Format {
                what: format!("record {index}"),
                source,
            })?;
            let frame = codec::frame(&payload).map_err(|source| LogError::Format {
                what: format!("record {index}"),
                source,
            })?;
            head = codec::record_digest(&payload);
            frame_lens.push(frame.len() as u32);
            buffer.extend_from_slice(&frame);
            appended.push(Appended {
                index,
                digest: head,
            });
            index += 1;
        }
        if buffer.is_empty() {
            return Ok(appended);
        }
        let has_records = self.segment_len > SEGMENT_HEADER_LEN as u64;
        if has_records && self.segment_len + buffer.len() as u64 > self.options.max_segment_bytes {
            self.rotate()?;
        }
        let path = self.segment_path();
        let written = self
            .file
            .write_all(&buffer)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Undo a partial write so the next append does not follow garbage.
            if self
                .file
                .set_len(self.segment_len)
                .and_then(|()| self.file.sync_data())
                .is_err()
            {
                self.poisoned = true;
            }
            return Err(LogError::Io { path, source });
        }
        let mut offset = self.segment_len;
        for len in frame_lens {
            self.locations.push(Location {
                seq: self.seq,
                offset,
                len,
            });
            offset += u64::from(len);
        }
        self.segment_len = offset;
        self.commits += 1;
        self.next_index = index;
        self.head = head;
        if checkpoint.is_some() {
            self.last_checkpoint = checkpoint;
        }
        Ok(appended)
    }

    /// Signs the chain head with `identity` and appends the checkpoint as a record.
    pub fn checkpoint(&mut self, identity: &Identity, now: u64) -> Result<Checkpoint, LogError> {
        let index = self.next_index.checked_sub(1).ok_or(LogError::Empty)?;
        let checkpoint = Checkpoint::sign(identity, index, self.head, now);
        self.append(now, RecordBody::Checkpoint(checkpoint.clone()))?;
        Ok(checkpoint)
    }

    /// Stores `collateral` once under its digest in the collateral directory (durably) and
    /// returns the digest.
    pub fn put_collateral(&self, collateral: &Collateral) -> Result<Digest, LogError> {
        put_collateral(&self.dir, collateral)
    }

    fn segment_path(&self) -> PathBuf {
        segment_path(&self.dir, self.seq)
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let seq = self.seq + 1;
        let (file, len) = create_segment(&self.dir, seq, self.next_index)?;
        self.file = file;
        self.seq = seq;
        self.segment_len = len;
        Ok(())
    }
}

fn check_link(record: &Record, index: u64, head: &Digest) -> Result<(), LogError> {
    if record.index != index {
        return Err(LogError::Chain {
            index,
            what: "record index out of sequence",
        });
    }
    if record.prev != *head {
        return Err(LogError::Chain {
            index,
            what: "previous-record digest does not match",
        });
    }
    Ok(())
}

/// Writes the collateral file for `collateral` into `dir`'s collateral directory.
pub fn put_collateral(dir: &Path, collateral: &Collateral) -> Result<Digest, LogError> {
    let json = serde_json::to_vec(collateral.dcap()).map_err(|e| LogError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let digest = *blake3::hash(&json).as_bytes();
    if digest != *collateral.digest() {
        return Err(LogError::CollateralMismatch {
            digest: hex::encode(collateral.digest()),
        });
    }
    let path = collateral_path(dir, &digest);
    if path.exists() {
        return Ok(digest);
    }
    write_atomically(&path, &json)?;
    Ok(digest)
}

/// Reads the collateral named `digest` from `dir`'s collateral directory, checking its digest.
pub fn load_collateral(dir: &Path, digest: &Digest) -> Result<Collateral, LogError> {
    let path = collateral_path(dir, digest);
    let mismatch = || LogError::CollateralMismatch {
        digest: hex::encode(digest),
    };
    let json = fs::read(&path).map_err(io(&path))?;
    if blake3::hash(&json).as_bytes() != digest {
        return Err(mismatch());
    }
    let collateral = Collateral::from_json(&json).map_err(|_| mismatch())?;
    if collateral.digest() != digest {
        return Err(mismatch());
    }
    Ok(collateral)
}

fn collateral_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(COLLATERAL_DIR)
        .join(format!("{}.json", hex::encode(digest)))
}

/// The file of segment `seq` in `dir`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("segment-{seq:08}.rqel"))
}

/// Sequence numbers of the segment files in `dir`, ascending and without gaps from 0.
fn segment_seqs(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(seq) = name
            .strip_prefix("segment-")
            .and_then(|n| n.strip_suffix(".rqel"))
            .filter(|n| n.len() == 8)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        seqs.push(seq);
    }
    seqs.sort_unstable();
    for (expected, seq) in seqs.iter().enumerate() {
        if *seq != expected as u64 {
            return Err(LogError::Chain {
                index: 0,
                what: "segment files are not numbered 0, 1, 2, … without gaps",
            });
        }
    }
    Ok(seqs)
}

fn create_segment(dir: &Path, seq: u64, first_index: u64) -> Result<(File, u64), LogError> {
    let path = segment_path(dir, seq);
    let header = SegmentHeader { seq, first_index }.encode();
    write_atomically(&path, &header)?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    Ok((file, SEGMENT_HEADER_LEN as u64))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it to `path` and syncs
/// the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))
}

fn create_dir(dir: &Path) -> Result<(), LogError> {
    fs::create_dir_all(dir).map_err(io(dir))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format(path: &Path) -> impl Fn(FormatError) -> LogError + '_ {
    move |source| LogError::Format {
        what: path.display().to_string(),
        source,
    }
}

/// One place in a log read by [`LogContents::read`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LogEntry {
    /// A frame whose digest matches and whose payload decodes.
    Record {
        /// The segment.
        segment: u64,
        /// Offset of the frame in the segment file.
        offset: u64,
        /// The record's digest.
        digest: Digest,
        /// The record.
        record: Box<Record>,
    },
    /// Bytes that are not a valid record.
    Damaged {
        /// The segment.
        segment: u64,
        /// Offset in the segment file.
        offset: u64,
        /// Length of the damaged stretch.
        len: u64,
        /// What is wrong.
        defect: Damage,
        /// The digest stored in the frame, when the frame's length was readable: the chain
        /// continues from it.
        stored_digest: Option<Digest>,
    },
}

/// Why a stretch of a log is not a valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The frame is broken.
    Frame(FrameDefect),
    /// The frame is intact but the payload does not decode.
    Payload(FormatError),
    /// The segment header is broken; the whole segment is unreadable.
    Header(FormatError),
}

/// A log read for auditing: lenient, read-only, every damaged place kept and named.
#[derive(Clone, Debug)]
pub struct LogContents {
    dir: PathBuf,
    entries: Vec<LogEntry>,
}

impl LogContents {
    /// Reads every segment of the log in `dir` without changing anything.
    pub fn read(dir: &Path) -> Result<Self, LogError> {
        let mut entries = Vec::new();
        for seq in segment_seqs(dir)? {
            let path = segment_path(dir, seq);
            let data = fs::read(&path).map_err(io(&path))?;
            entries.extend(segment_entries(seq, &data));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// The entries, in log order.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The records that are intact, in log order.
    pub fn records(&self) -> impl Iterator<Item = (&Digest, &Record)> {
        self.entries.iter().filter_map(|e| match e {
            LogEntry::Record { digest, record, .. } => Some((digest, record.as_ref())),
            LogEntry::Damaged { .. } => None,
        })
    }

    /// The retirement markers recorded in the log (not verified here:
    /// [`super::RetiredIdentities::insert`] verifies each).
    pub fn retirement_markers(&self) -> impl Iterator<Item = &super::RetirementMarker> {
        self.records().filter_map(|(_, r)| match &r.body {
            RecordBody::Retirement(m) => Some(m),
            _ => None,
        })
    }

    /// The collateral named `digest`, from the collateral directory.
    pub fn collateral(&self, digest: &Digest) -> Result<Collateral, LogError> {
        load_collateral(&self.dir, digest)
    }
}

/// The entries of the segment file numbered `seq` whose bytes are `data`: the lenient reading
/// [`LogContents::read`] does of each segment (pure, so the fuzz targets run exactly it).
pub(crate) fn segment_entries(seq: u64, data: &[u8]) -> Vec<LogEntry> {
    if let Err(error) = SegmentHeader::decode(data) {
        return vec![LogEntry::Damaged {
            segment: seq,
            offset: 0,
            len: data.len() as u64,
            defect: Damage::Header(error),
            stored_digest: None,
        }];
    }
    let body = data.get(SEGMENT_HEADER_LEN..).unwrap_or_default();
    codec::scan(body)
        .into_iter()
        .map(|scanned| entry(seq, body, scanned))
        .collect()
}

fn entry(segment: u64, body: &[u8], scanned: Scanned) -> LogEntry {
    let at = |offset: usize| (SEGMENT_HEADER_LEN + offset) as u64;
    match scanned {
        Scanned::Frame(span) => {
            let payload = body
                .get(span.payload_start..span.payload_end)
                .unwrap_or_default();
            match Record::decode(payload) {
                Ok(record) => LogEntry::Record {
                    segment,
                    offset: at(span.offset),
                    digest: span.digest,
                    record: Box::new(record),
                },
                Err(error) => LogEntry::Damaged {
                    segment,
                    offset: at(span.offset),
                    len: (span.end - span.offset) as u64,
                    defect: Damage::Payload(error),
                    stored_digest: Some(span.digest),
                },
            }
        }
        Scanned::Bad {
            offset,
            end,
            defect,
            payload,
        } => LogEntry::Damaged {
            segment,
            offset: at(offset),
            len: (end - offset) as u64,
            defect: Damage::Frame(defect),
            stored_digest: payload.and_then(|(_, payload_end)| {
                body.get(payload_end..)
                    .and_then(|rest| rest.first_chunk::<32>())
                    .copied()
            }),
        },
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(super) mod tests;
