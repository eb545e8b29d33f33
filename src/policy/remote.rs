//! The `[remote]` part of a policy: the TdxRemote level. A peer reaches it when its quotes
//! verified with collateral fetched from a declared collateral service no longer than
//! `max_collateral_age_secs` ago. Judged from the collateral's provenance; reads no clock.

use crate::level::AttestationLevel;
use crate::tdx::CollateralProvenance;

/// Default `max_collateral_age_secs`: ten minutes.
pub const DEFAULT_MAX_COLLATERAL_AGE_SECS: u64 = 600;

/// Which collateral services a policy trusts for TdxRemote, and how stale their collateral may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePolicy {
    services: Vec<String>,
    max_collateral_age_secs: u64,
}

/// Why collateral does not meet a policy's `[remote]` section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteViolation {
    /// The collateral was not fetched from a service (a static file, say).
    #[error("the collateral was not fetched from a collateral service")]
    NoProvenance,
    /// It was fetched from a service the policy does not declare.
    #[error("the collateral came from {0}, which the policy does not declare")]
    UndeclaredService(String),
    /// It was fetched longer ago than allowed (the service could not be reached since).
    #[error(
        "the collateral was fetched {age_secs} s ago, the policy allows at most {max_age_secs} s"
    )]
    Stale {
        /// Seconds since the fetch.
        age_secs: u64,
        /// The limit.
        max_age_secs: u64,
    },
}

/// A policy whose level is TdxRemote or above declares no collateral service (no `[remote]`
/// section) and does not opt out with the dangerous static-collateral setting. Refused when the
/// policy file is read and when an endpoint configuration is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "level {level} needs a [remote] section declaring a collateral service (pccs = [...] or \
     pcs = \"...\"); to verify with static collateral instead, opt out explicitly with \
     [dangerous] static_collateral = true (Policy::dangerous().static_collateral())"
)]
pub struct RemoteSectionMissing {
    /// The policy's level floor.
    pub level: AttestationLevel,
}

fn normalise(url: &str) -> &str {
    url.trim_end_matches('/')
}

impl RemotePolicy {
    /// Trust collateral fetched from `services` (base URLs) at most `max_collateral_age_secs`
    /// ago.
    pub fn new(services: Vec<String>, max_collateral_age_secs: u64) -> Self {
        Self {
            services: services.iter().map(|s| normalise(s).to_owned()).collect(),
            max_collateral_age_secs,
        }
    }

    /// The declared service base URLs.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// The largest age of the collateral behind a verdict, seconds.
    pub fn max_collateral_age_secs(&self) -> u64 {
        self.max_collateral_age_secs
    }

    /// Judges the provenance of the collateral a quote verified with, at `now`.
    pub fn check(
        &self,
        provenance: Option<&CollateralProvenance>,
        now: u64,
    ) -> Result<(), RemoteViolation> {
        let provenance = provenance.ok_or(RemoteViolation::NoProvenance)?;
        let source = normalise(&provenance.source);
        if !self.services.iter().any(|s| s == source) {
            return Err(RemoteViolation::UndeclaredService(source.to_owned()));
        }
        let age_secs = now.saturating_sub(provenance.fetched_at);
        if age_secs > self.max_collateral_age_secs {
            return Err(RemoteViolation::Stale {
                age_secs,
                max_age_secs: self.max_collateral_age_secs,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(source: &str, at: u64) -> CollateralProvenance {
        CollateralProvenance {
            source: source.to_owned(),
            fetched_at: at,
            item_digests: [[0; 32]; 4],
        }
    }

    #[test]
    fn declared_fresh_collateral_passes_and_everything_else_is_named() {
        let policy = RemotePolicy::new(vec!["http://pccs:8081/".into()], 600);
        assert_eq!(
            policy.check(Some(&fetched("http://pccs:8081", 1000)), 1600),
            Ok(())
        );
        assert_eq!(
            policy.check(Some(&fetched("http://pccs:8081/", 1000)), 1601),
            Err(RemoteViolation::Stale {
                age_secs: 601,
                max_age_secs: 600
            })
        );
        assert_eq!(
            policy.check(Some(&fetched("http://other", 1000)), 1000),
            Err(RemoteViolation::UndeclaredService("http://other".into()))
        );
        assert_eq!(policy.check(None, 1000), Err(RemoteViolation::NoProvenance));
    }
}
