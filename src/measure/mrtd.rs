//! MRTD: replay of the TDX module's build-time measurement of a TDVF image.
//!
//! The TDX module keeps one running SHA-384 for MRTD while the host builds the TD:
//!
//! - TDH.MEM.PAGE.ADD of page at guest-physical address `gpa` feeds one 128-byte record:
//!   `"MEM.PAGE.ADD"` (12 bytes), zero padding to 16, `gpa` as `u64` little-endian at 16, zeros
//!   to 128.
//! - TDH.MR.EXTEND of the 256-byte chunk at `gpa` feeds the 128-byte record `"MR.EXTEND"` (9
//!   bytes), zeros to 16, `gpa` at 16, zeros to 128, then the 256 bytes of the chunk. A page is
//!   extended as 16 chunks in address order.
//!
//! MRTD is the SHA-384 of that stream once TDH.MR.FINALIZE runs. Sections are loaded in
//! descriptor order. Which stream the module sees depends on the order in which the host issues
//! the two operations, see [`PageAddOrder`].

use sha2::{Digest, Sha384};

use super::tdvf::{TdvfError, TdvfMetadata, TdvfSection, PAGE_SIZE};
use crate::tdx::MEASUREMENT_LEN;

/// Granularity of TDH.MR.EXTEND.
const CHUNK_SIZE: usize = 256;
/// Size of the records the TDX module hashes for each operation.
const RECORD_LEN: usize = 128;
/// Chunks per page.
const CHUNKS_PER_PAGE: u64 = PAGE_SIZE / CHUNK_SIZE as u64;

/// Order in which the host issues TDH.MEM.PAGE.ADD and TDH.MR.EXTEND within a section.
///
/// Both orders are real: the same image gives two different MRTDs depending on the host stack.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageAddOrder {
    /// Each page is added and then its chunks are extended before the next page is added. This is
    /// what upstream Linux KVM (`KVM_TDX_INIT_MEM_REGION`) with upstream QEMU does. The default.
    #[default]
    PerPage,
    /// All pages of a section are added, then all chunks of the section are extended. This is
    /// what earlier KVM-TDX and QEMU-TDX trees (QEMU 8.x era) did.
    PerSection,
}

/// Computes MRTD for `image`, whose parsed metadata is `metadata`, in the given host order.
///
/// Sections with the PAGE.AUG attribute are neither added nor extended; sections without
/// MR.EXTEND are added only. Bytes of a section beyond its raw size are zero, as the host
/// zero-fills guest memory.
pub fn compute_mr_td(
    image: &[u8],
    metadata: &TdvfMetadata,
    order: PageAddOrder,
) -> Result<[u8; MEASUREMENT_LEN], TdvfError> {
    let mut hash = Sha384::new();
    for section in metadata.sections.iter().filter(|s| s.is_added()) {
        let data = section_data(image, section)?;
        let pages = section.page_count();
        match order {
            PageAddOrder::PerPage => {
                for page in 0..pages {
                    page_add(&mut hash, section, page)?;
                    if section.is_extended() {
                        extend_page(&mut hash, section, data, page)?;
                    }
                }
            }
            PageAddOrder::PerSection => {
                for page in 0..pages {
                    page_add(&mut hash, section, page)?;
                }
                if section.is_extended() {
                    for page in 0..pages {
                        extend_page(&mut hash, section, data, page)?;
                    }
                }
            }
        }
    }
    let mut out = [0u8; MEASUREMENT_LEN];
    out.copy_from_slice(&hash.finalize());
    Ok(out)
}

fn section_data<'a>(image: &'a [u8], section: &TdvfSection) -> Result<&'a [u8], TdvfError> {
    let start = usize::try_from(section.raw_offset).map_err(|_| out_of_bounds())?;
    let len = usize::try_from(section.raw_size).map_err(|_| out_of_bounds())?;
    start
        .checked_add(len)
        .and_then(|end| image.get(start..end))
        .ok_or_else(out_of_bounds)
}

fn out_of_bounds() -> TdvfError {
    TdvfError::OutOfBounds("section data beyond the end of the image")
}

fn record(tag: &[u8], gpa: u64) -> [u8; RECORD_LEN] {
    let mut rec = [0u8; RECORD_LEN];
    for (dst, src) in rec.iter_mut().zip(tag) {
        *dst = *src;
    }
    for (dst, src) in rec.iter_mut().skip(16).zip(gpa.to_le_bytes()) {
        *dst = src;
    }
    rec
}

fn gpa_of(section: &TdvfSection, offset: u64) -> Result<u64, TdvfError> {
    section
        .memory_base
        .checked_add(offset)
        .ok_or(TdvfError::OutOfBounds("guest address overflows"))
}

fn page_add(hash: &mut Sha384, section: &TdvfSection, page: u64) -> Result<(), TdvfError> {
    let gpa = gpa_of(section, page * PAGE_SIZE)?;
    hash.update(record(b"MEM.PAGE.ADD", gpa));
    Ok(())
}

fn extend_page(
    hash: &mut Sha384,
    section: &TdvfSection,
    data: &[u8],
    page: u64,
) -> Result<(), TdvfError> {
    for chunk in 0..CHUNKS_PER_PAGE {
        let offset = page * PAGE_SIZE + chunk * CHUNK_SIZE as u64;
        hash.update(record(b"MR.EXTEND", gpa_of(section, offset)?));
        let mut buf = [0u8; CHUNK_SIZE];
        if let Ok(start) = usize::try_from(offset) {
            if let Some(rest) = data.get(start..) {
                for (dst, src) in buf.iter_mut().zip(rest) {
                    *dst = *src;
                }
            }
        }
        hash.update(buf);
    }
    Ok(())
}
