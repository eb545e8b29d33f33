//! `ratls serve`: accept attested connections, print each peer, echo every bi stream.
//!
//! Exit codes: 2 when the configuration cannot be loaded or the socket not bound; otherwise it
//! runs until killed (or, with `--once`, exits 0 after one bond closed, 1 if there was none).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ratls_quic::evidence_log::EvidenceServer;
use ratls_quic::{AttestedConnection, Endpoint, Error as EndpointError};
use serde_json::json;

use super::node::{peer_json, print_own_identity, print_peer, NodeArgs};

/// Largest message echoed on one stream.
const MAX_MESSAGE: usize = 64 * 1024;

/// Arguments of `ratls serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (UDP), e.g. 0.0.0.0:4433 or 127.0.0.1:0.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Write this side's current certificate (DER) here, for `ratls inspect-cert`.
    #[arg(long, value_name = "FILE")]
    write_cert: Option<PathBuf>,
    /// Exit after the first connection (bond or refusal) is over.
    #[arg(long)]
    once: bool,
    /// One JSON object per line on stdout: `listening`, then one `bond`, `refused` (this side
    /// refused the peer) or `failed` (the peer refused this side, or the connection failed)
    /// per connection.
    #[arg(long)]
    json: bool,
    /// Serve the evidence log (`--evidence-log`) to auditors on this UDP address (ALPN
    /// ratls-evidence/1), for `ratls audit --from`.
    #[arg(long, value_name = "ADDR", requires_all = ["evidence_log", "audit_allow"])]
    audit_listen: Option<SocketAddr>,
    /// With --evidence-log: sign a checkpoint every SECS seconds while the log grows.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    checkpoint_interval: u64,
    /// An auditor's PeerId allowed to pull the log (repeatable).
    #[arg(long, value_name = "PEERID")]
    audit_allow: Vec<ratls_quic::PeerId>,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs `ratls serve` on its own tokio runtime.
pub(crate) fn run(args: &ServeArgs) -> ExitCode {
    super::run_async(serve(args))
}

/// What `serve` prints about connections.
struct Printer {
    json: bool,
    policy: PathBuf,
    own_digest: [u8; 32],
    /// The collateral cache, with --pccs/--pcs.
    cache: Option<ratls_quic::pccs::CollateralCache>,
}

async fn serve(args: &ServeArgs) -> ExitCode {
    let (endpoint, cache) = match start(args).await {
        // Lives as long as the process: connection tasks borrow it.
        Ok((endpoint, cache)) => (&*Box::leak(Box::new(endpoint)), cache),
        Err(error) => return super::node::load_error(&error),
    };
    let printer = Arc::new(Printer {
        json: args.json,
        policy: args.node.policy_path().to_owned(),
        own_digest: endpoint.peer_id().attestation_digest(),
        cache,
    });
    loop {
        let Some(accepting) = endpoint.accept().await else {
            return ExitCode::SUCCESS;
        };
        let from = accepting.remote_address();
        let printer = Arc::clone(&printer);
        let task = tokio::spawn(async move {
            match accepting.establish().await {
                Ok(conn) => {
                    printer.bond(from, &conn);
                    echo(&conn, printer.json).await;
                    if !printer.json {
                        println!("closed {from}");
                    }
                    true
                }
                Err(error) => {
                    printer.failure(from, &error);
                    printer.collateral_outcome(&error).await;
                    false
                }
            }
        });
        if args.once {
            let bonded = task.await.unwrap_or(false);
            endpoint.close();
            endpoint.wait_idle().await;
            return if bonded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
    }
}

impl Printer {
    /// After a refusal for want of collateral: waits for the fetch the refusal scheduled and
    /// says how it ended (the service's URL and status or timeout when it failed).
    async fn collateral_outcome(&self, error: &EndpointError) {
        use ratls_quic::{BondFailure, PeerRejection};
        let Some(cache) = &self.cache else { return };
        let missing = matches!(
            error.rejection(),
            Some(
                PeerRejection::MissingCollateral
                    | PeerRejection::Bond(BondFailure::MissingCollateral)
            )
        );
        let Some(key) = cache.last_missed().filter(|_| missing) else {
            return;
        };
        let limit = std::time::Duration::from_secs(40);
        match super::node::wait_for_fetch(cache, &key, limit).await {
            Ok(()) => {
                if !self.json {
                    println!(
                        "  collateral for {key} now fetched: the peer's next attempt can bond"
                    );
                }
            }
            Err(failure) => eprintln!("error: collateral service: {failure}"),
        }
    }

    fn bond(&self, from: SocketAddr, conn: &AttestedConnection) {
        if self.json {
            let line =
                json!({"event": "bond", "from": from.to_string(), "peer": peer_json(conn.peer())});
            println!("{line}");
        } else {
            println!("bond from {from}");
            print_peer("  ", conn.peer());
        }
    }

    /// A connection that formed no bond: this side refused the peer (with what to change to
    /// admit it), or the peer refused this side, or the connection failed.
    fn failure(&self, from: SocketAddr, error: &EndpointError) {
        let (event, reason, hints) = match error.rejection() {
            Some(rejection) => (
                "refused",
                super::explain::rejection_summary(rejection),
                super::explain::refusal_advice(rejection, &self.policy),
            ),
            None => {
                let mut lines = super::explain::connection_failure(error, &self.own_digest);
                let first = if lines.is_empty() {
                    super::explain::chain(error)
                } else {
                    lines.remove(0)
                };
                ("failed", first, lines)
            }
        };
        if self.json {
            let line =
                json!({"event": event, "from": from.to_string(), "reason": reason, "hints": hints});
            println!("{line}");
        } else {
            // One write, so that the hints never part from their line (a process stopped
            // right after the refusal prints all of it or none).
            let mut text = format!("{event} {from}: {reason}\n");
            for hint in hints {
                text.push_str(&format!("  {hint}\n"));
            }
            print!("{text}");
        }
    }
}

async fn start(
    args: &ServeArgs,
) -> anyhow::Result<(Endpoint, Option<ratls_quic::pccs::CollateralCache>)> {
    let node = args.node.load().await?;
    let cache = node.cache.clone();
    let identity = Arc::new(node.config.identity().clone());
    let endpoint = Endpoint::bind(args.listen, node.config)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    if let Some(log) = &node.evidence {
        // Runs as long as the process.
        drop(log.checkpoint_every(
            Arc::clone(&identity),
            std::time::Duration::from_secs(args.checkpoint_interval.max(1)),
        ));
    }
    let audit = match (args.audit_listen, node.evidence) {
        (Some(addr), Some(log)) => {
            let allowed = args.audit_allow.iter().copied().collect();
            let server = EvidenceServer::bind(addr, identity, log, allowed)
                .with_context(|| format!("binding the evidence endpoint {addr}"))?;
            let local = server.local_addr()?;
            // Lives as long as the process.
            Box::leak(Box::new(server));
            Some(local)
        }
        _ => None,
    };
    if let Some(path) = &args.write_cert {
        std::fs::write(path, endpoint.current_certificate().as_ref())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let local = endpoint.local_addr()?;
    if args.json {
        let line = json!({
            "event": "listening",
            "addr": local.to_string(),
            "peer_id": endpoint.peer_id().to_string(),
            "sw_digest": hex::encode(endpoint.peer_id().attestation_digest()),
            "notes": node.notes,
            "evidence": audit.map(|addr| addr.to_string()),
        });
        println!("{line}");
        return Ok((endpoint, cache));
    }
    println!("ratls serve");
    for note in &node.notes {
        println!("  {note}");
    }
    print_own_identity(endpoint.peer_id());
    if let Some(path) = &args.write_cert {
        println!("  certificate   written to {}", path.display());
    }
    if let Some(addr) = audit {
        // Tests and scripts read the port from this line.
        println!("evidence on {addr}");
    }
    // Tests and scripts read the port from this line.
    println!("listening on {local}");
    Ok((endpoint, cache))
}

/// Echoes each bi stream the peer opens until the connection closes.
async fn echo(conn: &AttestedConnection, quiet: bool) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let Ok(data) = recv.read_to_end(MAX_MESSAGE).await else {
            break;
        };
        if !quiet {
            println!("  received      {:?}", String::from_utf8_lossy(&data));
        }
        if send.write_all(&data).await.is_err() || send.finish().is_err() {
            break;
        }
    }
}
