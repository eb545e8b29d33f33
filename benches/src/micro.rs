//! Micro-benchmarks without network: DCAP verification of a real TDX quote (a TLS verifier runs
//! it per handshake) and certificate issuance (runs at start-up and rotation).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratls_quic::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb,
};
use std::sync::Arc;

use ratls_quic::{AttestedTlsConfig, ExpectedPeer, Identity, Policy, StaticCollateral};
use ratls_quic::{Collateral, QuoteVerifier, ReportData};
use serde::Serialize;

use crate::stats::Stats;
use crate::tls::Credential;

/// Name of the real vector the verifier benchmark uses.
pub const VECTOR: &str = "v4_tdx10_phala_uptodate";
/// The fixed time (unix seconds) at which [`VECTOR`] verifies.
pub const VECTOR_NOW: u64 = 1_750_377_600;

const QUOTE: &[u8] = include_bytes!("../../certs/vectors/v4_tdx10_phala_uptodate/quote.bin");
const COLLATERAL: &[u8] =
    include_bytes!("../../certs/vectors/v4_tdx10_phala_uptodate/collateral.json");

/// Figures of one micro-benchmark.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MicroReport {
    /// Short name, used as the row label.
    pub name: String,
    /// What one call does.
    pub description: String,
    /// Time per call.
    pub per_call: Stats,
}

/// Runs every micro-benchmark with `iterations` timed calls each (none when 0). Blocking.
pub fn run_all(iterations: usize, server_padding: usize) -> Result<Vec<MicroReport>> {
    if iterations == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![
        verify_quote(iterations, Cache::Off)?,
        verify_quote(iterations, Cache::On)?,
        verify_sibling_quotes(iterations)?,
        synthetic_quote(iterations)?,
        issue_certificate(iterations, 0)?,
        issue_certificate(iterations, server_padding)?,
        connection_configs(iterations)?,
    ])
}

/// Whether a verifier micro-benchmark uses the verdict cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Full DCAP verification on every call.
    Off,
    /// The default verifier: the untimed first call fills the cache, so timed calls are hits
    /// (quote signature check and TD report parsing).
    On,
}

/// Times `QuoteVerifier::intel().verify` on [`VECTOR`] at [`VECTOR_NOW`] with the
/// authenticity-only policy, after one untimed call that must succeed.
pub fn verify_quote(iterations: usize, cache: Cache) -> Result<MicroReport> {
    let collateral = Collateral::from_json(COLLATERAL).context("vector collateral")?;
    let (name, verifier, what) = match cache {
        Cache::Off => (
            "dcap-verify",
            QuoteVerifier::intel().without_cache(),
            "full DCAP verification (cache off)",
        ),
        Cache::On => (
            "dcap-verify-cache-repeat",
            QuoteVerifier::intel(),
            "verdict cache hit on the same quote again (a certificate quote): digest match, TD report",
        ),
    };
    let policy = Policy::authenticity_only();
    let per_call = time_calls(iterations, || {
        verifier
            .verify(QUOTE, &collateral, VECTOR_NOW, &policy)
            .map(drop)
            .context("vector quote must verify")
    })?;
    if cache == Cache::On {
        let stats = verifier.cache_stats();
        anyhow::ensure!(
            stats.hits as usize == iterations,
            "expected only hits: {stats:?}"
        );
    }
    Ok(MicroReport {
        name: name.to_owned(),
        description: format!(
            "`QuoteVerifier::intel().verify`, {what}, authenticity-only policy, {VECTOR} ({} B quote)",
            QUOTE.len()
        ),
        per_call,
    })
}

/// Times verifying fresh synthetic quotes (each with other report data, as bond proofs are)
/// from a platform whose verdict is cached: a cache hit with the quote signature checked.
pub fn verify_sibling_quotes(iterations: usize) -> Result<MicroReport> {
    let pki =
        SyntheticPki::generate(SyntheticPkiParams::new(VECTOR_NOW)).context("synthetic PKI")?;
    let collateral = Collateral::new(pki.collateral().clone()).context("collateral")?;
    let quotes = (0..=iterations)
        .map(|i| {
            let mut report_data = [0u8; 64];
            report_data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            pki.quote(&QuoteSpec {
                report_data: ReportData(report_data),
                measurements: sample_measurements(),
                tcb: SyntheticTcb::UpToDate,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .context("quotes")?;
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let policy = Policy::authenticity_only();
    let now = VECTOR_NOW + 60;
    let mut next = quotes.iter();
    let per_call = time_calls(iterations, || {
        let quote = next.next().context("out of quotes")?;
        verifier
            .verify(quote, &collateral, now, &policy)
            .map(drop)
            .context("synthetic quote must verify")
    })?;
    let stats = verifier.cache_stats();
    anyhow::ensure!(
        stats.hits as usize == iterations && stats.repeats == 0,
        "expected only signature-checked hits: {stats:?}"
    );
    Ok(MicroReport {
        name: "dcap-verify-cache-hit".to_owned(),
        description: "verdict cache hit on a fresh quote of a known platform (a bond proof): \
                      P-256 quote signature, TD report; synthetic v4 quote"
            .to_owned(),
        per_call,
    })
}

/// Times signing one synthetic DCAP quote (what the synthetic provider does per certificate
/// and per bond proof; real TDX quote generation takes milliseconds or more).
pub fn synthetic_quote(iterations: usize) -> Result<MicroReport> {
    let pki =
        SyntheticPki::generate(SyntheticPkiParams::new(VECTOR_NOW)).context("synthetic PKI")?;
    let spec = QuoteSpec {
        report_data: ReportData([7; 64]),
        measurements: sample_measurements(),
        tcb: SyntheticTcb::UpToDate,
    };
    let per_call = time_calls(iterations, || pki.quote(&spec).map(drop).context("quote"))?;
    Ok(MicroReport {
        name: "synthetic-quote".to_owned(),
        description: "one synthetic DCAP quote signed (P-256), as the bench's quote provider"
            .to_owned(),
        per_call,
    })
}

/// Times generating an Ed25519 key and a self-signed certificate with `padding` bytes of
/// dummy extension (rcgen).
pub fn issue_certificate(iterations: usize, padding: usize) -> Result<MicroReport> {
    let per_call = time_calls(iterations, || Credential::generate(padding).map(drop))?;
    let (name, description) = if padding == 0 {
        (
            "rcgen-ed25519".to_owned(),
            "Ed25519 key + self-signed cert (rcgen)".to_owned(),
        )
    } else {
        (
            "rcgen-ed25519-padded".to_owned(),
            format!("Ed25519 key + self-signed cert with {padding} B extension (rcgen)"),
        )
    };
    Ok(MicroReport {
        name,
        description,
        per_call,
    })
}

/// Times what an endpoint builds per connection: a client and a server rustls configuration
/// from the parts built once at bind (`AttestedTlsConfig`), each wrapped for QUIC.
pub fn connection_configs(iterations: usize) -> Result<MicroReport> {
    let identity = Identity::generate().context("identity")?;
    let issued = ratls_quic::issue_certificate(&identity, VECTOR_NOW, VECTOR_NOW + 3600, None)
        .context("certificate")?;
    let collateral = Collateral::from_json(COLLATERAL).context("collateral")?;
    let tls = AttestedTlsConfig::new(
        Arc::new(Policy::authenticity_only()),
        QuoteVerifier::intel(),
        Arc::new(StaticCollateral(Arc::new(collateral))),
        &issued,
        false,
    )
    .context("TLS configuration")?;
    let per_call = time_calls(iterations, || {
        let (client, _) = tls.client(ExpectedPeer::AnyAllowedByPolicy);
        let (server, _) = tls.server();
        quinn::crypto::rustls::QuicClientConfig::try_from(client).context("client")?;
        quinn::crypto::rustls::QuicServerConfig::try_from(server).context("server")?;
        Ok(())
    })?;
    Ok(MicroReport {
        name: "connection-configs".to_owned(),
        description: "per-connection client + server rustls configs for QUIC (one each)".to_owned(),
        per_call,
    })
}

/// One untimed call, then `iterations` timed ones; any failure ends the benchmark.
fn time_calls(iterations: usize, mut call: impl FnMut() -> Result<()>) -> Result<Stats> {
    call()?;
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let outcome = call();
        samples.push(start.elapsed());
        outcome?;
    }
    Stats::from_samples(&samples).context("no timed calls")
}
