//! `ratls serve`: accept attested connections, print each peer, echo every bi stream.
//!
//! Exit codes: 2 when the configuration cannot be loaded or the socket not bound; otherwise it
//! runs until killed (or, with `--once`, exits 0 after one bond closed, 1 if it was refused).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ratls_quic::evidence_log::EvidenceServer;
use ratls_quic::{AttestedConnection, Endpoint};

use super::node::{print_peer, NodeArgs};

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

async fn serve(args: &ServeArgs) -> ExitCode {
    let endpoint = match start(args).await {
        // Lives as long as the process: connection tasks borrow it.
        Ok(endpoint) => &*Box::leak(Box::new(endpoint)),
        Err(error) => return super::input_error(&error),
    };
    loop {
        let Some(accepting) = endpoint.accept().await else {
            return ExitCode::SUCCESS;
        };
        let from = accepting.remote_address();
        let task = tokio::spawn(async move {
            match accepting.establish().await {
                Ok(conn) => {
                    println!("bond from {from}");
                    print_peer("  ", conn.peer());
                    echo(&conn).await;
                    println!("closed {from}");
                    true
                }
                Err(error) => {
                    println!("refused {from}: {error}");
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

async fn start(args: &ServeArgs) -> anyhow::Result<Endpoint> {
    let node = args.node.load()?;
    let identity = std::sync::Arc::new(node.config.identity().clone());
    let endpoint = Endpoint::bind(args.listen, node.config)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    if let Some(log) = &node.evidence {
        // Runs as long as the process.
        drop(log.checkpoint_every(
            std::sync::Arc::clone(&identity),
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
    println!("ratls serve");
    for note in &node.notes {
        println!("  {note}");
    }
    println!("  peer id       {}", endpoint.peer_id());
    println!(
        "  sw digest     {} (for a peer's [software] allow list)",
        hex::encode(endpoint.peer_id().attestation_digest())
    );
    if let Some(path) = &args.write_cert {
        println!("  certificate   written to {}", path.display());
    }
    if let Some(addr) = audit {
        // Tests and scripts read the port from this line.
        println!("evidence on {addr}");
    }
    // Tests and scripts read the port from this line.
    println!("listening on {}", endpoint.local_addr()?);
    Ok(endpoint)
}

/// Echoes each bi stream the peer opens until the connection closes.
async fn echo(conn: &AttestedConnection) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let Ok(data) = recv.read_to_end(MAX_MESSAGE).await else {
            break;
        };
        println!("  received      {:?}", String::from_utf8_lossy(&data));
        if send.write_all(&data).await.is_err() || send.finish().is_err() {
            break;
        }
    }
}
