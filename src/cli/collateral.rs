//! `ratls collateral fetch` and `ratls collateral serve`, and the service options that
//! `verify-quote` shares.
//!
//! Exit codes: `fetch` 0 when the collateral was fetched, checked and written, 1 when the
//! service failed or answered with bad collateral, 2 on usage or input errors; `serve` runs
//! until killed, 2 when it cannot start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ratls_quic::pccs::server::{self, DirSource, ItemSource, UpstreamSource};
use ratls_quic::pccs::{
    files, ClientConfig, Clock, FetchError, FetchedCollateral, ManualClock, PckCa, PcsClient,
    PlatformKey, Service, SystemClock,
};

/// Where collateral comes from: declared services (tried in order).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ServiceArgs {
    /// A PCCS-compatible collateral service (base URL); repeat to try several in order.
    #[arg(long, value_name = "URL")]
    pccs: Vec<String>,
    /// Intel PCS v4 (or a mirror of its routes), base URL; the root CA CRL comes from the root
    /// certificate's CRL distribution point unless --root-crl-url is given.
    #[arg(long, value_name = "URL")]
    pcs: Option<String>,
    /// Where to fetch the root CA CRL for --pcs.
    #[arg(long, value_name = "URL", requires = "pcs")]
    root_crl_url: Option<String>,
    /// Timeout of one request, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
    /// Ask for this TCB evaluation data number (and refuse another).
    #[arg(long, value_name = "N")]
    tcb_evaluation_data_number: Option<u32>,
    /// Also trust the CA certificate(s) in FILE (PEM, one or several; or one DER) for the
    /// services' HTTPS certificates, on top of the platform's trust store; repeatable.
    #[arg(long, value_name = "FILE")]
    collateral_ca: Vec<PathBuf>,
}

impl ServiceArgs {
    /// Whether any service was declared.
    pub(crate) fn declared(&self) -> bool {
        !self.pccs.is_empty() || self.pcs.is_some()
    }

    /// The client configuration for the declared services.
    pub(crate) fn client(&self, clock: Arc<dyn Clock>) -> anyhow::Result<PcsClient> {
        self.client_with_root(clock, ratls_quic::INTEL_SGX_ROOT_CA_DER.to_vec())
    }

    /// The client for the declared services, checking collateral against `root_der`.
    pub(crate) fn client_with_root(
        &self,
        clock: Arc<dyn Clock>,
        root_der: Vec<u8>,
    ) -> anyhow::Result<PcsClient> {
        let mut services: Vec<Service> = self.pccs.iter().map(|url| Service::pccs(url)).collect();
        services.extend(self.pcs.iter().map(|url| Service::pcs(url)));
        let mut config = ClientConfig::new(services);
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 600.0) {
            anyhow::bail!("--timeout must be between 0 and 600 seconds");
        }
        config.timeout = Duration::from_secs_f64(self.timeout);
        config.connect_timeout = config.timeout.min(config.connect_timeout);
        config.root_crl_url.clone_from(&self.root_crl_url);
        config.tcb_evaluation_data_number = self.tcb_evaluation_data_number;
        config.root_der = root_der;
        config.tls_roots = super::inputs::load_tls_roots(&self.collateral_ca)?;
        PcsClient::with_clock(config, clock).context("collateral client")
    }
}

/// The JSON description of fetched collateral (for `verify-quote --json` and `fetch`).
pub(crate) fn fetched_json(fetched: &FetchedCollateral) -> serde_json::Value {
    serde_json::json!({
        "url": fetched.source,
        "fetched_at": fetched.fetched_at,
        "fmspc": fetched.key.fmspc.to_hex(),
        "ca": fetched.key.ca.as_str(),
        "not_before": fetched.facts.validity.not_before,
        "not_after": fetched.facts.validity.not_after,
        "tcb_evaluation_data_number": fetched.facts.tcb_evaluation_data_number,
        "digests": {
            "tcb_info": hex::encode(fetched.digests.tcb_info),
            "qe_identity": hex::encode(fetched.digests.qe_identity),
            "pck_crl": hex::encode(fetched.digests.pck_crl),
            "root_ca_crl": hex::encode(fetched.digests.root_ca_crl),
            "collateral": hex::encode(fetched.collateral.digest()),
        },
    })
}

/// Fetch and serve collateral.
#[derive(Debug, clap::Args)]
pub(crate) struct CollateralArgs {
    #[command(subcommand)]
    command: CollateralCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CollateralCommand {
    /// Fetch one platform's collateral and write it as QuoteCollateralV3 JSON.
    Fetch(FetchArgs),
    /// Run a PCCS-compatible collateral service.
    Serve(ServeArgs),
}

/// Arguments of `ratls collateral fetch`.
#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Take FMSPC and PCK CA from this quote's PCK certificate.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["fmspc", "ca"])]
    quote: Option<PathBuf>,
    /// FMSPC, 12 hex digits.
    #[arg(long, value_name = "HEX", requires = "ca")]
    fmspc: Option<String>,
    /// PCK CA: processor or platform.
    #[arg(long, value_name = "CA", requires = "fmspc")]
    ca: Option<String>,
    /// Check the collateral's window at this unix time instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Output file (written atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Arguments of `ratls collateral serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (TCP), e.g. 127.0.0.1:8081 or 127.0.0.1:0.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Serve the collateral files of this directory (see docs/collateral.md).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["upstream", "upstream_pcs"])]
    from_dir: Option<PathBuf>,
    /// Fetch from this PCCS-compatible service; repeat to try several in order.
    #[arg(long, value_name = "URL")]
    upstream: Vec<String>,
    /// Fetch from Intel PCS (or a mirror of its routes) at this base URL.
    #[arg(long, value_name = "URL")]
    upstream_pcs: Option<String>,
    /// Also trust the CA certificate(s) in FILE (PEM) for the upstreams' HTTPS certificates, on
    /// top of the platform's trust store; repeatable.
    #[arg(long, value_name = "FILE", conflicts_with = "from_dir")]
    collateral_ca: Vec<PathBuf>,
    /// With an upstream: keep fetched items here, and serve them after a restart.
    #[arg(long, value_name = "DIR", conflicts_with = "from_dir")]
    cache_dir: Option<PathBuf>,
    /// Judge windows at this unix time instead of now (replaying old collateral; logged).
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Check collateral against this root CA (DER or PEM) instead of Intel's SGX Root CA: the
    /// synthetic PKI `ratls serve --synthetic --write-pki` writes (logged).
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
}

/// Runs `ratls collateral`.
pub(crate) fn run(args: &CollateralArgs) -> ExitCode {
    match &args.command {
        CollateralCommand::Fetch(args) => super::run_async(fetch(args)),
        CollateralCommand::Serve(args) => super::run_async(serve(args)),
    }
}

fn clock(now: Option<u64>) -> Arc<dyn Clock> {
    match now {
        Some(now) => Arc::new(ManualClock::new(now)),
        None => Arc::new(SystemClock),
    }
}

async fn fetch(args: &FetchArgs) -> ExitCode {
    let prepared = (|| -> anyhow::Result<(PcsClient, PlatformKey)> {
        if !args.service.declared() {
            anyhow::bail!("declare a service: --pccs URL or --pcs URL");
        }
        let client = args.service.client(clock(args.now))?;
        let key = match (&args.quote, &args.fmspc, &args.ca) {
            (Some(path), _, _) => {
                let quote = super::read_limited(path, 1 << 20)?;
                PlatformKey::from_quote(&quote)
                    .with_context(|| format!("quote {}", path.display()))?
            }
            (None, Some(fmspc), Some(ca)) => PlatformKey {
                fmspc: fmspc.parse()?,
                ca: ca.parse::<PckCa>()?,
            },
            _ => anyhow::bail!("give --quote FILE, or --fmspc HEX and --ca processor|platform"),
        };
        Ok((client, key))
    })();
    let (client, key) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return super::input_error(&error),
    };
    let fetched = match client.fetch(key).await {
        Ok(fetched) => fetched,
        Err(error) => return service_error(&error),
    };
    let written = serde_json::to_vec_pretty(fetched.collateral.dcap())
        .context("encoding the collateral")
        .and_then(|bytes| {
            let dir = match args.out.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
                _ => PathBuf::from("."),
            };
            let name = args
                .out
                .file_name()
                .and_then(|n| n.to_str())
                .context("--out needs a file name")?;
            files::write_atomic(&dir, name, &bytes).map_err(anyhow::Error::from)
        });
    if let Err(error) = written {
        return super::input_error(&error);
    }
    println!("{}", fetched_json(&fetched));
    ExitCode::SUCCESS
}

/// Reports a failed fetch (naming the URL and the status or timeout) and returns exit code 1:
/// no collateral, no verdict, which is a refusal.
pub(crate) fn service_error(error: &FetchError) -> ExitCode {
    eprintln!("error: collateral service: {error}");
    ExitCode::from(1)
}

async fn serve(args: &ServeArgs) -> ExitCode {
    let started = async {
        let clock = clock(args.now);
        if let Some(now) = args.now {
            eprintln!("warning: judging collateral windows at the fixed time {now}");
        }
        let root_der = match &args.root {
            Some(path) => {
                let root = super::inputs::load_root(path)?;
                if root != ratls_quic::INTEL_SGX_ROOT_CA_DER {
                    eprintln!(
                        "warning: checking collateral against {}, NOT Intel's SGX Root CA",
                        path.display()
                    );
                }
                root
            }
            None => ratls_quic::INTEL_SGX_ROOT_CA_DER.to_vec(),
        };
        let source: Arc<dyn ItemSource> = match &args.from_dir {
            Some(dir) => {
                anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
                Arc::new(DirSource::new(dir.clone(), root_der, clock))
            }
            None => {
                let services = ServiceArgs {
                    pccs: args.upstream.clone(),
                    pcs: args.upstream_pcs.clone(),
                    collateral_ca: args.collateral_ca.clone(),
                    ..ServiceArgs::default_timeout()
                };
                anyhow::ensure!(
                    services.declared(),
                    "give --from-dir DIR or --upstream URL (or --upstream-pcs URL)"
                );
                let client = services.client_with_root(clock, root_der)?;
                Arc::new(UpstreamSource::new(client, args.cache_dir.clone()).await)
            }
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        anyhow::Ok((listener, addr, source))
    };
    let (listener, addr, source) = match started.await {
        Ok(started) => started,
        Err(error) => return super::input_error(&error),
    };
    println!("listening on http://{addr}");
    server::serve(listener, source).await;
    ExitCode::SUCCESS
}

impl ServiceArgs {
    fn default_timeout() -> Self {
        Self {
            timeout: 10.0,
            ..Self::default()
        }
    }
}
