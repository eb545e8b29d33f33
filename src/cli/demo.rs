//! `ratls demo`: two attested nodes on loopback form a mutual bond, exchange messages, show what
//! each verified about the other; then a third node with a wrong MRTD is refused.
//!
//! Exit codes: 0 everything behaved as expected (the good bond formed and the bad node was
//! refused); 1 otherwise; 2 the demo could not be set up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratls_quic::evidence_log::EvidenceSink;
use ratls_quic::pccs::server::{serve as serve_collateral, DirSource};
use ratls_quic::pccs::{
    CacheConfig, ClientConfig, CollateralCache, PcsClient, PlatformKey, Service, SystemClock,
};
use ratls_quic::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::{AttestedConnection, Endpoint, EndpointConfig, Error};
use ratls_quic::{ExpectedPeer, PeerRejection};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy};
use ratls_quic::{Measurements, QuoteVerifier, RemotePolicy, ReportData};

use super::node::{print_peer, synthetic_pki};

/// Arguments of `ratls demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How many extra bonds to time for the median handshake time.
    #[arg(long, value_name = "N", default_value_t = 20)]
    bonds: usize,
    /// Record alice's bonds in an evidence log in this directory, with the synthetic root
    /// (`root.der`) and the policy (`policy.toml`) beside it, so `ratls audit` needs nothing else.
    #[arg(long, value_name = "DIR")]
    evidence_log: Option<PathBuf>,
}

/// Runs the demo on its own tokio runtime.
pub(crate) fn run(args: &DemoArgs) -> ExitCode {
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(error) => return super::input_error(&error),
    };
    match runtime.block_on(demo(args)) {
        Ok(true) => {
            println!("\nresult: as expected (good bond formed, wrong MRTD refused)");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("\nresult: NOT as expected (see above)");
            ExitCode::from(1)
        }
        Err(error) => super::input_error(&error),
    }
}

const LEVEL: AttestationLevel = AttestationLevel::TdxRaTlsBidirectional;
const LOOPBACK: &str = "127.0.0.1:0";

async fn demo(args: &DemoArgs) -> anyhow::Result<bool> {
    println!("== setup");
    let pki = Arc::new(tokio::task::spawn_blocking(synthetic_pki).await??);
    println!("  quotes        synthetic: a test PKI made by this process signs them");
    println!(
        "  trust         its root ({}) is trusted explicitly,",
        short(blake3::hash(pki.root_der()).as_bytes())
    );
    println!("                NOT Intel's SGX Root CA: these quotes prove nothing about hardware");
    let service = CollateralService::start(&pki).await?;
    println!(
        "  collateral    {} (the project's PCCS-compatible service, started by this process on \
         loopback, fed the synthetic PKI's collateral); each node fetches over HTTP",
        service.url
    );
    let policy = demo_policy(&service.url);
    println!(
        "  policy        level {LEVEL}, per-bond freshness, MRTD {}, [remote] pccs = [{:?}], \
         max_collateral_age_secs = {}",
        hex::encode(sample_measurements().mr_td),
        service.url,
        ratls_quic::DEFAULT_MAX_COLLATERAL_AGE_SECS
    );
    let addr: SocketAddr = LOOPBACK.parse()?;
    let alice_id = Identity::generate()?;
    let log = match &args.evidence_log {
        None => None,
        Some(dir) => Some(evidence::open(dir, &pki, &policy).await?),
    };
    let alice_cache = service.cache("alice").await?;
    let mut alice_config = builder(
        &pki,
        &policy,
        &alice_cache,
        sample_measurements(),
        alice_id.clone(),
    )?;
    if let Some(log) = &log {
        alice_config = alice_config.evidence_log(EvidenceSink::new(log.clone(), true));
    }
    let alice_config = alice_config.build().context("endpoint configuration")?;
    let alice = Endpoint::bind(addr, alice_config).await?;
    let bob_cache = service.cache("bob").await?;
    let bob = Endpoint::bind(
        addr,
        node_config(
            &pki,
            &policy,
            &bob_cache,
            sample_measurements(),
            Identity::generate()?,
        )?,
    )
    .await?;
    println!(
        "  alice         {} at {}",
        alice.peer_id(),
        alice.local_addr()?
    );
    println!("  bob           {} at {}", bob.peer_id(), bob.local_addr()?);

    println!("\n== bond: bob dials alice");
    let (accepted, connected, first) = pair(&alice, &bob).await;
    let (at_alice, at_bob) = match (accepted, connected) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            println!("  bond FAILED: alice {:?}, bob {:?}", a.err(), b.err());
            return Ok(false);
        }
    };
    println!(
        "  handshake     {} (connect() to AttestedConnection, incl. bond proofs)",
        time(first)
    );

    println!("\n== messages (one bi stream each way)");
    let (got, reply) = tokio::join!(
        answer(&at_alice, "hello bob, alice here"),
        ask(&at_bob, "hello alice, bob here")
    );
    let mut ok = got.is_ok() && reply.is_ok();
    println!("  bob -> alice  {:?}", got.as_deref().unwrap_or("<failed>"));
    println!(
        "  alice -> bob  {:?}",
        reply.as_deref().unwrap_or("<failed>")
    );
    let (got, reply) = tokio::join!(
        answer(&at_bob, "bob answers alice's stream"),
        ask(&at_alice, "alice opens a stream too")
    );
    ok &= got.is_ok() && reply.is_ok();
    println!("  alice -> bob  {:?}", got.as_deref().unwrap_or("<failed>"));
    println!(
        "  bob -> alice  {:?}",
        reply.as_deref().unwrap_or("<failed>")
    );

    println!("\n== what alice verified about bob");
    print_peer("  ", at_alice.peer());
    println!("\n== what bob verified about alice");
    print_peer("  ", at_bob.peer());
    ok &= at_alice.peer().peer_id() == bob.peer_id()
        && at_bob.peer().peer_id() == alice.peer_id()
        && at_alice.peer().level() == LEVEL
        && at_bob.peer().level() == LEVEL;
    at_bob.close(0u32.into(), b"done");
    at_alice.close(0u32.into(), b"done");

    if args.bonds > 0 {
        println!("\n== {} more bonds, timed", args.bonds);
        let mut times = Vec::with_capacity(args.bonds);
        let progress = super::progress::Progress::new("bonds", args.bonds);
        for done in 0..args.bonds {
            progress.step(done);
            let (a, b, took) = pair(&alice, &bob).await;
            times.push(took);
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    b.close(0u32.into(), b"done");
                    a.close(0u32.into(), b"done");
                }
                _ => ok = false,
            }
        }
        drop(progress);
        times.sort();
        let pick = |q: usize| times.get((times.len() - 1) * q / 100).copied();
        if let (Some(min), Some(p50), Some(max)) = (pick(0), pick(50), pick(100)) {
            println!(
                "  handshake     p50 {}  min {}  max {}",
                time(p50),
                time(min),
                time(max)
            );
        }
    }

    println!("\n== refusal: mallory (wrong MRTD) dials alice");
    let mut wrong = sample_measurements();
    wrong.mr_td = [0x66; 48];
    let mallory_cache = service.cache("mallory").await?;
    let mallory = Endpoint::bind(
        addr,
        node_config(&pki, &policy, &mallory_cache, wrong, Identity::generate()?)?,
    )
    .await?;
    println!("  mallory       {}", mallory.peer_id());
    println!("  mallory MRTD  {}", hex::encode(wrong.mr_td));
    let (accepted, connected, _) = pair(&alice, &mallory).await;
    let refused_typed = match &accepted {
        Ok(_) => {
            println!("  alice         ACCEPTED mallory (unexpected)");
            false
        }
        Err(error) => match error.rejection() {
            Some(rejection) => {
                println!("  alice refused {rejection}");
                println!("  typed reason  {}", typed_reason(rejection));
                matches!(rejection, PeerRejection::Quote(_))
            }
            None => {
                println!("  alice failed  {error} (not a typed refusal)");
                false
            }
        },
    };
    match &connected {
        Ok(_) => println!("  mallory saw   a connection (unexpected)"),
        Err(error) => println!("  mallory saw   {error}"),
    }
    ok &= refused_typed && connected.is_err();

    for endpoint in [&alice, &bob, &mallory] {
        endpoint.close();
    }
    let idle = async {
        tokio::join!(alice.wait_idle(), bob.wait_idle(), mallory.wait_idle());
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), idle).await;
    if let (Some(log), Some(dir)) = (&log, &args.evidence_log) {
        ok &= evidence::finish(log, alice_id, dir).await?;
    }
    Ok(ok)
}

/// The policy every demo node applies: collateral from the demo's own service.
fn demo_policy(service: &str) -> Policy {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "demo",
        &sample_measurements(),
    )]));
    policy.set_level(LEVEL);
    policy.set_remote(Some(RemotePolicy::new(
        vec![service.to_owned()],
        ratls_quic::DEFAULT_MAX_COLLATERAL_AGE_SECS,
    )));
    policy
}

/// The project's PCCS-compatible service on 127.0.0.1:0, serving a directory that holds the
/// synthetic PKI's collateral; stops with the demo.
struct CollateralService {
    url: String,
    root_der: Vec<u8>,
    key: PlatformKey,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl CollateralService {
    async fn start(pki: &SyntheticPki) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("collateral directory")?;
        std::fs::write(dir.path().join("synthetic.json"), pki.collateral_json()?)
            .context("writing the synthetic collateral")?;
        let listener = tokio::net::TcpListener::bind(LOOPBACK)
            .await
            .context("collateral service: cannot listen on 127.0.0.1")?;
        let url = format!("http://{}", listener.local_addr()?);
        let source = Arc::new(DirSource::new(
            dir.path().to_owned(),
            pki.root_der().to_vec(),
            Arc::new(SystemClock),
        ));
        let task = tokio::spawn(serve_collateral(listener, source));
        // The platform the synthetic quotes name (FMSPC and PCK CA of the synthetic PCK leaf).
        let quote = pki
            .quote(&QuoteSpec {
                report_data: ReportData([0; 64]),
                measurements: sample_measurements(),
                tcb: SyntheticTcb::UpToDate,
            })
            .context("synthetic quote")?;
        let key = PlatformKey::from_quote(&quote).context("synthetic quote's platform")?;
        Ok(Self {
            url,
            root_der: pki.root_der().to_vec(),
            key,
            task,
            _dir: dir,
        })
    }

    /// A node's own collateral cache over the service, prewarmed with its platform; returns once
    /// the first fetch landed (prints where it came from), or fails naming the URL and error.
    async fn cache(&self, node: &str) -> anyhow::Result<CollateralCache> {
        let mut config = ClientConfig::new(vec![Service::pccs(&self.url)]);
        config.root_der.clone_from(&self.root_der);
        config.timeout = Duration::from_secs(5);
        let client = PcsClient::new(config).context("collateral client")?;
        let started = Instant::now();
        let cache = CollateralCache::start(
            client,
            CacheConfig {
                prewarm: vec![self.key],
                ..CacheConfig::default()
            },
        )
        .await;
        let mut changes = cache.subscribe();
        let entry = loop {
            if let Some(entry) = cache.lookup(&self.key) {
                break entry;
            }
            if let Some(error) = cache.last_error(&self.key) {
                anyhow::bail!("collateral service {}: {error}", self.url);
            }
            if tokio::time::timeout(Duration::from_secs(15), changes.changed())
                .await
                .is_err()
            {
                anyhow::bail!("collateral service {}: no answer within 15 s", self.url);
            }
        };
        println!(
            "  fetched       {node}: collateral of {} from {} in {} (tcb_info {}, pck_crl {})",
            self.key,
            entry.source,
            time(started.elapsed()),
            short_hex(&entry.digests.tcb_info),
            short_hex(&entry.digests.pck_crl)
        );
        Ok(cache)
    }
}

impl Drop for CollateralService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn node_config(
    pki: &Arc<SyntheticPki>,
    policy: &Policy,
    cache: &CollateralCache,
    measurements: Measurements,
    identity: Identity,
) -> anyhow::Result<EndpointConfig> {
    builder(pki, policy, cache, measurements, identity)?
        .build()
        .context("endpoint configuration")
}

fn builder(
    pki: &Arc<SyntheticPki>,
    policy: &Policy,
    cache: &CollateralCache,
    measurements: Measurements,
    identity: Identity,
) -> anyhow::Result<ratls_quic::EndpointConfigBuilder<ratls_quic::Ready>> {
    let provider =
        SyntheticQuoteProvider::new(Arc::clone(pki), measurements, SyntheticTcb::UpToDate);
    Ok(EndpointConfig::builder(identity)
        .with_policy(policy.clone())
        .with_quote_provider(Arc::new(provider))
        .with_quote_verifier(
            QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec()),
            Arc::new(cache.clone()),
        ))
}

/// The demo's evidence log: everything `ratls audit` needs, in one directory.
mod evidence {
    use std::path::Path;
    use std::sync::Arc;

    use anyhow::Context;
    use ratls_quic::evidence_log::{EvidenceLog, StoreOptions};
    use ratls_quic::synthetic::SyntheticPki;
    use ratls_quic::{Identity, Policy};

    /// Opens the log in `dir` and writes the root and policy an audit needs beside it.
    pub(super) async fn open(
        dir: &Path,
        pki: &SyntheticPki,
        policy: &Policy,
    ) -> anyhow::Result<EvidenceLog> {
        let (log, _) = EvidenceLog::open(dir, StoreOptions::default())
            .with_context(|| format!("evidence log {}", dir.display()))?;
        std::fs::write(dir.join("root.der"), pki.root_der()).context("writing root.der")?;
        std::fs::write(dir.join("policy.toml"), policy.to_toml()).context("writing policy.toml")?;
        Ok(log)
    }

    /// Signs a checkpoint with alice's key and says how to audit.
    pub(super) async fn finish(
        log: &EvidenceLog,
        alice: Identity,
        dir: &Path,
    ) -> anyhow::Result<bool> {
        let records = log.record_count().await?;
        let checkpoint = log
            .checkpoint(Arc::new(alice), super::unix_now())
            .await
            .context("signing the checkpoint")?;
        std::fs::write(dir.join("checkpoint"), checkpoint.to_bytes())
            .context("writing checkpoint")?;
        println!("\n== evidence log");
        println!(
            "  log           {} ({records} bond records and a checkpoint)",
            dir.display()
        );
        println!(
            "  audit with    ratls audit --log {0} --root {0}/root.der --policy {0}/policy.toml --checkpoint {0}/checkpoint",
            dir.display()
        );
        Ok(records > 0)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `client` dials `server` while `server` accepts: (server's result, client's result, time
/// from `connect()` to the client's `AttestedConnection`).
async fn pair(
    server: &Endpoint,
    client: &Endpoint,
) -> (
    Result<AttestedConnection, Error>,
    Result<AttestedConnection, Error>,
    Duration,
) {
    let accept = async {
        match server.accept().await {
            Some(accepting) => accepting.establish().await,
            None => Err(Error::Connection(quinn::ConnectionError::LocallyClosed)),
        }
    };
    let addr = server
        .local_addr()
        .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into());
    let connect = async {
        let started = Instant::now();
        let result = client
            .connect(addr, ExpectedPeer::Exactly(server.peer_id()))
            .await;
        (result, started.elapsed())
    };
    let (accepted, (connected, took)) = tokio::join!(accept, connect);
    (accepted, connected, took)
}

/// Opens a bi stream, sends `message`, returns the reply.
async fn ask(conn: &AttestedConnection, message: &str) -> anyhow::Result<String> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(message.as_bytes()).await?;
    send.finish()?;
    Ok(String::from_utf8_lossy(&recv.read_to_end(4096).await?).into_owned())
}

/// Accepts a bi stream, returns what came in, and replies with `reply`.
async fn answer(conn: &AttestedConnection, reply: &str) -> anyhow::Result<String> {
    let (mut send, mut recv) = conn.accept_bi().await?;
    let got = String::from_utf8_lossy(&recv.read_to_end(4096).await?).into_owned();
    send.write_all(reply.as_bytes()).await?;
    send.finish()?;
    Ok(got)
}

/// The rejection's type path, without the (verified but refused) quote it carries.
fn typed_reason(rejection: &PeerRejection) -> String {
    if let PeerRejection::Quote(error) = rejection {
        if let Some(violation) = error.policy_violation() {
            return format!(
                "PeerRejection::Quote(AttestationError::Policy {{ violation: {violation:?}, .. }})"
            );
        }
    }
    let debug = format!("{rejection:?}");
    let name = debug.split(['(', ' ', '{']).next().unwrap_or_default();
    format!("PeerRejection::{name}")
}

fn time(d: Duration) -> String {
    let micros = d.as_micros();
    if micros >= 1_000 {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{micros} µs")
    }
}

fn short_hex(digest: &[u8; 32]) -> String {
    format!("{}…", hex::encode(&digest[..6]))
}

fn short(digest: &[u8; 32]) -> String {
    format!("blake3 {}…", hex::encode(&digest[..8]))
}
