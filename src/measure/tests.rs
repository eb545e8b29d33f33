use super::synthetic::SyntheticTdvf;
use super::tdvf::SectionType;
use super::*;

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn synthetic_image_parses() {
    let image = SyntheticTdvf::typical(3, 1).build();
    let meta = TdvfMetadata::parse(&image.bytes).unwrap();
    assert_eq!(meta.descriptor_offset, image.descriptor_offset);
    assert_eq!(meta.sections.len(), 4);
    assert_eq!(meta.sections[0].section_type, SectionType::Bfv);
    assert!(meta.sections[0].is_extended());
    assert!(!meta.sections[2].is_extended());
    assert_eq!(meta.sections[3].page_count(), 2);
}

#[test]
fn orders_give_different_mr_td_and_content_matters() {
    let a = SyntheticTdvf::typical(2, 1).build();
    let b = SyntheticTdvf::typical(2, 2).build();
    let a_page = measure_mr_td(&a.bytes, PageAddOrder::PerPage).unwrap();
    let a_sect = measure_mr_td(&a.bytes, PageAddOrder::PerSection).unwrap();
    assert_ne!(a_page, a_sect);
    assert_ne!(
        a_page,
        measure_mr_td(&b.bytes, PageAddOrder::PerPage).unwrap()
    );
}

#[test]
fn single_unextended_page_is_one_page_add_record() {
    let mut tdvf = SyntheticTdvf::typical(1, 0);
    tdvf.sections.truncate(1);
    tdvf.sections[0].attributes = 0;
    tdvf.sections[0].memory_base = 0x1234_5000;
    let image = tdvf.build();
    let mut record = [0u8; 128];
    record[..12].copy_from_slice(b"MEM.PAGE.ADD");
    record[16..24].copy_from_slice(&0x1234_5000u64.to_le_bytes());
    let expected: [u8; 48] = sha2::Sha384::digest(record).into();
    use sha2::Digest;
    assert_eq!(
        measure_mr_td(&image.bytes, PageAddOrder::PerPage).unwrap(),
        expected
    );
}

#[test]
fn short_raw_data_is_zero_padded() {
    let mut short = SyntheticTdvf::typical(1, 0);
    short.sections.truncate(1);
    short.sections[0].data = vec![7u8; 100];
    let mut full = short.clone();
    let mut padded = vec![7u8; 100];
    padded.resize(4096, 0);
    full.sections[0].data = padded;
    let order = PageAddOrder::PerPage;
    assert_eq!(
        measure_mr_td(&short.build().bytes, order).unwrap(),
        measure_mr_td(&full.build().bytes, order).unwrap()
    );
}

#[test]
fn non_ovmf_file_rejected() {
    assert_eq!(TdvfMetadata::parse(b""), Err(TdvfError::NotOvmf));
    assert_eq!(TdvfMetadata::parse(&[0u8; 4096]), Err(TdvfError::NotOvmf));
}

#[test]
fn metadata_pointer_outside_image_rejected() {
    let mut image = SyntheticTdvf::typical(1, 0).build();
    put_u32(&mut image.bytes, image.metadata_pointer_offset, u32::MAX);
    assert!(matches!(
        TdvfMetadata::parse(&image.bytes),
        Err(TdvfError::OutOfBounds(_))
    ));
}

#[test]
fn section_data_outside_image_rejected() {
    let mut image = SyntheticTdvf::typical(1, 0).build();
    let first_section = image.descriptor_offset + 16;
    put_u32(&mut image.bytes, first_section, 0xffff_f000);
    assert!(matches!(
        TdvfMetadata::parse(&image.bytes),
        Err(TdvfError::OutOfBounds(_))
    ));
}

#[test]
fn bad_signature_version_and_count_rejected() {
    let base = SyntheticTdvf::typical(1, 0).build();
    let d = base.descriptor_offset;
    let mut sig = base.bytes.clone();
    sig[d] = b'X';
    assert_eq!(TdvfMetadata::parse(&sig), Err(TdvfError::BadSignature));
    let mut version = base.bytes.clone();
    put_u32(&mut version, d + 8, 2);
    assert_eq!(
        TdvfMetadata::parse(&version),
        Err(TdvfError::UnsupportedVersion(2))
    );
    let mut count = base.bytes.clone();
    put_u32(&mut count, d + 12, u32::MAX);
    assert!(matches!(
        TdvfMetadata::parse(&count),
        Err(TdvfError::OutOfBounds(_))
    ));
}

#[test]
fn huge_memory_rejected_before_hashing() {
    let mut tdvf = SyntheticTdvf::typical(1, 0);
    tdvf.sections[3].pages = 1 << 40;
    assert_eq!(
        TdvfMetadata::parse(&tdvf.build().bytes),
        Err(TdvfError::TooMuchMemory)
    );
}

#[test]
fn misaligned_section_rejected() {
    let mut tdvf = SyntheticTdvf::typical(1, 0);
    tdvf.sections[1].memory_base += 1;
    assert!(matches!(
        TdvfMetadata::parse(&tdvf.build().bytes),
        Err(TdvfError::Section { index: 1, .. })
    ));
}

proptest::proptest! {
    #[test]
    fn arbitrary_corruption_never_panics(at in 0usize..20_000, value in proptest::num::u8::ANY) {
        let mut image = SyntheticTdvf::typical(2, 3).build().bytes;
        let len = image.len();
        image[at % len] = value;
        let _ = measure_mr_td(&image, PageAddOrder::PerPage);
    }

    #[test]
    fn truncation_never_panics(cut in 0usize..20_000) {
        let image = SyntheticTdvf::typical(2, 3).build().bytes;
        let keep = cut % image.len();
        let _ = measure_mr_td(&image[image.len() - keep..], PageAddOrder::PerSection);
    }
}

mod direct_boot {
    use super::kernel::{qemu_patch_kernel, KernelError};
    use super::rtmr::{parse_memory_size, replay};
    use super::synthetic::synthetic_kernel;

    fn u16_at(k: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([k[at], k[at + 1]])
    }

    fn u32_at(k: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(k[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn qemu_patch_writes_loader_fields() {
        let k = synthetic_kernel(8192, 0);
        let p = qemu_patch_kernel(&k, 5000, "console=ttyS0", 4 << 30).unwrap();
        assert_eq!(p[0x210], 0xb0);
        assert_eq!(p[0x211], 0x81);
        assert_eq!(u16_at(&p, 0x224), 0xfe00);
        assert_eq!(u32_at(&p, 0x228), 0x2_0000);
        assert_eq!(u32_at(&p, 0x218), (0x37ff_ffff - 5000) & !4095);
        assert_eq!(u32_at(&p, 0x21c), 5000);
        assert_eq!(p.len(), k.len());
        // Outside the patched fields the image is unchanged.
        assert_eq!(p[0x400..], k[0x400..]);
    }

    #[test]
    fn small_guest_caps_initrd_below_acpi_data() {
        let k = synthetic_kernel(8192, 0);
        let p = qemu_patch_kernel(&k, 4096, "", 256 << 20).unwrap();
        let initrd_max = (256u32 << 20) - 0x28000 - 1;
        assert_eq!(u32_at(&p, 0x218), (initrd_max - 4096) & !4095);
        assert_eq!(
            qemu_patch_kernel(&k, 300 << 20, "", 256 << 20),
            Err(KernelError::InitrdTooLarge(300 << 20))
        );
    }

    #[test]
    fn vga_parameter_as_qemu_reads_it() {
        let k = synthetic_kernel(8192, 0);
        let mode =
            |cmdline: &str| qemu_patch_kernel(&k, 0, cmdline, 1 << 30).map(|p| u16_at(&p, 0x1fa));
        assert_eq!(mode("quiet vga=normal"), Ok(0xffff));
        assert_eq!(mode("vga=ext"), Ok(0xfffe));
        assert_eq!(mode("vga=0x317 quiet"), Ok(0x317));
        assert_eq!(mode("vga=791"), Ok(791));
        assert_eq!(mode("vga=bogus"), Err(KernelError::BadVga));
        assert_eq!(mode("quiet"), Ok(0));
    }

    #[test]
    fn replay_of_nothing_is_zero() {
        assert_eq!(replay(&[]), [0u8; 48]);
    }

    #[test]
    fn memory_sizes_parse_like_qemu() {
        assert_eq!(parse_memory_size("2G"), Some(2 << 30));
        assert_eq!(parse_memory_size("512m"), Some(512 << 20));
        // A bare number is MiB, as QEMU's -m reads it; B is bytes.
        assert_eq!(parse_memory_size("512"), Some(512 << 20));
        assert_eq!(parse_memory_size("4096B"), Some(4096));
        assert_eq!(parse_memory_size("lots"), None);
        assert_eq!(parse_memory_size(""), None);
        assert_eq!(parse_memory_size("99999999999T"), None);
    }
}
