//! Measurements recomputed from images: pure functions of the bytes (core, no I/O).
//!
//! - `tdvf` parses the TDVF metadata of an OVMF/TDVF firmware image.
//! - `mrtd` replays the TDX module's TDH.MEM.PAGE.ADD / TDH.MR.EXTEND measurement of that image
//!   into MRTD, in either host order ([`PageAddOrder`]).
//! - `kernel` and `rtmr` compute RTMR1/RTMR2 for direct kernel boot.
//! - [`RebuiltMeasurements`] is what a rebuild or an image measurement yields, for
//!   [`crate::Policy::pin_rebuilt`] (level `TdxPlusReproducibleBuild`).
//! - `synthetic` (feature `synthetic`) builds small TDVF images and kernels for tests.
//!
//! The rebuild check itself (fetch a recipe, run it, measure the output) is the shell module
//! [`crate::repro`].
//!
//! # Which registers are computed
//!
//! - MRTD, from the firmware image.
//! - RTMR1 and RTMR2 for a direct kernel boot (QEMU `-kernel/-initrd/-append`), from the kernel,
//!   initrd, command line and guest memory size.
//! - Not RTMR0: it depends on the VMM's ACPI tables, the TD HOB (memory layout) and UEFI
//!   variables. Not RTMR3 (run time).

mod kernel;
mod mrtd;
mod rebuilt;
mod rtmr;
#[cfg(feature = "synthetic")]
pub(crate) mod synthetic;
mod tdvf;

pub use kernel::{authenticode_sha384, qemu_patch_kernel, KernelError, QEMU_ACPI_DATA_SIZE};
pub use mrtd::{compute_mr_td, PageAddOrder};
pub use rebuilt::{RebuildProvenance, RebuiltMeasurements};
pub use rtmr::{
    compute_boot_rtmrs, parse_memory_size, replay, rtmr1_events, rtmr2_events, BootRtmrs,
    DirectBoot,
};
pub use tdvf::{
    SectionType, TdvfError, TdvfMetadata, TdvfSection, ATTRIBUTE_MR_EXTEND, ATTRIBUTE_PAGE_AUG,
    MAX_TOTAL_MEMORY, PAGE_SIZE,
};

use crate::tdx::MEASUREMENT_LEN;

/// Parses the TDVF metadata of `image` and computes its MRTD for the given host order.
///
/// ```
/// use ratls_quic::measure::{measure_mr_td, PageAddOrder};
/// use ratls_quic::synthetic::SyntheticTdvf;
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

#[cfg(all(test, feature = "synthetic"))]
mod tests;
