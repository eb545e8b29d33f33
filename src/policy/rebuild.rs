//! Pinning a policy's Measurements to a verified rebuild (level `TdxPlusReproducibleBuild`).
//!
//! [`Policy::pin_rebuilt`] overwrites MRTD (and RTMR1/RTMR2 where the rebuild computed them) in
//! every profile with the values of a [`RebuiltMeasurements`], and records the rebuild. From then
//! on a peer's quote matches a profile only if its MRTD is the one the rebuild produced.
//! [`Policy::rebuild_pin`] re-checks that every profile still carries those values, so a policy
//! whose profiles were replaced after pinning no longer counts as pinned.

use super::{Expected, Policy, Register};
use crate::measure::RebuiltMeasurements;

/// Why a policy does not count as pinned to a rebuild.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RebuildPinError {
    /// [`Policy::pin_rebuilt`] was never called: the Measurements are only declared.
    #[error("the policy's Measurements are declared, not pinned from a verified rebuild")]
    NotPinned,
    /// The policy has no profile, so the rebuild pins nothing.
    #[error("the policy has no measurement profile to pin the rebuild into")]
    NoProfiles,
    /// A profile no longer carries the rebuilt value of a register.
    #[error("profile {profile:?}: {register} differs from the rebuilt value")]
    ProfileDiverges {
        /// The profile.
        profile: String,
        /// The register whose expected value is not the rebuilt one.
        register: Register,
    },
}

impl Policy {
    /// Pins every measurement profile to the registers `rebuilt` computed: `mr_td` becomes
    /// exactly the rebuilt MRTD, and `rtmr1`/`rtmr2` the rebuilt RTMRs when the rebuild computed
    /// them (otherwise they keep what the profile said). Records the rebuild, so that
    /// [`Policy::rebuild_pin`] succeeds and bonds under this policy can reach
    /// [`crate::AttestationLevel::TdxPlusReproducibleBuild`]. Pinning again replaces the
    /// previous rebuild.
    ///
    /// ```
    /// use ratls_quic::{MeasurementPolicy, Policy};
    /// use ratls_quic::measure::{PageAddOrder, RebuiltMeasurements};
    /// use ratls_quic::synthetic::SyntheticTdvf;
    ///
    /// let image = SyntheticTdvf::typical(2, 7).build();
    /// let rebuilt =
    ///     RebuiltMeasurements::from_image(&image.bytes, PageAddOrder::PerPage, [0; 32]).unwrap();
    /// let mut policy = Policy::new(MeasurementPolicy::any_measurements());
    /// assert!(policy.rebuild_pin().is_err());
    /// policy.pin_rebuilt(&rebuilt);
    /// assert_eq!(policy.rebuild_pin().unwrap(), &rebuilt);
    /// ```
    pub fn pin_rebuilt(&mut self, rebuilt: &RebuiltMeasurements) -> &mut Self {
        for profile in self.measurements.profiles_mut() {
            profile.mr_td = Expected::Exact(*rebuilt.mr_td());
            if let Some(rtmr1) = rebuilt.rtmr1() {
                profile.rtmr[1] = Expected::Exact(*rtmr1);
            }
            if let Some(rtmr2) = rebuilt.rtmr2() {
                profile.rtmr[2] = Expected::Exact(*rtmr2);
            }
        }
        tracing::info!(
            mr_td = %hex::encode(rebuilt.mr_td()),
            recipe = %hex::encode(rebuilt.recipe_digest()),
            profiles = self.measurements.profiles().len(),
            "policy Measurements pinned from a verified rebuild"
        );
        self.rebuilt = Some(rebuilt.clone());
        self
    }

    /// The rebuild this policy's Measurements are pinned to, after checking that every profile
    /// (at least one) still expects exactly the rebuilt registers.
    pub fn rebuild_pin(&self) -> Result<&RebuiltMeasurements, RebuildPinError> {
        let rebuilt = self.rebuilt.as_ref().ok_or(RebuildPinError::NotPinned)?;
        let profiles = self.measurements.profiles();
        if profiles.is_empty() {
            return Err(RebuildPinError::NoProfiles);
        }
        for profile in profiles {
            let checks = [
                (Register::MrTd, &profile.mr_td, Some(rebuilt.mr_td())),
                (Register::Rtmr1, &profile.rtmr[1], rebuilt.rtmr1()),
                (Register::Rtmr2, &profile.rtmr[2], rebuilt.rtmr2()),
            ];
            for (register, expected, value) in checks {
                let Some(value) = value else { continue };
                if *expected != Expected::Exact(*value) {
                    return Err(RebuildPinError::ProfileDiverges {
                        profile: profile.name.clone(),
                        register,
                    });
                }
            }
        }
        Ok(rebuilt)
    }

    /// Whether [`Policy::rebuild_pin`] succeeds.
    pub fn is_rebuild_pinned(&self) -> bool {
        self.rebuild_pin().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::PageAddOrder;
    use crate::policy::{MeasurementPolicy, MeasurementProfile, PolicyViolation, QuoteFacts};
    use crate::synthetic::SyntheticTdvf;
    use crate::tdx::{Measurements, TcbStatus};

    fn rebuilt() -> RebuiltMeasurements {
        let image = SyntheticTdvf::typical(2, 3).build();
        RebuiltMeasurements::from_image(&image.bytes, PageAddOrder::PerPage, [7; 32]).unwrap()
    }

    fn facts(m: &Measurements) -> QuoteFacts<'_> {
        QuoteFacts {
            measurements: m,
            tcb_status: TcbStatus::UpToDate,
            advisory_ids: &[],
            tcb_info_issued: 0,
            qe_identity_issued: 0,
        }
    }

    #[test]
    fn pinning_replaces_mr_td_in_every_profile() {
        let mut declared = Measurements::ZERO;
        declared.mr_td = [0xaa; 48];
        let mut policy = Policy::new(MeasurementPolicy::new(vec![
            MeasurementProfile::exact("a", &declared),
            MeasurementProfile::exact("b", &declared),
        ]));
        assert_eq!(policy.rebuild_pin(), Err(RebuildPinError::NotPinned));
        assert!(policy.check(&facts(&declared), 0).is_ok());

        let rebuilt = rebuilt();
        policy.pin_rebuilt(&rebuilt);
        assert!(policy.is_rebuild_pinned());
        for profile in policy.measurements.profiles() {
            assert_eq!(profile.mr_td, Expected::Exact(*rebuilt.mr_td()));
        }
        let err = policy.check(&facts(&declared), 0).unwrap_err();
        let PolicyViolation::Measurements(mismatch) = err else {
            panic!("{err:?}")
        };
        assert!(mismatch
            .mismatches
            .iter()
            .all(|(_, r)| *r == Register::MrTd));
        let mut actual = declared;
        actual.mr_td = *rebuilt.mr_td();
        assert!(policy.check(&facts(&actual), 0).is_ok());
    }

    #[test]
    fn replaced_or_empty_profiles_are_not_pinned() {
        let mut policy = Policy::new(MeasurementPolicy::new(Vec::new()));
        policy.pin_rebuilt(&rebuilt());
        assert_eq!(policy.rebuild_pin(), Err(RebuildPinError::NoProfiles));

        let mut policy = Policy::new(MeasurementPolicy::any_measurements());
        policy.pin_rebuilt(&rebuilt());
        assert!(policy.is_rebuild_pinned());
        policy.measurements = MeasurementPolicy::any_measurements();
        assert_eq!(
            policy.rebuild_pin(),
            Err(RebuildPinError::ProfileDiverges {
                profile: "any".into(),
                register: Register::MrTd
            })
        );
    }
}
