//! RTMR1 and RTMR2 for direct kernel boot (QEMU `-kernel/-initrd/-append` with TDX OVMF).
//!
//! An RTMR starts at 48 zero bytes; each event extends it: `rtmr = SHA-384(rtmr ‖ digest)`.
//! The events OVMF records, in order:
//!
//! - RTMR1 (PCR 2..6): the Authenticode SHA-384 of the kernel as QEMU patched it
//!   ([`super::kernel`]), then SHA-384 of `"Calling EFI Application from Boot Option"`, of the
//!   separator `00 00 00 00`, of `"Exit Boot Services Invocation"` and of
//!   `"Exit Boot Services Returned with Success"`.
//! - RTMR2 (PCR 8..15): SHA-384 of the kernel command line as OVMF passes it to the kernel (the
//!   `-append` string, with `" initrd=initrd"` appended when an initrd is given, UTF-16LE with a
//!   terminating NUL), then SHA-384 of the initrd.
//!
//! This is the event sequence of OVMF releases before edk2-stable202505 as booted by QEMU; the
//! RTMR1 kernel digest also depends on the guest's memory size (it moves the initrd address QEMU
//! writes into the header). RTMR0 (ACPI tables, TD HOB, UEFI variables) is not computed.

use sha2::{Digest, Sha384};

use super::kernel::{authenticode_sha384, qemu_patch_kernel, KernelError};
use crate::tdx::MEASUREMENT_LEN;

/// Inputs of a direct kernel boot.
#[derive(Clone, Copy, Debug)]
pub struct DirectBoot<'a> {
    /// The kernel image (bzImage with EFI stub) as given to `-kernel`.
    pub kernel: &'a [u8],
    /// The initrd as given to `-initrd` (empty for none).
    pub initrd: &'a [u8],
    /// The command line as given to `-append`.
    pub cmdline: &'a str,
    /// Guest memory size in bytes (`-m`).
    pub memory_size: u64,
}

/// RTMR1 and RTMR2 of a direct kernel boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRtmrs {
    /// RTMR1: kernel and boot-service events.
    pub rtmr1: [u8; MEASUREMENT_LEN],
    /// RTMR2: command line and initrd.
    pub rtmr2: [u8; MEASUREMENT_LEN],
}

/// Event digests of RTMR1, in order.
pub fn rtmr1_events(boot: &DirectBoot<'_>) -> Result<Vec<[u8; MEASUREMENT_LEN]>, KernelError> {
    let patched = qemu_patch_kernel(
        boot.kernel,
        boot.initrd.len() as u64,
        boot.cmdline,
        boot.memory_size,
    )?;
    Ok(vec![
        authenticode_sha384(&patched)?,
        sha384(b"Calling EFI Application from Boot Option"),
        sha384(&[0, 0, 0, 0]),
        sha384(b"Exit Boot Services Invocation"),
        sha384(b"Exit Boot Services Returned with Success"),
    ])
}

/// Event digests of RTMR2, in order.
pub fn rtmr2_events(boot: &DirectBoot<'_>) -> Vec<[u8; MEASUREMENT_LEN]> {
    let mut cmdline = boot.cmdline.to_owned();
    if !boot.initrd.is_empty() {
        cmdline.push_str(" initrd=initrd");
    }
    let mut utf16: Vec<u8> = cmdline.encode_utf16().flat_map(u16::to_le_bytes).collect();
    utf16.extend_from_slice(&[0, 0]);
    let mut events = vec![sha384(&utf16)];
    if !boot.initrd.is_empty() {
        events.push(sha384(boot.initrd));
    }
    events
}

/// Computes RTMR1 and RTMR2 for a direct kernel boot.
pub fn compute_boot_rtmrs(boot: &DirectBoot<'_>) -> Result<BootRtmrs, KernelError> {
    Ok(BootRtmrs {
        rtmr1: replay(&rtmr1_events(boot)?),
        rtmr2: replay(&rtmr2_events(boot)),
    })
}

/// Extends a zero register with each digest in turn.
pub fn replay(events: &[[u8; MEASUREMENT_LEN]]) -> [u8; MEASUREMENT_LEN] {
    let mut register = [0u8; MEASUREMENT_LEN];
    for event in events {
        let mut hash = Sha384::new();
        hash.update(register);
        hash.update(event);
        register.copy_from_slice(&hash.finalize());
    }
    register
}

fn sha384(data: &[u8]) -> [u8; MEASUREMENT_LEN] {
    let mut out = [0u8; MEASUREMENT_LEN];
    out.copy_from_slice(&Sha384::digest(data));
    out
}

/// Parses a memory size as QEMU's `-m` takes it: a number of MiB, or a number with a `B`, `K`,
/// `M`, `G` or `T` suffix (binary units; `B` is bytes). `None` if it does not parse or overflows.
pub fn parse_memory_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'b' | 'B') => (text.get(..i)?, 0),
        (i, 'k' | 'K') => (text.get(..i)?, 10),
        (i, 'm' | 'M') => (text.get(..i)?, 20),
        (i, 'g' | 'G') => (text.get(..i)?, 30),
        (i, 't' | 'T') => (text.get(..i)?, 40),
        _ => (text, 20),
    };
    let value: u64 = digits.parse().ok()?;
    value.checked_mul(1u64 << shift)
}
