//! Quote generation through the Linux configfs-tsm interface (`/sys/kernel/config/tsm/report`,
//! Linux 6.7 and later).
//!
//! One request runs as follows:
//!
//! 1. `mkdir` a fresh entry under the report root (a name unique to this process);
//! 2. check that the entry's `provider` attribute reads `tdx_guest`;
//! 3. read `generation`, write the 64 bytes of report data to `inblob`, read `outblob`, read
//!    `generation` again: the kernel advances it once per write, so anything but "one more than
//!    before" means another writer used the entry in between and the outblob may answer their
//!    request. The sequence is retried a bounded number of times, then
//!    [`QuoteProviderError::GenerationMismatch`];
//! 4. check that the outblob looks like a TDX DCAP quote (version 4 or 5, TEE type `0x81`);
//! 5. `rmdir` the entry, on success and on every error path.
//!
//! An `EBUSY` from any read or write is retried with a short, growing pause, a bounded number of
//! times, then [`QuoteProviderError::Busy`]. configfs hands `inblob` to the kernel when the file
//! is closed and may drop an error raised there; a write lost that way leaves `generation`
//! unchanged, which the generation check treats like a race.

// Parses bytes from the network or from files: no panics, no unchecked arithmetic.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

mod fs;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use self::fs::{StdFs, TsmFs};
use crate::tdx::{QuoteProvider, QuoteProviderError, ReportData};

/// Where configfs-tsm report entries live on a Linux TDX guest.
pub const CONFIGFS_TSM_ROOT: &str = "/sys/kernel/config/tsm/report";

/// The `provider` a report entry must name for its outblob to be a TDX quote.
pub(crate) const TDX_PROVIDER: &str = "tdx_guest";

/// TEE type of a TDX quote in the DCAP quote header.
const TEE_TYPE_TDX: u32 = 0x81;
/// Length of the DCAP quote header (versions 4 and 5).
const QUOTE_HEADER_LEN: usize = 48;
/// How many entry names to try when a name is already taken.
const MAX_NAME_ATTEMPTS: u32 = 8;
/// The longest pause between two `EBUSY` retries, as a multiple of the base backoff.
const MAX_BACKOFF_FACTOR: u32 = 16;

/// Distinguishes the entries this process creates.
static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Quote provider backed by configfs-tsm on a TDX guest.
///
/// [`QuoteProvider::quote`] blocks: it does file I/O on configfs, the kernel waits for the host's
/// quoting service (milliseconds to about a second), and `EBUSY` retries pause the calling
/// thread. Run it in `tokio::task::spawn_blocking` or on a dedicated thread.
///
/// Concurrent calls, from this process or others, are safe: each call uses its own report entry,
/// and the `generation` check detects a writer that raced on the same entry anyway.
///
/// ```no_run
/// use ratls_quic::{ConfigfsTsm, QuoteProvider, ReportData};
///
/// let provider = ConfigfsTsm::new().with_busy_attempts(10);
/// let quote = provider.quote(&ReportData([0u8; 64]))?;
/// # Ok::<(), ratls_quic::QuoteProviderError>(())
/// ```
#[derive(Debug)]
pub struct ConfigfsTsm {
    root: PathBuf,
    race_attempts: u32,
    busy_attempts: u32,
    busy_backoff: Duration,
    fs: Box<dyn TsmFs>,
}

impl ConfigfsTsm {
    /// Default number of attempts when the generation check detects a race.
    pub const DEFAULT_RACE_ATTEMPTS: u32 = 3;
    /// Default number of attempts at one read or write that answers `EBUSY`.
    pub const DEFAULT_BUSY_ATTEMPTS: u32 = 5;
    /// Default pause after the first `EBUSY`; it doubles after each further one, up to 16 times
    /// this value.
    pub const DEFAULT_BUSY_BACKOFF: Duration = Duration::from_millis(10);

    /// A provider using [`CONFIGFS_TSM_ROOT`] and the default retry limits.
    pub fn new() -> Self {
        Self {
            root: PathBuf::from(CONFIGFS_TSM_ROOT),
            race_attempts: Self::DEFAULT_RACE_ATTEMPTS,
            busy_attempts: Self::DEFAULT_BUSY_ATTEMPTS,
            busy_backoff: Self::DEFAULT_BUSY_BACKOFF,
            fs: Box::new(StdFs),
        }
    }

    /// Use `root` as the configfs-tsm report directory instead of [`CONFIGFS_TSM_ROOT`].
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// How many times to run the write/read sequence when the generation check detects another
    /// writer (at least 1; 0 is taken as 1).
    pub fn with_race_attempts(mut self, attempts: u32) -> Self {
        self.race_attempts = attempts.max(1);
        self
    }

    /// How many times to try one read or write that answers `EBUSY` (at least 1; 0 is taken
    /// as 1).
    pub fn with_busy_attempts(mut self, attempts: u32) -> Self {
        self.busy_attempts = attempts.max(1);
        self
    }

    /// The pause after the first `EBUSY`; it doubles after each further one, up to 16 times
    /// this value. Zero retries at once.
    pub fn with_busy_backoff(mut self, backoff: Duration) -> Self {
        self.busy_backoff = backoff;
        self
    }

    /// The configured report root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Replace the file operations (tests play the kernel's part with it).
    #[cfg(test)]
    fn with_fs(mut self, fs: impl TsmFs + 'static) -> Self {
        self.fs = Box::new(fs);
        self
    }

    /// Create a fresh report entry; it is removed when the returned guard drops.
    fn create_entry(&self) -> Result<Entry<'_>, QuoteProviderError> {
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let seq = NEXT_ENTRY.fetch_add(1, Ordering::Relaxed);
            let path = self
                .root
                .join(format!("ratls-{}-{seq}", std::process::id()));
            match self.fs.create_dir(&path) {
                Ok(()) => {
                    return Ok(Entry {
                        fs: self.fs.as_ref(),
                        path,
                    })
                }
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists && attempt < MAX_NAME_ATTEMPTS => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(QuoteProviderError::Unavailable {
                        root: self.root.clone(),
                    })
                }
                Err(source) => return Err(QuoteProviderError::Io { path, source }),
            }
        }
    }

    /// Steps 2 to 4 of the module docs, in an existing entry.
    fn generate(
        &self,
        entry: &Path,
        report_data: &ReportData,
    ) -> Result<Vec<u8>, QuoteProviderError> {
        let provider_path = entry.join("provider");
        let provider = self.busy_retry(&provider_path, || self.fs.read(&provider_path))?;
        let provider = String::from_utf8_lossy(&provider).trim_end().to_owned();
        if provider != TDX_PROVIDER {
            return Err(QuoteProviderError::WrongProvider { found: provider });
        }

        let inblob = entry.join("inblob");
        let outblob = entry.join("outblob");
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let before = self.generation(entry)?;
            self.busy_retry(&inblob, || self.fs.write(&inblob, report_data.as_bytes()))?;
            let quote = self.busy_retry(&outblob, || self.fs.read(&outblob))?;
            let after = self.generation(entry)?;
            // Should the kernel's (32-bit) counter ever wrap, that shows up as one mismatch and
            // the next attempt starts from the wrapped value.
            let expected = before.wrapping_add(1);
            if after == expected {
                check_quote_header(&quote)?;
                return Ok(quote);
            }
            tracing::debug!(attempt, expected, after, "configfs-tsm generation mismatch");
            if attempt >= self.race_attempts {
                return Err(QuoteProviderError::GenerationMismatch {
                    expected,
                    found: after,
                });
            }
        }
    }

    /// Read and parse the entry's `generation` attribute.
    fn generation(&self, entry: &Path) -> Result<u64, QuoteProviderError> {
        let path = entry.join("generation");
        let raw = self.busy_retry(&path, || self.fs.read(&path))?;
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim();
        text.parse().map_err(|_| QuoteProviderError::BadAttribute {
            found: text.to_owned(),
            path,
            expected: "a decimal generation counter",
        })
    }

    /// Run `op`, retrying while it answers `EBUSY`.
    fn busy_retry<T>(
        &self,
        path: &Path,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> Result<T, QuoteProviderError> {
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            match op() {
                Ok(value) => return Ok(value),
                Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
                    if attempt >= self.busy_attempts {
                        return Err(QuoteProviderError::Busy { attempts: attempt });
                    }
                    self.pause(attempt);
                }
                Err(source) => {
                    return Err(QuoteProviderError::Io {
                        path: path.to_owned(),
                        source,
                    })
                }
            }
        }
    }

    /// Sleep after the `attempt`-th `EBUSY` (1-based).
    fn pause(&self, attempt: u32) {
        let pause = self.backoff(attempt);
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }

    /// The pause after the `attempt`-th `EBUSY` (1-based): the base backoff doubled per further
    /// attempt, capped at [`MAX_BACKOFF_FACTOR`] times the base.
    fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt
            .saturating_sub(1)
            .min(MAX_BACKOFF_FACTOR.trailing_zeros());
        self.busy_backoff.saturating_mul(1 << shift)
    }
}

impl Default for ConfigfsTsm {
    fn default() -> Self {
        Self::new()
    }
}

impl QuoteProvider for ConfigfsTsm {
    /// Generate a quote through a fresh configfs-tsm report entry. Blocking; see the type docs.
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        let entry = self.create_entry()?;
        self.generate(&entry.path, report_data)
        // `entry` drops here and removes the report entry, whatever the outcome.
    }

    fn name(&self) -> &'static str {
        "configfs-tsm"
    }
}

/// A report entry this provider created; removed on drop.
#[derive(Debug)]
struct Entry<'a> {
    fs: &'a dyn TsmFs,
    path: PathBuf,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.fs.remove_dir(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove configfs-tsm entry");
        }
    }
}

/// Minimal check that `quote` is a TDX DCAP quote: a full header, version 4 or 5, TEE type TDX.
/// Signatures and the body are left to the verifier.
fn check_quote_header(quote: &[u8]) -> Result<(), QuoteProviderError> {
    let malformed = |why: String| Err(QuoteProviderError::Malformed(why));
    if quote.is_empty() {
        return malformed("configfs-tsm outblob is empty".into());
    }
    let Some((header, _)) = quote.split_first_chunk::<QUOTE_HEADER_LEN>() else {
        return malformed(format!(
            "{} bytes is shorter than a quote header ({QUOTE_HEADER_LEN})",
            quote.len()
        ));
    };
    let [v0, v1, _, _, t0, t1, t2, t3, ..] = *header;
    let version = u16::from_le_bytes([v0, v1]);
    if version != 4 && version != 5 {
        return malformed(format!("quote version {version}, expected 4 or 5"));
    }
    let tee_type = u32::from_le_bytes([t0, t1, t2, t3]);
    if tee_type != TEE_TYPE_TDX {
        return malformed(format!(
            "TEE type {tee_type:#x}, expected {TEE_TYPE_TDX:#x} (TDX)"
        ));
    }
    Ok(())
}
