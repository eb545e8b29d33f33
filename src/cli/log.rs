//! The log of the `ratls` tool: `tracing` events on stderr.
//!
//! Quiet by default: warnings and errors only (among them the warning that a quote verifier
//! trusts a root other than Intel's). `-v` adds info (one line per bond and refusal, with the
//! typed reason), `-vv` debug, `-vvv` trace; `-q` keeps errors only. `RUST_LOG`, when set, replaces
//! all of that with its own filter (`RUST_LOG=ratls_quic=debug`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter for a verbosity: `-q` is `-1`, nothing `0`, each `-v` one more.
pub(crate) fn default_filter(verbosity: i8) -> &'static str {
    match verbosity {
        i8::MIN..=-1 => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Installs the subscriber for the whole process. A `RUST_LOG` that cannot be parsed is reported
/// and the verbosity's filter is used instead.
pub(crate) fn init(verbosity: i8) {
    let fallback = default_filter(verbosity);
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => EnvFilter::try_new(&text).unwrap_or_else(|error| {
            eprintln!("warning: RUST_LOG={text:?} is not a filter ({error}); using {fallback:?}");
            EnvFilter::new(fallback)
        }),
        _ => EnvFilter::new(fallback),
    };
    let stderr = std::io::stderr();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr.is_terminal())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(default_filter(-1), "error");
        assert_eq!(default_filter(0), "warn");
        assert_eq!(default_filter(1), "info");
        assert_eq!(default_filter(2), "debug");
        assert_eq!(default_filter(9), "trace");
        for level in ["error", "warn", "info", "debug", "trace"] {
            assert!(EnvFilter::try_new(level).is_ok());
        }
    }
}
