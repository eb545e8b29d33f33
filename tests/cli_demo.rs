//! `ratls demo`, and `ratls serve` with `ratls connect`, run as the built binary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratls_quic::Identity;

const RATLS: &str = env!("CARGO_BIN_EXE_ratls");

/// Waits for `child` at most `limit`; kills it and fails the test after that.
fn wait_bounded(child: &mut Child, limit: Duration) -> i32 {
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

#[test]
fn demo_bonds_and_refuses_wrong_mrtd() {
    let mut child = Command::new(RATLS)
        .args(["demo", "--bonds", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let code = wait_bounded(&mut child, Duration::from_secs(60));
    let out = reader.join().unwrap();
    assert_eq!(code, 0, "{out}");

    let id_after = |label: &str| {
        out.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {label} line in\n{out}"))
    };
    let alice = id_after("alice ");
    let bob = id_after("bob ");
    assert_eq!(alice.len(), 64);
    assert_eq!(bob.len(), 64);
    // Each side's view names the other's PeerId.
    assert!(out.contains(&format!("peer id       {alice}")), "{out}");
    assert!(out.contains(&format!("peer id       {bob}")), "{out}");
    assert!(out.contains("level         TdxRaTlsBidirectional"), "{out}");
    assert!(out.contains("NOT Intel's SGX Root CA"), "{out}");
    assert!(out.contains("p50"), "{out}");
    assert!(out.contains("alice refused"), "{out}");
    assert!(out.contains("differs in mr_td"), "{out}");
    assert!(out.contains("typed reason  PeerRejection::Quote"), "{out}");
    assert!(out.contains("result: as expected"), "{out}");

    // Collateral came over real HTTP from the demo's own loopback service, and each side's
    // view of the other names that service, the fetch time and the items' digests.
    let url = out
        .lines()
        .find_map(|line| line.trim().strip_prefix("collateral    http://"))
        .map(|rest| format!("http://{}", rest.split_whitespace().next().unwrap()))
        .unwrap_or_else(|| panic!("no collateral service line in\n{out}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        out.contains(&format!("[remote] pccs = [\"{url}\"]")),
        "{out}"
    );
    for node in ["alice", "bob", "mallory"] {
        assert!(
            out.contains(&format!("fetched       {node}: collateral of ")),
            "{node}: {out}"
        );
    }
    let views: Vec<&str> = out
        .lines()
        .filter(|line| {
            line.trim()
                .starts_with(&format!("collateral    {url} fetched "))
        })
        .collect();
    assert_eq!(views.len(), 2, "one per peer view: {out}");
    assert_eq!(out.matches("    digests     tcb_info ").count(), 2, "{out}");
    assert!(!out.contains("collateral    static"), "{out}");
}

fn software_policy(path: &Path, allow: &Identity) {
    let digest = hex::encode(allow.attestation_digest());
    std::fs::write(
        path,
        format!("version = 1\nlevel = \"Software\"\n[software]\nallow = [\"{digest}\"]\n"),
    )
    .unwrap();
}

#[test]
fn serve_and_connect_exchange_a_message_at_software_level() {
    let dir = tempfile::tempdir().unwrap();
    let (server_key, client_key) = (dir.path().join("server.key"), dir.path().join("client.key"));
    let server = Identity::generate().unwrap();
    let client = Identity::generate().unwrap();
    server.save(&server_key).unwrap();
    client.save(&client_key).unwrap();
    let (server_policy, client_policy) = (
        dir.path().join("server.toml"),
        dir.path().join("client.toml"),
    );
    software_policy(&server_policy, &client);
    software_policy(&client_policy, &server);

    let mut serve = Command::new(RATLS)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--once", "--policy"])
        .arg(&server_policy)
        .arg("--identity")
        .arg(&server_key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = serve.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut serve_out = Vec::new();
    let addr = loop {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) else {
            let _ = serve.kill();
            panic!("serve did not start: {serve_out:?}");
        };
        serve_out.push(line.clone());
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };

    let mut connect = Command::new(RATLS)
        .args([
            "connect",
            &addr,
            "--message",
            "hello over ratls",
            "--policy",
        ])
        .arg(&client_policy)
        .arg("--identity")
        .arg(&client_key)
        .args(["--expect", &server.peer_id().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut connect_stdout = connect.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut connect_stdout, &mut text).unwrap();
        text
    });
    let connect_code = wait_bounded(&mut connect, Duration::from_secs(30));
    let connect_out = reader.join().unwrap();
    let serve_code = wait_bounded(&mut serve, Duration::from_secs(30));
    serve_out.extend(lines.try_iter());

    assert_eq!(connect_code, 0, "{connect_out}");
    assert!(
        connect_out.contains("reply         \"hello over ratls\""),
        "{connect_out}"
    );
    assert!(connect_out.contains(&format!("peer id       {}", server.peer_id())));
    assert!(
        connect_out.contains("level         Software"),
        "{connect_out}"
    );
    assert_eq!(serve_code, 0, "{serve_out:?}");
    let serve_out = serve_out.join("\n");
    assert!(
        serve_out.contains(&format!("peer id       {}", client.peer_id())),
        "{serve_out}"
    );
    assert!(
        serve_out.contains("received      \"hello over ratls\""),
        "{serve_out}"
    );
}

#[test]
fn connect_to_unlisted_server_is_refused_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = Identity::generate().unwrap();
    let policy = dir.path().join("client.toml");
    software_policy(&policy, &stranger);
    let server_key = dir.path().join("server.key");
    let server_policy = dir.path().join("server.toml");
    software_policy(&server_policy, &stranger);
    let mut serve = Command::new(RATLS)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--once", "--policy"])
        .arg(&server_policy)
        .arg("--identity")
        .arg(&server_key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("serve output").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };
    // The key file was created with mode 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server_key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut connect = Command::new(RATLS)
        .args(["connect", &addr, "--message", "x", "--policy"])
        .arg(&policy)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_bounded(&mut connect, Duration::from_secs(30)), 1);
    assert_eq!(wait_bounded(&mut serve, Duration::from_secs(30)), 1);
}
