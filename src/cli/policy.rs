//! `ratls policy init` writes a complete policy file pinning the Measurements of a quote, a
//! certificate or a `ratls measure --json` output, every key written out; `ratls policy check`
//! reads one and says what it admits.
//!
//! Exit codes: `init` 0 written, 2 the source is unreadable. `check` 0 the file is valid and
//! admits someone, 1 it is valid but admits nobody, 2 it is not a valid policy file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ratls_quic::{parse_certificate, AttestationLevel, Expected, Measurements, Policy};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Arguments of `ratls policy`.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PolicyCommand {
    /// Print a complete policy file pinning the Measurements of a quote, a certificate or a
    /// `ratls measure --json` output (every key written out, defaults included).
    Init(InitArgs),
    /// Validate a policy file and say what it admits; warn (exit 1) when it admits nobody.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(false)))]
struct InitArgs {
    /// A TDX quote (binary): every register is pinned. The quote is read, not verified.
    #[arg(long, value_name = "FILE", group = "source")]
    from_quote: Option<PathBuf>,
    /// A certificate (DER or PEM, as `serve --write-cert` writes it): the Measurements of the
    /// quote it carries are pinned. Read, not verified.
    #[arg(long, value_name = "FILE", group = "source")]
    from_cert: Option<PathBuf>,
    /// The JSON `ratls measure --json` printed: mr_td (and rtmr1, rtmr2 when computed) are
    /// pinned, the other registers are "any".
    #[arg(long, value_name = "FILE", group = "source")]
    from_measure: Option<PathBuf>,
    /// An identity key file (as `ratls identity` makes it): a level Software policy whose
    /// `[software] allow` admits that key, and no quote.
    #[arg(long, value_name = "KEYFILE", group = "source")]
    from_identity: Option<PathBuf>,
    /// The level floor written into the file: TdxRaTlsBidirectional by default, Software with
    /// `--from-identity` (the only level an allow-list is used at).
    #[arg(long, value_parser = parse_level)]
    level: Option<AttestationLevel>,
    /// The profile name.
    #[arg(long, default_value = "pinned")]
    name: String,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// The `[remote]` section of a policy written by the tool: levels from TdxRemote up (the default
/// TdxRaTlsBidirectional included) need a declared collateral service, or the explicit opt-out.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct RemoteArgs {
    /// The policy's `[remote] pccs`: a PCCS-compatible collateral service the peers' collateral
    /// must come from (repeatable). Needed from level TdxRemote up, or --static-collateral.
    #[arg(long = "pccs", value_name = "URL")]
    remote_pccs: Vec<String>,
    /// The policy's `[remote] pcs`: Intel PCS v4 (or a mirror of its routes), base URL.
    #[arg(long = "pcs", value_name = "URL")]
    remote_pcs: Option<String>,
    /// The policy's `[remote] max_collateral_age_secs`.
    #[arg(long, value_name = "SECS", default_value_t = ratls_quic::DEFAULT_MAX_COLLATERAL_AGE_SECS)]
    max_collateral_age_secs: u64,
    /// Write `[dangerous] static_collateral = true`: peers reach TdxRemote and above with
    /// collateral from a file, without a declared service (revocations are not followed).
    #[arg(long, conflicts_with_all = ["remote_pccs", "remote_pcs"])]
    static_collateral: bool,
}

impl RemoteArgs {
    /// The declared services, PCCS first.
    fn services(&self) -> Vec<String> {
        let mut services = self.remote_pccs.clone();
        services.extend(self.remote_pcs.iter().cloned());
        services
    }

    /// Sets the `[remote]` section (or the opt-out) of `policy` as asked, and checks that a
    /// policy at `policy.level()` has what it needs.
    pub(crate) fn apply(&self, policy: &mut Policy) -> anyhow::Result<()> {
        let services = self.services();
        if !services.is_empty() {
            policy.set_remote(Some(ratls_quic::RemotePolicy::new(
                services,
                self.max_collateral_age_secs,
            )));
        } else if self.static_collateral {
            policy.dangerous().static_collateral();
        }
        policy.check_remote_declared().map_err(|missing| {
            anyhow::anyhow!(
                "level {} needs a collateral service: give --pccs URL (or --pcs URL), or \
                 --static-collateral to opt out explicitly (dangerous)",
                missing.level
            )
        })
    }

    /// The policy text of the section, for `policy init` (empty when nothing is asked).
    fn section(&self) -> String {
        let services = self.services();
        if !services.is_empty() {
            let quoted: Vec<String> = services
                .iter()
                .map(|s| toml::Value::String(s.clone()).to_string())
                .collect();
            format!(
                "\n[remote]  # TdxRemote: collateral fetched from a declared service\npccs = [{}]\n\
                 max_collateral_age_secs = {}  # how long ago it may have been fetched\n",
                quoted.join(", "),
                self.max_collateral_age_secs
            )
        } else if self.static_collateral {
            "\n[dangerous]\nstatic_collateral = true  # collateral from a file counts for \
             TdxRemote and above (logged)\n"
                .to_owned()
        } else {
            String::new()
        }
    }
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The policy file (TOML).
    file: PathBuf,
}

fn parse_level(text: &str) -> Result<AttestationLevel, String> {
    text.parse::<AttestationLevel>().map_err(|e| e.to_string())
}

/// Runs `ratls policy`.
pub(crate) fn run(args: &PolicyArgs) -> ExitCode {
    match &args.command {
        PolicyCommand::Init(init) => match render(init) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => super::input_error(&error),
        },
        PolicyCommand::Check(check) => run_check(&check.file),
    }
}

/// One register of a profile: pinned to a value, or any value.
struct Pin<'a> {
    key: &'static str,
    value: Option<String>,
    note: &'a str,
}

fn render(args: &InitArgs) -> anyhow::Result<String> {
    if let Some(path) = &args.from_identity {
        return render_software(path, args.level);
    }
    let level = args
        .level
        .unwrap_or(AttestationLevel::TdxRaTlsBidirectional);
    let (source, pins) = if let Some(path) = &args.from_quote {
        let quote = super::inputs::load_quote(path)?;
        let m = measurements_of_quote(&quote).with_context(|| format!("{}", path.display()))?;
        (format!("the quote {}", path.display()), all_pinned(&m))
    } else if let Some(path) = &args.from_cert {
        let m = measurements_of_cert(path)?;
        (
            format!("the quote in certificate {}", path.display()),
            all_pinned(&m),
        )
    } else if let Some(path) = &args.from_measure {
        (
            format!("`ratls measure` output {}", path.display()),
            from_measure(path)?,
        )
    } else {
        anyhow::bail!("give --from-quote, --from-cert, --from-measure or --from-identity");
    };
    let mut check = Policy::authenticity_only();
    check.set_level(level);
    args.remote.apply(&mut check)?;
    let mut text = policy_text(&source, level, &args.name, &pins, &[]);
    text.push_str(&args.remote.section());
    // What is printed must load as printed.
    Policy::from_toml(&text).context("the policy written does not load (a bug)")?;
    Ok(text)
}

fn measurements_of_quote(quote: &[u8]) -> anyhow::Result<Measurements> {
    super::inspect_cert::read_quote(quote)
        .map(|fields| fields.measurements)
        .map_err(|reason| anyhow::anyhow!("not a TDX quote: {reason}"))
}

fn measurements_of_cert(path: &Path) -> anyhow::Result<Measurements> {
    let bytes = super::read_limited(path, 256 * 1024)?;
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateDer::from_pem_slice(bytes.trim_ascii_start())
            .with_context(|| format!("{}: no PEM certificate", path.display()))?
    } else {
        CertificateDer::from(bytes)
    };
    let cert = parse_certificate(&der).with_context(|| format!("{}", path.display()))?;
    let evidence = cert.evidence.with_context(|| {
        format!(
            "{}: the certificate carries no quote (a Software-level peer: admit it with \
             [software] allow instead)",
            path.display()
        )
    })?;
    measurements_of_quote(&evidence.quote).with_context(|| format!("{}", path.display()))
}

fn all_pinned(m: &Measurements) -> Vec<Pin<'static>> {
    let pin = |key, value: &[u8]| Pin {
        key,
        value: Some(hex::encode(value)),
        note: "",
    };
    vec![
        pin("mr_td", &m.mr_td),
        pin("rtmr0", &m.rtmr[0]),
        pin("rtmr1", &m.rtmr[1]),
        pin("rtmr2", &m.rtmr[2]),
        Pin {
            note: "  # extended at run time: \"any\" unless the TD's runtime events are fixed",
            ..pin("rtmr3", &m.rtmr[3])
        },
        pin("mr_config_id", &m.mr_config_id),
        pin("mr_owner", &m.mr_owner),
        pin("mr_owner_config", &m.mr_owner_config),
        pin("xfam", &m.xfam),
        pin("td_attributes", &m.td_attributes),
    ]
}

fn from_measure(path: &Path) -> anyhow::Result<Vec<Pin<'static>>> {
    let bytes = super::read_limited(path, 64 * 1024)?;
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not the JSON of `ratls measure --json`", path.display()))?;
    let register = |key: &'static str| -> anyhow::Result<Option<String>> {
        match json.get(key) {
            None => Ok(None),
            Some(value) => {
                let text = value
                    .as_str()
                    .with_context(|| format!("{}: {key} is not a string", path.display()))?;
                Expected::<48>::parse(text)
                    .with_context(|| format!("{}: {key}", path.display()))?;
                Ok(Some(text.trim_start_matches("0x").to_owned()))
            }
        }
    };
    let mr_td = register("mr_td")?.with_context(|| {
        format!(
            "{}: no mr_td (not `ratls measure --json` output)",
            path.display()
        )
    })?;
    let not_measured = "  # not computed from the image";
    let any = |key| Pin {
        key,
        value: None,
        note: not_measured,
    };
    let maybe = |key, value: Option<String>| match value {
        Some(value) => Pin {
            key,
            value: Some(value),
            note: "",
        },
        None => Pin {
            note: "  # computed only for a direct kernel boot (--kernel)",
            ..any(key)
        },
    };
    Ok(vec![
        Pin {
            key: "mr_td",
            value: Some(mr_td),
            note: "",
        },
        Pin {
            note: "  # the VMM's ACPI tables, TD HOB, UEFI variables",
            ..any("rtmr0")
        },
        maybe("rtmr1", register("rtmr1")?),
        maybe("rtmr2", register("rtmr2")?),
        any("rtmr3"),
        any("mr_config_id"),
        any("mr_owner"),
        any("mr_owner_config"),
        any("xfam"),
        any("td_attributes"),
    ])
}

/// A Software policy admitting the key in `path`.
fn render_software(path: &Path, level: Option<AttestationLevel>) -> anyhow::Result<String> {
    if let Some(level) = level.filter(|l| *l != AttestationLevel::Software) {
        anyhow::bail!(
            "--level {level} with --from-identity: a [software] allow list is used only at level \
             Software"
        );
    }
    if !path.exists() {
        anyhow::bail!(
            "{}: no such key file (`ratls identity {}` creates it)",
            path.display(),
            path.display()
        );
    }
    let identity =
        ratls_quic::Identity::load(path).with_context(|| format!("identity {}", path.display()))?;
    let digest = hex::encode(identity.attestation_digest());
    let source = format!("the identity {}", path.display());
    let text = policy_text(&source, AttestationLevel::Software, "", &[], &[digest]);
    Policy::from_toml(&text).context("the policy written does not load (a bug)")?;
    Ok(text)
}

/// The policy file: every key written out, with a comment saying what it does.
fn policy_text(
    source: &str,
    level: AttestationLevel,
    name: &str,
    pins: &[Pin<'_>],
    allow: &[String],
) -> String {
    let allow: Vec<String> = allow.iter().map(|d| format!("\"{d}\"")).collect();
    let lines = [
        format!("# Written by `ratls policy init` from {source}."),
        "# Schema: docs/policy.md. Every key is written out, defaults included.".to_owned(),
        "version = 1".to_owned(),
        format!(
            "level = \"{}\"  # floor a peer must reach: Software, TdxLocal, TdxRaTlsBidirectional, ...",
            level.as_str()
        ),
        "freshness = \"per-bond\"  # or \"certificate\" (TdxLocal and TdxRemote only)".to_owned(),
        "allow_debug = false  # true admits debug TDs".to_owned(),
        String::new(),
        "[software]  # peers without a quote, admitted only at level Software".to_owned(),
        format!(
            "allow = [{}]  # sw digests, as `ratls identity KEY` prints them",
            allow.join(", ")
        ),
        String::new(),
        "[tcb]".to_owned(),
        "accepted_statuses = [\"UpToDate\"]".to_owned(),
        "advisory_deny = []".to_owned(),
        "# advisory_allow = []  # when present, every advisory of the platform must be listed"
            .to_owned(),
        "# max_collateral_age_secs = 2592000  # TCB info / QE identity issued at most this long ago"
            .to_owned(),
        String::new(),
    ];
    let mut out = lines.join("\n");
    out.push('\n');
    if pins.is_empty() {
        out.push_str(
            "# No [[profile]]: a peer that presents a quote is refused (`ratls policy init \
             --from-cert` pins one).\n",
        );
        return out;
    }
    out.push_str("[[profile]]  # a quote is admitted when any profile matches\n");
    let _ = writeln!(out, "name = {}", toml::Value::String(name.to_owned()));
    for pin in pins {
        let value = pin.value.as_deref().unwrap_or("any");
        let _ = writeln!(out, "{} = \"{value}\"{}", pin.key, pin.note);
    }
    out
}

fn run_check(path: &Path) -> ExitCode {
    let policy = match super::node::load_policy(path) {
        Ok(policy) => policy,
        Err(error) => return super::input_error(&error),
    };
    let (lines, admits_someone) = describe(&policy);
    println!("{}: valid", path.display());
    for line in lines {
        println!("  {line}");
    }
    if admits_someone {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "warning: {} admits nobody: add a [[profile]] (`ratls policy init`) or, at level \
             Software, a digest to [software] allow",
            path.display()
        );
        ExitCode::from(1)
    }
}

/// What a policy admits, line by line, and whether it admits anyone at all.
pub(crate) fn describe(policy: &Policy) -> (Vec<String>, bool) {
    let mut lines = vec![
        format!("level         {} (floor)", policy.level()),
        format!("freshness     {}", policy.freshness().as_str()),
    ];
    if policy.allows_debug() {
        lines.push("debug TDs     ADMITTED (allow_debug = true)".to_owned());
    }
    let software = policy.level() == AttestationLevel::Software;
    let allow = &policy.software_allow;
    match (software, allow.len()) {
        (true, 0) => lines.push("software      no peer without a quote ([software] allow is empty)".to_owned()),
        (true, n) => {
            lines.push(format!("software      {n} peer(s) without a quote, by sw digest:"));
            lines.extend(allow.iter().map(|d| format!("  {}", hex::encode(d))));
        }
        (false, 0) => lines.push("software      none (level above Software)".to_owned()),
        (false, n) => lines.push(format!(
            "software      none: the {n} digest(s) in [software] allow are unused above level Software"
        )),
    }
    let profiles = policy.measurements.profiles();
    let statuses: Vec<&str> = policy
        .tcb
        .accepted_statuses
        .iter()
        .map(|s| s.as_str())
        .collect();
    if let Some(remote) = policy.remote() {
        lines.push(format!(
            "collateral    fetched from {} at most {} s before a verdict ([remote], TdxRemote)",
            remote.services().join(" or "),
            remote.max_collateral_age_secs()
        ));
    } else if policy.accepts_static_collateral() && policy.level() >= AttestationLevel::TdxRemote {
        lines.push(
            "collateral    STATIC: TdxRemote and above without a collateral service \
             ([dangerous] static_collateral = true)"
                .to_owned(),
        );
    }
    if profiles.is_empty() {
        lines.push("quotes        none (no [[profile]])".to_owned());
    } else {
        lines.push(format!(
            "quotes        TCB status {}, when one of {} profile(s) matches:",
            statuses.join(" or "),
            profiles.len()
        ));
        for p in profiles {
            let mut pinned = Vec::new();
            let registers = [
                ("mr_td", matches!(p.mr_td, Expected::Exact(_))),
                ("rtmr0", matches!(p.rtmr[0], Expected::Exact(_))),
                ("rtmr1", matches!(p.rtmr[1], Expected::Exact(_))),
                ("rtmr2", matches!(p.rtmr[2], Expected::Exact(_))),
                ("rtmr3", matches!(p.rtmr[3], Expected::Exact(_))),
                ("mr_config_id", matches!(p.mr_config_id, Expected::Exact(_))),
                ("mr_owner", matches!(p.mr_owner, Expected::Exact(_))),
                (
                    "mr_owner_config",
                    matches!(p.mr_owner_config, Expected::Exact(_)),
                ),
                ("xfam", matches!(p.xfam, Expected::Exact(_))),
                (
                    "td_attributes",
                    matches!(p.td_attributes, Expected::Exact(_)),
                ),
            ];
            pinned.extend(
                registers
                    .iter()
                    .filter(|(_, exact)| *exact)
                    .map(|(k, _)| *k),
            );
            let pinned = if pinned.is_empty() {
                "nothing pinned: any Measurements".to_owned()
            } else {
                format!("pins {}", pinned.join(", "))
            };
            let mr_td = format!("{:?}", p.mr_td);
            lines.push(format!("  {:?}: {pinned} (mr_td {mr_td:.16}...)", p.name));
        }
    }
    let admits = (software && !allow.is_empty()) || !profiles.is_empty();
    (lines, admits)
}
