//! `ratls measure` and the MRTD replay against values computed by an independent implementation.
//!
//! # Where the expected values come from
//!
//! Tool: `dstack-mr` from Dstack-TEE/dstack, commit 312dc605ebaaf93372534ffb135ea011533d28e9
//! (package `dstack/dstack-mr`, binary `dstack-mr`, built unmodified in a workspace cut down to
//! `dstack-mr`, `dstack-types` and `size-parser`). Invocation, on a directory holding the
//! firmware, a minimal PE kernel, an initrd and a `metadata.json`
//! `{"cmdline":"console=ttyS0 dstack.rootfs_hash=<64 zeros>","kernel":"bzImage",
//! "initrd":"initrd","bios":"<firmware>","version":"0.5.0"}`:
//!
//! ```text
//! dstack-mr tdx-measurement-cbor DIR > m.cbor
//! dstack-mr inspect-measurement tdx m.cbor
//! ```
//!
//! Its `tdvf.mrtd.single_pass` is our per-page order, `two_pass` our per-section order. The kernel
//! and initrd do not enter MRTD.
//!
//! RTMR1/RTMR2 expectations come from the same commit's library function
//! `dstack_mr::tdx::tdx_measurements_for_image_dir_without_rtmr0(dir, &VmConfig { memory_size,
//! cpu_count: 1, .. })`, called from a six-line local driver that prints its `rtmr1`/`rtmr2`,
//! on the same kind of directory holding `synthetic_kernel(20000, 1)` (optionally with byte
//! 0x236 set to 0x42) and the 5,000-byte initrd below. dstack-mr measures its metadata
//! `cmdline` followed by `" initrd=initrd"`, which is what OVMF passes to the kernel when an
//! initrd is given and what `DirectBoot` adds to the `-append` string.

use std::path::PathBuf;
use std::process::Command;

use ratls_quic::measure::{
    compute_boot_rtmrs, measure_mr_td, DirectBoot, KernelError, PageAddOrder, TdvfError,
};
use ratls_quic::synthetic::{synthetic_kernel, SyntheticTdvf};
use sha2::{Digest, Sha256};

/// Debian bookworm `ovmf` 2022.11-6+deb12u2, `/usr/share/ovmf/OVMF.fd`.
const DEBIAN_OVMF_SHA256: &str = "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773";
/// dstack-mr `single_pass` on that image.
const DEBIAN_OVMF_MRTD_PER_PAGE: &str = "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5a\
                                         a9c4999a08de4057fb887fed0744d5631a212967fb231c47";
/// dstack-mr `two_pass` on that image.
const DEBIAN_OVMF_MRTD_PER_SECTION: &str = "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202\
                                            ed4bb4e892d045b33db3b32e6924cba830a724eed443f7e1";
/// dstack-mr on `SyntheticTdvf::typical(3, 0x42)` (16,600 bytes, sha256 57f22287...d9a61e).
const SYNTHETIC_MRTD_PER_PAGE: &str = "e9c1569a526313a78d63d2db5f0420e1da3516b6771630b4\
                                       f6433990a70152f03ba938acd4799bc2222680cf4955f8fd";
const SYNTHETIC_MRTD_PER_SECTION: &str = "cb1ec6e2961a4234ce4d1c47448244d9f763c041c68e5c5d\
                                          2a528e768e2c521a3770a12fd355e5d652f95350af84424f";

fn ratls() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ratls"))
}

/// The Debian image: `$RATLS_OVMF`, else what `scripts/fetch-ovmf.sh` unpacks, else the
/// installed package. `None` (test skipped) only outside CI.
fn debian_ovmf() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RATLS_OVMF").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ovmf/usr/share/ovmf/OVMF.fd")),
        Some(PathBuf::from("/usr/share/ovmf/OVMF.fd")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        let msg = "Debian OVMF.fd not found: run scripts/fetch-ovmf.sh or set RATLS_OVMF";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("skipping: {msg}");
    }
    found
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

#[test]
fn debian_ovmf_mr_td_matches_independent_implementation() {
    let Some(path) = debian_ovmf() else { return };
    let image = std::fs::read(&path).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&image)),
        DEBIAN_OVMF_SHA256,
        "{} is not ovmf 2022.11-6+deb12u2's OVMF.fd; the expected MRTD is for that image",
        path.display()
    );
    let per_page = measure_mr_td(&image, PageAddOrder::PerPage).unwrap();
    let per_section = measure_mr_td(&image, PageAddOrder::PerSection).unwrap();
    assert_eq!(hex::encode(per_page), DEBIAN_OVMF_MRTD_PER_PAGE);
    assert_eq!(hex::encode(per_section), DEBIAN_OVMF_MRTD_PER_SECTION);
}

#[test]
fn measure_command_prints_debian_ovmf_mr_td() {
    let Some(path) = debian_ovmf() else { return };
    let out = ratls()
        .arg("measure")
        .arg("--firmware")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("mr_td {DEBIAN_OVMF_MRTD_PER_PAGE}\n")
    );
    let out = ratls()
        .args(["measure", "--order", "section", "--json", "--firmware"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["mr_td"], DEBIAN_OVMF_MRTD_PER_SECTION);
    assert!(json.get("rtmr1").is_none() && json.get("rtmr2").is_none());
}

#[test]
fn debian_code_only_image_refused_as_pointing_outside() {
    // OVMF_CODE.fd carries the same metadata as OVMF.fd, whose CFV lies in the variable store
    // that the split image does not contain: a real image whose metadata points outside it.
    let Some(path) = debian_ovmf() else { return };
    let share = path.parent().and_then(|p| p.parent()).unwrap_or(&path);
    let code = share.join("OVMF/OVMF_CODE.fd");
    if !code.is_file() {
        eprintln!("skipping: no OVMF_CODE.fd beside {}", path.display());
        return;
    }
    let image = std::fs::read(&code).unwrap();
    assert!(matches!(
        measure_mr_td(&image, PageAddOrder::PerPage),
        Err(TdvfError::OutOfBounds(_))
    ));
}

#[test]
fn synthetic_mr_td_matches_independent_implementation() {
    let image = SyntheticTdvf::typical(3, 0x42).build().bytes;
    assert_eq!(image.len(), 16_600);
    let per_page = measure_mr_td(&image, PageAddOrder::PerPage).unwrap();
    let per_section = measure_mr_td(&image, PageAddOrder::PerSection).unwrap();
    assert_eq!(hex::encode(per_page), SYNTHETIC_MRTD_PER_PAGE);
    assert_eq!(hex::encode(per_section), SYNTHETIC_MRTD_PER_SECTION);
}

#[test]
fn measure_command_on_synthetic_image() {
    let file = write_temp(&SyntheticTdvf::typical(3, 0x42).build().bytes);
    let out = ratls()
        .args(["measure", "--json", "--firmware"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["mr_td"], SYNTHETIC_MRTD_PER_PAGE);
}

#[test]
fn measure_command_non_tdvf_file_exits_2() {
    let file = write_temp(&[0x55; 8192]);
    let out = ratls()
        .arg("measure")
        .arg("--firmware")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not an OVMF/TDVF firmware image"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn measure_command_corrupted_image_exits_2() {
    let mut image = SyntheticTdvf::typical(2, 1).build();
    let at = image.metadata_pointer_offset;
    image.bytes[at..at + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let file = write_temp(&image.bytes);
    let out = ratls()
        .arg("measure")
        .arg("--firmware")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("points outside the image"), "{err}");
}

const CMDLINE: &str =
    "console=ttyS0 dstack.rootfs_hash=0000000000000000000000000000000000000000000000000000000000000000";
/// dstack-mr on `synthetic_kernel(20000, 1)`, at 1, 2, 3 and 4 GiB (initrd below 0x37ffffff).
const RTMR1_PLAIN_HIGH_MEM: &str = "d0effbabed433f680099a088bc2e65dec5355a11f235ff17\
                                    faabf434b8fc6a1bb8a8fef0739331191624bd6834a3a889";
/// The same kernel at 512 MiB: the initrd moves below the smaller low memory.
const RTMR1_PLAIN_512M: &str = "7d10f63fd5e44ac44491eb1c9700bcb60a980b5080d2e078\
                                2aa9a6fb2ef01106bb1679caa78d20be7f2586770da63dc2";
/// Byte 0x236 (xloadflags) = 0x42: initrd may go anywhere below 4 GiB; at 2 and 3 GiB.
const RTMR1_XLF_HIGH_MEM: &str = "016b604938a8307ef51afeaf8cfe9c37c42c6b9ac010d45e\
                                  d8016f52af2edf2a511474ed503bbf6812998508801da5d8";
/// The same at 512 MiB.
const RTMR1_XLF_512M: &str = "cdcd70a463aea2d0c8f7d46fe3866a0885157e264553d794\
                              7096326aa2431b557b0df54980cdc96914ef38f4e93022b5";
/// dstack-mr RTMR2 for `CMDLINE` and the initrd, at every memory size.
const RTMR2: &str = "d0c4789438a5280a59ff3fb5a230c08c1b29f97585afb3c7\
                     36e10abd3925eec435da68d9450ff4500b81d79b789f2af0";

fn initrd() -> Vec<u8> {
    (0..5000u32).map(|i| (i % 251) as u8).collect()
}

fn rtmrs(kernel: &[u8], memory_size: u64) -> (String, String) {
    let initrd = initrd();
    let boot = DirectBoot {
        kernel,
        initrd: &initrd,
        cmdline: CMDLINE,
        memory_size,
    };
    let r = compute_boot_rtmrs(&boot).unwrap();
    (hex::encode(r.rtmr1), hex::encode(r.rtmr2))
}

#[test]
fn boot_rtmrs_match_independent_implementation() {
    let plain = synthetic_kernel(20000, 1);
    let mut xlf = plain.clone();
    xlf[0x236] = 0x42;
    for gib in [1u64, 2, 3, 4] {
        assert_eq!(
            rtmrs(&plain, gib << 30),
            (RTMR1_PLAIN_HIGH_MEM.into(), RTMR2.into())
        );
    }
    assert_eq!(rtmrs(&plain, 512 << 20).0, RTMR1_PLAIN_512M);
    assert_eq!(rtmrs(&xlf, 2 << 30).0, RTMR1_XLF_HIGH_MEM);
    assert_eq!(rtmrs(&xlf, 3 << 30).0, RTMR1_XLF_HIGH_MEM);
    assert_eq!(rtmrs(&xlf, 512 << 20).0, RTMR1_XLF_512M);
}

#[test]
fn kernel_without_pe_or_setup_header_rejected() {
    let initrd = initrd();
    let mut boot = DirectBoot {
        kernel: &[0u8; 8192],
        initrd: &initrd,
        cmdline: "",
        memory_size: 2 << 30,
    };
    assert!(matches!(
        compute_boot_rtmrs(&boot),
        Err(KernelError::BadSetupHeader(_))
    ));
    let mut no_pe = synthetic_kernel(8192, 0);
    no_pe[0x80] = b'X';
    boot.kernel = &no_pe;
    assert!(matches!(
        compute_boot_rtmrs(&boot),
        Err(KernelError::BadPe(_))
    ));
    let truncated = synthetic_kernel(8192, 0);
    boot.kernel = &truncated[..0x300];
    assert!(compute_boot_rtmrs(&boot).is_err());
}

#[test]
fn measure_command_prints_rtmrs_for_direct_boot() {
    let firmware = write_temp(&SyntheticTdvf::typical(3, 0x42).build().bytes);
    let kernel = write_temp(&synthetic_kernel(20000, 1));
    let initrd = write_temp(&initrd());
    let out = ratls()
        .args(["measure", "--json", "--memory", "2G", "--cmdline", CMDLINE])
        .arg("--firmware")
        .arg(firmware.path())
        .arg("--kernel")
        .arg(kernel.path())
        .arg("--initrd")
        .arg(initrd.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["mr_td"], SYNTHETIC_MRTD_PER_PAGE);
    assert_eq!(json["rtmr1"], RTMR1_PLAIN_HIGH_MEM);
    assert_eq!(json["rtmr2"], RTMR2);
}

#[test]
fn measure_command_kernel_input_errors_exit_2() {
    let firmware = write_temp(&SyntheticTdvf::typical(1, 1).build().bytes);
    let kernel = write_temp(&synthetic_kernel(8192, 1));
    let run = |extra: &[&str], with_kernel: bool| {
        let mut cmd = ratls();
        cmd.arg("measure").arg("--firmware").arg(firmware.path());
        if with_kernel {
            cmd.arg("--kernel").arg(kernel.path());
        }
        cmd.args(extra).output().unwrap()
    };
    let no_memory = run(&[], true);
    assert_eq!(no_memory.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_memory.stderr).contains("--memory"));
    assert_eq!(run(&["--memory", "lots"], true).status.code(), Some(2));
    assert_eq!(run(&["--cmdline", "x"], false).status.code(), Some(2));
    let not_pe = write_temp(&[0u8; 8192]);
    let out = ratls()
        .arg("measure")
        .arg("--firmware")
        .arg(firmware.path())
        .arg("--kernel")
        .arg(not_pe.path())
        .args(["--memory", "2G"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Debian bookworm `linux-image-6.1.0-56-amd64` 6.1.192-2, `/boot/vmlinuz-6.1.0-56-amd64` (signed
/// PE with a certificate table, xloadflags 0x7f), with the same initrd and `CMDLINE`. Expected
/// values from the dstack-mr driver described at the top of this file.
const DEBIAN_KERNEL_SHA256: &str =
    "26f2e57c99338feaf71c46fa4babdc7e1a6c115943002d109fdb746667104f5f";
const DEBIAN_KERNEL_RTMR1: [(u64, &str); 3] = [
    (
        512 << 20,
        "07ba1af8f2dd610aa2ae8fa5e221533a4b3af7935f2fe8f448a30ff654c6a5c3c553cf7d72325c05f94fdd91842f4935",
    ),
    (
        1 << 30,
        "9c39900da835f0c68d8e524e701f4759fb24df04c7bc097a44fb85c8a8583924b76d261e297c1ccdb828e728a114377a",
    ),
    (
        4 << 30,
        "8b747c17c4347aeb85e564b7327256c3ef77b2a7a176378832d22fc7f2760e691f43968f8625898d8c95fa3d8ec1e28c",
    ),
];

#[test]
#[ignore = "needs Debian's vmlinuz-6.1.0-56-amd64 (70 MB package): set RATLS_DEBIAN_KERNEL"]
fn debian_kernel_rtmrs_match_independent_implementation() {
    let path = std::env::var_os("RATLS_DEBIAN_KERNEL").expect("set RATLS_DEBIAN_KERNEL");
    let kernel = std::fs::read(path).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&kernel)), DEBIAN_KERNEL_SHA256);
    for (memory, rtmr1) in DEBIAN_KERNEL_RTMR1 {
        assert_eq!(
            rtmrs(&kernel, memory),
            (rtmr1.into(), RTMR2.into()),
            "{memory}"
        );
    }
}
