//! Another QUIC stack against this one: aioquic (Python, pinned in `interop/requirements.txt`).
//!
//! - `interop/aioquic_client.py` dials an attested acceptor: without a certificate and with an
//!   evidence-free certificate it is refused with the alerts and reasons of `docs/evidence.md`
//!   before any stream; allow-listed (Software), it sends the bond message of
//!   `docs/transport.md`, receives the acceptor's bond proof (checked with `check_bond.py`
//!   against the acceptor's exporter) and gets its message echoed; the acceptor certificate it
//!   captured passes `check_cert.py`.
//! - `interop/aioquic_server.py` presents a certificate with a synthetic quote (made by
//!   `ratls synthetic-cert`) and is verified by `ratls connect`.
//!
//! Each Python process runs under a deadline and is killed past it. Needs `python3` with the
//! packages of `interop/requirements.txt`: under `CI=true` their absence fails the test;
//! elsewhere the test prints why and passes without running.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::raw::{attested_certificate, unix_now};
use common::*;

use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{
    issue_certificate, AttestationLevel, AttestedConnection, Endpoint, Error, Identity,
    IssuedCertificate, PeerRejection,
};
use serde_json::Value;

/// How long one Python process may run.
const DEADLINE: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether python3 and the interop packages are there. Panics under CI when they are not.
fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import aioquic, cryptography, cbor2, blake3"])
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "python3 lacks the packages of interop/requirements.txt: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("python3 cannot be run: {e}"),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{problem}");
    }
    eprintln!("skipping the aioquic interop test: {problem}");
    false
}

/// Runs `command` to completion, killing it past [`DEADLINE`].
fn run_with_deadline(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the process starts");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > DEADLINE {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{command:?} ran past {DEADLINE:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the aioquic client against `endpoint` with `args`; its JSON report.
async fn aioquic_client(endpoint: &Endpoint, args: &[&str]) -> Value {
    let port = addr(endpoint).port().to_string();
    let mut command = Command::new("python3");
    command
        .arg(root().join("interop/aioquic_client.py"))
        .args(["127.0.0.1", &port, "--timeout", "20"])
        .args(args);
    // AIOQUIC_DEBUG=1 prints aioquic's debug log (timestamped) after each run.
    let debug = std::env::var("AIOQUIC_DEBUG").is_ok();
    if debug {
        command.arg("--verbose");
    }
    let out = tokio::task::spawn_blocking(move || run_with_deadline(command))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if debug {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        out.status.success(),
        "aioquic client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from the aioquic client ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Accepts one connection; on a bond, echoes one bidirectional stream and waits for the close.
async fn accept_and_echo(server: &Endpoint) -> Result<AttestedConnection, Error> {
    let result = accept_one(server).await;
    if let Ok(conn) = &result {
        echo_once(conn).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), conn.closed()).await;
    }
    result
}

/// When the refused client read the CONNECTION_CLOSE, and when aioquic reported
/// ConnectionTerminated (ms after its handshake). The second is the first plus aioquic's
/// draining period (3 PTO, RFC 9000 10.2.2): aioquic's event, not the acceptor's close, is what
/// arrives tens of milliseconds late.
fn close_timing(report: &Value) -> (f64, f64) {
    let close = report["close_after_handshake_ms"].as_f64().unwrap();
    let terminated = report["terminated_after_handshake_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("aioquic never reported the end: {report:#}"));
    assert!(
        terminated >= close,
        "aioquic reported the end before the close arrived: {report:#}"
    );
    (close, terminated)
}

/// The close the aioquic client read: error code and reason phrase.
fn close_of(report: &Value) -> (u64, String) {
    let closed = &report["closed"];
    assert!(closed.is_object(), "no close read: {report:#}");
    (
        closed["error_code"].as_u64().unwrap(),
        closed["reason"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_client_is_refused_or_bonds_as_documented() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let allowed = Identity::generate().unwrap();
    let mut policy = policy(AttestationLevel::Software);
    policy.software_allow.insert(allowed.attestation_digest());
    let server_identity = Identity::generate().unwrap();
    let server = bind(config(
        server_identity.clone(),
        Side::Attested(Box::new(sample_measurements())),
        policy,
    ))
    .await;

    // No certificate: certificate_required, before any stream.
    let (refused, report) = tokio::join!(accept_and_echo(&server), aioquic_client(&server, &[]));
    assert!(
        matches!(refused, Err(Error::Rejected(PeerRejection::NoCertificate))),
        "{refused:?}"
    );
    assert_eq!(report["handshake_completed"], true, "{report:#}");
    assert_eq!(
        close_of(&report),
        (0x174, "certificate required".to_owned())
    );
    assert_eq!(report["stream_bytes_before_close"], 0, "{report:#}");
    let no_certificate_close_ms = close_timing(&report);

    // An Ed25519 certificate made by aioquic's side, without evidence and not allow-listed.
    let (refused, report) = tokio::join!(
        accept_and_echo(&server),
        aioquic_client(&server, &["--self-signed"])
    );
    assert!(
        matches!(
            refused,
            Err(Error::Rejected(PeerRejection::UnknownSoftwareIdentity(_)))
        ),
        "{refused:?}"
    );
    assert_eq!(
        close_of(&report),
        (0x12e, "identity not allowed".to_owned())
    );
    assert_eq!(report["stream_bytes_before_close"], 0, "{report:#}");
    let evidence_free_close_ms = close_timing(&report);

    // The allow-listed Software identity: bonds, receives the acceptor's proof, echoes.
    let now = unix_now();
    let issued = issue_certificate(&allowed, now - 60, now + 1800, None).unwrap();
    let cert_der = dir.path().join("client.der");
    let key_der = dir.path().join("client.key.der");
    std::fs::write(&cert_der, &issued.cert_der).unwrap();
    std::fs::write(&key_der, issued.key_der.secret_der()).unwrap();
    let captured = dir.path().join("server.der");
    let args = [
        "--cert",
        cert_der.to_str().unwrap(),
        "--key",
        key_der.to_str().unwrap(),
        "--bond",
        "--capture-cert",
        captured.to_str().unwrap(),
    ];
    let (bonded, report) = tokio::join!(accept_and_echo(&server), aioquic_client(&server, &args));
    let bonded = bonded.unwrap_or_else(|e| panic!("no bond: {e}; client: {report:#}"));
    assert_eq!(bonded.peer().peer_id(), allowed.peer_id());
    assert_eq!(bonded.peer().level(), AttestationLevel::Software);
    assert_eq!(report["echo"], "hello from aioquic", "{report:#}");
    let bond_echo_ms = report["echo_after_handshake_ms"].as_f64().unwrap();

    // The acceptor's bond proof as aioquic received it binds this connection (check_bond.py,
    // with the exporter as the acceptor computed it).
    let message = hex::decode(report["server_bond_message"].as_str().unwrap()).unwrap();
    assert_eq!(&message[..5], b"RQB1\x01", "a single proof with a quote");
    let mut exporter = [0u8; 32];
    bonded
        .export_keying_material(&mut exporter, ratls_quic::EXPORTER_LABEL, b"")
        .unwrap();
    let message_path = dir.path().join("bond.bin");
    std::fs::write(&message_path, &message).unwrap();
    let out = Command::new("python3")
        .arg(root().join("interop/check_bond.py"))
        .arg(&message_path)
        .args(["--role", "server"])
        .args(["--client", &allowed.peer_id().to_string()])
        .args(["--server", &server_identity.peer_id().to_string()])
        .args(["--exporter", &hex::encode(exporter)])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "check_bond.py: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The certificate aioquic captured passes the independent checker.
    let out = Command::new("python3")
        .arg(root().join("interop/check_cert.py"))
        .arg(&captured)
        .args(["--peer-id", &server_identity.peer_id().to_string()])
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{verdict:#}");
    assert_eq!(verdict["report_data_matches"], true);
    assert_eq!(
        std::fs::read(&captured).unwrap(),
        server.current_certificate().to_vec()
    );

    // Reported, not asserted (the machine is noisy): how long after its handshake each client
    // read its close or its echo.
    eprintln!(
        "aioquic, ms after its handshake (CONNECTION_CLOSE read, ConnectionTerminated): \
         no certificate {no_certificate_close_ms:?}, evidence-free {evidence_free_close_ms:?}; \
         bond echo read {bond_echo_ms}"
    );
}

/// An aioquic acceptor presenting `issued` (a certificate with a synthetic quote, made here),
/// dialed by `ratls connect` with a certificate-freshness policy pinning the sample MRTD: the
/// `connect` report and the aioquic server's.
fn ratls_connect_to_aioquic(
    dir: &Path,
    name: &str,
    issued: &IssuedCertificate,
) -> (i32, Value, Value) {
    let cert = dir.join(format!("{name}.der"));
    let key = dir.join(format!("{name}.key.der"));
    std::fs::write(&cert, &issued.cert_der).unwrap();
    std::fs::write(&key, issued.key_der.secret_der()).unwrap();
    let mut server = Command::new("python3")
        .arg(root().join("interop/aioquic_server.py"))
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server's lines, read on a thread so that a server that never prints cannot hang the
    // test past the deadline.
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        server.kill().ok();
        panic!("aioquic_server.py did not start listening within {DEADLINE:?}")
    });
    let listening: Value = serde_json::from_str(&first).unwrap();
    let port = listening["listening"].as_u64().unwrap();
    let mut connect = Command::new(env!("CARGO_BIN_EXE_ratls"));
    connect
        .arg("connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--json", "--message", "hello aioquic", "--timeout", "20"])
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .arg("--root")
        .arg(dir.join("root.der"))
        .arg("--collateral")
        .arg(dir.join("collateral.json"));
    let out = run_with_deadline(connect);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "ratls connect printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let deadline = Instant::now() + DEADLINE;
    while server.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill().ok();
    server.wait().unwrap();
    let served = lines
        .recv_timeout(Duration::from_secs(5))
        .ok()
        .and_then(|line| serde_json::from_str(&line).ok())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, served)
}

#[test]
fn ratls_connect_verifies_an_aioquic_server_with_a_synthetic_quote() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    std::fs::write(dir.path().join("root.der"), pki.root_der()).unwrap();
    std::fs::write(
        dir.path().join("collateral.json"),
        pki.collateral_json().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        format!(
            "version = 1\nlevel = \"TdxLocal\"\nfreshness = \"certificate\"\n[[profile]]\n\
             name = \"synthetic\"\nmr_td = \"{}\"\nrtmr0 = \"any\"\nrtmr1 = \"any\"\n\
             rtmr2 = \"any\"\nrtmr3 = \"any\"\nmr_config_id = \"any\"\nmr_owner = \"any\"\n\
             mr_owner_config = \"any\"\n",
            hex::encode(sample_measurements().mr_td)
        ),
    )
    .unwrap();
    let identity = Identity::generate().unwrap();
    let now = unix_now();

    // A certificate whose synthetic quote binds its own key and validity: verified, bonded at
    // TdxLocal, the message echoed by aioquic.
    let good = attested_certificate(
        &identity,
        identity.peer_id(),
        now - 60,
        now + 1800,
        sample_measurements(),
    );
    let (code, report, served) = ratls_connect_to_aioquic(dir.path(), "good", &good);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["bonded"], true, "{report:#}");
    assert_eq!(report["peer"]["peer_id"], identity.peer_id().to_string());
    assert_eq!(report["peer"]["level"], "TdxLocal");
    assert_eq!(report["peer"]["profile"], "synthetic");
    assert_eq!(report["peer"]["quote_kind"], "certificate");
    assert_eq!(report["replies"], serde_json::json!(["hello aioquic"]));
    // ratls connect is a Software dialer: its bond message is the five bytes of kind 00.
    assert_eq!(served["client_bond_message"], "5251423100", "{served:#}");
    assert_eq!(served["echoed"], serde_json::json!(["hello aioquic"]));

    // The same quote in a certificate of another key: ratls connect refuses it.
    let other = Identity::generate().unwrap();
    let unbound = attested_certificate(
        &other,
        identity.peer_id(),
        now - 60,
        now + 1800,
        sample_measurements(),
    );
    let (code, report, _) = ratls_connect_to_aioquic(dir.path(), "unbound", &unbound);
    assert_ne!(code, 0, "{report:#}");
    assert_eq!(report["bonded"], false, "{report:#}");
    assert_eq!(report["outcome"], "refused", "{report:#}");
}
