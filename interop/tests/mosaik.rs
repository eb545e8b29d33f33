//! Interop with the real `mosaik` 0.4.2 crate: identities, frames, close codes, and a
//! mosaik-style protocol over attested links. Both peers of every network test run real QUIC
//! on loopback with synthetic quotes at TdxRaTlsBidirectional.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mosaik::Datum as _;
use ratls_quic::link::{
    AcceptError, CloseReason, Link, LocalNode, Protocol, ProtocolHandler, Router, close,
    identity_from_secret_key, secret_key_bytes,
};
use ratls_quic::synthetic::{
    SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb, sample_measurements,
};
use ratls_quic::{
    AttestationLevel, AttestedConnection, Collateral, Endpoint, EndpointConfig, Identity,
    MeasurementPolicy, MeasurementProfile, PeerId, Policy, QuoteVerifier, StaticCollateral,
};
use ratls_quic_interop::echo::{Echo, EchoRequest, EchoResponse};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

fn pki() -> Arc<SyntheticPki> {
    static PKI: std::sync::OnceLock<Arc<SyntheticPki>> = std::sync::OnceLock::new();
    Arc::clone(PKI.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(now - 3600)).unwrap())
    }))
}

async fn node(identity: Identity) -> LocalNode {
    let pki = pki();
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(AttestationLevel::TdxRaTlsBidirectional);
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    policy.dangerous().static_collateral();
    let provider = SyntheticQuoteProvider::new(
        Arc::clone(&pki),
        sample_measurements(),
        SyntheticTcb::UpToDate,
    );
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let collateral = StaticCollateral(Arc::new(Collateral::new(pki.collateral().clone()).unwrap()));
    let config = EndpointConfig::builder(identity)
        .with_policy(policy)
        .with_quote_provider(Arc::new(provider))
        .with_quote_verifier(verifier, Arc::new(collateral))
        .build()
        .unwrap();
    LocalNode::new(
        Endpoint::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap(),
    )
}

/// What mosaik's subsystems exchange: serde types, postcard-encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Catalogish {
    peer: [u8; 32],
    version: u64,
    tags: Vec<String>,
    network: Option<[u8; 32]>,
}

fn sample() -> Catalogish {
    Catalogish {
        peer: [7; 32],
        version: 300,
        tags: vec!["api".into(), "tdx".into()],
        network: Some([9; 32]),
    }
}

/// The framing exactly as mosaik's link builds it.
fn mosaik_codec() -> LengthDelimitedCodec {
    let mut codec = LengthDelimitedCodec::new();
    codec.set_max_frame_length(usize::MAX);
    codec
}

struct Wire;
impl Protocol for Wire {
    const ALPN: &'static [u8] = b"/ratls-quic-interop/wire/1.0";
}

#[derive(Debug)]
struct Handoff(mpsc::UnboundedSender<AttestedConnection>);
impl ProtocolHandler for Handoff {
    async fn accept(&self, connection: AttestedConnection) -> Result<(), AcceptError> {
        let _ = self.0.send(connection);
        Ok(())
    }
}

#[test]
fn mosaik_secret_key_gives_the_same_peer_id_both_ways() {
    // mosaik -> ratls-quic: a node keeps its id when it switches transport.
    let secret = mosaik::SecretKey::generate();
    let mosaik_id: mosaik::PeerId = secret.public();
    let identity = identity_from_secret_key(&secret.to_bytes());
    assert_eq!(identity.peer_id().as_bytes(), mosaik_id.as_bytes());
    assert_eq!(identity.peer_id().to_string(), mosaik_id.to_string());
    let back = mosaik::PeerId::from_bytes(identity.peer_id().as_bytes()).unwrap();
    assert_eq!(back, mosaik_id);

    // ratls-quic -> mosaik.
    let identity = Identity::generate().unwrap();
    let secret = mosaik::SecretKey::from_bytes(&secret_key_bytes(&identity));
    assert_eq!(secret.public().as_bytes(), identity.peer_id().as_bytes());
    let id: PeerId = (*secret.public().as_bytes()).into();
    assert_eq!(id, identity.peer_id());
    // Signatures made by either side verify under the other's key.
    let message = b"same key, two crates";
    let ours = identity.sign(message);
    secret
        .public()
        .verify(message, &mosaik::Signature::from_bytes(&ours))
        .unwrap();
}

#[tokio::test]
async fn frames_written_by_mosaik_encoding_are_read_by_link_and_back() {
    let server = node(Identity::generate().unwrap()).await;
    let client = node(Identity::generate().unwrap()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _router = Router::builder(server.clone())
        .accept(Wire::ALPN, Handoff(tx))
        .spawn()
        .unwrap();

    // mosaik -> Link: the opener writes with mosaik's Datum encoding and mosaik's framing on
    // the raw stream of an attested connection; the acceptor reads with Link::recv.
    let conn = client
        .connect(&server.addr().unwrap(), Wire::ALPN)
        .await
        .unwrap();
    let (send, recv) = conn.open_bi().await.unwrap();
    let mut mosaik_tx = FramedWrite::new(send, mosaik_codec());
    let mut mosaik_rx = FramedRead::new(recv, mosaik_codec());
    let payload = sample().encode().unwrap();
    SinkExt::<Bytes>::send(&mut mosaik_tx, payload.clone())
        .await
        .unwrap();
    let mut link = Link::<Wire>::accept(rx.recv().await.unwrap())
        .await
        .unwrap();
    let (got, size): (Catalogish, usize) = link.recv_with_size().await.unwrap();
    assert_eq!(got, sample());
    assert_eq!(size, payload.len());

    // Link -> mosaik: Link::send, read with mosaik's framing and decoded with mosaik's Datum.
    let mut reply = sample();
    reply.version = 301;
    link.send(&reply).await.unwrap();
    let frame = mosaik_rx.next().await.unwrap().unwrap();
    assert_eq!(Catalogish::decode(&frame).unwrap(), reply);

    // The bytes themselves: 4-byte big-endian length, then postcard.
    link.send(&(1u8, 300u64)).await.unwrap();
    let frame = mosaik_rx.next().await.unwrap().unwrap();
    assert_eq!(frame.as_ref(), &[1, 0xac, 0x02]);
    assert_eq!(
        frame.as_ref(),
        <(u8, u64)>::encode(&(1, 300)).unwrap().as_ref()
    );
}

/// Close reason name to code.
type Declared = BTreeMap<String, u64>;

/// `make_close_reason!(... struct Name, code)` declarations in one mosaik source file.
fn declared_codes(source: &str) -> Declared {
    let mut codes = BTreeMap::new();
    for chunk in source.split("make_close_reason!(").skip(1) {
        let Some(decl) = chunk.split(");").next() else {
            continue;
        };
        let Some(after) = decl.split("struct ").nth(1) else {
            continue;
        };
        let mut parts = after.split(',');
        let name = parts.next().unwrap_or_default().trim().to_owned();
        let code: String = parts
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if let Ok(code) = code.parse() {
            codes.insert(name, code);
        }
    }
    codes
}

/// The target triple of this machine, as rustc names it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_owned()
}

/// The source directory of the mosaik package this workspace resolved.
fn mosaik_source_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this host's packages: the build fetched those, and `--offline` cannot fetch the
    // other platforms' (a fresh machine has none of them).
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host_triple(),
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mosaik" && p["version"] == "0.4.2")
        .expect("mosaik 0.4.2 in the dependency graph");
    PathBuf::from(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned()
}

fn ours<R: CloseReason>(reason: R) -> (String, u64) {
    let close: ratls_quic::link::ApplicationClose = reason.clone().into();
    (
        String::from_utf8(close.reason.to_vec()).unwrap(),
        close.error_code.into_inner(),
    )
}

#[test]
fn close_codes_equal_the_real_mosaik_declarations() {
    let dir = mosaik_source_dir();
    let read = |file: &str| {
        declared_codes(
            &std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| {
                panic!("{file}: {e}");
            }),
        )
    };
    let network = read("src/network/error.rs");
    let streams = read("src/streams/mod.rs");
    let functions = read("src/functions/mod.rs");
    let groups = read("src/groups/error.rs");
    let cases: Vec<(&Declared, (String, u64))> = vec![
        (&network, ours(close::InvalidAlpn)),
        (&network, ours(close::DifferentNetwork)),
        (&network, ours(close::Cancelled)),
        (&network, ours(close::UnexpectedClose)),
        (&network, ours(close::Success)),
        (&network, ours(close::GracefulShutdown)),
        (&network, ours(close::ProtocolViolation)),
        (&network, ours(close::UnknownPeer)),
        (&streams, ours(close::streams::StreamNotFound)),
        (&streams, ours(close::streams::NotAllowed)),
        (&streams, ours(close::streams::TooSlow)),
        (&streams, ours(close::streams::NoCapacity)),
        (&functions, ours(close::functions::FunctionNotFound)),
        (&functions, ours(close::functions::NotAllowed)),
        (&functions, ours(close::functions::HandlerFailure)),
        (&functions, ours(close::functions::NoCapacity)),
        (&groups, ours(close::groups::InvalidHandshake)),
        (&groups, ours(close::groups::NotAllowed)),
        (&groups, ours(close::groups::GroupNotFound)),
        (&groups, ours(close::groups::InvalidProof)),
        (&groups, ours(close::groups::Timeout)),
        (&groups, ours(close::groups::AlreadyBonded)),
    ];
    for (declared, (name, code)) in &cases {
        // mosaik sends the type's name as the reason text, as we do.
        assert_eq!(declared.get(name), Some(code), "{name}");
    }
    // Every reason mosaik declares in those files is covered.
    let covered = cases.len();
    let declared: usize = [&network, &streams, &functions, &groups]
        .iter()
        .map(|m| m.len())
        .sum();
    assert_eq!(
        covered, declared,
        "{network:?} {streams:?} {functions:?} {groups:?}"
    );
    // And the bond refusal of this transport collides with none of them.
    for (_, (_, code)) in &cases {
        assert_ne!(*code, u64::from(ratls_quic::BOND_REFUSED));
    }
}

#[tokio::test]
async fn mosaik_style_protocol_runs_over_attested_links() {
    let server = node(Identity::generate().unwrap()).await;
    let client = node(Identity::generate().unwrap()).await;
    let _router = Router::builder(server.clone())
        .accept(Echo::ALPN, Echo::new(server.clone()))
        .spawn()
        .unwrap();
    for seq in 0..3 {
        let response = Echo::call(
            &client,
            server.addr().unwrap(),
            &EchoRequest {
                seq,
                text: "attested".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            response,
            EchoResponse {
                seq,
                reversed: "detsetta".into()
            }
        );
    }
    // A peer that does not serve the protocol refuses it with mosaik's InvalidAlpn code.
    let (tx, _rx) = mpsc::unbounded_channel();
    let _other = Router::builder(client.clone())
        .accept(Wire::ALPN, Handoff(tx))
        .spawn()
        .unwrap();
    let error = Echo::call(
        &server,
        client.addr().unwrap(),
        &EchoRequest {
            seq: 9,
            text: String::new(),
        },
    )
    .await
    .unwrap_err();
    match error {
        ratls_quic::link::LinkError::Open(open) => assert!(open.is_invalid_alpn(), "{open}"),
        other => panic!("expected an ALPN refusal, got {other:?}"),
    }
}
