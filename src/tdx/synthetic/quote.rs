//! The byte layout of a DCAP v4 TDX quote, written field by field (all integers little-endian).
//!
//! ```text
//! header (48)  version=4 | att_key_type=2 | tee_type=0x81 | qe_svn | pce_svn | qe_vendor_id
//!              | user_data (QE ID || 4 zero bytes)
//! body (584)   TD 1.0 report: tee_tcb_svn, mr_seam, mr_signer_seam, seam_attributes,
//!              td_attributes, xfam, mr_td, mr_config_id, mr_owner, mr_owner_config,
//!              rtmr0..3, report_data
//! auth_len u32, then auth data:
//!   ecdsa signature (64, r||s over header||body) | attestation key (64, x||y)
//!   | certification data: type=6 u16 | size u32 | QE report certification data:
//!       QE report (384) | QE report signature (64, by the PCK leaf)
//!       | QE auth data: size u16 | bytes
//!       | certification data: type=5 u16 | size u32 | PEM chain (PCK leaf, PCK CA, root)
//! ```

use super::SyntheticError;
use crate::tdx::{Measurements, ReportData};

/// Quote format version.
const QUOTE_VERSION: u16 = 4;
/// Attestation key type: ECDSA-256 with P-256.
const ATT_KEY_TYPE_ECDSA_P256: u16 = 2;
/// TEE type of TDX.
const TEE_TYPE_TDX: u32 = 0x81;
/// Vendor ID of Intel's quoting enclave.
const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// Certification data type: PEM chain of PCK leaf, PCK CA and root.
const CERT_TYPE_PCK_CHAIN: u16 = 5;
/// Certification data type: QE report certification data.
const CERT_TYPE_QE_REPORT: u16 = 6;

/// Length of the quote header.
pub(super) const HEADER_LEN: usize = 48;
/// Length of a TD 1.0 report body.
pub(super) const TD10_BODY_LEN: usize = 584;
/// Length of an SGX enclave report (the QE report).
pub(super) const ENCLAVE_REPORT_LEN: usize = 384;

/// The TDX module fields of a TD report, fixed per synthetic platform.
#[derive(Clone, Copy, Debug)]
pub(super) struct SeamFields {
    /// TEE_TCB_SVN: module ISVSVN, module version, then further TDX TCB components.
    pub(super) tee_tcb_svn: [u8; 16],
    /// MRSEAM: measurement of the TDX module.
    pub(super) mr_seam: [u8; 48],
    /// MRSIGNERSEAM: signer of the TDX module (zero for Intel's module).
    pub(super) mr_signer_seam: [u8; 48],
    /// SEAMATTRIBUTES.
    pub(super) seam_attributes: [u8; 8],
}

/// The quote header.
pub(super) fn header(qe_svn: u16, pce_svn: u16, qe_id: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&QUOTE_VERSION.to_le_bytes());
    out.extend_from_slice(&ATT_KEY_TYPE_ECDSA_P256.to_le_bytes());
    out.extend_from_slice(&TEE_TYPE_TDX.to_le_bytes());
    out.extend_from_slice(&qe_svn.to_le_bytes());
    out.extend_from_slice(&pce_svn.to_le_bytes());
    out.extend_from_slice(&INTEL_QE_VENDOR_ID);
    out.extend_from_slice(qe_id);
    out.extend_from_slice(&[0; 4]);
    debug_assert_eq!(out.len(), HEADER_LEN);
    out
}

/// Append a TD 1.0 report body to `out`.
pub(super) fn push_td10_body(
    out: &mut Vec<u8>,
    seam: &SeamFields,
    measurements: &Measurements,
    report_data: &ReportData,
) {
    let start = out.len();
    out.extend_from_slice(&seam.tee_tcb_svn);
    out.extend_from_slice(&seam.mr_seam);
    out.extend_from_slice(&seam.mr_signer_seam);
    out.extend_from_slice(&seam.seam_attributes);
    out.extend_from_slice(&measurements.td_attributes);
    out.extend_from_slice(&measurements.xfam);
    out.extend_from_slice(&measurements.mr_td);
    out.extend_from_slice(&measurements.mr_config_id);
    out.extend_from_slice(&measurements.mr_owner);
    out.extend_from_slice(&measurements.mr_owner_config);
    for rtmr in &measurements.rtmr {
        out.extend_from_slice(rtmr);
    }
    out.extend_from_slice(report_data.as_bytes());
    debug_assert_eq!(out.len() - start, TD10_BODY_LEN);
}

/// The fields of the quoting enclave's own report.
#[derive(Clone, Copy, Debug)]
pub(super) struct QeReportFields {
    /// CPUSVN of the platform.
    pub(super) cpu_svn: [u8; 16],
    /// MISCSELECT.
    pub(super) misc_select: u32,
    /// SGX attributes of the QE.
    pub(super) attributes: [u8; 16],
    /// MRENCLAVE of the QE.
    pub(super) mr_enclave: [u8; 32],
    /// MRSIGNER of the QE.
    pub(super) mr_signer: [u8; 32],
    /// ISVPRODID of the QE.
    pub(super) isv_prod_id: u16,
    /// ISVSVN of the QE.
    pub(super) isv_svn: u16,
    /// REPORTDATA: SHA-256(attestation key || QE auth data) || 32 zero bytes.
    pub(super) report_data: [u8; 64],
}

/// The 384-byte SGX report of the quoting enclave.
pub(super) fn qe_report(fields: &QeReportFields) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENCLAVE_REPORT_LEN);
    out.extend_from_slice(&fields.cpu_svn);
    out.extend_from_slice(&fields.misc_select.to_le_bytes());
    out.extend_from_slice(&[0; 28]);
    out.extend_from_slice(&fields.attributes);
    out.extend_from_slice(&fields.mr_enclave);
    out.extend_from_slice(&[0; 32]);
    out.extend_from_slice(&fields.mr_signer);
    out.extend_from_slice(&[0; 96]);
    out.extend_from_slice(&fields.isv_prod_id.to_le_bytes());
    out.extend_from_slice(&fields.isv_svn.to_le_bytes());
    out.extend_from_slice(&[0; 60]);
    out.extend_from_slice(&fields.report_data);
    debug_assert_eq!(out.len(), ENCLAVE_REPORT_LEN);
    out
}

/// The outer certification data element (type 6) carrying the signed QE report, the QE auth
/// data and the inner PCK chain (type 5).
pub(super) fn qe_certification_data(
    qe_report: &[u8],
    qe_report_signature: &[u8; 64],
    qe_auth_data: &[u8],
    pck_chain_pem: &[u8],
) -> Result<Vec<u8>, SyntheticError> {
    let mut inner = Vec::new();
    inner.extend_from_slice(qe_report);
    inner.extend_from_slice(qe_report_signature);
    inner.extend_from_slice(&len_u16(qe_auth_data.len(), "QE auth data")?.to_le_bytes());
    inner.extend_from_slice(qe_auth_data);
    inner.extend_from_slice(&CERT_TYPE_PCK_CHAIN.to_le_bytes());
    inner.extend_from_slice(&len_u32(pck_chain_pem.len(), "PCK chain")?.to_le_bytes());
    inner.extend_from_slice(pck_chain_pem);

    let mut out = Vec::with_capacity(inner.len() + 6);
    out.extend_from_slice(&CERT_TYPE_QE_REPORT.to_le_bytes());
    out.extend_from_slice(&len_u32(inner.len(), "QE report certification data")?.to_le_bytes());
    out.extend(inner);
    Ok(out)
}

/// Append the signature data (length, quote signature, attestation key, certification data)
/// to a quote holding its header and body.
pub(super) fn push_auth_data(
    quote: &mut Vec<u8>,
    signature: &[u8; 64],
    attestation_key: &[u8; 64],
    certification_data: &[u8],
) -> Result<(), SyntheticError> {
    let auth_len = signature.len() + attestation_key.len() + certification_data.len();
    quote.reserve(auth_len + 4);
    quote.extend_from_slice(&len_u32(auth_len, "quote signature data")?.to_le_bytes());
    quote.extend_from_slice(signature);
    quote.extend_from_slice(attestation_key);
    quote.extend_from_slice(certification_data);
    Ok(())
}

fn len_u16(len: usize, field: &'static str) -> Result<u16, SyntheticError> {
    u16::try_from(len).map_err(|_| SyntheticError::FieldTooLong { field })
}

fn len_u32(len: usize, field: &'static str) -> Result<u32, SyntheticError> {
    u32::try_from(len).map_err(|_| SyntheticError::FieldTooLong { field })
}
