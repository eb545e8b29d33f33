//! Measurements recomputed from images, and the build-recipe check built on them.
//!
//! - [`tdvf`] parses the TDVF metadata of an OVMF/TDVF firmware image.
//! - [`mrtd`] replays the TDX module's TDH.MEM.PAGE.ADD / TDH.MR.EXTEND measurement of that image
//!   into MRTD, in either host order ([`PageAddOrder`]).
//! - [`kernel`] and [`rtmr`] compute RTMR1/RTMR2 for direct kernel boot.
//! - [`recipe`] checks a declared build: recipe digest (blake3), rebuild, measurement, comparison.
//! - [`RebuiltMeasurements`] is what a successful rebuild yields, for
//!   [`crate::policy::Policy::pin_rebuilt`] (level `TdxPlusReproducibleBuild`).
//! - [`synthetic`] builds small TDVF images for tests.
//!
//! # Which registers are computed
//!
//! - MRTD, from the firmware image ([`mrtd`]).
//! - RTMR1 and RTMR2 for a direct kernel boot (QEMU `-kernel/-initrd/-append`), from the kernel,
//!   initrd, command line and guest memory size ([`rtmr`], [`kernel`]).
//! - Not RTMR0: it depends on the VMM's ACPI tables, the TD HOB (memory layout) and UEFI
//!   variables. Not RTMR3 (run time).
//!
//! The parser and [`mrtd`] are pure functions of the image bytes; [`recipe`] does I/O (files,
//! processes) and is the shell of this module.

mod build_policy;
pub mod kernel;
pub mod mrtd;
mod rebuilt;
pub mod recipe;
pub mod rtmr;
pub mod synthetic;
pub mod tdvf;

pub use kernel::KernelError;
pub use mrtd::{compute_mr_td, PageAddOrder};
pub use rebuilt::{RebuildProvenance, RebuiltMeasurements};
pub use rtmr::{compute_boot_rtmrs, BootRtmrs, DirectBoot};
pub use tdvf::{TdvfError, TdvfMetadata, TdvfSection};

use crate::tdx::MEASUREMENT_LEN;

/// Parses the TDVF metadata of `image` and computes its MRTD for the given host order.
///
/// ```
/// use ratls_quic::repro::{measure_mr_td, synthetic::SyntheticTdvf, PageAddOrder};
///
/// let image = SyntheticTdvf::typical(2, 7).build();
/// let per_page = measure_mr_td(&image.bytes, PageAddOrder::PerPage).unwrap();
/// let per_section = measure_mr_td(&image.bytes, PageAddOrder::PerSection).unwrap();
/// assert_ne!(per_page, per_section);
/// ```
pub fn measure_mr_td(
    image: &[u8],
    order: PageAddOrder,
) -> Result<[u8; MEASUREMENT_LEN], TdvfError> {
    let metadata = TdvfMetadata::parse(image)?;
    compute_mr_td(image, &metadata, order)
}

#[cfg(test)]
mod tests;
