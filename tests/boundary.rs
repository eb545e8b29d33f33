//! The core/shell boundary, checked mechanically: core modules (evidence encoding and binding,
//! policy, quote layout and DCAP verification, the certificate and bond judgements, alerts,
//! measurement from images, crypto) import no runtime, socket, filesystem, process or clock.
//! A core module that needs one of these has put I/O in the wrong place.

use std::fs;
use std::path::{Path, PathBuf};

/// Core files and directories, relative to `src/`.
const CORE: &[&str] = &[
    "crypto.rs",
    "level.rs",
    "evidence",
    "policy",
    "tdx",
    "tls",
    "measure",
    "identity/mod.rs",
    "evidence_log/codec.rs",
    "evidence_log/record.rs",
    "evidence_log/checkpoint.rs",
    "evidence_log/retire.rs",
    "evidence_log/outcome.rs",
    "evidence_log/protocol.rs",
    "pccs/platform.rs",
    "pccs/wire.rs",
    "pccs/check.rs",
];

/// What a core module must not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "async runtime"),
    ("quinn", "QUIC sockets"),
    ("std::fs", "filesystem"),
    ("std::net", "sockets"),
    ("std::process", "processes"),
    ("std::thread", "threads and sleeping"),
    ("std::env", "environment"),
    ("SystemTime", "the clock: take `now` as a parameter"),
    ("Instant", "the clock: take `now` as a parameter"),
    ("reqwest", "HTTP"),
    ("File::", "filesystem"),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// Unit tests may use the filesystem and threads (temporary trees, concurrency): only the code
/// before `mod tests` and outside `*_tests.rs` / `tests.rs` files is core.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

fn violations_in(text: &str) -> Vec<(usize, &'static str, &'static str)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") || code.starts_with("#[cfg(all(test") {
            // Everything after the first test attribute is test code (tests come last).
            if text
                .lines()
                .nth(number + 1)
                .is_some_and(|l| l.contains("mod "))
            {
                break;
            }
        }
        // Comments may name anything (naive: core code has no `//` inside strings).
        let code = code.split("//").next().unwrap_or_default();
        for (name, why) in FORBIDDEN {
            if contains_path(code, name) {
                found.push((number + 1, *name, *why));
            }
        }
    }
    found
}

/// Whether `code` names `name` as a path (not as part of a longer word).
fn contains_path(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        boundary(before) && (name.ends_with("::") || boundary(after))
    })
}

#[test]
fn core_modules_do_no_io_and_read_no_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for entry in CORE {
        let path = src.join(entry);
        assert!(path.exists(), "core entry {entry} is missing: update CORE");
        rust_files(&path, &mut files);
    }
    let mut report = Vec::new();
    for file in files.iter().filter(|f| !is_test_file(f)) {
        let text = fs::read_to_string(file).unwrap();
        for (line, name, why) in violations_in(&text) {
            report.push(format!(
                "{}:{line}: names `{name}` ({why})",
                file.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    assert!(
        report.is_empty(),
        "core modules doing I/O:\n{}",
        report.join("\n")
    );
}

/// The check itself fails on what it is meant to catch.
#[test]
fn boundary_check_catches_io_and_clocks() {
    for line in [
        "use tokio::sync::Mutex;",
        "let now = std::time::SystemTime::now();",
        "let start = Instant::now();",
        "std::fs::read(path)?;",
        "let f = File::open(path)?;",
        "let c: quinn::Connection = todo!();",
        "std::thread::sleep(d);",
    ] {
        assert!(!violations_in(line).is_empty(), "not caught: {line}");
    }
    for line in [
        "// tokio is mentioned in a comment",
        "let instants = 3; // Instant in a comment",
        "fn tokio_free() {}",
        "let quinnish = 1;",
    ] {
        assert!(violations_in(line).is_empty(), "false alarm: {line}");
    }
    let with_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    use std::fs;\n}\n";
    assert!(
        violations_in(with_tests).is_empty(),
        "unit tests are not core"
    );
}
