//! `ratls quote`: produce a TDX quote over caller-chosen report data through configfs-tsm.
//!
//! Exit codes: 0 the quote was written; 1 the provider failed or the output could not be written
//! (the reason is printed); 2 the input was unusable (report data, output path).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ratls_quic::CONFIGFS_TSM_ROOT;
use ratls_quic::{ConfigfsTsm, QuoteProvider, QuoteProviderError, ReportData};

/// Arguments of `ratls quote`.
#[derive(Debug, clap::Args)]
pub(crate) struct QuoteArgs {
    /// The 64 bytes of report data, as 128 hex digits (an optional `0x` prefix is allowed).
    #[arg(long, value_name = "HEX")]
    report_data: String,
    /// The configfs-tsm report directory.
    #[arg(long, value_name = "PATH", default_value = CONFIGFS_TSM_ROOT)]
    configfs_root: PathBuf,
    /// Where to write the binary quote. Replaced atomically: readers see the old file or the
    /// whole new quote, never part of it.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Why `ratls quote` failed.
#[derive(Debug, thiserror::Error)]
enum QuoteCmdError {
    /// `--report-data` is not 64 bytes of hex.
    #[error("--report-data: {0}")]
    ReportData(String),
    /// `--out` cannot name a file to write.
    #[error("--out {}: {reason}", path.display())]
    OutPath { path: PathBuf, reason: &'static str },
    /// The quote provider produced no quote.
    #[error("{provider} quote provider failed: {source}")]
    Provider {
        provider: &'static str,
        #[source]
        source: QuoteProviderError,
    },
    /// The quote could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl QuoteCmdError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::ReportData(_) | Self::OutPath { .. } => ExitCode::from(2),
            Self::Provider { .. } | Self::Write { .. } => ExitCode::from(1),
        }
    }
}

/// Run `ratls quote` against configfs-tsm.
pub(crate) fn run(args: &QuoteArgs) -> ExitCode {
    let provider = ConfigfsTsm::new().with_root(&args.configfs_root);
    match execute(args, &provider) {
        Ok(len) => {
            eprintln!("wrote a {len}-byte quote to {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Check the input, ask `provider` for a quote and write it atomically; returns its length.
fn execute(args: &QuoteArgs, provider: &dyn QuoteProvider) -> Result<usize, QuoteCmdError> {
    let report_data = parse_report_data(&args.report_data)?;
    let dir = out_dir(&args.out)?;
    let quote = provider
        .quote(&report_data)
        .map_err(|source| QuoteCmdError::Provider {
            provider: provider.name(),
            source,
        })?;
    write_atomically(dir, &args.out, &quote).map_err(|source| QuoteCmdError::Write {
        path: args.out.clone(),
        source,
    })?;
    Ok(quote.len())
}

fn parse_report_data(text: &str) -> Result<ReportData, QuoteCmdError> {
    let digits = text.trim();
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .unwrap_or(digits);
    let bytes =
        hex::decode(digits).map_err(|e| QuoteCmdError::ReportData(format!("not hex: {e}")))?;
    let bytes: [u8; 64] = bytes.try_into().map_err(|b: Vec<u8>| {
        QuoteCmdError::ReportData(format!("{} bytes, expected exactly 64", b.len()))
    })?;
    Ok(ReportData(bytes))
}

/// The existing directory `out` goes into, checked before any quote is requested.
fn out_dir(out: &Path) -> Result<&Path, QuoteCmdError> {
    let bad = |reason| QuoteCmdError::OutPath {
        path: out.to_owned(),
        reason,
    };
    if out.file_name().is_none() {
        return Err(bad("does not name a file"));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(bad("its directory does not exist"));
    }
    if out.is_dir() {
        return Err(bad("is a directory"));
    }
    Ok(dir)
}

/// Write `data` to a temporary file in `dir`, flush it to disk, then rename it over `out`. On
/// any error the temporary file is removed and `out` is untouched.
fn write_atomically(dir: &Path, out: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".ratls-quote-")
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(out).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::atomic::{AtomicU32, Ordering};

    use clap::Parser;

    use super::*;

    /// Returns a fixed quote or error and counts calls.
    #[derive(Debug)]
    struct StubProvider {
        fail: bool,
        calls: AtomicU32,
    }

    impl StubProvider {
        fn new(fail: bool) -> Self {
            Self {
                fail,
                calls: AtomicU32::new(0),
            }
        }
    }

    impl QuoteProvider for StubProvider {
        fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.fail {
                return Err(QuoteProviderError::Busy { attempts: 5 });
            }
            Ok([b"QUOTE".as_slice(), report_data.as_bytes()].concat())
        }

        fn name(&self) -> &'static str {
            "stub"
        }
    }

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: QuoteArgs,
    }

    fn args(report_data: &str, out: &Path) -> QuoteArgs {
        QuoteArgs {
            report_data: report_data.into(),
            configfs_root: PathBuf::from("/nonexistent"),
            out: out.to_owned(),
        }
    }

    fn hex64() -> String {
        "ab".repeat(64)
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn quote_args_parse_with_default_root() {
        let w = Wrapper::try_parse_from(["quote", "--report-data", "00", "--out", "q.bin"])
            .expect("parse");
        assert_eq!(w.args.configfs_root, Path::new(CONFIGFS_TSM_ROOT));
        assert_eq!(w.args.out, Path::new("q.bin"));
        assert!(Wrapper::try_parse_from(["quote", "--report-data", "00"]).is_err());
    }

    #[test]
    fn report_data_accepts_64_bytes_with_or_without_prefix() {
        let plain = parse_report_data(&hex64()).expect("plain");
        let prefixed = parse_report_data(&format!("0x{}\n", hex64())).expect("prefixed");
        assert_eq!(plain, prefixed);
        assert_eq!(plain.0, [0xab; 64]);
    }

    #[test]
    fn report_data_of_wrong_length_or_not_hex_is_input_error() {
        for bad in [
            "ab".repeat(63),
            "ab".repeat(65),
            "zz".repeat(64),
            "abc".into(),
        ] {
            let err = parse_report_data(&bad).unwrap_err();
            assert!(
                matches!(err, QuoteCmdError::ReportData(_)),
                "{bad}: {err:?}"
            );
            assert_eq!(err.exit_code(), ExitCode::from(2));
        }
    }

    #[test]
    fn quote_written_whole_and_no_temp_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("quote.bin");
        fs::write(&out, b"old").expect("old file");
        let provider = StubProvider::new(false);
        let len = execute(&args(&hex64(), &out), &provider).expect("execute");
        let written = fs::read(&out).expect("read out");
        assert_eq!(written.len(), len);
        assert_eq!(written, [b"QUOTE".as_slice(), &[0xab; 64]].concat());
        assert_eq!(entries(dir.path()), vec![out]);
    }

    #[test]
    fn provider_failure_exits_1_and_leaves_out_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("quote.bin");
        fs::write(&out, b"old").expect("old file");
        let err = execute(&args(&hex64(), &out), &StubProvider::new(true)).unwrap_err();
        assert!(
            matches!(
                err,
                QuoteCmdError::Provider {
                    provider: "stub",
                    source: QuoteProviderError::Busy { attempts: 5 }
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.exit_code(), ExitCode::from(1));
        assert!(err.to_string().contains("busy"), "{err}");
        assert_eq!(fs::read(&out).expect("read out"), b"old");
        assert_eq!(entries(dir.path()), vec![out]);
    }

    #[test]
    fn bad_input_exits_2_before_asking_provider() {
        let dir = tempfile::tempdir().expect("tempdir");
        let provider = StubProvider::new(false);
        let cases = [
            args("nothex", &dir.path().join("q.bin")),
            args(&hex64(), &dir.path().join("missing").join("q.bin")),
            args(&hex64(), dir.path()),
        ];
        for case in &cases {
            let err = execute(case, &provider).unwrap_err();
            assert_eq!(err.exit_code(), ExitCode::from(2), "{err:?}");
        }
        assert_eq!(provider.calls.load(Ordering::Relaxed), 0);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn configfs_run_with_missing_root_exits_1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("q.bin");
        let mut a = args(&hex64(), &out);
        a.configfs_root = dir.path().join("no-tsm");
        assert_eq!(run(&a), ExitCode::from(1));
        assert!(!out.exists());
    }
}
