//! The Intel SGX extension (OID 1.2.840.113741.1.13.1) of a PCK leaf certificate, in DER.
//!
//! The extension value is a SEQUENCE of (OID, value) pairs: PPID, TCB (sixteen component SVNs,
//! PCESVN, CPUSVN), PCE-ID, FMSPC, SGX type, and, for certificates issued by the Platform CA,
//! the platform instance ID and the configuration flags. A tiny DER writer lives here because
//! nothing else in the crate needs one.

/// Arcs of the Intel SGX extension OID.
pub(super) const SGX_EXTENSION_OID: &[u64] = &[1, 2, 840, 113_741, 1, 13, 1];

const TAG_BOOLEAN: u8 = 0x01;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_ENUMERATED: u8 = 0x0a;
const TAG_SEQUENCE: u8 = 0x30;

/// SGX type of a scalable (Platform CA) platform.
const SGX_TYPE_SCALABLE: u8 = 1;

/// What the PCK leaf certifies about the platform.
#[derive(Clone, Debug)]
pub(super) struct SgxExtension {
    /// Platform provisioning ID.
    pub(super) ppid: [u8; 16],
    /// CPUSVN; its sixteen bytes are also written as `sgxtcbcomp01svn..16svn`.
    pub(super) cpu_svn: [u8; 16],
    /// PCE security version.
    pub(super) pce_svn: u16,
    /// PCE identifier.
    pub(super) pce_id: [u8; 2],
    /// Family-model-stepping-platform-custom SKU.
    pub(super) fmspc: [u8; 6],
    /// Platform instance ID (Platform CA certificates only).
    pub(super) platform_instance_id: [u8; 16],
}

impl SgxExtension {
    /// The DER encoding of the extension value (the contents of the extnValue OCTET STRING).
    pub(super) fn to_der(&self) -> Vec<u8> {
        let mut tcb = Vec::new();
        for (index, svn) in (1u64..).zip(self.cpu_svn) {
            let mut entry = oid(&sgx_arc(&[2, index]));
            entry.extend(integer(u16::from(svn)));
            tcb.extend(tlv(TAG_SEQUENCE, &entry));
        }
        let mut pce_svn = oid(&sgx_arc(&[2, 17]));
        pce_svn.extend(integer(self.pce_svn));
        tcb.extend(tlv(TAG_SEQUENCE, &pce_svn));
        let mut cpu_svn = oid(&sgx_arc(&[2, 18]));
        cpu_svn.extend(tlv(TAG_OCTET_STRING, &self.cpu_svn));
        tcb.extend(tlv(TAG_SEQUENCE, &cpu_svn));

        let mut configuration = Vec::new();
        // Dynamic platform, cached keys, SMT enabled: the values a typical cloud host reports.
        for (index, flag) in [(1u64, true), (2, true), (3, true)] {
            let mut entry = oid(&sgx_arc(&[7, index]));
            entry.extend(tlv(TAG_BOOLEAN, &[if flag { 0xff } else { 0x00 }]));
            configuration.extend(tlv(TAG_SEQUENCE, &entry));
        }

        let entries: [(&[u64], Vec<u8>); 7] = [
            (&[1], tlv(TAG_OCTET_STRING, &self.ppid)),
            (&[2], tlv(TAG_SEQUENCE, &tcb)),
            (&[3], tlv(TAG_OCTET_STRING, &self.pce_id)),
            (&[4], tlv(TAG_OCTET_STRING, &self.fmspc)),
            (&[5], tlv(TAG_ENUMERATED, &[SGX_TYPE_SCALABLE])),
            (&[6], tlv(TAG_OCTET_STRING, &self.platform_instance_id)),
            (&[7], tlv(TAG_SEQUENCE, &configuration)),
        ];
        let mut body = Vec::new();
        for (arc, value) in entries {
            let mut entry = oid(&sgx_arc(arc));
            entry.extend(value);
            body.extend(tlv(TAG_SEQUENCE, &entry));
        }
        tlv(TAG_SEQUENCE, &body)
    }
}

/// The SGX extension OID followed by `tail`.
fn sgx_arc(tail: &[u64]) -> Vec<u64> {
    let mut arcs = SGX_EXTENSION_OID.to_vec();
    arcs.extend_from_slice(tail);
    arcs
}

/// One DER element: tag, definite length, contents.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        // Short form: fits in seven bits by the branch condition.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        // Long form: at most size_of::<usize>() length bytes, far below 0x7f.
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
    out
}

/// An OBJECT IDENTIFIER element.
fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let (first, second) = match arcs {
        [first, second, ..] => (*first, *second),
        _ => (0, 0),
    };
    base128(first.saturating_mul(40).saturating_add(second), &mut body);
    for &arc in arcs.iter().skip(2) {
        base128(arc, &mut body);
    }
    tlv(TAG_OID, &body)
}

/// Base-128 big-endian encoding with continuation bits, as OID arcs use.
fn base128(mut value: u64, out: &mut Vec<u8>) {
    let mut groups = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        groups.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.extend(groups.iter().rev());
}

/// A non-negative INTEGER element with minimal encoding.
fn integer(value: u16) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut contents: Vec<u8> = match bytes {
        [0, low] => vec![low],
        [high, low] => vec![high, low],
    };
    if contents.first().is_some_and(|b| b & 0x80 != 0) {
        contents.insert(0, 0);
    }
    tlv(TAG_INTEGER, &contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_of_sgx_extension_matches_intel_encoding() {
        assert_eq!(
            hex::encode(oid(SGX_EXTENSION_OID)),
            "06092a864886f84d010d01"
        );
    }

    #[test]
    fn integer_is_minimal_and_non_negative() {
        assert_eq!(integer(11), [0x02, 0x01, 0x0b]);
        assert_eq!(integer(200), [0x02, 0x02, 0x00, 0xc8]);
        assert_eq!(integer(0x1234), [0x02, 0x02, 0x12, 0x34]);
    }

    #[test]
    fn extension_in_a_certificate_parses_as_dcap_pck_extension() {
        let ext = SgxExtension {
            ppid: [0xa1; 16],
            cpu_svn: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 200],
            pce_svn: 300,
            pce_id: [0x12, 0x34],
            fmspc: [1, 2, 3, 4, 5, 6],
            platform_instance_id: [0xb2; 16],
        };
        let mut params = rcgen::CertificateParams::default();
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            SGX_EXTENSION_OID,
            ext.to_der(),
        )];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let parsed = dcap_qvl::intel::parse_pck_extension(cert.der()).unwrap();
        assert_eq!(parsed.ppid, ext.ppid);
        assert_eq!(parsed.cpu_svn, ext.cpu_svn);
        assert_eq!(parsed.pce_svn, ext.pce_svn);
        assert_eq!(parsed.pce_id, ext.pce_id);
        assert_eq!(parsed.fmspc, ext.fmspc);
        assert_eq!(parsed.sgx_type, 1);
        assert_eq!(
            parsed.platform_instance_id,
            Some(ext.platform_instance_id.to_vec())
        );
        assert_eq!(parsed.dynamic_platform, Some(true));
        assert_eq!(parsed.cached_keys, Some(true));
        assert_eq!(parsed.smt_enabled, Some(true));
        // sgxtcbcomp01svn..16svn carry the CPUSVN bytes.
        for (index, svn) in (1u32..).zip(ext.cpu_svn) {
            let oid = const_oid_of(&format!("1.2.840.113741.1.13.1.2.{index}"));
            let value = parsed.get_value(&oid).unwrap().unwrap();
            let expected = if svn >= 0x80 { vec![0, svn] } else { vec![svn] };
            assert_eq!(value, expected, "component {index}");
        }
    }

    fn const_oid_of(dotted: &str) -> const_oid::ObjectIdentifier {
        const_oid::ObjectIdentifier::new(dotted).unwrap()
    }

    #[test]
    fn long_lengths_use_long_form() {
        let element = tlv(TAG_OCTET_STRING, &[0u8; 300]);
        assert_eq!(&element[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
