//! `ratls serve`: accept attested connections, print each peer, echo every bi stream.
//!
//! Exit codes: 2 when the configuration cannot be loaded or the socket not bound; otherwise it
//! runs until killed (or, with `--once`, exits 0 after one bond closed, 1 if it was refused).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
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
    let endpoint = Endpoint::bind(args.listen, node.config)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
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
