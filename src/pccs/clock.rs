//! The clock of the collateral shell: when collateral was fetched, and whether a cached entry
//! is still inside its window. Injected, so tests run at the fixed `now` of real vectors.

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of unix time in seconds.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Unix seconds now.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that says what it is told: for tests, and for replaying collateral at a past time.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `now`.
    pub fn new(now: u64) -> Self {
        Self(AtomicU64::new(now))
    }

    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
