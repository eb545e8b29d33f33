//! `ratls audit --from`: a third process pulls a node's evidence log over the network (the
//! node's evidence endpoint, its own ALPN) and re-verifies every record; an auditor off the
//! allow-list, or one expecting another node, gets nothing.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use common::{bind, config, pair, pki, policy, provider, verifier, Side};
use ratls_quic::evidence_log::{EvidenceLog, EvidenceServer, EvidenceSink, StoreOptions};
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{AttestationLevel, EndpointConfig, ExpectedPeer, Identity};

mod common;

const RATLS: &str = env!("CARGO_BIN_EXE_ratls");

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_process_pulls_and_audits_the_log_and_strangers_get_nothing() {
    let level = AttestationLevel::TdxRaTlsBidirectional;
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = EvidenceLog::open(&tmp.path().join("log"), StoreOptions::default()).unwrap();
    let node_id = Identity::generate().unwrap();
    let (verifier, collateral) = verifier();
    let node = bind(
        EndpointConfig::builder(node_id.clone())
            .with_policy(policy(level))
            .with_quote_provider(provider(sample_measurements()))
            .with_quote_verifier(verifier, collateral)
            .evidence_log(EvidenceSink::new(log.clone(), true))
            .build()
            .unwrap(),
    )
    .await;
    let peer = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(level),
    ))
    .await;
    for _ in 0..3 {
        let (a, b) = pair(&node, &peer, ExpectedPeer::AnyAllowedByPolicy).await;
        a.unwrap();
        b.unwrap();
    }
    log.checkpoint(Arc::new(node_id.clone()), unix_now())
        .await
        .unwrap();

    let auditor = Identity::generate().unwrap();
    let stranger = Identity::generate().unwrap();
    let server = EvidenceServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(node_id.clone()),
        log.clone(),
        BTreeSet::from([auditor.peer_id()]),
    )
    .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let files = tmp.path();
    auditor.save(&files.join("auditor.key")).unwrap();
    stranger.save(&files.join("stranger.key")).unwrap();
    std::fs::write(files.join("root.der"), pki().root_der()).unwrap();
    std::fs::write(files.join("policy.toml"), policy(level).to_toml()).unwrap();

    let run = |key: &str, expect: String| {
        let (addr, files) = (addr.clone(), files.to_path_buf());
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            Command::new(RATLS)
                .args(["audit", "--json", "--from", &addr, "--expect", &expect])
                .arg("--identity")
                .arg(files.join(key))
                .arg("--root")
                .arg(files.join("root.der"))
                .arg("--policy")
                .arg(files.join("policy.toml"))
                .output()
                .unwrap()
        })
    };
    let out = run("auditor.key", node_id.peer_id().to_string())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["records"].as_array().unwrap().len(), 4);
    assert_eq!(json["checkpoints"][0]["passed"], true);
    assert_eq!(
        json["checkpoints"][0]["signer"],
        node_id.peer_id().to_string()
    );

    // Off the allow-list: the handshake refuses the stranger, nothing is pulled.
    let out = run("stranger.key", node_id.peer_id().to_string())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    // Expecting another node: the auditor refuses the endpoint.
    let other = Identity::generate().unwrap().peer_id().to_string();
    let out = run("auditor.key", other).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected peer"), "{stderr}");
    drop(server);
}
