//! Summary statistics over latency samples.

use std::time::Duration;

use serde::Serialize;

/// Percentiles and mean of a set of durations, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Median (nearest rank).
    pub p50_us: f64,
    /// 90th percentile (nearest rank).
    pub p90_us: f64,
    /// 99th percentile (nearest rank).
    pub p99_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Smallest sample.
    pub min_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Stats {
    /// Summarises `samples`; `None` when there are none.
    pub fn from_samples(samples: &[Duration]) -> Option<Self> {
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let first = *us.first()?;
        let last = *us.last()?;
        let mean = us.iter().sum::<f64>() / us.len() as f64;
        Some(Self {
            n: us.len(),
            p50_us: nearest_rank(&us, 50.0),
            p90_us: nearest_rank(&us, 90.0),
            p99_us: nearest_rank(&us, 99.0),
            mean_us: mean,
            min_us: first,
            max_us: last,
        })
    }
}

/// Nearest-rank percentile of an ascending, non-empty slice.
fn nearest_rank(sorted: &[f64], percentile: f64) -> f64 {
    let rank = (percentile / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

/// The ratio of a scenario's figures to the baseline's, measured in the same run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Ratio {
    /// Scenario p50 / baseline p50.
    pub p50: f64,
    /// Scenario p99 / baseline p99.
    pub p99: f64,
}

impl Ratio {
    /// `this` relative to `baseline`.
    pub fn of(this: &Stats, baseline: &Stats) -> Self {
        Self {
            p50: this.p50_us / baseline.p50_us,
            p99: this.p99_us / baseline.p99_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_hundred_are_nearest_ranks() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let stats = Stats::from_samples(&samples).unwrap();
        assert_eq!(stats.n, 100);
        assert_eq!(stats.p50_us, 50.0);
        assert_eq!(stats.p90_us, 90.0);
        assert_eq!(stats.p99_us, 99.0);
        assert_eq!(stats.min_us, 1.0);
        assert_eq!(stats.max_us, 100.0);
        assert!((stats.mean_us - 50.5).abs() < 1e-9);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let stats = Stats::from_samples(&[Duration::from_micros(7)]).unwrap();
        assert_eq!((stats.p50_us, stats.p99_us), (7.0, 7.0));
    }

    #[test]
    fn no_samples_give_no_stats() {
        assert!(Stats::from_samples(&[]).is_none());
    }
}
