//! Measurements that come out of a rebuild, never out of a declaration.
//!
//! [`RebuiltMeasurements`] has no public constructor taking register values: it is returned by a
//! successful [`crate::repro::verify_build`] (through [`crate::repro::BuildVerdict::rebuilt`]),
//! or computed by [`RebuiltMeasurements::from_image`] from firmware bytes the caller already
//! holds. The one other source is the `[rebuild]` record that `ratls verify-build
//! --emit-policy` writes into a policy file ([`RebuildProvenance::PolicyFile`]). A [`crate::Policy`] pinned with it ([`crate::Policy::pin_rebuilt`]) is
//! what the `TdxPlusReproducibleBuild` level requires.

use core::fmt;

use super::{compute_boot_rtmrs, measure_mr_td, DirectBoot, KernelError, PageAddOrder, TdvfError};
use crate::tdx::MEASUREMENT_LEN;

/// Where a [`RebuiltMeasurements`] came from.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebuildProvenance {
    /// A successful [`crate::repro::verify_build`] in this process.
    VerifiedBuild,
    /// [`RebuiltMeasurements::from_image`] on image bytes held by the caller.
    Image,
    /// The `[rebuild]` table of a policy file, as written by `ratls verify-build
    /// --emit-policy`: the record of an earlier verified rebuild, trusted as the policy file is.
    PolicyFile,
}

/// Registers computed from a rebuilt image, with the digest of the recipe that built it.
///
/// MRTD is always computed; RTMR1 and RTMR2 only when the boot inputs (kernel, initrd, command
/// line, memory size) were part of the rebuild. RTMR0 and RTMR3 are never computed.
#[derive(Clone, PartialEq, Eq)]
pub struct RebuiltMeasurements {
    mr_td: [u8; MEASUREMENT_LEN],
    rtmr1: Option<[u8; MEASUREMENT_LEN]>,
    rtmr2: Option<[u8; MEASUREMENT_LEN]>,
    recipe_digest: [u8; 32],
    order: PageAddOrder,
    provenance: RebuildProvenance,
}

impl RebuiltMeasurements {
    /// Computes MRTD from a TDVF firmware `image` (as the host adds it in `order`), recording
    /// `recipe_digest` (blake3 of the recipe that produced the image) as its provenance.
    ///
    /// ```
    /// use ratls_quic::measure::{PageAddOrder, RebuiltMeasurements};
    /// use ratls_quic::synthetic::SyntheticTdvf;
    ///
    /// let image = SyntheticTdvf::typical(2, 7).build();
    /// let rebuilt = RebuiltMeasurements::from_image(&image.bytes, PageAddOrder::PerPage, [1; 32])
    ///     .unwrap();
    /// assert!(rebuilt.rtmr1().is_none());
    /// assert_eq!(rebuilt.recipe_digest(), &[1; 32]);
    /// ```
    pub fn from_image(
        image: &[u8],
        order: PageAddOrder,
        recipe_digest: [u8; 32],
    ) -> Result<Self, TdvfError> {
        Ok(Self {
            mr_td: measure_mr_td(image, order)?,
            rtmr1: None,
            rtmr2: None,
            recipe_digest,
            order,
            provenance: RebuildProvenance::Image,
        })
    }

    /// Adds RTMR1 and RTMR2 computed for a direct kernel boot of the same rebuild.
    pub fn with_direct_boot(mut self, boot: &DirectBoot<'_>) -> Result<Self, KernelError> {
        let rtmrs = compute_boot_rtmrs(boot)?;
        self.rtmr1 = Some(rtmrs.rtmr1);
        self.rtmr2 = Some(rtmrs.rtmr2);
        Ok(self)
    }

    /// Assembles the result of [`crate::repro::verify_build`] after its compare step passed.
    pub(crate) fn from_verified_build(
        mr_td: [u8; MEASUREMENT_LEN],
        boot: Option<&super::BootRtmrs>,
        recipe_digest: [u8; 32],
        order: PageAddOrder,
    ) -> Self {
        Self {
            mr_td,
            rtmr1: boot.map(|b| b.rtmr1),
            rtmr2: boot.map(|b| b.rtmr2),
            recipe_digest,
            order,
            provenance: RebuildProvenance::VerifiedBuild,
        }
    }

    /// Restores the record of an earlier verified rebuild from a policy file's `[rebuild]`
    /// table.
    pub(crate) fn from_policy_record(
        mr_td: [u8; MEASUREMENT_LEN],
        rtmr1: Option<[u8; MEASUREMENT_LEN]>,
        rtmr2: Option<[u8; MEASUREMENT_LEN]>,
        recipe_digest: [u8; 32],
        order: PageAddOrder,
    ) -> Self {
        Self {
            mr_td,
            rtmr1,
            rtmr2,
            recipe_digest,
            order,
            provenance: RebuildProvenance::PolicyFile,
        }
    }

    /// MRTD of the rebuilt firmware.
    pub fn mr_td(&self) -> &[u8; MEASUREMENT_LEN] {
        &self.mr_td
    }

    /// RTMR1 of the rebuilt direct boot, when computed.
    pub fn rtmr1(&self) -> Option<&[u8; MEASUREMENT_LEN]> {
        self.rtmr1.as_ref()
    }

    /// RTMR2 of the rebuilt direct boot, when computed.
    pub fn rtmr2(&self) -> Option<&[u8; MEASUREMENT_LEN]> {
        self.rtmr2.as_ref()
    }

    /// blake3 of the recipe that produced the image.
    pub fn recipe_digest(&self) -> &[u8; 32] {
        &self.recipe_digest
    }

    /// The host page-add order MRTD was computed for.
    pub fn order(&self) -> PageAddOrder {
        self.order
    }

    /// Where these registers came from.
    pub fn provenance(&self) -> RebuildProvenance {
        self.provenance
    }
}

impl fmt::Debug for RebuiltMeasurements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex_opt = |v: &Option<[u8; MEASUREMENT_LEN]>| v.map(hex::encode);
        f.debug_struct("RebuiltMeasurements")
            .field("mr_td", &hex::encode(self.mr_td))
            .field("rtmr1", &hex_opt(&self.rtmr1))
            .field("rtmr2", &hex_opt(&self.rtmr2))
            .field("recipe_digest", &hex::encode(self.recipe_digest))
            .field("order", &self.order)
            .field("provenance", &self.provenance)
            .finish()
    }
}
