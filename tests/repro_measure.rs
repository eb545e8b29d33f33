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

use std::path::PathBuf;
use std::process::Command;

use ratls_quic::repro::{measure_mr_td, synthetic::SyntheticTdvf, PageAddOrder, TdvfError};
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

#[test]
fn measure_command_refuses_rtmr_inputs() {
    let file = write_temp(&SyntheticTdvf::typical(1, 1).build().bytes);
    let out = ratls()
        .args(["measure", "--cmdline", "console=ttyS0", "--firmware"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("not computed"));
}
