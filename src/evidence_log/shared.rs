//! A log shared by the tasks of a node: the endpoint appends to it, the evidence protocol reads
//! from it. File work runs on blocking threads.
//!
//! **Group commit.** Appends queue; whoever takes the store next writes everything queued in one
//! write and one `fdatasync`, and answers every append of the group. An append is acknowledged
//! only after the sync of the commit that carried it. There is no waiting for company: an idle
//! log commits an append at once, and a busy one carries every append that arrived during the
//! previous sync (so the bound on the wait is one sync behind another).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::protocol::RecordBatch;
use super::store::{self, Appended};
use super::{Checkpoint, Digest, LogError, LogStore, OpenReport, RecordBody, StoreOptions};
use crate::identity::Identity;
use crate::tdx::Collateral;

/// A [`LogStore`] behind a lock, cheap to clone.
#[derive(Clone, Debug)]
pub struct EvidenceLog {
    store: Arc<Mutex<LogStore>>,
    queue: Arc<Mutex<Vec<Pending>>>,
    dir: PathBuf,
}

/// An append waiting for its group commit.
#[derive(Debug)]
struct Pending {
    records: Vec<(u64, RecordBody)>,
    done: tokio::sync::oneshot::Sender<Result<Vec<Appended>, LogError>>,
}

impl EvidenceLog {
    /// Opens (or creates) the log in `dir`, cutting a torn tail. Blocks: call it at start-up or
    /// on a blocking thread.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<(Self, OpenReport), LogError> {
        let (store, report) = LogStore::open(dir, options)?;
        Ok((Self::new(store), report))
    }

    /// Shares `store`.
    pub fn new(store: LogStore) -> Self {
        Self {
            dir: store.dir().to_path_buf(),
            store: Arc::new(Mutex::new(store)),
            queue: Arc::default(),
        }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `bodies` written at `time` in one group commit; they are on stable storage when
    /// this returns.
    pub async fn append(
        &self,
        time: u64,
        bodies: Vec<RecordBody>,
    ) -> Result<Vec<Appended>, LogError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let records = bodies.into_iter().map(|b| (time, b)).collect();
        lock(&self.queue, &self.dir)?.push(Pending { records, done });
        let (queue, dir) = (Arc::clone(&self.queue), self.dir.clone());
        self.blocking(move |store| {
            // Everything queued so far, this append included unless an earlier group took it.
            let group = std::mem::take(&mut *lock(&queue, &dir)?);
            commit(store, group);
            Ok(())
        })
        .await?;
        answer.await.map_err(|_| LogError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other("the group commit carrying this append was lost"),
        })?
    }

    /// How many commits the store made since it was opened (fewer than appends under load).
    pub async fn commits(&self) -> Result<u64, LogError> {
        self.blocking(|store| Ok(store.commits())).await
    }

    /// Signs the chain head and appends the checkpoint.
    pub async fn checkpoint(
        &self,
        identity: Arc<Identity>,
        now: u64,
    ) -> Result<Checkpoint, LogError> {
        self.blocking(move |store| store.checkpoint(&identity, now))
            .await
    }

    /// Signs a checkpoint with `identity` every `interval` while the log grows (a tick with no
    /// new record since the last checkpoint signs nothing). Runs until the task is aborted.
    pub fn checkpoint_every(
        &self,
        identity: Arc<Identity>,
        interval: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let fresh = log
                    .blocking(|store| {
                        let covered = store.last_checkpoint().map(|c| c.index.saturating_add(2));
                        // A checkpoint covers the record before it: nothing new since the last
                        // one means the log ends with that checkpoint.
                        Ok(!store.is_empty() && covered != Some(store.len()))
                    })
                    .await;
                if !matches!(fresh, Ok(true)) {
                    continue;
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if let Err(error) = log.checkpoint(Arc::clone(&identity), now).await {
                    tracing::warn!(%error, "evidence log checkpoint failed");
                }
            }
        })
    }

    /// Stores `collateral` beside the log (once per digest).
    pub async fn put_collateral(&self, collateral: Arc<Collateral>) -> Result<Digest, LogError> {
        self.blocking(move |store| store.put_collateral(&collateral))
            .await
    }

    /// Number of records.
    pub async fn record_count(&self) -> Result<u64, LogError> {
        self.blocking(|store| Ok(store.len())).await
    }

    /// Records `from..`, bounded, with the log's length and latest checkpoint.
    pub(crate) async fn batch(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RecordBatch, LogError> {
        self.blocking(move |store| {
            Ok(RecordBatch {
                log_len: store.len(),
                checkpoint: store.last_checkpoint().cloned(),
                frames: store.frames(from, max_records, max_bytes)?,
            })
        })
        .await
    }

    /// The stored collateral JSON named `digest`, if present and intact.
    pub(crate) async fn collateral_json(
        &self,
        digest: Digest,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let dir = self.dir.clone();
        run_blocking(move || match store::load_collateral(&dir, &digest) {
            Ok(c) => serde_json::to_vec(c.dcap())
                .map(Some)
                .map_err(|e| LogError::Io {
                    path: dir.clone(),
                    source: std::io::Error::other(e),
                }),
            Err(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut LogStore) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let store = Arc::clone(&self.store);
        let dir = self.dir.clone();
        run_blocking(move || {
            let mut guard = lock(&store, &dir)?;
            work(&mut guard)
        })
        .await
    }
}

/// Writes `group` in one commit and answers each of its appends.
fn commit(store: &mut LogStore, group: Vec<Pending>) {
    if group.is_empty() {
        return;
    }
    let counts: Vec<usize> = group.iter().map(|p| p.records.len()).collect();
    let mut records = Vec::with_capacity(counts.iter().sum());
    let mut answers = Vec::with_capacity(group.len());
    for pending in group {
        records.extend(pending.records);
        answers.push(pending.done);
    }
    match store.append_timed(records) {
        Ok(appended) => {
            let mut appended = appended.into_iter();
            for (done, count) in answers.into_iter().zip(counts) {
                let _ = done.send(Ok(appended.by_ref().take(count).collect()));
            }
        }
        Err(error) => {
            let shared = Arc::new(error);
            for done in answers {
                let _ = done.send(Err(LogError::GroupCommit(Arc::clone(&shared))));
            }
        }
    }
}

fn lock<'a, T>(store: &'a Mutex<T>, dir: &Path) -> Result<MutexGuard<'a, T>, LogError> {
    store.lock().map_err(|_| LogError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::other("a writer panicked while holding the evidence log"),
    })
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LogError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
}
