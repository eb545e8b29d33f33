//! What `ratls serve` and `ratls connect` share: the identity key file, the policy file, where
//! this side's quotes come from, how peer quotes are verified, and printing a peer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ratls_quic::pccs::{
    CacheConfig, ClientConfig, CollateralCache, PcsClient, PlatformKey, Service,
};
use ratls_quic::synthetic::{
    sample_measurements, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::Identity;
use ratls_quic::Policy;
use ratls_quic::{
    Collateral, CollateralStore, ConfigfsTsm, QuoteProvider, QuoteVerifier, StaticCollateral,
};
use ratls_quic::{EndpointConfig, PeerInfo};

/// Options of one node (a `serve` or `connect` side).
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// Policy file (TOML); its `level` decides what the peer must prove.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Identity key file (PKCS#8 PEM). Created with mode 0600 if missing. Without it, a fresh
    /// identity lives only as long as the process.
    #[arg(long, value_name = "KEYFILE")]
    identity: Option<PathBuf>,
    /// Present TDX quotes from configfs-tsm at this path (on a TDX guest). Without this or
    /// `--synthetic`, this side presents no quote (level Software).
    #[arg(long, value_name = "PATH", conflicts_with = "synthetic")]
    configfs_root: Option<PathBuf>,
    /// Present synthetic quotes (sample Measurements) signed by a test PKI made in this process.
    /// Another process can verify them only with that PKI's root and collateral: see
    /// `--write-pki`. Two `--synthetic` processes cannot verify each other (each has its own
    /// PKI); use `ratls demo` for a synthetic bidirectional bond.
    #[arg(long)]
    synthetic: bool,
    /// With `--synthetic`: write the test PKI's `root.der` and `collateral.json` into DIR, for
    /// the peer's `--root` and `--collateral`. Valid for this run only: a restarted process makes
    /// a new PKI.
    #[arg(long, value_name = "DIR", requires = "synthetic")]
    write_pki: Option<PathBuf>,
    /// Collateral (QuoteCollateralV3 JSON) to verify peer quotes with. Without it (and without
    /// `--synthetic`) every peer quote is refused: verification fails closed.
    #[arg(long, value_name = "FILE")]
    collateral: Option<PathBuf>,
    /// Verify peer quotes with collateral fetched from this PCCS-compatible service (base URL;
    /// repeatable, tried in order), through a cache that never serves expired collateral and
    /// fetches in the background. A policy with `[remote]` judges where and when it was fetched.
    #[arg(long, value_name = "URL", conflicts_with = "collateral")]
    pccs: Vec<String>,
    /// Verify peer quotes with collateral fetched from Intel PCS v4 (or a mirror of its routes)
    /// at this base URL.
    #[arg(long, value_name = "URL", conflicts_with = "collateral")]
    pcs: Option<String>,
    /// With --pccs/--pcs: also trust the CA certificate(s) in FILE (PEM) for the services' HTTPS
    /// certificates, on top of the platform's trust store; repeatable.
    #[arg(long, value_name = "FILE")]
    collateral_ca: Vec<PathBuf>,
    /// With --pccs/--pcs: keep fetched collateral in DIR (atomic writes) and start warm from it.
    #[arg(long, value_name = "DIR")]
    collateral_dir: Option<PathBuf>,
    /// Trust this root CA (DER or PEM) for peer quotes instead of Intel's SGX Root CA.
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// Record every bond (formed or refused) in the evidence log in DIR; a bond whose record
    /// cannot be written does not form.
    #[arg(long, value_name = "DIR")]
    evidence_log: Option<PathBuf>,
    /// Refuse the identity this retirement marker retires (repeatable).
    #[arg(long, value_name = "MARKER")]
    retired: Vec<PathBuf>,
}

/// A collateral store that has nothing: every attested peer is refused.
#[derive(Debug)]
struct NoCollateral;

impl CollateralStore for NoCollateral {
    fn collateral_for(&self, _quote: &[u8]) -> Option<Arc<Collateral>> {
        None
    }
}

/// A node configuration, with what to tell the user about it.
pub(crate) struct Node {
    pub(crate) config: EndpointConfig,
    /// The evidence log bonds are recorded in, if any.
    pub(crate) evidence: Option<ratls_quic::evidence_log::EvidenceLog>,
    /// Lines describing the trust choices made.
    pub(crate) notes: Vec<String>,
    /// The collateral cache peer quotes are verified through, with --pccs/--pcs.
    pub(crate) cache: Option<CollateralCache>,
}

/// A declared collateral service could not supply collateral: the command exits 1 (no verdict
/// is a refusal), not 2.
#[derive(Debug, thiserror::Error)]
#[error("collateral service: {0}")]
pub(crate) struct ServiceFailed(pub(crate) String);

/// The exit code for an error of `load`: 1 when a collateral service failed, 2 otherwise.
pub(crate) fn load_error(error: &anyhow::Error) -> std::process::ExitCode {
    if error.downcast_ref::<ServiceFailed>().is_some() {
        eprintln!("error: {}", super::explain::anyhow_chain(error));
        std::process::ExitCode::from(1)
    } else {
        super::input_error(error)
    }
}

/// Waits until the cache holds usable collateral for `key` (true), or its fetch failed
/// (false), at most `limit`.
pub(crate) async fn wait_for_fetch(
    cache: &CollateralCache,
    key: &PlatformKey,
    limit: std::time::Duration,
) -> Result<(), String> {
    let mut changes = cache.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cache.lookup(key).is_some() {
            return Ok(());
        }
        if let Some(error) = cache.last_error(key) {
            return Err(error);
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            return Err(format!(
                "no collateral for {key} within {} s",
                limit.as_secs()
            ));
        }
    }
}

impl NodeArgs {
    /// The policy file named on the command line.
    pub(crate) fn policy_path(&self) -> &Path {
        &self.policy
    }

    /// Reads the files and builds the endpoint configuration; with a collateral service, starts
    /// the collateral cache and waits for this side's own platform's collateral (a failure is
    /// a [`ServiceFailed`]).
    pub(crate) async fn load(&self) -> anyhow::Result<Node> {
        let mut notes = Vec::new();
        let mut policy = load_policy(&self.policy)?;
        for path in &self.retired {
            let marker = ratls_quic::evidence_log::RetirementMarker::decode(&super::read_limited(
                path, 4096,
            )?)
            .with_context(|| format!("retirement marker {}", path.display()))?;
            notes.push(format!(
                "retired       {} (since {})",
                marker.retired(),
                marker.time()
            ));
            policy
                .retired
                .insert(marker)
                .with_context(|| format!("retirement marker {}", path.display()))?;
        }
        notes.push(format!(
            "policy        {} (level {}, freshness {})",
            self.policy.display(),
            policy.level(),
            policy.freshness().as_str()
        ));
        let identity = match &self.identity {
            Some(path) => load_or_create_identity(path, &mut notes)?,
            None => Identity::generate().context("generating an identity")?,
        };

        let mut own_pki = None;
        let provider: Option<Arc<dyn QuoteProvider>> = if let Some(root) = &self.configfs_root {
            notes.push(format!("quotes        configfs-tsm at {}", root.display()));
            Some(Arc::new(ConfigfsTsm::new().with_root(root)))
        } else if self.synthetic {
            let pki = Arc::new(synthetic_pki()?);
            if let Some(dir) = &self.write_pki {
                write_pki(&pki, dir)?;
                notes.push(format!(
                    "synthetic PKI written to {} (root.der, collateral.json; valid for this run \
                     only)",
                    dir.display()
                ));
            }
            notes.push(
                "quotes        synthetic (test PKI of this process, sample Measurements)".into(),
            );
            own_pki = Some(Arc::clone(&pki));
            Some(Arc::new(SyntheticQuoteProvider::new(
                pki,
                sample_measurements(),
                SyntheticTcb::UpToDate,
            )))
        } else {
            notes.push("quotes        none: this side is at level Software".into());
            None
        };

        let verifier = match (&self.root, &own_pki) {
            (Some(path), _) => {
                let verifier =
                    QuoteVerifier::dangerous().trust_root(super::inputs::load_root(path)?);
                let whose = if verifier.trusts_intel_root() {
                    "Intel's SGX Root CA"
                } else {
                    "NOT Intel's SGX Root CA"
                };
                notes.push(format!(
                    "trust         root CA {} for peer quotes ({whose})",
                    path.display()
                ));
                verifier
            }
            (None, Some(pki)) => {
                notes.push(
                    "trust         this process's synthetic test root, explicitly (NOT Intel's)"
                        .into(),
                );
                QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec())
            }
            (None, None) => QuoteVerifier::intel(),
        };
        let mut cache = None;
        let collateral: Arc<dyn CollateralStore> = match (&self.collateral, &own_pki) {
            _ if !self.pccs.is_empty() || self.pcs.is_some() => {
                let (started, own_key) = self
                    .start_cache(&policy, &verifier, provider.as_deref(), &mut notes)
                    .await?;
                cache = Some(started.clone());
                if let Some(key) = own_key {
                    // Prewarmed: this side's own platform (peers on the same platform need it).
                    let limit = std::time::Duration::from_secs(40);
                    match wait_for_fetch(&started, &key, limit).await {
                        Ok(()) => {}
                        // A synthetic PKI made by this process is in no service yet: its own
                        // collateral cannot be had, which refuses only peers on that PKI.
                        Err(error) if own_pki.is_some() => notes.push(format!(
                            "collateral    not for this side's own (synthetic) platform: {error}"
                        )),
                        Err(error) => return Err(ServiceFailed(error).into()),
                    }
                    if let Some(entry) = started.lookup(&key) {
                        notes.push(format!(
                            "collateral    {key} fetched from {} (tcb_info {}…)",
                            entry.source,
                            hex::encode(&entry.digests.tcb_info[..6])
                        ));
                    }
                }
                Arc::new(started)
            }
            (Some(path), _) => {
                let bytes = super::read_limited(path, 1 << 20)?;
                let collateral = Collateral::from_json(&bytes)
                    .with_context(|| format!("collateral {}", path.display()))?;
                Arc::new(StaticCollateral(Arc::new(collateral)))
            }
            (None, Some(pki)) => Arc::new(StaticCollateral(Arc::new(
                Collateral::new(pki.collateral().clone()).context("synthetic collateral")?,
            ))),
            (None, None) => {
                if policy.level() > ratls_quic::AttestationLevel::Software {
                    notes.push(
                        "collateral    none given: every attested peer will be refused".into(),
                    );
                }
                Arc::new(NoCollateral)
            }
        };

        let builder = EndpointConfig::builder(identity).with_policy(policy);
        let builder = match provider {
            Some(provider) => builder.with_quote_provider(provider),
            None => builder.without_quotes(),
        };
        let mut builder = builder.with_quote_verifier(verifier, collateral);
        let mut evidence = None;
        if let Some(dir) = &self.evidence_log {
            let (log, report) =
                ratls_quic::evidence_log::EvidenceLog::open(dir, Default::default())
                    .with_context(|| format!("evidence log {}", dir.display()))?;
            notes.push(format!(
                "evidence log  {} ({} records{})",
                dir.display(),
                report.records,
                if report.truncated_bytes > 0 {
                    ", torn tail cut"
                } else {
                    ""
                }
            ));
            builder = builder.evidence_log(ratls_quic::evidence_log::EvidenceSink::new(
                log.clone(),
                true,
            ));
            evidence = Some(log);
        }
        let config = builder.build().context("endpoint configuration")?;
        Ok(Node {
            config,
            evidence,
            notes,
            cache,
        })
    }

    /// The collateral cache over the declared services; returns it with this side's own
    /// platform key when this side presents quotes (prewarmed).
    async fn start_cache(
        &self,
        policy: &Policy,
        verifier: &QuoteVerifier,
        provider: Option<&dyn QuoteProvider>,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<(CollateralCache, Option<PlatformKey>)> {
        let mut services: Vec<Service> = self.pccs.iter().map(|url| Service::pccs(url)).collect();
        services.extend(self.pcs.iter().map(|url| Service::pcs(url)));
        let urls: Vec<&str> = services.iter().map(|s| s.base.as_str()).collect();
        notes.push(format!(
            "collateral    fetched from {} (cache: never expired, background refresh{})",
            urls.join(", then "),
            self.collateral_dir
                .as_ref()
                .map(|d| format!(", kept in {}", d.display()))
                .unwrap_or_default()
        ));
        let mut client = ClientConfig::new(services);
        client.root_der = verifier.root_der().to_vec();
        client.timeout = std::time::Duration::from_secs(10);
        client.tls_roots = super::inputs::load_tls_roots(&self.collateral_ca)?;
        let client = PcsClient::new(client).context("collateral client")?;
        let own_key = match provider {
            Some(provider) => {
                let quote = provider
                    .quote(&ratls_quic::ReportData([0; 64]))
                    .context("a quote of this side, for its platform's collateral")?;
                Some(
                    PlatformKey::from_quote(&quote)
                        .context("this side's quote names no platform (PCK leaf)")?,
                )
            }
            None => None,
        };
        let mut config = CacheConfig {
            prewarm: own_key.into_iter().collect(),
            persist_dir: self.collateral_dir.clone(),
            ..CacheConfig::default()
        };
        if let Some(remote) = policy.remote() {
            // TdxRemote judges the fetch time: refresh every entry on every tick, at least four
            // times per `max_collateral_age_secs`.
            config.refresh_ahead = u64::MAX / 2;
            let quarter = (remote.max_collateral_age_secs() / 4).clamp(1, 60);
            config.refresh_interval = std::time::Duration::from_secs(quarter);
            config.failure_backoff = config.failure_backoff.min(quarter);
        }
        if let Some(dir) = &self.collateral_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok((CollateralCache::start(client, config).await, own_key))
    }
}

/// Reads a policy file.
pub(crate) fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = String::from_utf8(super::read_limited(path, 1 << 20)?)
        .with_context(|| format!("policy {} is not UTF-8", path.display()))?;
    Policy::from_toml(&text).with_context(|| format!("policy {}", path.display()))
}

/// Loads the identity at `path`, creating it (mode 0600) if there is no file.
pub(crate) fn load_or_create_identity(
    path: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Identity> {
    if path.exists() {
        notes.push(format!("identity      {}", path.display()));
        return Identity::load(path).with_context(|| format!("identity {}", path.display()));
    }
    let identity = Identity::generate().context("generating an identity")?;
    identity
        .save(path)
        .with_context(|| format!("writing identity {}", path.display()))?;
    notes.push(format!(
        "identity      {} (created, mode 0600)",
        path.display()
    ));
    Ok(identity)
}

/// A synthetic PKI whose collateral window started a day ago.
pub(crate) fn synthetic_pki() -> anyhow::Result<SyntheticPki> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs();
    SyntheticPki::generate(SyntheticPkiParams::new(now.saturating_sub(86_400)))
        .context("generating the synthetic PKI")
}

fn write_pki(pki: &SyntheticPki, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let root = dir.join("root.der");
    std::fs::write(&root, pki.root_der()).with_context(|| format!("writing {}", root.display()))?;
    let collateral = dir.join("collateral.json");
    std::fs::write(&collateral, pki.collateral_json()?)
        .with_context(|| format!("writing {}", collateral.display()))?;
    Ok(())
}

/// Prints what was verified about a peer, one aligned field per line, indented by `indent`.
pub(crate) fn print_peer(indent: &str, peer: &PeerInfo) {
    println!("{indent}peer id       {}", peer.peer_id());
    println!("{indent}level         {}", peer.level());
    match peer.measurements() {
        Some(m) => println!("{indent}mrtd          {}", hex::encode(m.mr_td)),
        None => println!("{indent}mrtd          - (no quote)"),
    }
    match peer.tcb_status() {
        Some(status) => println!("{indent}tcb status    {status}"),
        None => println!("{indent}tcb status    -"),
    }
    let kind = if peer.bond_quote().is_some() {
        "bond proof"
    } else {
        "certificate"
    };
    match peer.quote_digest() {
        Some(digest) => println!("{indent}quote digest  {} ({kind})", hex::encode(digest)),
        None => println!("{indent}quote digest  -"),
    }
    println!("{indent}profile       {}", profile(peer));
    let quotes = [
        ("certificate", peer.certificate_quote()),
        ("bond proof", peer.bond_quote()),
    ];
    let mut printed: Vec<&ratls_quic::CollateralProvenance> = Vec::new();
    for (kind, quote) in quotes {
        let Some(quote) = quote else { continue };
        match quote.collateral_provenance() {
            Some(p) if printed.contains(&p) => {}
            Some(p) => {
                let age = unix_now().saturating_sub(p.fetched_at);
                println!(
                    "{indent}collateral    {} fetched {age} s ago (at {}) ({kind} quote)",
                    p.source, p.fetched_at
                );
                let [tcb, qe, pck, root] = p.item_digests.map(|d| hex::encode(&d[..6]));
                println!(
                    "{indent}  digests     tcb_info {tcb}… qe_identity {qe}… pck_crl {pck}… \
                     root_ca_crl {root}…"
                );
                printed.push(p);
            }
            None => {
                println!("{indent}collateral    static (file or store, no service) ({kind} quote)")
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn provenance_json(p: &ratls_quic::CollateralProvenance) -> serde_json::Value {
    let [tcb, qe, pck, root] = p.item_digests.map(hex::encode);
    serde_json::json!({
        "url": p.source,
        "fetched_at": p.fetched_at,
        "digests": {"tcb_info": tcb, "qe_identity": qe, "pck_crl": pck, "root_ca_crl": root},
    })
}

/// The policy profile that admitted the peer: a `[[profile]]` name, or the Software allow-list.
pub(crate) fn profile(peer: &PeerInfo) -> String {
    match peer.certificate_quote() {
        Some(quote) => quote.profile().to_owned(),
        None => "[software] allow".to_owned(),
    }
}

/// What was verified about a peer, as JSON fields.
pub(crate) fn peer_json(peer: &PeerInfo) -> serde_json::Value {
    let quote_kind = if peer.bond_quote().is_some() {
        "bond proof"
    } else {
        "certificate"
    };
    serde_json::json!({
        "peer_id": peer.peer_id().to_string(),
        "sw_digest": hex::encode(peer.peer_id().attestation_digest()),
        "level": peer.level().as_str(),
        "mr_td": peer.measurements().map(|m| hex::encode(m.mr_td)),
        "measurements": peer.measurements().map(super::measurements_json),
        "tcb_status": peer.tcb_status().map(|s| s.as_str()),
        "quote_digest": peer.quote_digest().map(hex::encode),
        "quote_kind": peer.quote_digest().map(|_| quote_kind),
        "profile": profile(peer),
        "collateral_source": peer
            .certificate_quote()
            .and_then(|q| q.collateral_provenance())
            .map(provenance_json),
    })
}

/// This side's two identifiers, for the header of `serve` and `connect`.
pub(crate) fn print_own_identity(peer_id: ratls_quic::PeerId) {
    println!("  peer id       {peer_id} (a peer's `connect --expect` takes it)");
    println!(
        "  sw digest     {} (a peer's policy lists it: [software] allow = [...])",
        hex::encode(peer_id.attestation_digest())
    );
}
