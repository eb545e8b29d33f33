//! What the process (or some of its threads) holds and has spent, read from `/proc` (Linux):
//! open file descriptors, resident memory, CPU time.

use std::fs;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// Resources of this process at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Entries of `/proc/self/fd`.
    pub fds: usize,
    /// `VmRSS` of `/proc/self/status`, KiB.
    pub rss_kib: u64,
    /// Threads (`Threads` of `/proc/self/status`).
    pub threads: u64,
}

impl Resources {
    /// Reads them now.
    pub fn now() -> Result<Self> {
        let fds = fs::read_dir("/proc/self/fd")
            .context("/proc/self/fd")?
            .count();
        let status = fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} in /proc/self/status"))
        };
        Ok(Self {
            fds,
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
        })
    }
}

/// User plus system CPU time in the `stat` line of a process or thread.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / TICKS_PER_SEC,
    ))
}

/// CPU time this whole process has used.
pub fn process_cpu() -> Result<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").context("/proc/self/stat")?;
    stat_cpu(&stat).context("parse /proc/self/stat")
}

/// A set of threads whose CPU time is summed: register each from the thread itself (for
/// example in a tokio runtime's `on_thread_start`).
#[derive(Clone, Debug, Default)]
pub struct ThreadGroup {
    tids: Arc<Mutex<Vec<u64>>>,
}

impl ThreadGroup {
    /// Adds the calling thread.
    pub fn register_current(&self) {
        let tid = fs::read_to_string("/proc/thread-self/stat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        if let Some(tid) = tid {
            self.tids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(tid);
        }
    }

    /// Threads registered.
    pub fn len(&self) -> usize {
        self.tids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// CPU time the registered threads that still exist have used. A thread that exited is
    /// no longer counted: keep the group's threads alive for the measurement.
    pub fn cpu(&self) -> Duration {
        let tids = self
            .tids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tids.iter()
            .filter_map(|tid| fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok())
            .filter_map(|s| stat_cpu(&s))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let r = Resources::now().unwrap();
        assert!(r.fds >= 3 && r.rss_kib > 0 && r.threads >= 1, "{r:?}");
        let group = ThreadGroup::default();
        group.register_current();
        assert_eq!(group.len(), 1);
        let start = group.cpu();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1);
        assert!(group.cpu() > start, "busy thread spent no CPU");
        assert!(process_cpu().unwrap() >= group.cpu());
    }

    #[test]
    fn stat_line_with_spaces_in_the_name() {
        let line = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu(line), Some(Duration::from_secs(3)));
    }
}
