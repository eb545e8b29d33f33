//! The README's five-minute walkthrough, run as it is written: the block after the walkthrough
//! marker goes to `bash` unchanged, in a directory laid out like a clone whose
//! `target/release/ratls` is the binary under test (and whose `cargo build --release` has
//! nothing left to do). Its output must show the README's expected lines.

mod cli_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const MARKER: &str = "<!-- walkthrough: tests/readme_walkthrough.rs runs this block as it is -->";

/// The first fenced block after `marker` in `text`, without its fences.
fn block_after(text: &str, marker: &str) -> String {
    let after = &text[text.find(marker).expect("marker in README") + marker.len()..];
    let mut lines = after.lines().skip_while(|l| !l.starts_with("```"));
    lines.next().expect("opening fence");
    lines
        .take_while(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `line` matches `pattern`, where `…` stands for any text.
fn matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn pattern_matching_of_expected_lines() {
    assert!(matches("peer id       …", "peer id       abc"));
    assert!(matches("in … ms", "in 1.2 ms"));
    assert!(!matches("in … ms", "in 1.2 s"));
    assert!(matches("exit code 1", "exit code 1"));
    assert!(!matches("exit code 1", "exit code 10"));
}

#[test]
fn readme_walkthrough_runs_as_written_and_shows_what_it_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let script = block_after(&readme, MARKER);
    let expected = block_after(&readme, "What you should see (");

    let clone = tempfile::tempdir().unwrap();
    let release = clone.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::os::unix::fs::symlink(cli_support::RATLS, release.join("ratls")).unwrap();
    let shims = clone.path().join("shims");
    std::fs::create_dir(&shims).unwrap();
    let cargo = shims.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n[ \"$*\" = \"build --release\" ] || exit 97\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = clone.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(clone.path())
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::thread::spawn({
        let mut pipe = child.stdout.take().unwrap();
        move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut text).unwrap();
            text
        }
    });
    let err = std::thread::spawn({
        let mut pipe = child.stderr.take().unwrap();
        move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut text).unwrap();
            text
        }
    });
    let code = cli_support::wait_bounded(&mut child, Duration::from_secs(120));
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let all = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(code, 0, "{all}");

    // Every expected line appears. (The server runs in the background and prints when it
    // judges each client, so its lines may come before or after the client's.)
    let lines: Vec<&str> = stdout.lines().collect();
    for pattern in expected.lines().filter(|l| *l != "...") {
        assert!(
            lines.iter().any(|line| matches(pattern, line)),
            "expected line {pattern:?} not found in\n{all}"
        );
    }
    // The client's own lines come in the README's order.
    let position = |text: &str| lines.iter().position(|l| l.starts_with(text)).unwrap();
    assert!(position("bond with localhost:4433") < position("reply         \"hello\""));
    assert!(position("reply         \"hello\"") < position("no bond: the peer refused us"));
    assert!(position("no bond: the peer refused us") < position("exit code 1"));

    // The refused key's digest is the one both sides name, and not the client's.
    let digest_in = |prefix: &str| {
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap();
        line.split("allow = [\"").nth(1).unwrap()[..64].to_owned()
    };
    let named_by_server = digest_in("to admit it");
    let named_by_client = digest_in("to be admitted");
    assert_eq!(named_by_server, named_by_client, "{all}");
    assert!(
        Path::new(&tmp).read_dir().unwrap().next().is_some(),
        "mktemp -d made its directory under TMPDIR"
    );
}

/// The README's TdxRemote block, run as it is written in a directory laid out like a clone
/// (`target/release/ratls` and `certs/`): a synthetic server, the project's collateral service
/// on loopback, a client that reaches TdxRemote with collateral fetched over HTTP, and a real
/// quote verified with collateral from a service.
#[test]
fn readme_tdx_remote_block_runs_as_written_and_shows_what_it_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = "<!-- tdx-remote: tests/readme_walkthrough.rs runs this block as it is -->";
    let script = block_after(&readme, marker);
    let section = &readme[readme.find(marker).unwrap()..];
    let expected = block_after(section, "What you should see (among other lines");

    let clone = tempfile::tempdir().unwrap();
    let release = clone.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::os::unix::fs::symlink(cli_support::RATLS, release.join("ratls")).unwrap();
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/certs"),
        clone.path().join("certs"),
    )
    .unwrap();
    let shims = clone.path().join("shims");
    std::fs::create_dir(&shims).unwrap();
    let cargo = shims.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n[ \"$*\" = \"build --release\" ] || exit 97\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = clone.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(clone.path())
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let code = cli_support::wait_bounded(&mut child, Duration::from_secs(120));
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let all = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(code, 0, "{all}");
    let lines: Vec<&str> = stdout.lines().collect();
    for pattern in expected.lines() {
        assert!(
            lines.iter().any(|line| matches(pattern, line)),
            "expected line {pattern:?} not found in\n{all}"
        );
    }
    // The persistence directory holds the fetched collateral.
    let tmp_dirs: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tmp_dirs.len(), 1, "{tmp_dirs:?}");
    let persisted = std::fs::read_dir(tmp_dirs[0].join("collateral"))
        .unwrap()
        .count();
    assert_eq!(persisted, 1, "{all}");
}
