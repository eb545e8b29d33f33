//! The kernel image as the firmware sees it for direct kernel boot, and its Authenticode hash.
//!
//! With `-kernel`, QEMU (`x86_load_linux` in `hw/i386/x86.c`) patches the Linux setup header
//! before handing the image to the firmware through fw_cfg; OVMF then loads and measures the
//! patched image. [`qemu_patch_kernel`] reproduces that patch for a q35 machine, and
//! [`authenticode_sha384`] the PE/COFF Authenticode hash edk2's measured-boot library computes
//! (`DxeTpm2MeasureBootLib`, `Tcg2MeasurePeImage`).

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

use sha2::{Digest, Sha384};
use thiserror::Error;

use crate::tdx::MEASUREMENT_LEN;

/// Bytes QEMU keeps free below the top of low memory for ACPI data on a pc/q35 machine.
pub const QEMU_ACPI_DATA_SIZE: u32 = 0x28000;

/// Why a kernel image cannot be measured.
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KernelError {
    /// The image is not a PE/COFF file, or a PE structure points outside it.
    #[error("kernel is not a valid PE/COFF image: {0}")]
    BadPe(&'static str),
    /// The image has no Linux setup header QEMU can boot directly with an initrd.
    #[error("kernel has no usable Linux boot-protocol header: {0}")]
    BadSetupHeader(&'static str),
    /// The `vga=` parameter is one QEMU refuses.
    #[error("invalid vga= parameter in the command line")]
    BadVga,
    /// The initrd does not fit below the highest address QEMU allows.
    #[error("initrd of {0} bytes does not fit in low memory")]
    InitrdTooLarge(u64),
}

/// Applies QEMU's setup-header patch for a q35 guest with `memory_size` bytes of RAM, an initrd
/// of `initrd_len` bytes (0 for none) and the `-append` command line `cmdline`.
pub fn qemu_patch_kernel(
    kernel: &[u8],
    initrd_len: u64,
    cmdline: &str,
    memory_size: u64,
) -> Result<Vec<u8>, KernelError> {
    let mut k = kernel.to_vec();
    if get_u32(&k, 0x202) != Some(0x5372_6448) {
        return Err(KernelError::BadSetupHeader("no HdrS signature"));
    }
    let protocol = get_u16(&k, 0x206).ok_or(KernelError::BadSetupHeader("truncated"))?;
    if protocol < 0x200 {
        return Err(KernelError::BadSetupHeader("boot protocol older than 2.00"));
    }
    let setup_sects = match k.get(0x1f1).copied() {
        Some(0) => 4,
        Some(n) => u64::from(n),
        None => return Err(KernelError::BadSetupHeader("truncated")),
    };
    if setup_sects.saturating_add(1).saturating_mul(512) > k.len() as u64 {
        return Err(KernelError::BadSetupHeader("setup larger than the image"));
    }
    let loadflags = k.get(0x211).copied().unwrap_or(0);
    // QEMU rounds the command line plus its NUL up to 16 bytes below 0x9a000 for kernels that
    // must be loaded low or have no cmd_line_ptr field.
    let cmdline_size = (u32::try_from(cmdline.len()).unwrap_or(u32::MAX) & !15).wrapping_add(16);
    let (real_addr, cmdline_addr): (u32, u32) = if loadflags & 0x01 == 0 || protocol < 0x202 {
        (0x9_0000, 0x9_a000u32.wrapping_sub(cmdline_size))
    } else {
        (0x1_0000, 0x2_0000)
    };

    let xloadflags = get_u16(&k, 0x236).unwrap_or(0);
    let mut initrd_max: u32 = if protocol >= 0x20c && xloadflags & 0x2 != 0 {
        u32::MAX
    } else if protocol >= 0x203 {
        get_u32(&k, 0x22c).ok_or(KernelError::BadSetupHeader("truncated"))?
    } else {
        0x37ff_ffff
    };
    // q35: below 2.75 GiB of RAM all of it is low memory; from there on, 2 GiB is.
    let lowmem: u64 = if memory_size >= 0xb000_0000 {
        0x8000_0000
    } else {
        0xb000_0000
    };
    let below_4g = u32::try_from(memory_size.min(lowmem)).unwrap_or(u32::MAX);
    let limit = below_4g.saturating_sub(QEMU_ACPI_DATA_SIZE);
    if initrd_max >= limit {
        initrd_max = limit.saturating_sub(1);
    }

    if protocol >= 0x202 {
        put(&mut k, 0x228, &cmdline_addr.to_le_bytes())?;
    } else {
        put(&mut k, 0x20, &0xa33fu16.to_le_bytes())?;
        let offset = cmdline_addr.wrapping_sub(real_addr) as u16;
        put(&mut k, 0x22, &offset.to_le_bytes())?;
    }
    if let Some(mode) = vga_mode(cmdline)? {
        put(&mut k, 0x1fa, &mode.to_le_bytes())?;
    }
    put(&mut k, 0x210, &[0xb0])?;
    if protocol >= 0x201 {
        put(&mut k, 0x211, &[loadflags | 0x80])?;
        let heap_end = cmdline_addr.wrapping_sub(real_addr).wrapping_sub(0x200) as u16;
        put(&mut k, 0x224, &heap_end.to_le_bytes())?;
    }
    if initrd_len > 0 {
        let size =
            u32::try_from(initrd_len).map_err(|_| KernelError::InitrdTooLarge(initrd_len))?;
        if size >= initrd_max {
            return Err(KernelError::InitrdTooLarge(initrd_len));
        }
        let addr = initrd_max.saturating_sub(size) & !4095;
        put(&mut k, 0x218, &addr.to_le_bytes())?;
        put(&mut k, 0x21c, &size.to_le_bytes())?;
    }
    Ok(k)
}

/// The video mode QEMU writes for a `vga=` parameter, as QEMU parses it.
fn vga_mode(cmdline: &str) -> Result<Option<u16>, KernelError> {
    let Some(at) = cmdline.find("vga=") else {
        return Ok(None);
    };
    let value = cmdline.get(at.saturating_add(4)..).unwrap_or_default();
    for (name, mode) in [("normal", 0xffff), ("ext", 0xfffe), ("ask", 0xfffd)] {
        if value.starts_with(name) {
            return Ok(Some(mode));
        }
    }
    let word = value.split(' ').next().unwrap_or_default();
    let parsed = if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16)
    } else if word.len() > 1 && word.starts_with('0') {
        u32::from_str_radix(word.get(1..).unwrap_or_default(), 8)
    } else {
        word.parse::<u32>()
    };
    // QEMU stores the low 16 bits of what it parsed.
    parsed
        .map(|m| Some(m as u16))
        .map_err(|_| KernelError::BadVga)
}

/// The PE/COFF Authenticode SHA-384 of `image`, as edk2 measures a loaded EFI image.
///
/// Headers without the checksum and the certificate-table entry, then the sections in file
/// order, then any bytes after the last section except the certificate table.
pub fn authenticode_sha384(image: &[u8]) -> Result<[u8; MEASUREMENT_LEN], KernelError> {
    let bad = KernelError::BadPe;
    let pe = usize::try_from(get_u32(image, 0x3c).ok_or(bad("no DOS header"))?)
        .map_err(|_| bad("e_lfanew"))?;
    if get_u32(image, pe) != Some(0x0000_4550) {
        return Err(bad("no PE signature"));
    }
    let coff = pe.checked_add(4).ok_or(bad("e_lfanew"))?;
    let sections = usize::from(get_u16(image, coff.saturating_add(2)).ok_or(bad("COFF header"))?);
    let opt_size = usize::from(get_u16(image, coff.saturating_add(16)).ok_or(bad("COFF header"))?);
    let opt = coff.saturating_add(20);
    let (rva_count_at, dirs_at) = match get_u16(image, opt) {
        Some(0x10b) => (opt.saturating_add(92), opt.saturating_add(96)),
        Some(0x20b) => (opt.saturating_add(108), opt.saturating_add(112)),
        _ => return Err(bad("unknown optional header magic")),
    };
    let checksum_at = opt.saturating_add(64);
    let headers =
        usize::try_from(get_u32(image, opt.saturating_add(60)).ok_or(bad("optional header"))?)
            .map_err(|_| bad("SizeOfHeaders"))?;
    let rva_count = get_u32(image, rva_count_at).ok_or(bad("optional header"))?;
    let security_at = dirs_at.saturating_add(4 * 8);
    let has_security = rva_count > 4;

    let mut hash = Sha384::new();
    hash.update(slice(image, 0, checksum_at)?);
    let (cert_size, after_checksum_end) = if has_security {
        hash.update(slice(image, checksum_at.saturating_add(4), security_at)?);
        let size = get_u32(image, security_at.saturating_add(4)).ok_or(bad("data directory"))?;
        (u64::from(size), security_at.saturating_add(8))
    } else {
        (0, checksum_at.saturating_add(4))
    };
    hash.update(slice(image, after_checksum_end, headers)?);

    let table = opt.checked_add(opt_size).ok_or(bad("section table"))?;
    let mut raw = Vec::new();
    for i in 0..sections {
        let at = table.saturating_add(i.saturating_mul(40));
        let size = get_u32(image, at.saturating_add(16)).ok_or(bad("section table"))?;
        let ptr = get_u32(image, at.saturating_add(20)).ok_or(bad("section table"))?;
        if size != 0 {
            raw.push((ptr, size));
        }
    }
    raw.sort_by_key(|&(ptr, _)| ptr);
    let mut hashed = headers as u64;
    for (ptr, size) in raw {
        let start = ptr as usize;
        hash.update(slice(image, start, start.saturating_add(size as usize))?);
        hashed = hashed.saturating_add(u64::from(size));
    }
    let len = image.len() as u64;
    if len > hashed {
        let end = len
            .checked_sub(cert_size)
            .filter(|end| *end >= hashed)
            .ok_or(bad("certificate table larger than the trailing data"))?;
        hash.update(slice(image, hashed as usize, end as usize)?);
    }
    let mut out = [0u8; MEASUREMENT_LEN];
    out.copy_from_slice(&hash.finalize());
    Ok(out)
}

fn slice(bytes: &[u8], start: usize, end: usize) -> Result<&[u8], KernelError> {
    bytes
        .get(start..end)
        .ok_or(KernelError::BadPe("structure outside the image"))
}

fn get_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(b.try_into().ok()?))
}

fn get_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) -> Result<(), KernelError> {
    let end = at.checked_add(value.len());
    end.and_then(|end| bytes.get_mut(at..end))
        .ok_or(KernelError::BadSetupHeader("truncated"))?
        .copy_from_slice(value);
    Ok(())
}
