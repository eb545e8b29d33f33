//! Counting handshake refusals, and logging them without letting a peer flood the log.
//!
//! Anyone can make the verifier refuse a certificate, as often as it can send handshakes. Every
//! refusal is counted by its wire reason ([`RefusalCounts`], from
//! `Endpoint::refusal_counts`); at most one `warn` line per reason per
//! [`REFUSAL_LOG_INTERVAL_SECS`] is written, carrying how many refusals of that reason it
//! stands for. The others are logged at `debug`. No clock is read here: rustls' `now` is passed.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::PeerRejection;

/// The shortest time between two `warn` lines of the same refusal reason, in seconds.
pub const REFUSAL_LOG_INTERVAL_SECS: u64 = 10;

/// How many handshakes were refused, by wire reason (the reasons of the table in
/// `docs/evidence.md`, e.g. `"quote not authentic"`).
pub type RefusalCounts = BTreeMap<&'static str, u64>;

#[derive(Debug, Default)]
struct Entry {
    total: u64,
    /// When the last `warn` line of this reason was written (unix seconds); `None` before the
    /// first.
    last_warned: Option<u64>,
    /// Refusals since that line that it does not stand for.
    unlogged: u64,
}

/// The refusals of one endpoint. Its size is bounded by the number of wire reasons (each a
/// `&'static str`), whatever peers send.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    entries: Mutex<BTreeMap<&'static str, Entry>>,
}

/// What to do with one refusal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// Write a `warn` line standing for `refusals` refusals (this one and those unlogged since
    /// the last line), of `total` so far.
    Warn {
        /// Refusals the line stands for, at least 1.
        refusals: u64,
        /// Refusals of this reason since the endpoint started.
        total: u64,
    },
    /// Within the interval of the last line: `debug` only.
    Quiet,
}

impl RefusalLog {
    /// Counts a refusal with `reason` at `now` (unix seconds) and says how to log it.
    pub(crate) fn count(&self, reason: &'static str, now: u64) -> Line {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry(reason).or_default();
        entry.total = entry.total.saturating_add(1);
        entry.unlogged = entry.unlogged.saturating_add(1);
        let due = entry
            .last_warned
            .is_none_or(|last| now.saturating_sub(last) >= REFUSAL_LOG_INTERVAL_SECS || now < last);
        if !due {
            return Line::Quiet;
        }
        entry.last_warned = Some(now);
        let refusals = std::mem::take(&mut entry.unlogged);
        Line::Warn {
            refusals,
            total: entry.total,
        }
    }

    /// Counts `rejection` at `now` and logs it (at most one `warn` per reason per interval).
    pub(crate) fn log(&self, rejection: &PeerRejection, now: u64) {
        let reason = rejection.wire_reason();
        match self.count(reason, now) {
            Line::Warn { refusals, total } => tracing::warn!(
                %rejection,
                reason,
                refusals,
                total,
                "peer certificate refused ({refusals} refusal(s) of this reason since the last line)"
            ),
            Line::Quiet => tracing::debug!(%rejection, reason, "peer certificate refused"),
        }
    }

    /// Refusals so far, by reason.
    pub(crate) fn counts(&self) -> RefusalCounts {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(reason, entry)| (*reason, entry.total))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of one reason writes one line per interval, each standing for the refusals
    /// since the previous one; every refusal is counted.
    #[test]
    fn one_warn_per_reason_per_interval() {
        let log = RefusalLog::default();
        let t0 = 1_000;
        assert_eq!(
            log.count("a", t0),
            Line::Warn {
                refusals: 1,
                total: 1
            }
        );
        let mut warned = 0;
        for i in 0..10_000u64 {
            // 10,000 refusals within the same interval.
            if log.count("a", t0 + i % REFUSAL_LOG_INTERVAL_SECS) != Line::Quiet {
                warned += 1;
            }
        }
        assert_eq!(warned, 0, "a flood within one interval wrote more lines");
        // Another reason is not silenced by the first.
        assert!(matches!(
            log.count("b", t0 + 1),
            Line::Warn { refusals: 1, .. }
        ));
        // The next interval's first refusal writes the line for all of them.
        assert_eq!(
            log.count("a", t0 + REFUSAL_LOG_INTERVAL_SECS),
            Line::Warn {
                refusals: 10_001,
                total: 10_002
            }
        );
        assert_eq!(log.counts().get("a"), Some(&10_002));
        assert_eq!(log.counts().get("b"), Some(&1));
        // A clock that went back does not silence the log.
        assert!(matches!(log.count("a", t0), Line::Warn { .. }));
    }
}
