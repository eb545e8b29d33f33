//! Three processes: `ratls serve --evidence-log --audit-listen` records the bonds `ratls connect`
//! makes with it and serves its log; `ratls audit --from` pulls and re-verifies it. A connect
//! whose identity a `--retired` marker names is refused, and the refusal is recorded.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ratls_quic::evidence_log::RetirementMarker;
use ratls_quic::Identity;

const RATLS: &str = env!("CARGO_BIN_EXE_ratls");

fn software_policy(path: &Path, allow: &[&Identity]) {
    let digests: Vec<String> = allow
        .iter()
        .map(|i| format!("\"{}\"", hex::encode(i.attestation_digest())))
        .collect();
    std::fs::write(
        path,
        format!(
            "version = 1\nlevel = \"Software\"\n[software]\nallow = [{}]\n",
            digests.join(", ")
        ),
    )
    .unwrap();
}

struct Serve {
    child: Child,
    addr: String,
    evidence: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, auditor: &Identity, extra: &[&str]) -> Serve {
    let mut child = Command::new(RATLS)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--audit-listen",
            "127.0.0.1:0",
        ])
        .args(["--audit-allow", &auditor.peer_id().to_string()])
        .arg("--policy")
        .arg(dir.join("server.toml"))
        .arg("--identity")
        .arg(dir.join("server.key"))
        .arg("--evidence-log")
        .arg(dir.join("log"))
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        // Keep draining after the test stopped listening: serve must never see a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut evidence = None;
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve did not start");
        if let Some(a) = line.strip_prefix("evidence on ") {
            evidence = Some(a.to_owned());
        }
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.to_owned();
        }
    };
    Serve {
        child,
        addr,
        evidence: evidence.expect("no evidence endpoint line"),
    }
}

fn connect(dir: &Path, addr: &str, key: &str, server: &Identity) -> i32 {
    Command::new(RATLS)
        .args(["connect", addr, "--message", "hello", "--policy"])
        .arg(dir.join("client.toml"))
        .arg("--identity")
        .arg(dir.join(key))
        .args(["--expect", &server.peer_id().to_string()])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

fn audit_from(dir: &Path, evidence: &str, server: &Identity) -> (i32, serde_json::Value) {
    let out = Command::new(RATLS)
        .args(["audit", "--json", "--from", evidence])
        .args(["--expect", &server.peer_id().to_string()])
        .arg("--identity")
        .arg(dir.join("auditor.key"))
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), json)
}

#[test]
fn served_log_is_pulled_and_audited_by_a_third_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [server, client, auditor] = [(); 3].map(|()| Identity::generate().unwrap());
    server.save(&dir.join("server.key")).unwrap();
    client.save(&dir.join("client.key")).unwrap();
    auditor.save(&dir.join("auditor.key")).unwrap();
    software_policy(&dir.join("server.toml"), &[&client]);
    software_policy(&dir.join("client.toml"), &[&server]);

    {
        let node = serve(dir, &auditor, &[]);
        assert_eq!(connect(dir, &node.addr, "client.key", &server), 0);
        let (code, json) = audit_from(dir, &node.evidence, &server);
        assert_eq!(code, 0, "{json}");
        let records = json["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{json}");
        assert_eq!(records[0]["kind"], "bond-formed");
        assert_eq!(records[0]["subject"], client.peer_id().to_string());
    }

    // The same node restarted with a marker retiring the client: refused, and recorded.
    let marker = RetirementMarker::create(&client, 1, None).unwrap();
    std::fs::write(dir.join("client.retired"), marker.encode()).unwrap();
    let retired = dir.join("client.retired");
    let node = serve(dir, &auditor, &["--retired", retired.to_str().unwrap()]);
    assert_eq!(connect(dir, &node.addr, "client.key", &server), 1);
    let (code, json) = audit_from(dir, &node.evidence, &server);
    assert_eq!(code, 0, "{json}");
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{json}");
    assert_eq!(records[1]["kind"], "bond-refused");
    // Audited with the marker (retired since time 1), the earlier formed bond of the client is
    // flagged.
    let out = Command::new(RATLS)
        .args(["audit", "--json", "--log"])
        .arg(dir.join("log"))
        .arg("--marker")
        .arg(&retired)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["failed_records"], serde_json::json!([0]));
}
