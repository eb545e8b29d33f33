//! Which platform TCB states and collateral ages a verifier accepts.

use std::collections::BTreeSet;

use crate::tdx::TcbStatus;

/// TCB acceptance rules applied after DCAP verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcbPolicy {
    /// Statuses accepted. Default: `UpToDate` only. `Revoked` is refused even if listed.
    pub accepted_statuses: BTreeSet<TcbStatus>,
    /// When set, every advisory ID the platform carries must be in this list.
    pub advisory_allow: Option<BTreeSet<String>>,
    /// Advisory IDs refused outright.
    pub advisory_deny: BTreeSet<String>,
    /// Maximum age, in seconds at `now`, of the TCB info and QE identity issue dates.
    pub max_collateral_age_secs: Option<u64>,
}

impl Default for TcbPolicy {
    fn default() -> Self {
        Self {
            accepted_statuses: [TcbStatus::UpToDate].into(),
            advisory_allow: None,
            advisory_deny: BTreeSet::new(),
            max_collateral_age_secs: None,
        }
    }
}

impl TcbPolicy {
    /// Accept `status` in addition to those already accepted.
    pub fn accept(&mut self, status: TcbStatus) -> &mut Self {
        self.accepted_statuses.insert(status);
        self
    }

    /// Whether `status` is accepted.
    pub fn accepts(&self, status: TcbStatus) -> bool {
        status != TcbStatus::Revoked && self.accepted_statuses.contains(&status)
    }
}
