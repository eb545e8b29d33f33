//! Progress of long work on stderr, only when stderr is a terminal (never in pipes, logs or
//! tests): one line rewritten in place, cleared when the work is done.

use std::io::{IsTerminal, Write};

/// A progress line for `total` steps of `label`.
pub(crate) struct Progress {
    label: &'static str,
    total: usize,
    shown: bool,
}

impl Progress {
    /// Starts a progress line; it shows only when stderr is a terminal.
    pub(crate) fn new(label: &'static str, total: usize) -> Self {
        Self {
            label,
            total,
            shown: std::io::stderr().is_terminal(),
        }
    }

    /// Reports that `done` steps are done.
    pub(crate) fn step(&self, done: usize) {
        if self.shown {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{} {done}/{}", self.label, self.total);
            let _ = stderr.flush();
        }
    }

    /// Reports a step of work whose count is unknown.
    pub(crate) fn note(&self, what: &str) {
        if self.shown {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K{}: {what}", self.label);
            let _ = stderr.flush();
        }
    }
}

impl Progress {
    /// Erases the progress line, before printing something else.
    pub(crate) fn clear(&self) {
        if self.shown {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
