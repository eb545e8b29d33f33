//! TDVF metadata: the table of sections a TDX-aware OVMF image asks the host to load.
//!
//! Layout, as laid out by OVMF's reset vector and read by QEMU (`hw/i386/pc_sysfw_ovmf.c`,
//! `hw/i386/tdvf.c`):
//!
//! - The last 32 bytes of the image hold the reset vector. Just before them, at `len - 48`, sits
//!   the footer GUID `96b582de-1fb2-45f7-baea-a366c55a082d`, preceded by a little-endian `u16`
//!   giving the length of the whole GUID table (footer GUID and that `u16` included).
//! - Table entries run backwards from there. Each entry ends with its GUID, preceded by a `u16`
//!   entry length (data, length field and GUID), preceded by its data.
//! - The entry with GUID `e47a6535-984a-4798-865e-4685a7bf8ec2` carries a `u32`: the distance
//!   from the end of the image to the TDVF descriptor.
//! - The descriptor is `"TDVF"`, `u32` length, `u32` version (1), `u32` section count, followed
//!   by 32-byte sections: `u32` raw offset, `u32` raw size, `u64` memory base, `u64` memory size,
//!   `u32` type, `u32` attributes.
//!
//! Every offset and size read from the image is checked against the image before it is used.

// Parses bytes from the network or from files: no panics, no unchecked arithmetic.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use thiserror::Error;

/// Size of a TD page: the granularity of TDH.MEM.PAGE.ADD.
pub const PAGE_SIZE: u64 = 0x1000;

/// Upper bound on the memory the sections of one image may ask to add (4 GiB).
///
/// Real TDVF images add a few MiB; the bound keeps hostile metadata from making measurement run
/// for hours.
pub const MAX_TOTAL_MEMORY: u64 = 4 << 30;

/// Footer GUID of the OVMF GUID table, `96b582de-1fb2-45f7-baea-a366c55a082d`, as stored.
pub(crate) const FOOTER_GUID: [u8; 16] = [
    0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d,
];

/// GUID of the entry locating the TDVF descriptor, `e47a6535-984a-4798-865e-4685a7bf8ec2`.
pub(crate) const METADATA_OFFSET_GUID: [u8; 16] = [
    0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2,
];

/// Bytes after the footer GUID: the reset vector area.
const BYTES_AFTER_FOOTER: usize = 32;
/// GUID plus `u16` length: the trailer of every table entry.
const ENTRY_TRAILER: usize = 18;
/// Size of the descriptor header.
const DESCRIPTOR_LEN: usize = 16;
/// Size of one section entry.
const SECTION_LEN: usize = 32;

/// Section attribute: the TDX module extends MRTD with the section's contents (TDH.MR.EXTEND).
pub const ATTRIBUTE_MR_EXTEND: u32 = 0x1;
/// Section attribute: the pages are accepted by the guest later (TDH.MEM.PAGE.AUG), not added.
pub const ATTRIBUTE_PAGE_AUG: u32 = 0x2;

/// What a TDVF image could not be parsed as.
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TdvfError {
    /// The descriptor does not start with `"TDVF"`.
    #[error("TDVF descriptor has a bad signature")]
    BadSignature,
    /// The OVMF GUID table is malformed (a length that does not fit).
    #[error("malformed OVMF GUID table: {0}")]
    GuidTable(&'static str),
    /// The image has no TDVF metadata entry in its GUID table.
    #[error("no TDVF metadata entry in the OVMF GUID table: not a TDX firmware image")]
    MissingMetadata,
    /// The image has no OVMF GUID table footer.
    #[error("no OVMF GUID table footer: not an OVMF/TDVF firmware image")]
    NotOvmf,
    /// An offset or size in the metadata points outside the image or overflows.
    #[error("TDVF metadata points outside the image: {0}")]
    OutOfBounds(&'static str),
    /// A section is malformed.
    #[error("TDVF section {index}: {reason}")]
    Section {
        /// Position of the section in the descriptor.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The sections ask for more memory than [`MAX_TOTAL_MEMORY`].
    #[error("TDVF sections ask for more than {MAX_TOTAL_MEMORY} bytes of memory")]
    TooMuchMemory,
    /// The descriptor version is not 1.
    #[error("unsupported TDVF descriptor version {0}")]
    UnsupportedVersion(u32),
}

/// Type of a TDVF section.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionType {
    /// Boot firmware volume (code), normally measured.
    Bfv,
    /// Configuration firmware volume (UEFI variables), normally measured.
    Cfv,
    /// Memory for the TD HOB the host builds; added, not measured.
    TdHob,
    /// Temporary memory for the firmware; added, not measured.
    TempMem,
    /// Permanent memory (TD-Shim).
    PermMem,
    /// Payload image (TD-Shim).
    Payload,
    /// Payload parameters (TD-Shim).
    PayloadParam,
    /// A type this parser does not name.
    Other(u32),
}

impl SectionType {
    fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            other => Self::Other(other),
        }
    }
}

/// One section of the TDVF descriptor, checked against the image it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdvfSection {
    /// Offset of the section's bytes in the image.
    pub raw_offset: u32,
    /// Number of bytes the section takes from the image.
    pub raw_size: u32,
    /// Guest-physical address the section is loaded at (page aligned).
    pub memory_base: u64,
    /// Size of the section in guest memory (page aligned, at least `raw_size`).
    pub memory_size: u64,
    /// Section type.
    pub section_type: SectionType,
    /// Attribute bits ([`ATTRIBUTE_MR_EXTEND`], [`ATTRIBUTE_PAGE_AUG`]).
    pub attributes: u32,
}

impl TdvfSection {
    /// Whether the TDX module extends MRTD with this section's contents.
    pub fn is_extended(&self) -> bool {
        self.attributes & ATTRIBUTE_MR_EXTEND != 0
    }

    /// Whether the host adds this section's pages with TDH.MEM.PAGE.ADD (all but PAGE.AUG).
    pub fn is_added(&self) -> bool {
        self.attributes & ATTRIBUTE_PAGE_AUG == 0
    }

    /// Number of pages the section occupies in guest memory.
    pub fn page_count(&self) -> u64 {
        self.memory_size / PAGE_SIZE
    }
}

/// The TDVF metadata of a firmware image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdvfMetadata {
    /// Offset of the TDVF descriptor in the image.
    pub descriptor_offset: usize,
    /// Sections in descriptor order (the order the host loads them in).
    pub sections: Vec<TdvfSection>,
}

impl TdvfMetadata {
    /// Parses and checks the TDVF metadata of `image`.
    ///
    /// Fails on images without the OVMF GUID table or the TDVF entry, on a descriptor with a bad
    /// signature or version, and on any offset, size or address that points outside the image,
    /// overflows, or is misaligned.
    pub fn parse(image: &[u8]) -> Result<Self, TdvfError> {
        let descriptor_offset = locate_descriptor(image)?;
        let header = image
            .get(descriptor_offset..)
            .and_then(|rest| rest.get(..DESCRIPTOR_LEN))
            .ok_or(TdvfError::OutOfBounds("descriptor header"))?;
        if header.get(..4) != Some(b"TDVF".as_slice()) {
            return Err(TdvfError::BadSignature);
        }
        let length = le_u32(header, 4)?;
        let version = le_u32(header, 8)?;
        let count = le_u32(header, 12)?;
        if version != 1 {
            return Err(TdvfError::UnsupportedVersion(version));
        }
        let table_len = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(SECTION_LEN))
            .and_then(|n| n.checked_add(DESCRIPTOR_LEN))
            .ok_or(TdvfError::OutOfBounds("section count"))?;
        let declared = usize::try_from(length).map_err(|_| TdvfError::OutOfBounds("length"))?;
        if declared < table_len {
            return Err(TdvfError::OutOfBounds(
                "descriptor length shorter than its sections",
            ));
        }
        let table = descriptor_offset
            .checked_add(table_len)
            .and_then(|end| image.get(descriptor_offset..end))
            .ok_or(TdvfError::OutOfBounds("section table"))?;
        let mut sections = Vec::new();
        let mut total: u64 = 0;
        for (index, raw) in table
            .get(DESCRIPTOR_LEN..)
            .unwrap_or_default()
            .chunks_exact(SECTION_LEN)
            .enumerate()
        {
            let section = parse_section(image, index, raw)?;
            if section.is_added() {
                total = total
                    .checked_add(section.memory_size)
                    .filter(|t| *t <= MAX_TOTAL_MEMORY)
                    .ok_or(TdvfError::TooMuchMemory)?;
            }
            sections.push(section);
        }
        Ok(Self {
            descriptor_offset,
            sections,
        })
    }
}

/// Finds the TDVF descriptor through the OVMF GUID table.
fn locate_descriptor(image: &[u8]) -> Result<usize, TdvfError> {
    let footer_end = image
        .len()
        .checked_sub(BYTES_AFTER_FOOTER)
        .ok_or(TdvfError::NotOvmf)?;
    let footer_start = footer_end.checked_sub(16).ok_or(TdvfError::NotOvmf)?;
    if image.get(footer_start..footer_end) != Some(FOOTER_GUID.as_slice()) {
        return Err(TdvfError::NotOvmf);
    }
    let len_at = footer_start.checked_sub(2).ok_or(TdvfError::NotOvmf)?;
    let total = usize::from(le_u16(image, len_at)?);
    let entries_len = total
        .checked_sub(ENTRY_TRAILER)
        .ok_or(TdvfError::GuidTable("table length shorter than its footer"))?;
    let table_start = len_at
        .checked_sub(entries_len)
        .ok_or(TdvfError::GuidTable("table longer than the image"))?;
    let table = image
        .get(table_start..len_at)
        .ok_or(TdvfError::GuidTable("table longer than the image"))?;

    let mut end = table.len();
    while end >= ENTRY_TRAILER {
        let guid_start = end.checked_sub(16).ok_or(TdvfError::GuidTable("entry"))?;
        let len_at = guid_start
            .checked_sub(2)
            .ok_or(TdvfError::GuidTable("entry"))?;
        let entry_len = usize::from(le_u16(table, len_at)?);
        if entry_len < ENTRY_TRAILER {
            return Err(TdvfError::GuidTable("entry shorter than its trailer"));
        }
        let entry_start = end
            .checked_sub(entry_len)
            .ok_or(TdvfError::GuidTable("entry longer than the table"))?;
        if table.get(guid_start..end) == Some(METADATA_OFFSET_GUID.as_slice()) {
            let data = table
                .get(entry_start..len_at)
                .ok_or(TdvfError::GuidTable("entry"))?;
            let from_end = usize::try_from(le_u32(data, 0)?)
                .map_err(|_| TdvfError::OutOfBounds("metadata offset"))?;
            return image
                .len()
                .checked_sub(from_end)
                .ok_or(TdvfError::OutOfBounds(
                    "metadata offset larger than the image",
                ));
        }
        end = entry_start;
    }
    Err(TdvfError::MissingMetadata)
}

fn parse_section(image: &[u8], index: usize, raw: &[u8]) -> Result<TdvfSection, TdvfError> {
    let fail = |reason| TdvfError::Section { index, reason };
    let section = TdvfSection {
        raw_offset: le_u32(raw, 0)?,
        raw_size: le_u32(raw, 4)?,
        memory_base: le_u64(raw, 8)?,
        memory_size: le_u64(raw, 16)?,
        section_type: SectionType::from_raw(le_u32(raw, 24)?),
        attributes: le_u32(raw, 28)?,
    };
    if section.memory_base % PAGE_SIZE != 0 {
        return Err(fail("memory base not page aligned"));
    }
    if section.memory_size % PAGE_SIZE != 0 {
        return Err(fail("memory size not page aligned"));
    }
    if section.memory_size < u64::from(section.raw_size) {
        return Err(fail("raw size larger than memory size"));
    }
    if section
        .memory_base
        .checked_add(section.memory_size)
        .is_none()
    {
        return Err(fail("memory range overflows"));
    }
    // Two u32 values: their sum fits in a u64.
    let raw_end = u64::from(section.raw_offset).saturating_add(u64::from(section.raw_size));
    if raw_end > image.len() as u64 {
        return Err(TdvfError::OutOfBounds(
            "section data beyond the end of the image",
        ));
    }
    if section.is_extended() && !section.is_added() {
        return Err(fail("MR.EXTEND on a PAGE.AUG section"));
    }
    if section.attributes & !(ATTRIBUTE_MR_EXTEND | ATTRIBUTE_PAGE_AUG) != 0 {
        return Err(fail("unknown attribute bits"));
    }
    Ok(section)
}

fn le_u16(bytes: &[u8], at: usize) -> Result<u16, TdvfError> {
    fixed::<2>(bytes, at).map(u16::from_le_bytes)
}

fn le_u32(bytes: &[u8], at: usize) -> Result<u32, TdvfError> {
    fixed::<4>(bytes, at).map(u32::from_le_bytes)
}

fn le_u64(bytes: &[u8], at: usize) -> Result<u64, TdvfError> {
    fixed::<8>(bytes, at).map(u64::from_le_bytes)
}

fn fixed<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], TdvfError> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(TdvfError::OutOfBounds("field"))
}
