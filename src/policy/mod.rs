//! Policy: which Measurements, TD attributes and TCB states a verifier accepts.
//!
//! DCAP verification ([`crate::tdx::QuoteVerifier`]) answers "is this quote authentic, and what is
//! the platform's TCB status?". A [`Policy`] answers "do I accept it?". Defaults are strict:
//! `UpToDate` only, no debug TD, and an empty [`MeasurementPolicy`] accepts nothing.
//!
//! Policies are usually read from TOML, see `file` for the schema.

mod admit;
mod file;
mod measurement;
mod rebuild;
mod remote;
mod tcb;

pub use admit::{AttestationError, VerifiedQuote};
pub use file::PolicyFileError;
pub use measurement::{
    Expected, HexError, MeasurementMismatch, MeasurementPolicy, MeasurementProfile, Register,
};
pub use rebuild::RebuildPinError;
pub use remote::{
    RemotePolicy, RemoteSectionMissing, RemoteViolation, DEFAULT_MAX_COLLATERAL_AGE_SECS,
};
pub use tcb::TcbPolicy;

use std::collections::BTreeSet;

use crate::level::AttestationLevel;
use crate::tdx::{Measurements, TcbStatus};

/// How fresh the evidence of a bond must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Freshness {
    /// Each attested side proves itself with a fresh quote bound to this very connection (its
    /// TLS exporter) before the connection is handed out. Required at
    /// [`AttestationLevel::TdxRaTlsBidirectional`] and above.
    #[default]
    PerBond,
    /// Only the quote in the short-lived certificate: no quote per connection. For high
    /// connection rates, allowed only at [`AttestationLevel::TdxLocal`] and
    /// [`AttestationLevel::TdxRemote`]; every bond it admits is logged.
    Certificate,
}

impl Freshness {
    /// The name used in policy files: `per-bond` or `certificate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerBond => "per-bond",
            Self::Certificate => "certificate",
        }
    }
}

/// Everything a verifier requires of a peer beyond the authenticity of its quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Accepted Measurements.
    pub measurements: MeasurementPolicy,
    /// Accepted TCB states and collateral ages.
    pub tcb: TcbPolicy,
    /// Identity digests (blake3 of the Ed25519 public key) accepted from peers that present no
    /// quote; used only when `level` is [`AttestationLevel::Software`]. Empty accepts none.
    pub software_allow: BTreeSet<[u8; 32]>,
    /// Identities refused from their retirement time on, whatever they present.
    pub retired: crate::evidence_log::RetiredIdentities,
    level: AttestationLevel,
    freshness: Freshness,
    allow_debug: bool,
    rebuilt: Option<crate::measure::RebuiltMeasurements>,
    remote: Option<RemotePolicy>,
    static_collateral: bool,
}

impl Policy {
    /// A policy with these Measurement profiles and the strict TCB defaults.
    ///
    /// The level floor is [`AttestationLevel::TdxRaTlsBidirectional`] with per-bond freshness.
    pub fn new(measurements: MeasurementPolicy) -> Self {
        Self {
            measurements,
            tcb: TcbPolicy::default(),
            software_allow: BTreeSet::new(),
            retired: crate::evidence_log::RetiredIdentities::default(),
            level: AttestationLevel::TdxRaTlsBidirectional,
            freshness: Freshness::PerBond,
            allow_debug: false,
            rebuilt: None,
            remote: None,
            static_collateral: false,
        }
    }

    /// The lowest level a peer must reach.
    pub fn level(&self) -> AttestationLevel {
        self.level
    }

    /// The freshness this policy requires of attested peers.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// Sets the level floor. Levels from TdxRaTlsBidirectional up require per-bond freshness, so
    /// this resets [`Freshness::Certificate`] to [`Freshness::PerBond`] there.
    pub fn set_level(&mut self, level: AttestationLevel) -> &mut Self {
        self.level = level;
        if !Self::certificate_freshness_allowed(level) {
            self.freshness = Freshness::PerBond;
        }
        self
    }

    fn certificate_freshness_allowed(level: AttestationLevel) -> bool {
        matches!(
            level,
            AttestationLevel::TdxLocal | AttestationLevel::TdxRemote
        )
    }

    /// Checks authenticity only: any Measurements, `UpToDate` only, no debug TD. This is what
    /// `ratls verify-quote` applies without `--policy`; a transport should pin Measurements.
    pub fn authenticity_only() -> Self {
        Self::new(MeasurementPolicy::any_measurements())
    }

    /// Whether a debug TD is accepted (never by default).
    pub fn allows_debug(&self) -> bool {
        self.allow_debug
    }

    /// Settings that weaken the policy.
    pub fn dangerous(&mut self) -> DangerousPolicy<'_> {
        DangerousPolicy { policy: self }
    }

    /// The `[remote]` section: declared collateral services and the staleness bound of level
    /// TdxRemote. When present, every quote must verify with collateral fetched from one of
    /// them within the bound, at every attested level.
    pub fn remote(&self) -> Option<&RemotePolicy> {
        self.remote.as_ref()
    }

    /// Sets (or clears) the `[remote]` section.
    pub fn set_remote(&mut self, remote: Option<RemotePolicy>) -> &mut Self {
        self.remote = remote;
        self
    }

    /// Whether the policy opted out of the `[remote]` requirement
    /// ([`DangerousPolicy::static_collateral`]): without a `[remote]` section, quotes verified
    /// with static collateral count for TdxRemote and the levels above it.
    pub fn accepts_static_collateral(&self) -> bool {
        self.static_collateral
    }

    /// Levels are cumulative: TdxRemote, TdxRaTlsBidirectional and TdxPlusReproducibleBuild all
    /// include the TdxRemote check, so a policy at one of them must declare its collateral
    /// services in a `[remote]` section, or opt out explicitly
    /// ([`DangerousPolicy::static_collateral`]). Checked when a policy file is read and when an
    /// endpoint configuration is built.
    pub fn check_remote_declared(&self) -> Result<(), RemoteSectionMissing> {
        if self.level < AttestationLevel::TdxRemote
            || self.remote.is_some()
            || self.static_collateral
        {
            Ok(())
        } else {
            Err(RemoteSectionMissing { level: self.level })
        }
    }

    /// Checks verified quote facts against this policy and names the profile that matched.
    pub(crate) fn check(
        &self,
        facts: &QuoteFacts<'_>,
        now: u64,
    ) -> Result<String, PolicyViolation> {
        if facts.measurements.is_debug() && !self.allow_debug {
            return Err(PolicyViolation::DebugTd);
        }
        if !self.tcb.accepts(facts.tcb_status) {
            return Err(PolicyViolation::TcbStatus(facts.tcb_status));
        }
        for id in facts.advisory_ids {
            if self.tcb.advisory_deny.contains(id) {
                return Err(PolicyViolation::AdvisoryDenied(id.clone()));
            }
            if let Some(allow) = &self.tcb.advisory_allow {
                if !allow.contains(id) {
                    return Err(PolicyViolation::AdvisoryNotAllowed(id.clone()));
                }
            }
        }
        if let Some(max_age_secs) = self.tcb.max_collateral_age_secs {
            for (item, issued) in [
                ("TCB info", facts.tcb_info_issued),
                ("QE identity", facts.qe_identity_issued),
            ] {
                let age_secs = now.saturating_sub(issued);
                if age_secs > max_age_secs {
                    return Err(PolicyViolation::CollateralTooOld {
                        item,
                        age_secs,
                        max_age_secs,
                    });
                }
            }
        }
        self.measurements
            .check(facts.measurements)
            .map(str::to_owned)
            .map_err(PolicyViolation::Measurements)
    }
}

/// Weakening settings of a [`Policy`], each logged when applied.
#[derive(Debug)]
pub struct DangerousPolicy<'a> {
    policy: &'a mut Policy,
}

impl DangerousPolicy<'_> {
    /// Accept debug TDs, whose memory and CPU state the host can read.
    pub fn allow_debug(self) {
        tracing::warn!("policy accepts debug TDs: their memory is readable by the host");
        self.policy.allow_debug = true;
    }

    /// Accept certificate evidence without a fresh quote per connection. Only at TdxLocal and
    /// TdxRemote; refused (returns `false`, policy unchanged) at any other level.
    pub fn certificate_freshness(self) -> bool {
        if !Policy::certificate_freshness_allowed(self.policy.level) {
            return false;
        }
        tracing::warn!(
            level = %self.policy.level,
            "policy accepts certificate freshness: quotes are not fresh per connection"
        );
        self.policy.freshness = Freshness::Certificate;
        true
    }
}

impl DangerousPolicy<'_> {
    /// Let a policy without a `[remote]` section reach TdxRemote and the levels above it with
    /// collateral from a file or a [`crate::StaticCollateral`] store: quotes are then verified
    /// with whatever collateral the endpoint holds, however old (within its `nextUpdate`), so a
    /// revocation or TCB recovery published since is not seen. For tests, benchmarks and sites
    /// that refresh collateral files by other means. Has no effect when the policy has a
    /// `[remote]` section (its check applies). Logged (a warning) once for every endpoint
    /// configuration built with it.
    pub fn static_collateral(self) {
        self.policy.static_collateral = true;
    }
}

/// The authenticated facts of a quote that a [`Policy`] judges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuoteFacts<'a> {
    /// The TD's Measurements.
    pub measurements: &'a Measurements,
    /// The platform TCB status.
    pub tcb_status: TcbStatus,
    /// Advisory IDs attached to that status.
    pub advisory_ids: &'a [String],
    /// Issue date of the TCB info (unix seconds).
    pub tcb_info_issued: u64,
    /// Issue date of the QE identity (unix seconds).
    pub qe_identity_issued: u64,
}

/// An authentic quote that the policy does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// An advisory ID on the deny list.
    #[error("advisory {0} is denied by policy")]
    AdvisoryDenied(String),
    /// An advisory ID not on the allow list.
    #[error("advisory {0} is not on the policy's allow list")]
    AdvisoryNotAllowed(String),
    /// TCB info or QE identity issued longer ago than the policy allows.
    #[error("{item} was issued {age_secs} s ago, policy allows at most {max_age_secs} s")]
    CollateralTooOld {
        /// "TCB info" or "QE identity".
        item: &'static str,
        /// Its age at `now`.
        age_secs: u64,
        /// The limit.
        max_age_secs: u64,
    },
    /// The TD runs in debug mode and the policy does not allow it.
    #[error("debug or profiling TD refused: the policy does not set allow_debug")]
    DebugTd,
    /// No Measurement profile matched.
    #[error("{0}")]
    Measurements(MeasurementMismatch),
    /// The collateral does not meet the policy's `[remote]` section (TdxRemote).
    #[error("collateral: {0}")]
    Remote(RemoteViolation),
    /// The platform TCB status is not accepted.
    #[error("TCB status {0} is not accepted by policy")]
    TcbStatus(TcbStatus),
}

impl PolicyViolation {
    /// A stable name for the kind of violation (`"Measurements"`, `"DebugTd"`, ...), for
    /// machine-readable reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AdvisoryDenied(_) => "AdvisoryDenied",
            Self::AdvisoryNotAllowed(_) => "AdvisoryNotAllowed",
            Self::CollateralTooOld { .. } => "CollateralTooOld",
            Self::DebugTd => "DebugTd",
            Self::Measurements(_) => "Measurements",
            Self::Remote(_) => "Remote",
            Self::TcbStatus(_) => "TcbStatus",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        m: &'a Measurements,
        status: TcbStatus,
        advisories: &'a [String],
    ) -> QuoteFacts<'a> {
        QuoteFacts {
            measurements: m,
            tcb_status: status,
            advisory_ids: advisories,
            tcb_info_issued: 1_000,
            qe_identity_issued: 2_000,
        }
    }

    #[test]
    fn debug_td_refused_unless_allowed() {
        let mut m = Measurements::ZERO;
        m.td_attributes[0] = 1;
        let mut policy = Policy::authenticity_only();
        assert_eq!(
            policy.check(&facts(&m, TcbStatus::UpToDate, &[]), 3_000),
            Err(PolicyViolation::DebugTd)
        );
        policy.dangerous().allow_debug();
        assert!(policy
            .check(&facts(&m, TcbStatus::UpToDate, &[]), 3_000)
            .is_ok());
    }

    #[test]
    fn only_up_to_date_by_default_and_revoked_never() {
        let m = Measurements::ZERO;
        let mut policy = Policy::authenticity_only();
        for status in TcbStatus::ALL {
            let result = policy.check(&facts(&m, status, &[]), 3_000);
            assert_eq!(result.is_ok(), status == TcbStatus::UpToDate, "{status}");
        }
        for status in TcbStatus::ALL {
            policy.tcb.accept(status);
        }
        assert_eq!(
            policy.check(&facts(&m, TcbStatus::Revoked, &[]), 3_000),
            Err(PolicyViolation::TcbStatus(TcbStatus::Revoked))
        );
    }

    #[test]
    fn advisories_and_collateral_age() {
        let m = Measurements::ZERO;
        let ids = vec!["INTEL-SA-00837".to_owned()];
        let mut policy = Policy::authenticity_only();
        policy.tcb.accept(TcbStatus::SwHardeningNeeded);
        let f = facts(&m, TcbStatus::SwHardeningNeeded, &ids);
        assert!(policy.check(&f, 3_000).is_ok());

        policy.tcb.advisory_allow = Some(["INTEL-SA-00001".to_owned()].into());
        assert_eq!(
            policy.check(&f, 3_000),
            Err(PolicyViolation::AdvisoryNotAllowed(ids[0].clone()))
        );
        policy.tcb.advisory_allow = None;
        policy.tcb.advisory_deny.insert(ids[0].clone());
        assert_eq!(
            policy.check(&f, 3_000),
            Err(PolicyViolation::AdvisoryDenied(ids[0].clone()))
        );

        let mut policy = Policy::authenticity_only();
        policy.tcb.max_collateral_age_secs = Some(1_500);
        let f = facts(&m, TcbStatus::UpToDate, &[]);
        assert!(policy.check(&f, 2_500).is_ok());
        assert_eq!(
            policy.check(&f, 2_501),
            Err(PolicyViolation::CollateralTooOld {
                item: "TCB info",
                age_secs: 1_501,
                max_age_secs: 1_500
            })
        );
    }
}
