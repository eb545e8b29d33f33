//! Running the built `ratls` binary in tests: bounded waits, a `serve` whose output is read line
//! by line, policy files.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const RATLS: &str = env!("CARGO_BIN_EXE_ratls");

/// Exit code, stdout and stderr of one finished run.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, for assertion messages.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `ratls ARGS` in `dir` with stdin closed, at most `limit`.
pub fn ratls_in(dir: &Path, args: &[&str], envs: &[(&str, &str)], limit: Duration) -> Output {
    let mut command = Command::new(RATLS);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let code = wait_bounded(&mut child, limit);
    Output {
        code,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs `ratls ARGS` in `dir`, at most 60 s.
pub fn ratls(dir: &Path, args: &[&str]) -> Output {
    ratls_in(dir, args, &[], Duration::from_secs(60))
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Waits for `child` at most `limit`; kills it and fails the test after that.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `ratls serve`, its stdout read line by line.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines read so far.
    pub out: Vec<String>,
    /// The address it listens on.
    pub addr: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `ratls serve ARGS` in `dir` and waits for its address (the `listening on` line, or
    /// the `listening` event with `--json`).
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(RATLS)
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = reader(child.stderr.take().unwrap());
        let mut server = Self {
            child,
            lines,
            out: Vec::new(),
            addr: String::new(),
            stderr: Some(stderr),
        };
        loop {
            let Some(line) = server.next_line(Duration::from_secs(60)) else {
                let _ = server.child.kill();
                panic!("serve did not start: {:?}", server.out);
            };
            if let Some(addr) = line.strip_prefix("listening on ") {
                server.addr = addr.to_owned();
                break;
            }
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                if event["event"] == "listening" {
                    server.addr = event["addr"].as_str().unwrap().to_owned();
                    break;
                }
            }
        }
        server
    }

    /// The next stdout line, or `None` after `limit` or at the end of output.
    pub fn next_line(&mut self, limit: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(limit).ok()?;
        self.out.push(line.clone());
        Some(line)
    }

    /// Waits for a `--once` server to exit; returns its exit code, stdout and stderr.
    pub fn finish(mut self, limit: Duration) -> Output {
        let code = wait_bounded(&mut self.child, limit);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.out.push(line);
        }
        let mut stdout = self.out.join("\n");
        stdout.push('\n');
        Output {
            code,
            stdout,
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the key file `name` in `dir` through `ratls identity --json`; returns (peer id, sw
/// digest).
pub fn identity(dir: &Path, name: &str) -> (String, String) {
    let out = ratls(dir, &["identity", name, "--json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    (
        json["peer_id"].as_str().unwrap().to_owned(),
        json["sw_digest"].as_str().unwrap().to_owned(),
    )
}

/// Writes a Software-level policy admitting `digests` to `dir/name`.
pub fn software_policy(dir: &Path, name: &str, digests: &[&str]) {
    let list: Vec<String> = digests.iter().map(|d| format!("\"{d}\"")).collect();
    std::fs::write(
        dir.join(name),
        format!(
            "version = 1\nlevel = \"Software\"\n\n[software]\nallow = [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
}
