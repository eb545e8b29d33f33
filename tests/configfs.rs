//! `ConfigfsTsm` and `ratls quote` through the production file operations, on trees that are not
//! configfs: what a machine without configfs-tsm looks like. The kernel-side behaviour (outblob,
//! generation, EBUSY) is covered by the unit tests next to the provider.

use std::fs;
use std::path::Path;
use std::process::Command;

use ratls_quic::{ConfigfsTsm, QuoteProvider, QuoteProviderError, ReportData};

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).expect("read dir").next().is_none()
}

#[test]
fn quote_with_missing_root_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("tsm").join("report");
    let err = ConfigfsTsm::new()
        .with_root(&root)
        .quote(&ReportData([1; 64]))
        .unwrap_err();
    assert!(
        matches!(&err, QuoteProviderError::Unavailable { root: r } if *r == root),
        "{err:?}"
    );
}

#[test]
fn quote_on_plain_directory_fails_on_provider_and_removes_entry() {
    // mkdir succeeds on an ordinary directory, but no kernel fills the entry in.
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ConfigfsTsm::new()
        .with_root(dir.path())
        .quote(&ReportData([1; 64]))
        .unwrap_err();
    match &err {
        QuoteProviderError::Io { path, source } => {
            assert!(path.starts_with(dir.path()), "{path:?}");
            assert!(path.ends_with("provider"), "{path:?}");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io on provider, got {other:?}"),
    }
    assert!(is_empty_dir(dir.path()), "entry left behind");
}

fn ratls() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ratls"))
}

#[test]
fn cli_quote_with_bad_report_data_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("q.bin");
    let status = ratls()
        .args(["quote", "--report-data", "abcd", "--configfs-root"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run ratls");
    assert_eq!(status.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&status.stderr).contains("--report-data"));
    assert!(is_empty_dir(dir.path()), "nothing may be created");
}

#[test]
fn cli_quote_without_configfs_exits_1_with_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("q.bin");
    let output = ratls()
        .args([
            "quote",
            "--report-data",
            &"00".repeat(64),
            "--configfs-root",
        ])
        .arg(dir.path().join("absent"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run ratls");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("configfs-tsm is not available"), "{stderr}");
    assert!(is_empty_dir(dir.path()), "no output, no temp file");
}

#[test]
fn cli_quote_with_missing_arguments_exits_2() {
    let output = ratls().args(["quote"]).output().expect("run ratls");
    assert_eq!(output.status.code(), Some(2));
}
