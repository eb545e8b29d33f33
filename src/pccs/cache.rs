//! [`CollateralCache`]: collateral per platform, fetched in the background, never served
//! outside its window.
//!
//! # Rules
//!
//! - Entries are keyed by [`PlatformKey`] (FMSPC and PCK CA of the quote's PCK leaf).
//! - An entry is served only while `not_before <= now < not_after`, where `not_after` is the
//!   earliest nextUpdate of its four items (or notAfter of a certificate in their chains) and
//!   `now` is the cache's [`Clock`]. There is no grace period and no path around it.
//! - A lookup ([`CollateralStore::collateral_for`]) takes one short lock, never blocks on I/O
//!   and never awaits: a miss (no entry, an expired one, one below the evaluation floor)
//!   returns `None`, which the verifier turns into a refusal, and schedules a fetch on the
//!   runtime the cache was started on.
//! - One fetch per key at a time (single flight): concurrent misses share it.
//! - A background task refreshes entries whose `not_after` is less than
//!   [`CacheConfig::refresh_ahead`] away, and fetches the [`CacheConfig::prewarm`] keys at start.
//! - After a failed fetch a key is not fetched again for [`CacheConfig::failure_backoff`].
//! - With [`CacheConfig::persist_dir`], every fetched entry is written atomically to
//!   `{dir}/{FMSPC}-{ca}.json` ([`super::files`]); at start the directory is read back, each
//!   file checked like a fetched answer, and a corrupted, truncated or expired file is ignored,
//!   logged, and its key fetched again.
//! - [`CacheConfig::min_tcb_eval_data_number`] refuses collateral whose TCB info or QE identity
//!   has an older TCB evaluation data number, so an unexpired TCB info from before a TCB
//!   recovery cannot grade a platform.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::check::{check_collateral, Validity};
use super::client::{FetchedCollateral, ItemDigests, PcsClient};
use super::clock::Clock;
use super::error::{FetchError, StoreError};
use super::files;
use super::platform::{PlatformKey, PlatformKeyError};

/// How many PCK chains' platform keys a cache remembers (cleared when full).
const MAX_KEY_MEMO: usize = 1024;
use crate::tdx::{Collateral, CollateralProvenance, CollateralStore};

/// Knobs of a [`CollateralCache`].
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Keys fetched at start, before any quote asks for them.
    pub prewarm: Vec<PlatformKey>,
    /// Refresh an entry when its `not_after` is closer than this (seconds). Default 1 day
    /// (collateral is published for 30 days and reissued about daily).
    pub refresh_ahead: u64,
    /// How often the background task looks for entries to refresh. Default 60 s.
    pub refresh_interval: Duration,
    /// Do not fetch a key again sooner than this after a failure (seconds). Default 10.
    pub failure_backoff: u64,
    /// Persist entries here, and read them back at start.
    pub persist_dir: Option<PathBuf>,
    /// Refuse collateral whose TCB evaluation data number is below this.
    pub min_tcb_eval_data_number: Option<u32>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            prewarm: Vec::new(),
            refresh_ahead: 86_400,
            refresh_interval: Duration::from_secs(60),
            failure_backoff: 10,
            persist_dir: None,
            min_tcb_eval_data_number: None,
        }
    }
}

/// One cached platform's collateral, with where and when it came from.
#[derive(Clone, Debug)]
pub struct CachedCollateral {
    /// The platform.
    pub key: PlatformKey,
    /// The collateral.
    pub collateral: Arc<Collateral>,
    /// The service it came from (or the file it was read from).
    pub source: String,
    /// When it was fetched, unix seconds.
    pub fetched_at: u64,
    /// Its validity window.
    pub validity: Validity,
    /// The lower of the TCB info's and QE identity's evaluation data numbers.
    pub tcb_evaluation_data_number: u32,
    /// Digests of its items.
    pub digests: ItemDigests,
}

/// Counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Fetches started.
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Entries now held (usable or not).
    pub entries: usize,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<PlatformKey, Arc<CachedCollateral>>,
    in_flight: HashSet<PlatformKey>,
    failed_at: HashMap<PlatformKey, u64>,
    last_error: HashMap<PlatformKey, String>,
    last_missed: Option<PlatformKey>,
    /// Platform keys of the PCK chains already read (blake3 of the chain's PEM), so that a
    /// lookup costs a hash rather than a certificate parse. Bounded by [`MAX_KEY_MEMO`].
    keys: HashMap<[u8; 32], PlatformKey>,
    stats: CacheStats,
}

#[derive(Debug)]
struct Inner {
    client: PcsClient,
    clock: Arc<dyn Clock>,
    config: CacheConfig,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    changed: tokio::sync::watch::Sender<u64>,
}

/// A [`CollateralStore`] fed from a collateral service in the background. Clones share one
/// cache. See the module docs for the rules.
#[derive(Clone, Debug)]
pub struct CollateralCache {
    inner: Arc<Inner>,
}

impl CollateralCache {
    /// Starts a cache on the current tokio runtime: reads the persistence directory, schedules
    /// the prewarm fetches and the refresh task. The cache uses `client`'s clock.
    pub async fn start(client: PcsClient, config: CacheConfig) -> Self {
        let (changed, _) = tokio::sync::watch::channel(0);
        let inner = Arc::new(Inner {
            clock: Arc::clone(client.clock()),
            client,
            config,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State::default()),
            changed,
        });
        let cache = Self { inner };
        let mut refetch = cache.load_persisted().await;
        refetch.extend(cache.inner.config.prewarm.iter().copied());
        for key in refetch {
            cache.schedule(key);
        }
        let weak = Arc::downgrade(&cache.inner);
        let interval = cache.inner.config.refresh_interval;
        cache.inner.runtime.spawn(refresh_loop(weak, interval));
        cache
    }

    /// The entry for `key` if it is usable now (inside its window, at or above the floor).
    /// Counts a hit or a miss; never schedules anything.
    pub fn lookup(&self, key: &PlatformKey) -> Option<Arc<CachedCollateral>> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        let usable = state
            .entries
            .get(key)
            .filter(|entry| self.usable(entry, now))
            .cloned();
        if usable.is_some() {
            state.stats.hits += 1;
        } else {
            state.stats.misses += 1;
        }
        usable
    }

    /// The platform `quote` needs collateral for: remembered per PCK chain, read from the PCK
    /// leaf the first time a chain is seen.
    fn platform_key(&self, quote: &[u8]) -> Result<PlatformKey, PlatformKeyError> {
        let chain = crate::tdx::quote::pck_chain_pem(quote)?;
        let digest = *blake3::hash(chain).as_bytes();
        if let Some(key) = self.lock().keys.get(&digest) {
            return Ok(*key);
        }
        let key = PlatformKey::from_quote(quote)?;
        let mut state = self.lock();
        if state.keys.len() >= MAX_KEY_MEMO {
            state.keys.clear();
        }
        state.keys.insert(digest, key);
        Ok(key)
    }

    /// The entry for `quote`'s platform if usable now; on a miss, schedules a fetch.
    pub fn entry_for_quote(&self, quote: &[u8]) -> Option<Arc<CachedCollateral>> {
        let key = match self.platform_key(quote) {
            Ok(key) => key,
            Err(error) => {
                tracing::debug!(%error, "no platform key in the quote: no collateral");
                return None;
            }
        };
        let found = self.lookup(&key);
        if found.is_none() {
            self.lock().last_missed = Some(key);
        }
        let now = self.inner.clock.now();
        match &found {
            Some(entry)
                if entry.validity.not_after.saturating_sub(now)
                    > self.inner.config.refresh_ahead => {}
            _ => {
                self.schedule(key);
            }
        }
        found
    }

    /// The entry held for `key`, usable or not (for reports and tests).
    pub fn held(&self, key: &PlatformKey) -> Option<Arc<CachedCollateral>> {
        self.lock().entries.get(key).cloned()
    }

    /// The platform of the last quote a lookup found no usable collateral for (its fetch was
    /// scheduled): what a caller that was refused with `MissingCollateral` waits for.
    pub fn last_missed(&self) -> Option<PlatformKey> {
        self.lock().last_missed
    }

    /// The last fetch error for `key`, if its last fetch failed.
    pub fn last_error(&self, key: &PlatformKey) -> Option<String> {
        self.lock().last_error.get(key).cloned()
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            entries: state.entries.len(),
            ..state.stats
        }
    }

    /// A receiver that changes each time a fetch ends (success or failure): to wait for a
    /// background fetch without polling.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Fetches `key` now, unless a fetch for it is already under way (then returns `false`
    /// and that fetch's result lands in the cache). Never blocks.
    pub fn schedule(&self, key: PlatformKey) -> bool {
        let now = self.inner.clock.now();
        {
            let mut state = self.lock();
            if let Some(&failed) = state.failed_at.get(&key) {
                if now < failed.saturating_add(self.inner.config.failure_backoff) {
                    return false;
                }
            }
            if !state.in_flight.insert(key) {
                return false;
            }
            state.stats.fetches += 1;
        }
        let inner = Arc::clone(&self.inner);
        self.inner.runtime.spawn(async move {
            let result = inner.client.fetch(key).await;
            Self { inner }.finish(key, result).await;
        });
        true
    }

    async fn finish(&self, key: PlatformKey, result: Result<FetchedCollateral, FetchError>) {
        let result = result.and_then(|fetched| self.admit(fetched));
        let persisted = match result {
            Ok(entry) => {
                {
                    let mut state = self.lock();
                    state.failed_at.remove(&key);
                    state.last_error.remove(&key);
                    state.entries.insert(key, Arc::clone(&entry));
                    state.in_flight.remove(&key);
                }
                tracing::info!(%key, source = %entry.source, not_after = entry.validity.not_after, "collateral fetched");
                Some(entry)
            }
            Err(error) => {
                tracing::warn!(%key, %error, "collateral fetch failed");
                let now = self.inner.clock.now();
                let mut state = self.lock();
                state.failed_at.insert(key, now);
                state.last_error.insert(key, error.to_string());
                state.stats.failures += 1;
                state.in_flight.remove(&key);
                None
            }
        };
        if let (Some(entry), Some(dir)) = (persisted, self.inner.config.persist_dir.clone()) {
            let written = tokio::task::spawn_blocking(move || persist(&dir, &entry)).await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%key, %error, "collateral not persisted"),
                Err(error) => tracing::warn!(%key, %error, "collateral persistence task failed"),
            }
        }
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Applies the evaluation floor to a fetched set.
    fn admit(&self, fetched: FetchedCollateral) -> Result<Arc<CachedCollateral>, FetchError> {
        let number = fetched
            .facts
            .tcb_evaluation_data_number
            .min(fetched.facts.qe_evaluation_data_number);
        if let Some(floor) = self.inner.config.min_tcb_eval_data_number {
            if number < floor {
                return Err(FetchError::BelowEvaluationFloor {
                    url: fetched.source,
                    got: number,
                    floor,
                });
            }
        }
        let collateral = Collateral::clone(&fetched.collateral).with_provenance(provenance(
            &fetched.source,
            fetched.fetched_at,
            &fetched.digests,
        ));
        Ok(Arc::new(CachedCollateral {
            key: fetched.key,
            collateral: Arc::new(collateral),
            source: fetched.source,
            fetched_at: fetched.fetched_at,
            validity: fetched.facts.validity,
            tcb_evaluation_data_number: number,
            digests: fetched.digests,
        }))
    }

    fn usable(&self, entry: &CachedCollateral, now: u64) -> bool {
        entry.validity.contains(now)
            && self
                .inner
                .config
                .min_tcb_eval_data_number
                .is_none_or(|floor| entry.tcb_evaluation_data_number >= floor)
    }

    /// Reads the persistence directory; returns the keys whose files could not be used.
    async fn load_persisted(&self) -> Vec<PlatformKey> {
        let Some(dir) = self.inner.config.persist_dir.clone() else {
            return Vec::new();
        };
        let root = self.inner.client.config().root_der.clone();
        let now = self.inner.clock.now();
        let loaded = tokio::task::spawn_blocking(move || load_dir(&dir, &root, now)).await;
        let Ok((entries, refetch)) = loaded else {
            return Vec::new();
        };
        let mut state = self.lock();
        for entry in entries {
            let floor_ok = self
                .inner
                .config
                .min_tcb_eval_data_number
                .is_none_or(|floor| entry.tcb_evaluation_data_number >= floor);
            if floor_ok {
                state.entries.insert(entry.key, entry);
            }
        }
        refetch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl CollateralStore for CollateralCache {
    fn collateral_for(&self, quote: &[u8]) -> Option<Arc<Collateral>> {
        self.entry_for_quote(quote)
            .map(|entry| Arc::clone(&entry.collateral))
    }
}

async fn refresh_loop(inner: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let cache = CollateralCache { inner };
        let now = cache.inner.clock.now();
        let due: Vec<PlatformKey> = cache
            .lock()
            .entries
            .values()
            .filter(|e| {
                e.validity.not_after.saturating_sub(now) <= cache.inner.config.refresh_ahead
            })
            .map(|e| e.key)
            .collect();
        for key in due {
            cache.schedule(key);
        }
    }
}

fn persist(dir: &std::path::Path, entry: &CachedCollateral) -> Result<(), StoreError> {
    let name = files::file_name(&entry.key);
    let bytes = files::encode(
        &entry.key,
        Some(&entry.source),
        Some(entry.fetched_at),
        entry.collateral.dcap(),
    )
    .map_err(|e| StoreError::Format {
        path: dir.join(&name),
        detail: e.to_string(),
    })?;
    files::write_atomic(dir, &name, &bytes)
}

/// Reads every collateral file of `dir`, checked at `now`. Unusable files are logged; their
/// keys (when the name tells) are returned for a refetch.
pub(crate) fn load_dir(
    dir: &std::path::Path,
    root_der: &[u8],
    now: u64,
) -> (Vec<Arc<CachedCollateral>>, Vec<PlatformKey>) {
    let mut entries = Vec::new();
    let mut refetch = Vec::new();
    let paths = match files::list(dir) {
        Ok(paths) => paths,
        Err(error) => {
            tracing::warn!(%error, "collateral directory not read");
            return (entries, refetch);
        }
    };
    for path in paths {
        match load_file(&path, root_der, now) {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                tracing::warn!(%error, "collateral file ignored");
                if let Some(key) = key_from_file_name(&path) {
                    refetch.push(key);
                }
            }
        }
    }
    (entries, refetch)
}

/// Reads and checks one collateral file.
pub(crate) fn load_file(
    path: &std::path::Path,
    root_der: &[u8],
    now: u64,
) -> Result<Arc<CachedCollateral>, StoreError> {
    let file = files::read(path)?;
    let facts = check_collateral(&file.collateral, root_der, now).map_err(|source| {
        StoreError::Invalid {
            path: path.to_owned(),
            source,
        }
    })?;
    let digests = ItemDigests::of(&file.collateral);
    let mut collateral = Collateral::new(file.collateral).map_err(|e| StoreError::Format {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    // A file that records its service keeps that provenance (a restart is warm for TdxRemote
    // too, until max_collateral_age runs out); a bare file has none.
    if let (Some(source), Some(at)) = (&file.source, file.fetched_at) {
        collateral = collateral.with_provenance(provenance(source, at, &digests));
    }
    Ok(Arc::new(CachedCollateral {
        key: PlatformKey {
            fmspc: facts.fmspc,
            ca: facts.ca,
        },
        collateral: Arc::new(collateral),
        source: file
            .source
            .unwrap_or_else(|| format!("file:{}", path.display())),
        fetched_at: file.fetched_at.unwrap_or(0),
        validity: facts.validity,
        tcb_evaluation_data_number: facts
            .tcb_evaluation_data_number
            .min(facts.qe_evaluation_data_number),
        digests,
    }))
}

fn provenance(source: &str, fetched_at: u64, digests: &ItemDigests) -> CollateralProvenance {
    CollateralProvenance {
        source: source.to_owned(),
        fetched_at,
        item_digests: [
            digests.tcb_info,
            digests.qe_identity,
            digests.pck_crl,
            digests.root_ca_crl,
        ],
    }
}

/// `B0C06F000000-platform.json` to its key.
fn key_from_file_name(path: &std::path::Path) -> Option<PlatformKey> {
    let stem = path.file_stem()?.to_str()?;
    let (fmspc, ca) = stem.split_once('-')?;
    Some(PlatformKey {
        fmspc: fmspc.parse().ok()?,
        ca: ca.parse().ok()?,
    })
}
