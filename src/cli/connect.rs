//! `ratls connect`: dial an attested peer, print it, send lines and print the replies.
//!
//! Exit codes: 0 the bond formed and every message was echoed; 1 the peer was refused, refused
//! us, did not answer, or the exchange failed; 2 usage or input error.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratls_quic::{
    AttestedConnection, BondFailure, Endpoint, Error as EndpointError, ExpectedPeer, PeerId,
    PeerRejection,
};
use serde_json::json;

use super::node::{peer_json, print_own_identity, print_peer, NodeArgs};

/// Largest reply read from one stream.
const MAX_MESSAGE: usize = 64 * 1024;

/// Arguments of `ratls connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Address of a `ratls serve` (UDP): HOST:PORT, where HOST is a name (localhost), an IPv4
    /// address or a bracketed IPv6 address (`[::1]:4433`).
    #[arg(value_name = "HOST:PORT")]
    addr: String,
    /// Require this peer identity (the 64 hex digits `serve` prints as "peer id"); without it,
    /// any peer the policy accepts.
    #[arg(long, value_name = "PEERID")]
    expect: Option<String>,
    /// Send this message instead of reading lines from stdin.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    /// Give up when the bond is not formed within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    /// Print one JSON object on stdout (the bond, the replies, or why there was no bond).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs `ratls connect` on its own tokio runtime.
pub(crate) fn run(args: &ConnectArgs) -> ExitCode {
    super::run_async(connect(args))
}

/// Why no bond formed, for the output.
struct NoBond {
    /// `refused` (this side refused the peer), `failed` (the peer refused us, or the connection
    /// failed) or `no answer`.
    outcome: &'static str,
    reason: String,
    hints: Vec<String>,
}

async fn connect(args: &ConnectArgs) -> ExitCode {
    let (endpoint, expected, addr, cache) = match start(args).await {
        Ok(started) => started,
        Err(error) => return super::node::load_error(&error),
    };
    let mut started = Instant::now();
    let dial = endpoint.connect(addr, expected);
    let mut result = tokio::time::timeout(Duration::from_secs(args.timeout), dial).await;
    if let (Some(cache), Ok(Err(error))) = (&cache, &result) {
        // The peer's platform was not in the cache yet: the lookup failed closed and scheduled
        // a fetch. Wait for it; dial again once it landed, or report the service's failure.
        if let Some(key) = missing_collateral_key(error, cache) {
            let limit = Duration::from_secs(args.timeout.max(40));
            if let Err(failure) = super::node::wait_for_fetch(cache, &key, limit).await {
                eprintln!("error: collateral service: {failure}");
                return ExitCode::from(1);
            }
            started = Instant::now();
            let dial = endpoint.connect(addr, expected);
            result = tokio::time::timeout(Duration::from_secs(args.timeout), dial).await;
        }
    }
    let own_digest = endpoint.peer_id().attestation_digest();
    let conn = match result {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return no_bond(args, &why(args, &error, &own_digest)),
        Err(_) => {
            let why = NoBond {
                outcome: "no answer",
                reason: format!(
                    "no answer from {} ({addr}) within {} s",
                    args.addr, args.timeout
                ),
                hints: vec![
                    "nothing responded: is `ratls serve` running there, and is the UDP port \
                     reachable?"
                        .to_owned(),
                ],
            };
            return no_bond(args, &why);
        }
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    if !args.json {
        println!("bond with {} ({addr}) in {elapsed_ms:.2} ms", args.addr);
        print_peer("  ", conn.peer());
    }
    let (ok, replies) = exchange(&conn, args).await;
    if args.json {
        let line = json!({
            "bonded": true,
            "addr": addr.to_string(),
            "handshake_ms": elapsed_ms,
            "peer": peer_json(conn.peer()),
            "replies": replies,
            "exchange_ok": ok,
        });
        println!("{line}");
    }
    conn.close(0u32.into(), b"done");
    // Let the close frame leave before the runtime stops; bounded.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn why(args: &ConnectArgs, error: &EndpointError, own_digest: &[u8; 32]) -> NoBond {
    if let Some(rejection) = error.rejection() {
        return NoBond {
            outcome: "refused",
            reason: format!(
                "this side refused the peer: {}",
                super::explain::rejection_summary(rejection)
            ),
            hints: super::explain::refusal_advice(rejection, args.node.policy_path()),
        };
    }
    let mut lines = super::explain::connection_failure(error, own_digest);
    let reason = if lines.is_empty() {
        super::explain::chain(error)
    } else {
        lines.remove(0)
    };
    let outcome = if reason.starts_with("no answer") {
        "no answer"
    } else {
        "failed"
    };
    NoBond {
        outcome,
        reason,
        hints: lines,
    }
}

fn no_bond(args: &ConnectArgs, why: &NoBond) -> ExitCode {
    if args.json {
        let line = json!({
            "bonded": false,
            "outcome": why.outcome,
            "reason": why.reason,
            "hints": why.hints,
        });
        println!("{line}");
    } else {
        println!("no bond: {}", why.reason);
        for hint in &why.hints {
            println!("  {hint}");
        }
    }
    ExitCode::from(1)
}

/// Resolves HOST:PORT (names included) to the first address.
async fn resolve(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = text
        .rsplit_once(':')
        .with_context(|| format!("{text}: expected HOST:PORT (no port given)"))?;
    port.parse::<u16>()
        .with_context(|| format!("{text}: {port:?} is not a port number"))?;
    if host.is_empty() {
        anyhow::bail!("{text}: expected HOST:PORT (no host given)");
    }
    let mut addrs = tokio::net::lookup_host(text)
        .await
        .with_context(|| format!("cannot resolve {host}"))?;
    addrs
        .next()
        .with_context(|| format!("{host} resolves to no address"))
}

/// When this side refused the peer for want of collateral, the platform whose fetch the cache
/// scheduled.
fn missing_collateral_key(
    error: &EndpointError,
    cache: &ratls_quic::pccs::CollateralCache,
) -> Option<ratls_quic::pccs::PlatformKey> {
    match error.rejection()? {
        PeerRejection::MissingCollateral | PeerRejection::Bond(BondFailure::MissingCollateral) => {
            cache.last_missed()
        }
        _ => None,
    }
}

type Started = (
    Endpoint,
    ExpectedPeer,
    SocketAddr,
    Option<ratls_quic::pccs::CollateralCache>,
);

async fn start(args: &ConnectArgs) -> anyhow::Result<Started> {
    let expected = match &args.expect {
        Some(text) => {
            let digits = text.trim();
            let digits = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
                .unwrap_or(digits);
            ExpectedPeer::Exactly(
                digits
                    .parse::<PeerId>()
                    .with_context(|| format!("--expect {text}"))?,
            )
        }
        None => ExpectedPeer::AnyAllowedByPolicy,
    };
    let addr = resolve(&args.addr).await?;
    let node = args.node.load().await?;
    let any: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse()?
    } else {
        "0.0.0.0:0".parse()?
    };
    let endpoint = Endpoint::bind(any, node.config)
        .await
        .context("binding a local UDP socket")?;
    if !args.json {
        println!("ratls connect");
        for note in &node.notes {
            println!("  {note}");
        }
        print_own_identity(endpoint.peer_id());
    }
    Ok((endpoint, expected, addr, node.cache))
}

/// Sends `--message`, or each stdin line, on its own bi stream and prints the reply. Returns
/// whether every message was echoed, and the replies.
async fn exchange(conn: &AttestedConnection, args: &ConnectArgs) -> (bool, Vec<String>) {
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    match &args.message {
        Some(message) => {
            let _ = tx.send(message.clone());
            drop(tx);
        }
        // A plain thread: stdin blocks, and may never reach its end.
        None => {
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
    }
    let mut replies = Vec::new();
    while let Some(line) = lines.recv().await {
        match round_trip(conn, line.as_bytes()).await {
            Ok(reply) => {
                let reply = String::from_utf8_lossy(&reply).into_owned();
                if !args.json {
                    println!("reply         {reply:?}");
                }
                replies.push(reply);
            }
            Err(error) => {
                if !args.json {
                    println!("stream failed: {}", super::explain::anyhow_chain(&error));
                }
                return (false, replies);
            }
        }
    }
    (true, replies)
}

async fn round_trip(conn: &AttestedConnection, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(message).await?;
    send.finish()?;
    Ok(recv.read_to_end(MAX_MESSAGE).await?)
}
