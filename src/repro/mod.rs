//! Measurements recomputed from images, and the build-recipe check built on them.
//!
//! - [`tdvf`] parses the TDVF metadata of an OVMF/TDVF firmware image.
//! - [`mrtd`] replays the TDX module's TDH.MEM.PAGE.ADD / TDH.MR.EXTEND measurement of that image
//!   into MRTD, in either host order ([`PageAddOrder`]).
//! - [`recipe`] checks a declared build: recipe digest (blake3), rebuild, measurement, comparison.
//! - [`synthetic`] builds small TDVF images for tests.
//!
//! # Which registers are computed
//!
//! Only MRTD. RTMR0 depends on the VMM's ACPI tables and TD HOB, and RTMR1/RTMR2 (kernel,
//! initrd, command line for direct kernel boot) depend on how the VMM patches the kernel setup
//! header before the firmware measures it; neither is computed here. A policy or a command that
//! asks for them is refused rather than answered with a partial value.
//!
//! The parser and [`mrtd`] are pure functions of the image bytes; [`recipe`] does I/O (files,
//! processes) and is the shell of this module.

pub mod mrtd;
pub mod recipe;
pub mod synthetic;
pub mod tdvf;

pub use mrtd::{compute_mr_td, PageAddOrder};
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
