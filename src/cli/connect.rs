//! `ratls connect`: dial an attested peer, print it, send lines and print the replies.
//!
//! Exit codes: 0 the bond formed and every message was echoed; 1 the peer was refused, refused
//! us, or the exchange failed; 2 usage or input error.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratls_quic::ExpectedPeer;
use ratls_quic::PeerId;
use ratls_quic::{AttestedConnection, Endpoint};

use super::node::{print_peer, NodeArgs};

/// Largest reply read from one stream.
const MAX_MESSAGE: usize = 64 * 1024;

/// Arguments of `ratls connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Address of a `ratls serve` (UDP).
    addr: SocketAddr,
    /// Require this peer identity (64 hex digits); without it, any peer the policy accepts.
    #[arg(long, value_name = "PEERID")]
    expect: Option<String>,
    /// Send this message instead of reading lines from stdin.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    /// Give up when the bond is not formed within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs `ratls connect` on its own tokio runtime.
pub(crate) fn run(args: &ConnectArgs) -> ExitCode {
    super::run_async(connect(args))
}

async fn connect(args: &ConnectArgs) -> ExitCode {
    let (endpoint, expected) = match start(args).await {
        Ok(started) => started,
        Err(error) => return super::input_error(&error),
    };
    let started = Instant::now();
    let dial = endpoint.connect(args.addr, expected);
    let conn = match tokio::time::timeout(Duration::from_secs(args.timeout), dial).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => {
            println!("refused: {error}");
            if let Some(rejection) = error.rejection() {
                println!("  (this side refused the peer: {rejection})");
            } else {
                println!("  (the peer refused us, or the connection failed)");
            }
            return ExitCode::from(1);
        }
        Err(_) => {
            println!("refused: no bond within {} s", args.timeout);
            return ExitCode::from(1);
        }
    };
    println!(
        "bond with {} in {:.2} ms",
        args.addr,
        started.elapsed().as_secs_f64() * 1e3
    );
    print_peer("  ", conn.peer());
    let ok = exchange(&conn, args).await;
    conn.close(0u32.into(), b"done");
    // Let the close frame leave before the runtime stops; bounded.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn start(args: &ConnectArgs) -> anyhow::Result<(Endpoint, ExpectedPeer)> {
    let expected = match &args.expect {
        Some(text) => ExpectedPeer::Exactly(
            text.parse::<PeerId>()
                .with_context(|| format!("--expect {text}"))?,
        ),
        None => ExpectedPeer::AnyAllowedByPolicy,
    };
    let node = args.node.load()?;
    let any: SocketAddr = if args.addr.is_ipv6() {
        "[::]:0".parse()?
    } else {
        "0.0.0.0:0".parse()?
    };
    let endpoint = Endpoint::bind(any, node.config)
        .await
        .context("binding a local UDP socket")?;
    println!("ratls connect");
    for note in &node.notes {
        println!("  {note}");
    }
    println!("  peer id       {}", endpoint.peer_id());
    println!(
        "  sw digest     {} (for a peer's [software] allow list)",
        hex::encode(endpoint.peer_id().attestation_digest())
    );
    Ok((endpoint, expected))
}

/// Sends `--message`, or each stdin line, on its own bi stream and prints the reply.
async fn exchange(conn: &AttestedConnection, args: &ConnectArgs) -> bool {
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
    while let Some(line) = lines.recv().await {
        match round_trip(conn, line.as_bytes()).await {
            Ok(reply) => println!("reply         {:?}", String::from_utf8_lossy(&reply)),
            Err(error) => {
                println!("stream failed: {error:#}");
                return false;
            }
        }
    }
    true
}

async fn round_trip(conn: &AttestedConnection, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(message).await?;
    send.finish()?;
    Ok(recv.read_to_end(MAX_MESSAGE).await?)
}
