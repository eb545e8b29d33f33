//! Verifier micro-benchmark: DCAP verification of a real TDX quote, no network.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratls_quic::policy::Policy;
use ratls_quic::tdx::{Collateral, QuoteVerifier};
use serde::Serialize;

use crate::stats::Stats;

/// Name of the real vector the benchmark verifies.
pub const VECTOR: &str = "v4_tdx10_phala_uptodate";
/// The fixed time (unix seconds) at which [`VECTOR`] verifies.
pub const VECTOR_NOW: u64 = 1_750_377_600;

const QUOTE: &[u8] = include_bytes!("../../certs/vectors/v4_tdx10_phala_uptodate/quote.bin");
const COLLATERAL: &[u8] =
    include_bytes!("../../certs/vectors/v4_tdx10_phala_uptodate/collateral.json");

/// Figures of the verifier micro-benchmark.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifierReport {
    /// What was called.
    pub description: String,
    /// Vector name under `certs/vectors/`.
    pub vector: String,
    /// Quote size, bytes.
    pub quote_bytes: usize,
    /// Time per call.
    pub per_call: Stats,
}

/// Times `iterations` calls of `QuoteVerifier::intel().verify` on [`VECTOR`] at [`VECTOR_NOW`]
/// with the authenticity-only policy, after one untimed call that must succeed. Blocking.
pub fn run(iterations: usize) -> Result<Option<VerifierReport>> {
    let collateral = Collateral::from_json(COLLATERAL).context("vector collateral")?;
    let verifier = QuoteVerifier::intel();
    let policy = Policy::authenticity_only();
    verifier
        .verify(QUOTE, &collateral, VECTOR_NOW, &policy)
        .context("vector quote must verify")?;
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let verified = verifier.verify(QUOTE, &collateral, VECTOR_NOW, &policy);
        samples.push(start.elapsed());
        verified.context("vector quote must verify")?;
    }
    Ok(
        Stats::from_samples(&samples).map(|per_call| VerifierReport {
            description: "QuoteVerifier::intel().verify(quote, collateral, now, authenticity_only)"
                .to_owned(),
            vector: VECTOR.to_owned(),
            quote_bytes: QUOTE.len(),
            per_call,
        }),
    )
}
