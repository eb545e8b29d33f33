//! `ratls verify-quote`: verify one quote with its collateral at a given time.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ratls_quic::Policy;
use ratls_quic::{
    AttestationError, AuthenticQuote, Collateral, DcapCheck, QuoteVerifier, VerifiedQuote,
};
use serde_json::json;

/// Verify a TDX quote (DCAP) and apply a policy.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The quote (raw bytes; zero padding after it is ignored).
    #[arg(long)]
    quote: PathBuf,
    /// Collateral as QuoteCollateralV3 JSON.
    #[arg(long, required_unless_present_any = ["pccs", "pcs"], conflicts_with_all = ["pccs", "pcs"])]
    collateral: Option<PathBuf>,
    /// Or fetch the quote's collateral from a service (its window is checked at --now).
    #[command(flatten)]
    service: super::collateral::ServiceArgs,
    /// Verification time, unix seconds (not milliseconds).
    #[arg(long)]
    now: u64,
    /// Trust this root CA (DER or PEM) instead of Intel's SGX Root CA (logged as a warning).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Policy file (TOML). Without it: authenticity only, UpToDate only, no debug TD.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let inputs = match Inputs::load(&args) {
        Ok(inputs) => inputs,
        Err(error) => return super::input_error(&error),
    };
    let (collateral, fetched) = match (&args.collateral, inputs.collateral) {
        (_, Some(collateral)) => (collateral, None),
        (_, None) => match fetch(&args, &inputs.quote) {
            Ok(Ok(fetched)) => (Collateral::clone(&fetched.collateral), Some(fetched)),
            Ok(Err(error)) => {
                if args.json {
                    println!(
                        "{}",
                        json!({"verdict": "rejected", "reason": "collateral", "error": error.to_string()})
                    );
                }
                return super::collateral::service_error(&error);
            }
            Err(error) => return super::input_error(&error),
        },
    };
    let result = inputs
        .verifier
        .verify(&inputs.quote, &collateral, args.now, &inputs.policy);
    if args.json {
        let mut report = report_json(&result);
        if let (Some(fetched), Some(map)) = (&fetched, report.as_object_mut()) {
            map.insert(
                "collateral_source".into(),
                super::collateral::fetched_json(fetched),
            );
        }
        report["root"] = inputs.root.clone().into();
        report["root_is_intel"] = inputs.verifier.trusts_intel_root().into();
        println!("{report}");
    } else {
        println!("root          {}", inputs.root);
        if let Some(fetched) = &fetched {
            println!(
                "collateral from {} (fetched at {}, usable until {})",
                fetched.source, fetched.fetched_at, fetched.facts.validity.not_after
            );
        }
        print_human(&result, &collateral, args.now);
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Fetches the quote's collateral from the declared services, checked at `--now`.
fn fetch(
    args: &Args,
    quote: &[u8],
) -> anyhow::Result<Result<ratls_quic::pccs::FetchedCollateral, ratls_quic::pccs::FetchError>> {
    let client = args
        .service
        .client(std::sync::Arc::new(ratls_quic::pccs::ManualClock::new(
            args.now,
        )))?;
    let runtime = super::runtime()?;
    Ok(runtime.block_on(client.fetch_for_quote(quote)))
}

struct Inputs {
    quote: Vec<u8>,
    collateral: Option<Collateral>,
    policy: Policy,
    verifier: QuoteVerifier,
    /// Which root was trusted, for the output.
    root: String,
}

impl Inputs {
    fn load(args: &Args) -> anyhow::Result<Self> {
        let quote = super::inputs::load_quote(&args.quote)?;
        let collateral = match &args.collateral {
            Some(path) => Some(
                Collateral::from_json(&super::read_limited(path, 1 << 20)?)
                    .with_context(|| format!("collateral {}", path.display()))?,
            ),
            None => None,
        };
        let policy = match &args.policy {
            None => Policy::authenticity_only(),
            Some(path) => {
                let text = String::from_utf8(super::read_limited(path, 1 << 20)?)
                    .with_context(|| format!("policy {} is not UTF-8", path.display()))?;
                Policy::from_toml(&text).with_context(|| format!("policy {}", path.display()))?
            }
        };
        let (verifier, root) = match &args.root {
            None => (
                QuoteVerifier::intel(),
                "Intel SGX Root CA (built in)".to_owned(),
            ),
            Some(path) => {
                let der = super::inputs::load_root(path)?;
                let digest = blake3::hash(&der).to_hex();
                let verifier = QuoteVerifier::dangerous().trust_root(der);
                let root = if verifier.trusts_intel_root() {
                    format!("{} (Intel SGX Root CA)", path.display())
                } else {
                    format!(
                        "{} (blake3 {digest}; NOT Intel's SGX Root CA)",
                        path.display()
                    )
                };
                (verifier, root)
            }
        };
        Ok(Self {
            quote,
            collateral,
            policy,
            verifier,
            root,
        })
    }
}

fn quote_fields(
    quote: &AuthenticQuote,
    profile: Option<&str>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = super::measurements_json(quote.measurements());
    let rest = [
        ("quote_version", json!(quote.version())),
        ("tcb_status", json!(quote.tcb_status().as_str())),
        ("advisory_ids", json!(quote.advisory_ids())),
        ("mr_seam", json!(hex::encode(quote.mr_seam()))),
        (
            "report_data",
            json!(hex::encode(quote.report_data().as_bytes())),
        ),
        ("quote_digest", json!(hex::encode(quote.quote_digest()))),
        ("profile", json!(profile)),
    ];
    let extras = quote.report_extras();
    let td15 = extras.td15.as_ref();
    let extra = [
        ("td_report", json!(super::report_kind_name(extras.kind))),
        (
            "tee_tcb_svn2",
            json!(td15.map(|t| hex::encode(t.tee_tcb_svn2))),
        ),
        (
            "mr_servicetd",
            json!(td15.map(|t| hex::encode(t.mr_service_td))),
        ),
        (
            "td15_ex",
            extras
                .td15_ex
                .as_ref()
                .map_or(serde_json::Value::Null, super::td15_ex_json),
        ),
    ];
    fields.extend(
        rest.into_iter()
            .chain(extra)
            .map(|(name, value)| (name.to_owned(), value)),
    );
    fields
}

const QUOTE_FIELDS: [&str; 21] = [
    "quote_version",
    "tcb_status",
    "advisory_ids",
    "mr_td",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "xfam",
    "td_attributes",
    "mr_seam",
    "report_data",
    "quote_digest",
    "profile",
    "td_report",
    "tee_tcb_svn2",
    "mr_servicetd",
    "td15_ex",
];

/// Accepted: every verified field. Rejected by policy: the (authentic) fields too, and the
/// reason. Not authentic: the fields are null, because nothing in the quote can be believed.
fn report_json(result: &Result<VerifiedQuote, AttestationError>) -> serde_json::Value {
    let mut out = match result {
        Ok(quote) => quote_fields(quote, Some(quote.profile())),
        Err(AttestationError::Policy { quote, .. }) => quote_fields(quote, None),
        Err(_) => QUOTE_FIELDS
            .iter()
            .map(|field| ((*field).to_owned(), serde_json::Value::Null))
            .collect(),
    };
    let verdict = if result.is_ok() {
        "accepted"
    } else {
        "rejected"
    };
    out.insert("verdict".into(), verdict.into());
    if let Err(error) = result {
        out.insert("error".into(), error.to_string().into());
        out.insert("reason".into(), reason_code(error).into());
    }
    serde_json::Value::Object(out)
}

/// A stable, machine-readable name for the failure.
fn reason_code(error: &AttestationError) -> String {
    match error {
        AttestationError::Dcap { check, .. } => format!("dcap:{check:?}"),
        AttestationError::Format(_) => "format".into(),
        AttestationError::Policy { violation, .. } => format!("policy:{}", violation.kind()),
        _ => "other".into(),
    }
}

fn print_human(
    result: &Result<VerifiedQuote, AttestationError>,
    collateral: &Collateral,
    now: u64,
) {
    match result {
        Ok(quote) => {
            println!(
                "accepted: quote v{}, profile {:?}",
                quote.version(),
                quote.profile()
            );
            print_quote(quote);
        }
        Err(error) => {
            println!("rejected: {}", super::explain::attestation_summary(error));
            match error {
                AttestationError::Policy { quote, .. } => print_quote(quote),
                AttestationError::Dcap {
                    check: DcapCheck::CollateralExpired | DcapCheck::CollateralNotYetValid,
                    ..
                } => {
                    for line in super::explain::window_lines(collateral, now) {
                        println!("  {line}");
                    }
                }
                AttestationError::Dcap { check, .. } => {
                    if let Some(hint) = super::explain::dcap_hint(*check) {
                        println!("  hint: {hint}");
                    }
                }
                _ => {}
            }
        }
    }
}

fn print_quote(quote: &AuthenticQuote) {
    let m = quote.measurements();
    println!(
        "  tcb_status    {} {:?}",
        quote.tcb_status(),
        quote.advisory_ids()
    );
    println!("  mr_td         {}", hex::encode(m.mr_td));
    for (i, rtmr) in m.rtmr.iter().enumerate() {
        println!("  rtmr{i}         {}", hex::encode(rtmr));
    }
    println!("  td_attributes {}", hex::encode(m.td_attributes));
    println!(
        "  report_data   {}",
        hex::encode(quote.report_data().as_bytes())
    );
    println!("  quote_digest  {}", hex::encode(quote.quote_digest()));
}
