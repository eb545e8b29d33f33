//! Two attested endpoints on loopback form a mutual TdxRaTlsBidirectional bond and exchange one
//! message. Quotes come from a synthetic test PKI whose root is trusted explicitly: this runs
//! anywhere, and proves nothing about hardware.
//!
//! ```sh
//! cargo run --example bond
//! ```

use std::sync::Arc;

use ratls_quic::synthetic::{
    sample_measurements, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::{Collateral, QuoteVerifier, StaticCollateral};
use ratls_quic::{Endpoint, EndpointConfig};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy};

fn config(pki: &Arc<SyntheticPki>) -> anyhow::Result<EndpointConfig> {
    // Accept peers whose quote carries exactly these Measurements, both sides attested.
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(AttestationLevel::TdxRaTlsBidirectional);
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    policy.dangerous().static_collateral();
    // This side's quotes (on a TDX guest: `ratls_quic::ConfigfsTsm::new()`).
    let provider = SyntheticQuoteProvider::new(
        Arc::clone(pki),
        sample_measurements(),
        SyntheticTcb::UpToDate,
    );
    // How peer quotes are checked (on real hardware: `QuoteVerifier::intel()` and real collateral).
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let collateral = StaticCollateral(Arc::new(Collateral::new(pki.collateral().clone())?));
    Ok(EndpointConfig::builder(Identity::generate()?)
        .with_policy(policy)
        .with_quote_provider(Arc::new(provider))
        .with_quote_verifier(verifier, Arc::new(collateral))
        .build()?)
}

/// Forms one bond between two in-process endpoints and exchanges a message.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn main() -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let pki = Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(now - 3600))?);

    let server = Endpoint::bind("127.0.0.1:0".parse()?, config(&pki)?).await?;
    let client = Endpoint::bind("127.0.0.1:0".parse()?, config(&pki)?).await?;
    let server_addr = server.local_addr()?;
    let server_id = server.peer_id();

    let accept = async {
        let conn = server
            .accept()
            .await
            .expect("endpoint open")
            .establish()
            .await?;
        // The application sees the connection only after both bond proofs passed.
        let (mut send, mut recv) = conn.accept_bi().await?;
        let message = recv.read_to_end(1024).await?;
        send.write_all(&message).await?;
        send.finish()?;
        conn.closed().await;
        anyhow::Ok(conn.peer().peer_id())
    };
    let connect = async {
        let conn = client
            .connect(server_addr, ExpectedPeer::Exactly(server_id))
            .await?;
        let peer = conn.peer();
        println!("bonded with {} at level {}", peer.peer_id(), peer.level());
        println!(
            "peer MRTD   {}",
            hex::encode(peer.measurements().expect("attested").mr_td)
        );
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(b"hello").await?;
        send.finish()?;
        println!(
            "echo       {:?}",
            String::from_utf8(recv.read_to_end(1024).await?)?
        );
        conn.close(0u32.into(), b"bye");
        anyhow::Ok(())
    };
    let (client_seen_by_server, ()) = tokio::try_join!(accept, connect)?;
    assert_eq!(client_seen_by_server, client.peer_id());
    Ok(())
}
