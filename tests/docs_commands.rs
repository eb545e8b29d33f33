//! Every `sh` block of docs/cli.md and docs/policy.md, run as it is written with the binary under
//! test as `ratls` on the PATH, each in an empty directory whose `certs/` is this repository's.
//! A block must exit 0; a block that shows a refusal says `echo "exit code $?"`, and that line
//! must show the exit code the docs give.

mod cli_support;

use std::process::{Command, Stdio};
use std::time::Duration;

/// The `sh` blocks of a Markdown file.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), line) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks
}

fn run_block(doc: &str, block: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(cli_support::RATLS, bin.join("ratls")).unwrap();
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/certs"),
        dir.path().join("certs"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(block)
        .current_dir(dir.path())
        .env("PATH", path)
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
    let all = format!(
        "{doc} block:\n{block}\n--- stdout\n{}--- stderr\n{}",
        out.join().unwrap(),
        err.join().unwrap()
    );
    assert_eq!(code, 0, "{all}");
    all
}

#[test]
fn every_command_in_the_cli_reference_runs() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
    let blocks = sh_blocks(&doc);
    assert!(blocks.len() >= 6, "{} blocks", blocks.len());
    for block in &blocks {
        let out = run_block("docs/cli.md", block);
        if block.contains("nobody.toml") || block.contains("--now 1780000000") {
            assert!(out.contains("exit code 1"), "{out}");
        }
        if block.contains("--synthetic") {
            assert!(out.contains("level         TdxLocal"), "{out}");
            assert!(out.contains("reply         \"hello\""), "{out}");
            assert!(out.contains("binding: ok"), "{out}");
        }
        if block.contains("--json > serve.jsonl") {
            assert!(out.contains("\"bonded\":true"), "{out}");
            assert!(out.contains("\"event\":\"bond\""), "{out}");
        }
        if block.contains("--now 1780000000") {
            assert!(
                out.contains("collateral valid from 2025-06-19 10:32:27 UTC"),
                "{out}"
            );
        }
    }
}

#[test]
fn every_command_in_the_policy_schema_runs() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy.md")).unwrap();
    let blocks = sh_blocks(&doc);
    assert_eq!(blocks.len(), 1);
    let out = run_block("docs/policy.md", &blocks[0]);
    assert!(out.contains("line 6: software.allow"), "{out}");
    assert!(out.contains("exit code 2"), "{out}");
}

#[test]
fn the_complete_policy_file_of_the_schema_loads() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy.md")).unwrap();
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let text = &doc[start..start + doc[start..].find("```").unwrap()];
    let text = text.replace(
        "<64 hex: a peer's sw digest, as `ratls identity KEY` prints it>",
        &"ab".repeat(32),
    );
    let policy = ratls_quic::Policy::from_toml(&text).unwrap();
    assert_eq!(policy.measurements.profiles().len(), 1);
}
