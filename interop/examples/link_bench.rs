//! Link establishment on loopback: an attested `Link::open` plus one echoed frame, at three
//! levels, against a plain iroh 1.x connect with an ALPN (mosaik 0.4.2's transport) plus one
//! echoed message, measured in the same run. Prints a table and one JSON line.
//!
//! ```sh
//! cargo run --release -p ratls-quic-interop --example link_bench -- 300
//! ```
//!
//! Synthetic quotes cost microseconds; on TDX hardware a quote costs milliseconds to a second,
//! which the per-bond row pays on both sides of every link and the certificate-freshness row
//! never pays per link.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mosaik::iroh::endpoint::presets;
use mosaik::iroh::{Endpoint as IrohEndpoint, RelayMode};
use ratls_quic::link::{AcceptError, Link, LocalNode, Protocol, ProtocolHandler, Router};
use ratls_quic::synthetic::{
    SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb, sample_measurements,
};
use ratls_quic::{
    AlpnRoute, AttestationLevel, AttestedConnection, BondQuoteLimits, Collateral, Endpoint,
    EndpointConfig, Identity, MeasurementPolicy, MeasurementProfile, PeerRate, Policy,
    QuoteVerifier, StaticCollateral,
};

struct Bench;
impl Protocol for Bench {
    const ALPN: &'static [u8] = b"/ratls-quic-bench/1";
}

#[derive(Debug)]
struct EchoOnce;
impl ProtocolHandler for EchoOnce {
    async fn accept(&self, connection: AttestedConnection) -> Result<(), AcceptError> {
        let mut link = Link::<Bench>::accept(connection).await?;
        let byte: u8 = link.recv().await.map_err(AcceptError::from_err)?;
        link.send(&byte).await.map_err(AcceptError::from_err)?;
        let _ = link.closed().await;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Software,
    CertificateFreshness,
    PerBond,
}

fn config(
    pki: &Arc<SyntheticPki>,
    identity: Identity,
    peer: &Identity,
    mode: Mode,
) -> EndpointConfig {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(match mode {
        Mode::Software => AttestationLevel::Software,
        Mode::CertificateFreshness => AttestationLevel::TdxLocal,
        Mode::PerBond => AttestationLevel::TdxRaTlsBidirectional,
    });
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    policy.dangerous().static_collateral();
    policy.software_allow.insert(peer.attestation_digest());
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let collateral = StaticCollateral(Arc::new(Collateral::new(pki.collateral().clone()).unwrap()));
    let builder = EndpointConfig::builder(identity).with_policy(policy);
    let builder = match mode {
        Mode::Software => builder.without_quotes(),
        Mode::CertificateFreshness | Mode::PerBond => {
            builder.with_quote_provider(Arc::new(SyntheticQuoteProvider::new(
                Arc::clone(pki),
                sample_measurements(),
                SyntheticTcb::UpToDate,
            )))
        }
    };
    // One peer is dialled back to back, far faster than the default per-peer bond quote rate
    // (sized for hardware quote rates) allows: the default would delay each bond to that rate,
    // so lift it, as `ratls-bench` does.
    let mut limits = BondQuoteLimits::default();
    limits.peer_rate(PeerRate::new(u32::MAX, 1e9));
    builder
        .with_quote_verifier(verifier, Arc::new(collateral))
        .bond_quotes(limits)
        .build()
        .unwrap()
}

async fn node(pki: &Arc<SyntheticPki>, me: &Identity, peer: &Identity, mode: Mode) -> LocalNode {
    let config = config(pki, me.clone(), peer, mode);
    LocalNode::new(
        Endpoint::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap(),
    )
}

fn route(node: &LocalNode, mode: Mode) -> AlpnRoute {
    match mode {
        Mode::CertificateFreshness => AlpnRoute::dangerous_certificate_freshness(
            Bench::ALPN,
            node.endpoint().config().policy(),
        )
        .unwrap(),
        Mode::Software | Mode::PerBond => AlpnRoute::new(Bench::ALPN).unwrap(),
    }
}

async fn attested(pki: &Arc<SyntheticPki>, mode: Mode, n: usize) -> Vec<Duration> {
    let a = Identity::generate().unwrap();
    let b = Identity::generate().unwrap();
    let server = node(pki, &b, &a, mode).await;
    let client = node(pki, &a, &b, mode).await;
    client.set_route(route(&client, mode));
    let _router = Router::builder(server.clone())
        .accept_route(route(&server, mode), EchoOnce)
        .spawn()
        .unwrap();
    let addr = server.addr().unwrap();
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let start = Instant::now();
        let mut link = Link::<Bench>::open(&client, addr.clone()).await.unwrap();
        link.send(&1u8).await.unwrap();
        let _: u8 = link.recv().await.unwrap();
        let elapsed = start.elapsed();
        link.close(ratls_quic::link::close::Success).await.unwrap();
        // The first tenth warms up.
        if i >= n / 10 {
            times.push(elapsed);
        }
    }
    times
}

async fn iroh(n: usize) -> Vec<Duration> {
    const ALPN: &[u8] = b"/ratls-quic-bench/iroh/1";
    let bind = || async {
        IrohEndpoint::builder(presets::Minimal)
            .relay_mode(RelayMode::Disabled)
            .alpns(vec![ALPN.to_vec()])
            .bind_addr("127.0.0.1:0")
            .unwrap()
            .bind()
            .await
            .unwrap()
    };
    let server = bind().await;
    let client = bind().await;
    let addr = server.addr();
    let accept = server.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok((mut send, mut recv)) = conn.accept_bi().await else {
                    return;
                };
                let mut byte = [0u8; 1];
                if recv.read_exact(&mut byte).await.is_ok() {
                    let _ = send.write_all(&byte).await;
                }
                conn.closed().await;
            });
        }
    });
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let start = Instant::now();
        let conn = client.connect(addr.clone(), ALPN).await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&[1]).await.unwrap();
        let mut byte = [0u8; 1];
        recv.read_exact(&mut byte).await.unwrap();
        let elapsed = start.elapsed();
        conn.close(200u32.into(), b"Success");
        if i >= n / 10 {
            times.push(elapsed);
        }
    }
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    let index = ((last as f64) * p).round() as usize;
    sorted.get(index.min(last)).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let pki = Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(now - 3600)).unwrap());
    let mut rows = vec![("iroh 1.x connect + echo", iroh(n).await)];
    for (name, mode) in [
        ("Link::open Software", Mode::Software),
        (
            "Link::open TdxLocal, certificate freshness",
            Mode::CertificateFreshness,
        ),
        ("Link::open TdxRaTlsBidirectional, per bond", Mode::PerBond),
    ] {
        rows.push((name, attested(&pki, mode, n).await));
    }
    let mut base = rows[0].1.clone();
    base.sort();
    let base = percentile(&base, 0.5);
    println!(
        "{:<46} {:>10} {:>10} {:>12}",
        "link establishment + 1 echo", "p50 µs", "p99 µs", "p50 / iroh"
    );
    let mut json = Vec::new();
    for (name, mut times) in rows {
        times.sort();
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        let ratio = p50.as_secs_f64() / base.as_secs_f64();
        println!(
            "{name:<46} {:>10} {:>10} {ratio:>12.2}",
            p50.as_micros(),
            p99.as_micros()
        );
        json.push(format!(
            "{{\"case\":\"{name}\",\"n\":{},\"p50_us\":{},\"p99_us\":{},\"ratio_p50\":{ratio:.3}}}",
            times.len(),
            p50.as_micros(),
            p99.as_micros()
        ));
    }
    println!("[{}]", json.join(","));
}
