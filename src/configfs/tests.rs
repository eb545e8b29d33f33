//! [`ConfigfsTsm`] against a fake configfs-tsm tree on a real filesystem.
//!
//! [`FakeKernel`] wraps the production file operations and does what the kernel does around them:
//! it fills a new entry with `provider`, `generation`, `inblob` and `outblob`, answers a write to
//! `inblob` with an outblob and a generation bump, and empties the entry on rmdir. On request it
//! answers `EBUSY` or simulates another writer bumping the generation. Nothing depends on timing.

use std::collections::VecDeque;
use std::fs as stdfs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::fs::{StdFs, TsmFs};
use super::*;

const ATTRIBUTES: [&str; 4] = ["provider", "generation", "inblob", "outblob"];

#[derive(Debug)]
struct State {
    provider: String,
    /// The next this many `inblob` writes answer EBUSY.
    busy_writes: u32,
    /// The next this many `outblob` reads answer EBUSY.
    busy_reads: u32,
    /// Extra generation bumps by "another writer", one entry consumed per `inblob` write.
    races: VecDeque<u64>,
    /// Every `inblob` write races.
    always_race: bool,
    /// Replaces the generated outblob.
    outblob: Option<Vec<u8>>,
    /// Replaces the initial `generation` contents.
    generation: Option<String>,
    /// The next this many mkdirs find the name taken.
    taken_names: u32,
    created: Vec<PathBuf>,
    removed: Vec<PathBuf>,
    inblob_writes: Vec<Vec<u8>>,
}

/// Plays the kernel's part of configfs-tsm around real filesystem operations.
#[derive(Debug, Clone)]
struct FakeKernel {
    state: Arc<Mutex<State>>,
}

impl FakeKernel {
    fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                provider: TDX_PROVIDER.into(),
                busy_writes: 0,
                busy_reads: 0,
                races: VecDeque::new(),
                always_race: false,
                outblob: None,
                generation: None,
                taken_names: 0,
                created: Vec::new(),
                removed: Vec::new(),
                inblob_writes: Vec::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake kernel state poisoned")
    }
}

fn busy() -> io::Error {
    io::Error::from(io::ErrorKind::ResourceBusy)
}

fn is(path: &Path, name: &str) -> bool {
    path.file_name().is_some_and(|n| n == name)
}

/// A quote-shaped outblob: a DCAP header of `version` and `tee_type`, then the report data.
fn fake_quote(version: u16, tee_type: u32, report_data: &[u8]) -> Vec<u8> {
    let mut quote = vec![0u8; QUOTE_HEADER_LEN];
    quote[0..2].copy_from_slice(&version.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&tee_type.to_le_bytes());
    quote.extend_from_slice(report_data);
    quote
}

impl TsmFs for FakeKernel {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state();
        if st.taken_names > 0 {
            st.taken_names -= 1;
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        StdFs.create_dir(path)?;
        let generation = st.generation.clone().unwrap_or_else(|| "0\n".into());
        stdfs::write(path.join("provider"), format!("{}\n", st.provider))?;
        stdfs::write(path.join("generation"), generation)?;
        stdfs::write(path.join("inblob"), b"")?;
        stdfs::write(path.join("outblob"), b"")?;
        st.created.push(path.to_owned());
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state();
        for name in ATTRIBUTES {
            let _ = stdfs::remove_file(path.join(name));
        }
        StdFs.remove_dir(path)?;
        st.removed.push(path.to_owned());
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut st = self.state();
        if is(path, "outblob") && st.busy_reads > 0 {
            st.busy_reads -= 1;
            return Err(busy());
        }
        StdFs.read(path)
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut st = self.state();
        if !is(path, "inblob") {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        if st.busy_writes > 0 {
            st.busy_writes -= 1;
            return Err(busy());
        }
        StdFs.write(path, data)?;
        st.inblob_writes.push(data.to_vec());
        let dir = path.parent().expect("inblob has a parent");
        let generation: u64 = String::from_utf8(stdfs::read(dir.join("generation"))?)
            .expect("utf-8 generation")
            .trim()
            .parse()
            .expect("numeric generation");
        let extra = st.races.pop_front().unwrap_or(0) + u64::from(st.always_race);
        stdfs::write(
            dir.join("generation"),
            format!("{}\n", generation + 1 + extra),
        )?;
        let outblob = st
            .outblob
            .clone()
            .unwrap_or_else(|| fake_quote(4, TEE_TYPE_TDX, data));
        stdfs::write(dir.join("outblob"), outblob)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    kernel: FakeKernel,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("report");
        stdfs::create_dir(&root).expect("create root");
        Self {
            _dir: dir,
            root,
            kernel: FakeKernel::new(),
        }
    }

    fn provider(&self) -> ConfigfsTsm {
        ConfigfsTsm::new()
            .with_root(&self.root)
            .with_busy_backoff(Duration::ZERO)
            .with_fs(self.kernel.clone())
    }

    /// Exactly one entry was created, it was removed, and the root is empty again.
    fn assert_one_entry_cleaned_up(&self) {
        let st = self.kernel.state();
        assert_eq!(st.created.len(), 1, "created: {:?}", st.created);
        assert_eq!(st.created, st.removed);
        assert!(st.created[0].starts_with(&self.root));
        let left: Vec<_> = stdfs::read_dir(&self.root).expect("read root").collect();
        assert!(left.is_empty(), "entries left behind: {left:?}");
    }
}

fn report_data() -> ReportData {
    let mut bytes = [0u8; 64];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8 ^ 0xa5;
    }
    ReportData(bytes)
}

#[test]
fn quote_with_tdx_provider_succeeds_and_removes_entry() {
    let fx = Fixture::new();
    let quote = fx.provider().quote(&report_data()).expect("quote");
    assert_eq!(quote, fake_quote(4, TEE_TYPE_TDX, report_data().as_bytes()));
    assert_eq!(
        fx.kernel.state().inblob_writes,
        vec![report_data().as_bytes().to_vec()]
    );
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_v5_outblob_accepted() {
    let fx = Fixture::new();
    let v5 = fake_quote(5, TEE_TYPE_TDX, &[7; 64]);
    fx.kernel.state().outblob = Some(v5.clone());
    assert_eq!(fx.provider().quote(&report_data()).expect("quote"), v5);
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_wrong_provider_rejected_before_write() {
    let fx = Fixture::new();
    fx.kernel.state().provider = "sev_guest".into();
    let err = fx.provider().quote(&report_data()).unwrap_err();
    assert!(
        matches!(&err, QuoteProviderError::WrongProvider { found } if found == "sev_guest"),
        "{err:?}"
    );
    assert!(fx.kernel.state().inblob_writes.is_empty());
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_generation_always_jumping_by_two_fails_after_retries() {
    let fx = Fixture::new();
    fx.kernel.state().always_race = true;
    let err = fx
        .provider()
        .with_race_attempts(3)
        .quote(&report_data())
        .unwrap_err();
    // Third attempt: the generation went 4 -> 6, the request expected 5.
    assert!(
        matches!(
            err,
            QuoteProviderError::GenerationMismatch {
                expected: 5,
                found: 6
            }
        ),
        "{err:?}"
    );
    assert_eq!(fx.kernel.state().inblob_writes.len(), 3);
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_race_resolving_on_retry_succeeds() {
    let fx = Fixture::new();
    fx.kernel.state().races = VecDeque::from([1]);
    let quote = fx.provider().quote(&report_data()).expect("quote");
    assert_eq!(quote, fake_quote(4, TEE_TYPE_TDX, report_data().as_bytes()));
    assert_eq!(fx.kernel.state().inblob_writes.len(), 2);
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_single_race_attempt_fails_on_first_race() {
    let fx = Fixture::new();
    fx.kernel.state().races = VecDeque::from([1]);
    let err = fx
        .provider()
        .with_race_attempts(0)
        .quote(&report_data())
        .unwrap_err();
    assert!(
        matches!(
            err,
            QuoteProviderError::GenerationMismatch {
                expected: 1,
                found: 2
            }
        ),
        "{err:?}"
    );
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_persistent_busy_write_fails_busy() {
    let fx = Fixture::new();
    fx.kernel.state().busy_writes = u32::MAX;
    let err = fx
        .provider()
        .with_busy_attempts(4)
        .quote(&report_data())
        .unwrap_err();
    assert!(
        matches!(err, QuoteProviderError::Busy { attempts: 4 }),
        "{err:?}"
    );
    assert_eq!(fx.kernel.state().busy_writes, u32::MAX - 4);
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_persistent_busy_read_fails_busy() {
    let fx = Fixture::new();
    fx.kernel.state().busy_reads = u32::MAX;
    let err = fx
        .provider()
        .with_busy_attempts(3)
        .quote(&report_data())
        .unwrap_err();
    assert!(
        matches!(err, QuoteProviderError::Busy { attempts: 3 }),
        "{err:?}"
    );
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_busy_clearing_succeeds() {
    let fx = Fixture::new();
    {
        let mut st = fx.kernel.state();
        st.busy_writes = 2;
        st.busy_reads = 2;
    }
    let quote = fx
        .provider()
        .with_busy_attempts(3)
        .quote(&report_data())
        .expect("quote");
    assert_eq!(quote, fake_quote(4, TEE_TYPE_TDX, report_data().as_bytes()));
    let st = fx.kernel.state();
    assert_eq!((st.busy_writes, st.busy_reads), (0, 0));
    // Busy retries repeat the single operation, not the whole sequence.
    assert_eq!(st.inblob_writes.len(), 1);
    drop(st);
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_missing_root_unavailable() {
    let fx = Fixture::new();
    let missing = fx.root.join("absent");
    let err = fx
        .provider()
        .with_root(&missing)
        .quote(&report_data())
        .unwrap_err();
    assert!(
        matches!(&err, QuoteProviderError::Unavailable { root } if *root == missing),
        "{err:?}"
    );
    assert!(fx.kernel.state().created.is_empty());
}

#[test]
fn quote_with_non_numeric_generation_rejected() {
    let fx = Fixture::new();
    fx.kernel.state().generation = Some("many\n".into());
    let err = fx.provider().quote(&report_data()).unwrap_err();
    assert!(
        matches!(&err, QuoteProviderError::BadAttribute { found, .. } if found == "many"),
        "{err:?}"
    );
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_malformed_outblobs_rejected() {
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("short", fake_quote(4, TEE_TYPE_TDX, &[])[..47].to_vec()),
        ("version 3", fake_quote(3, TEE_TYPE_TDX, &[0; 64])),
        ("SGX tee type", fake_quote(4, 0, &[0; 64])),
    ];
    for (name, outblob) in cases {
        let fx = Fixture::new();
        fx.kernel.state().outblob = Some(outblob);
        let err = fx.provider().quote(&report_data()).unwrap_err();
        assert!(
            matches!(err, QuoteProviderError::Malformed(_)),
            "{name}: {err:?}"
        );
        fx.assert_one_entry_cleaned_up();
    }
}

#[test]
fn consecutive_quotes_use_distinct_entries() {
    let fx = Fixture::new();
    let provider = fx.provider();
    provider.quote(&report_data()).expect("first");
    provider.quote(&report_data()).expect("second");
    let st = fx.kernel.state();
    assert_eq!(st.created.len(), 2);
    assert_ne!(st.created[0], st.created[1]);
    assert_eq!(st.created, st.removed);
}

#[test]
fn quote_with_taken_entry_names_uses_next_name() {
    let fx = Fixture::new();
    fx.kernel.state().taken_names = 2;
    fx.provider().quote(&report_data()).expect("quote");
    fx.assert_one_entry_cleaned_up();
}

#[test]
fn quote_with_every_entry_name_taken_fails_io() {
    let fx = Fixture::new();
    fx.kernel.state().taken_names = u32::MAX;
    let err = fx.provider().quote(&report_data()).unwrap_err();
    assert!(
        matches!(&err, QuoteProviderError::Io { source, .. }
            if source.kind() == io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(fx.kernel.state().taken_names, u32::MAX - MAX_NAME_ATTEMPTS);
    assert!(fx.kernel.state().created.is_empty());
}

#[test]
fn busy_backoff_doubles_up_to_cap() {
    let provider = ConfigfsTsm::new().with_busy_backoff(Duration::from_millis(10));
    let pauses: Vec<u64> = (1..=7)
        .map(|a| provider.backoff(a).as_millis() as u64)
        .collect();
    assert_eq!(pauses, [10, 20, 40, 80, 160, 160, 160]);
}

#[test]
fn defaults_match_documentation() {
    let provider = ConfigfsTsm::default();
    assert_eq!(provider.root(), Path::new(CONFIGFS_TSM_ROOT));
    assert_eq!(provider.name(), "configfs-tsm");
    assert_eq!(provider.race_attempts, ConfigfsTsm::DEFAULT_RACE_ATTEMPTS);
    assert_eq!(provider.busy_attempts, ConfigfsTsm::DEFAULT_BUSY_ATTEMPTS);
}
