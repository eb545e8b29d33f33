//! `ratls inspect-cert`: decode a certificate's evidence without verifying the quote.
//!
//! Exit codes: 0 decoded, and the quote's report_data binds the certificate (or there is no
//! quote); 1 decoded, but the binding does not hold or the quote is not a well-formed TDX quote;
//! 2 the file is unreadable or not a well-formed ratls certificate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ratls_quic::{canonical_quote, QuoteLayout};
use ratls_quic::{parse_certificate, verify_binding, ParsedCertificate, EVIDENCE_VERSION};
use ratls_quic::{Measurements, ReportData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

/// Arguments of `ratls inspect-cert`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectCertArgs {
    /// The certificate, DER or PEM.
    file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `ratls inspect-cert`.
pub(crate) fn run(args: &InspectCertArgs) -> ExitCode {
    let cert = match load(args) {
        Ok(cert) => cert,
        Err(error) => return super::input_error(&error),
    };
    let report = Report::of(&cert);
    if args.json {
        println!("{}", report.json(&cert));
    } else {
        report.print(&cert);
    }
    if report.binding_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn load(args: &InspectCertArgs) -> anyhow::Result<ParsedCertificate> {
    let bytes = super::read_limited(&args.file, 256 * 1024)?;
    let der = if bytes.starts_with(b"-----BEGIN") {
        CertificateDer::from_pem_slice(&bytes)
            .with_context(|| format!("{}: no PEM certificate", args.file.display()))?
    } else {
        CertificateDer::from(bytes)
    };
    parse_certificate(&der).with_context(|| format!("{}", args.file.display()))
}

/// The quote fields read by offset, without any signature check.
pub(super) struct Unverified {
    version: u16,
    pub(super) measurements: Measurements,
    report_data: ReportData,
    /// Length of the quote without padding.
    canonical_len: usize,
    /// blake3 of the canonical quote.
    digest: [u8; 32],
}

/// What inspection found.
struct Report {
    quote: Option<Result<Unverified, String>>,
    binding: Option<Result<(), String>>,
}

impl Report {
    fn of(cert: &ParsedCertificate) -> Self {
        let Some(evidence) = &cert.evidence else {
            return Self {
                quote: None,
                binding: None,
            };
        };
        let quote = read_quote(&evidence.quote);
        let binding = match &quote {
            Ok(fields) => Some(
                verify_binding(&cert.binding_input(), &fields.report_data)
                    .map_err(|e| e.to_string()),
            ),
            Err(_) => Some(Err("quote unreadable".into())),
        };
        Self {
            quote: Some(quote),
            binding,
        }
    }

    fn binding_ok(&self) -> bool {
        !matches!(self.binding, Some(Err(_)))
    }

    fn print(&self, cert: &ParsedCertificate) {
        println!("certificate");
        println!("  peer id       {}", cert.peer_id);
        println!(
            "  sw digest     {}",
            hex::encode(cert.peer_id.attestation_digest())
        );
        println!(
            "  not before    {} ({})",
            cert.not_before,
            date(cert.not_before)
        );
        println!(
            "  not after     {} ({})",
            cert.not_after,
            date(cert.not_after)
        );
        let Some(evidence) = &cert.evidence else {
            println!("evidence        none (a Software-level certificate)");
            return;
        };
        println!("evidence");
        println!("  version       {EVIDENCE_VERSION}");
        println!("  level         {} (claimed by the issuer)", evidence.level);
        println!("  quote size    {} bytes", evidence.quote.len());
        match &self.quote {
            Some(Ok(fields)) => {
                println!(
                    "  quote digest  {} (blake3, {} bytes)",
                    hex::encode(fields.digest),
                    fields.canonical_len
                );
                println!("quote (UNVERIFIED: parsed by offset, no signature checked)");
                println!("  version       {}", fields.version);
                let m = &fields.measurements;
                println!("  mr_td         {}", hex::encode(m.mr_td));
                for (i, rtmr) in m.rtmr.iter().enumerate() {
                    println!("  rtmr{i}         {}", hex::encode(rtmr));
                }
                println!("  mr_config_id  {}", hex::encode(m.mr_config_id));
                println!("  mr_owner      {}", hex::encode(m.mr_owner));
                println!("  mr_owner_cfg  {}", hex::encode(m.mr_owner_config));
                println!("  xfam          {}", hex::encode(m.xfam));
                println!(
                    "  td_attributes {}{}",
                    hex::encode(m.td_attributes),
                    if m.is_debug() { " (DEBUG TD)" } else { "" }
                );
                println!(
                    "  report_data   {}",
                    hex::encode(fields.report_data.as_bytes())
                );
            }
            Some(Err(error)) => println!("  quote         not a well-formed TDX quote: {error}"),
            None => {}
        }
        match &self.binding {
            Some(Ok(())) => {
                println!("binding: ok (report_data binds this certificate's key and validity)")
            }
            Some(Err(error)) => println!("binding: MISMATCH ({error})"),
            None => {}
        }
    }

    fn json(&self, cert: &ParsedCertificate) -> Value {
        let evidence = cert.evidence.as_ref().map(|evidence| {
            let quote = match &self.quote {
                Some(Ok(fields)) => {
                    let mut out = super::measurements_json(&fields.measurements);
                    let rest = [
                        ("verified", json!(false)),
                        ("version", json!(fields.version)),
                        ("canonical_len", json!(fields.canonical_len)),
                        ("quote_digest", json!(hex::encode(fields.digest))),
                        (
                            "report_data",
                            json!(hex::encode(fields.report_data.as_bytes())),
                        ),
                    ];
                    out.extend(
                        rest.into_iter()
                            .map(|(name, value)| (name.to_owned(), value)),
                    );
                    Value::Object(out)
                }
                Some(Err(error)) => json!({ "error": error }),
                None => Value::Null,
            };
            json!({
                "version": EVIDENCE_VERSION,
                "level": evidence.level.as_str(),
                "quote_size": evidence.quote.len(),
                "quote": quote,
            })
        });
        let binding = match &self.binding {
            Some(Ok(())) => json!("ok"),
            Some(Err(error)) => json!(format!("mismatch: {error}")),
            None => Value::Null,
        };
        json!({
            "peer_id": cert.peer_id.to_string(),
            "software_digest": hex::encode(cert.peer_id.attestation_digest()),
            "not_before": cert.not_before,
            "not_after": cert.not_after,
            "evidence": evidence,
            "binding": binding,
        })
    }
}

/// Reads the TD report of `quote` by offset (same prefix for TD 1.0 and TD 1.5 reports), the
/// canonical length and its blake3 digest.
pub(super) fn read_quote(quote: &[u8]) -> Result<Unverified, String> {
    let layout = QuoteLayout::parse(quote).map_err(|e| e.to_string())?;
    let canonical = canonical_quote(quote).map_err(|e| e.to_string())?;
    let at = |offset: usize, len: usize| {
        let start = layout.report_offset + offset;
        canonical
            .get(start..start + len)
            .ok_or_else(|| "TD report truncated".to_owned())
    };
    let mut m = Measurements::ZERO;
    m.td_attributes.copy_from_slice(at(120, 8)?);
    m.xfam.copy_from_slice(at(128, 8)?);
    m.mr_td.copy_from_slice(at(136, 48)?);
    m.mr_config_id.copy_from_slice(at(184, 48)?);
    m.mr_owner.copy_from_slice(at(232, 48)?);
    m.mr_owner_config.copy_from_slice(at(280, 48)?);
    for (i, rtmr) in m.rtmr.iter_mut().enumerate() {
        rtmr.copy_from_slice(at(328 + 48 * i, 48)?);
    }
    let mut report_data = [0u8; 64];
    report_data.copy_from_slice(at(520, 64)?);
    Ok(Unverified {
        version: layout.version,
        measurements: m,
        report_data: ReportData(report_data),
        canonical_len: canonical.len(),
        digest: *blake3::hash(canonical).as_bytes(),
    })
}

fn date(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|secs| x509_parser::time::ASN1Time::from_timestamp(secs).ok())
        .map_or_else(|| "?".into(), |t| t.to_string())
}
