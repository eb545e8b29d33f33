//! Small synthetic TDVF images, for tests and examples.
//!
//! A real OVMF image is megabytes; these are a few pages with the same footer, GUID table and
//! descriptor layout, so parsers, measurement and build checks can run without a firmware
//! package.

use super::tdvf::{FOOTER_GUID, METADATA_OFFSET_GUID, PAGE_SIZE};

/// One section of a [`SyntheticTdvf`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticSection {
    /// Raw section type (0 BFV, 1 CFV, 2 TD HOB, 3 temporary memory).
    pub section_type: u32,
    /// Attribute bits.
    pub attributes: u32,
    /// Guest-physical base address.
    pub memory_base: u64,
    /// Size in guest memory, in pages.
    pub pages: u64,
    /// Bytes stored in the image for this section (may be shorter than its memory).
    pub data: Vec<u8>,
}

/// Builder of a synthetic TDVF image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyntheticTdvf {
    /// Sections in descriptor order.
    pub sections: Vec<SyntheticSection>,
}

/// A built synthetic image and where its parts are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticImage {
    /// The image bytes.
    pub bytes: Vec<u8>,
    /// Offset of the TDVF descriptor.
    pub descriptor_offset: usize,
    /// Offset of the `u32` in the GUID table that locates the descriptor.
    pub metadata_pointer_offset: usize,
}

impl SyntheticTdvf {
    /// A typical layout: a measured BFV of `bfv_pages` pages filled from `seed`, a measured
    /// one-page CFV, an unmeasured TD HOB page and two pages of temporary memory.
    pub fn typical(bfv_pages: u64, seed: u8) -> Self {
        let page = PAGE_SIZE as usize;
        let bfv_len = usize::try_from(bfv_pages).unwrap_or(0).saturating_mul(page);
        let bfv: Vec<u8> = (0..bfv_len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        let cfv = vec![seed ^ 0x5a; page];
        let top = 0x1_0000_0000u64;
        let bfv_base = top - bfv_pages * PAGE_SIZE;
        Self {
            sections: vec![
                SyntheticSection {
                    section_type: 0,
                    attributes: 1,
                    memory_base: bfv_base,
                    pages: bfv_pages,
                    data: bfv,
                },
                SyntheticSection {
                    section_type: 1,
                    attributes: 1,
                    memory_base: bfv_base - PAGE_SIZE,
                    pages: 1,
                    data: cfv,
                },
                SyntheticSection {
                    section_type: 2,
                    attributes: 0,
                    memory_base: 0x80_9000,
                    pages: 1,
                    data: Vec::new(),
                },
                SyntheticSection {
                    section_type: 3,
                    attributes: 0,
                    memory_base: 0x80_0000,
                    pages: 2,
                    data: Vec::new(),
                },
            ],
        }
    }

    /// Lays out the image: section data, then the descriptor, the GUID table, its footer and
    /// 32 bytes of reset-vector area.
    pub fn build(&self) -> SyntheticImage {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for section in &self.sections {
            offsets.push(bytes.len());
            bytes.extend_from_slice(&section.data);
        }
        let descriptor_offset = bytes.len();
        let count = self.sections.len();
        let length = 16 + 32 * count;
        bytes.extend_from_slice(b"TDVF");
        bytes.extend_from_slice(&(length as u32).to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(count as u32).to_le_bytes());
        for (section, offset) in self.sections.iter().zip(&offsets) {
            let raw_offset = if section.data.is_empty() { 0 } else { *offset };
            bytes.extend_from_slice(&(raw_offset as u32).to_le_bytes());
            bytes.extend_from_slice(&(section.data.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&section.memory_base.to_le_bytes());
            bytes.extend_from_slice(&(section.pages * PAGE_SIZE).to_le_bytes());
            bytes.extend_from_slice(&section.section_type.to_le_bytes());
            bytes.extend_from_slice(&section.attributes.to_le_bytes());
        }
        // GUID table: one entry (u32 data, u16 length, GUID), then u16 total length and footer.
        let metadata_pointer_offset = bytes.len();
        let total_len = bytes.len() + 4 + 2 + 16 + 2 + 16 + 32;
        let from_end = (total_len - descriptor_offset) as u32;
        bytes.extend_from_slice(&from_end.to_le_bytes());
        bytes.extend_from_slice(&22u16.to_le_bytes());
        bytes.extend_from_slice(&METADATA_OFFSET_GUID);
        bytes.extend_from_slice(&(22u16 + 18).to_le_bytes());
        bytes.extend_from_slice(&FOOTER_GUID);
        bytes.extend_from_slice(&[0x90; 32]);
        SyntheticImage {
            bytes,
            descriptor_offset,
            metadata_pointer_offset,
        }
    }
}

/// A minimal kernel image for direct boot: a PE32+ file with a Linux boot-protocol 2.15 setup
/// header (initrd below 0x37ffffff, no xloadflags), one section covering everything after the 1 KiB of
/// headers, `len` bytes long (at least 2 KiB), contents derived from `seed`.
pub fn synthetic_kernel(len: usize, seed: u8) -> Vec<u8> {
    let len = len.max(2048);
    let mut k: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect();
    k[..0x400].fill(0);
    let mut put = |at: usize, bytes: &[u8]| k[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"MZ");
    put(0x3c, &0x80u32.to_le_bytes());
    put(0x80, b"PE\0\0");
    // COFF: x86-64, one section, 240-byte optional header.
    put(0x84, &0x8664u16.to_le_bytes());
    put(0x86, &1u16.to_le_bytes());
    put(0x94, &240u16.to_le_bytes());
    // Optional header (PE32+) at 0x98: SizeOfHeaders 0x400, six data directories.
    put(0x98, &0x20bu16.to_le_bytes());
    put(0x98 + 60, &0x400u32.to_le_bytes());
    put(0x98 + 108, &6u32.to_le_bytes());
    // Section table at 0x188: ".text", raw size and pointer.
    put(0x188, b".text\0\0\0");
    put(0x188 + 16, &((len - 0x400) as u32).to_le_bytes());
    put(0x188 + 20, &0x400u32.to_le_bytes());
    // Linux setup header.
    put(0x1f1, &[1]);
    put(0x202, b"HdrS");
    put(0x206, &0x020fu16.to_le_bytes());
    put(0x211, &[0x01]);
    put(0x22c, &0x37ff_ffffu32.to_le_bytes());
    k
}
