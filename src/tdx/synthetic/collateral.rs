//! Signed TCB info (TDX, version 3) and TD_QE identity (version 2) in Intel's JSON format, and
//! the fixed platform profile they describe.
//!
//! The platform offers one TCB level per [`SyntheticTcb`]; a PCK leaf issued with the CPUSVN
//! and PCESVN of a level lands on that level when the verifier matches TCB levels.

use serde::Serialize;

use super::quote::{QeReportFields, SeamFields};
use super::{SyntheticError, SyntheticTcb};

/// FMSPC of the synthetic platform.
pub(super) const FMSPC: [u8; 6] = [0x50, 0x53, 0x59, 0x4e, 0x00, 0x00];
/// PCE-ID of the synthetic platform.
pub(super) const PCE_ID: [u8; 2] = [0, 0];
/// TCB evaluation data number of the synthetic collateral.
const TCB_EVALUATION_DATA_NUMBER: u32 = 17;

/// ISVSVN of the synthetic quoting enclave (meets the single UpToDate QE TCB level).
const QE_ISVSVN: u16 = 4;
/// ISVPRODID of a TD quoting enclave.
const QE_ISVPRODID: u16 = 2;
/// MRSIGNER of the synthetic quoting enclave (not Intel's).
const QE_MRSIGNER: [u8; 32] = [
    0x5e, 0x1f, 0x7a, 0x3c, 0x90, 0x4b, 0x22, 0xd1, 0x6e, 0x08, 0xa5, 0x3f, 0xc7, 0x19, 0x84, 0x2b,
    0xf0, 0x4d, 0x6a, 0x11, 0xe3, 0x58, 0x9c, 0x07, 0xb2, 0x3e, 0x71, 0xd9, 0x46, 0xac, 0x15, 0x60,
];
/// SGX attributes of the quoting enclave (INIT and MODE64BIT; not DEBUG).
const QE_ATTRIBUTES: [u8; 16] = [0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// Mask the QE identity applies to the attributes (everything but bit 1 of byte 0, the low 8
/// bytes), as Intel's TD_QE identity does.
const QE_ATTRIBUTES_MASK: [u8; 16] = [
    0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// TEE_TCB_SVN of the TD reports: module ISVSVN 5, module version 1, late microcode SVN 3.
const TEE_TCB_SVN: [u8; 16] = [5, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// TDX components every platform TCB level requires (components 0 and 1 are judged by the
/// TDX module identity because the module version is non-zero).
const TDX_COMPONENTS: [u8; 16] = [5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// MRSEAM of the synthetic TDX module.
const MR_SEAM: [u8; 48] = [0x5a; 48];

/// The QE fields common to every quote of the synthetic platform (report_data and CPUSVN are
/// filled in per platform).
pub(super) fn qe_report_template(cpu_svn: [u8; 16]) -> QeReportFields {
    QeReportFields {
        cpu_svn,
        misc_select: 0,
        attributes: QE_ATTRIBUTES,
        mr_enclave: [0x9e; 32],
        mr_signer: QE_MRSIGNER,
        isv_prod_id: QE_ISVPRODID,
        isv_svn: QE_ISVSVN,
        report_data: [0; 64],
    }
}

/// The TDX module fields of every synthetic TD report.
pub(super) const SEAM: SeamFields = SeamFields {
    tee_tcb_svn: TEE_TCB_SVN,
    mr_seam: MR_SEAM,
    mr_signer_seam: [0; 48],
    seam_attributes: [0; 8],
};

/// One TCB level of the synthetic platform.
struct Level {
    tcb: SyntheticTcb,
    cpu_svn: [u8; 16],
    pce_svn: u16,
    tcb_date: &'static str,
    advisory_ids: &'static [&'static str],
}

/// The platform's TCB levels, highest first.
const LEVELS: [Level; 3] = [
    Level {
        tcb: SyntheticTcb::UpToDate,
        cpu_svn: [4, 4, 3, 3, 5, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0],
        pce_svn: 13,
        tcb_date: "2024-03-13T00:00:00Z",
        advisory_ids: SyntheticTcb::UpToDate.advisory_ids(),
    },
    Level {
        tcb: SyntheticTcb::SwHardeningNeeded,
        cpu_svn: [3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0],
        pce_svn: 13,
        tcb_date: "2023-08-09T00:00:00Z",
        advisory_ids: SyntheticTcb::SwHardeningNeeded.advisory_ids(),
    },
    Level {
        tcb: SyntheticTcb::OutOfDate,
        cpu_svn: [2, 2, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
        pce_svn: 11,
        tcb_date: "2018-01-04T00:00:00Z",
        advisory_ids: SyntheticTcb::OutOfDate.advisory_ids(),
    },
];

/// The CPUSVN and PCESVN a PCK leaf carries so that its platform lands on `tcb`.
pub(super) fn platform_svns(tcb: SyntheticTcb) -> ([u8; 16], u16) {
    let level = match tcb {
        SyntheticTcb::UpToDate => &LEVELS[0],
        SyntheticTcb::SwHardeningNeeded => &LEVELS[1],
        SyntheticTcb::OutOfDate => &LEVELS[2],
    };
    debug_assert_eq!(level.tcb, tcb);
    (level.cpu_svn, level.pce_svn)
}

/// The ISVSVN the synthetic QE reports (goes into the quote header as QE SVN).
pub(super) const fn qe_isvsvn() -> u16 {
    QE_ISVSVN
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TcbInfoJson {
    id: &'static str,
    version: u8,
    issue_date: String,
    next_update: String,
    fmspc: String,
    pce_id: String,
    tcb_type: u32,
    tcb_evaluation_data_number: u32,
    tdx_module: TdxModuleJson,
    tdx_module_identities: Vec<TdxModuleIdentityJson>,
    tcb_levels: Vec<TcbLevelJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TdxModuleJson {
    mrsigner: String,
    attributes: String,
    attributes_mask: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TdxModuleIdentityJson {
    id: &'static str,
    mrsigner: String,
    attributes: String,
    attributes_mask: String,
    tcb_levels: Vec<ModuleLevelJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModuleLevelJson {
    tcb: IsvSvnJson,
    tcb_date: &'static str,
    tcb_status: &'static str,
}

#[derive(Serialize)]
struct IsvSvnJson {
    isvsvn: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TcbLevelJson {
    tcb: TcbJson,
    tcb_date: &'static str,
    tcb_status: &'static str,
    #[serde(rename = "advisoryIDs", skip_serializing_if = "<[_]>::is_empty")]
    advisory_ids: &'static [&'static str],
}

#[derive(Serialize)]
struct TcbJson {
    sgxtcbcomponents: Vec<SvnJson>,
    pcesvn: u16,
    tdxtcbcomponents: Vec<SvnJson>,
}

#[derive(Serialize)]
struct SvnJson {
    svn: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QeIdentityJson {
    id: &'static str,
    version: u8,
    issue_date: String,
    next_update: String,
    tcb_evaluation_data_number: u32,
    miscselect: String,
    miscselect_mask: String,
    attributes: String,
    attributes_mask: String,
    mrsigner: String,
    isvprodid: u16,
    tcb_levels: Vec<QeLevelJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QeLevelJson {
    tcb: IsvSvnJson,
    tcb_date: &'static str,
    tcb_status: &'static str,
}

fn svns(values: &[u8; 16]) -> Vec<SvnJson> {
    values.iter().map(|&svn| SvnJson { svn }).collect()
}

/// The TDX TCB info JSON (the exact bytes that get signed), valid from `issue` to `next`
/// (RFC 3339 strings).
pub(super) fn tcb_info_json(issue: &str, next: &str) -> Result<String, SyntheticError> {
    let zero_signer = hex::encode_upper([0u8; 48]);
    let info = TcbInfoJson {
        id: "TDX",
        version: 3,
        issue_date: issue.to_owned(),
        next_update: next.to_owned(),
        fmspc: hex::encode_upper(FMSPC),
        pce_id: hex::encode_upper(PCE_ID),
        tcb_type: 0,
        tcb_evaluation_data_number: TCB_EVALUATION_DATA_NUMBER,
        tdx_module: TdxModuleJson {
            mrsigner: zero_signer.clone(),
            attributes: "0000000000000000".to_owned(),
            attributes_mask: "FFFFFFFFFFFFFFFF".to_owned(),
        },
        tdx_module_identities: vec![TdxModuleIdentityJson {
            id: "TDX_01",
            mrsigner: zero_signer,
            attributes: "0000000000000000".to_owned(),
            attributes_mask: "FFFFFFFFFFFFFFFF".to_owned(),
            tcb_levels: vec![
                ModuleLevelJson {
                    tcb: IsvSvnJson {
                        isvsvn: u16::from(TEE_TCB_SVN[0]),
                    },
                    tcb_date: "2024-03-13T00:00:00Z",
                    tcb_status: "UpToDate",
                },
                ModuleLevelJson {
                    tcb: IsvSvnJson { isvsvn: 3 },
                    tcb_date: "2023-08-09T00:00:00Z",
                    tcb_status: "OutOfDate",
                },
            ],
        }],
        tcb_levels: LEVELS
            .iter()
            .map(|level| TcbLevelJson {
                tcb: TcbJson {
                    sgxtcbcomponents: svns(&level.cpu_svn),
                    pcesvn: level.pce_svn,
                    tdxtcbcomponents: svns(&TDX_COMPONENTS),
                },
                tcb_date: level.tcb_date,
                tcb_status: level.tcb.status_name(),
                advisory_ids: level.advisory_ids,
            })
            .collect(),
    };
    Ok(serde_json::to_string(&info)?)
}

/// The TD_QE identity JSON (the exact bytes that get signed).
pub(super) fn qe_identity_json(issue: &str, next: &str) -> Result<String, SyntheticError> {
    let identity = QeIdentityJson {
        id: "TD_QE",
        version: 2,
        issue_date: issue.to_owned(),
        next_update: next.to_owned(),
        tcb_evaluation_data_number: TCB_EVALUATION_DATA_NUMBER,
        miscselect: "00000000".to_owned(),
        miscselect_mask: "FFFFFFFF".to_owned(),
        attributes: hex::encode_upper(QE_ATTRIBUTES),
        attributes_mask: hex::encode_upper(QE_ATTRIBUTES_MASK),
        mrsigner: hex::encode_upper(QE_MRSIGNER),
        isvprodid: QE_ISVPRODID,
        tcb_levels: vec![QeLevelJson {
            tcb: IsvSvnJson { isvsvn: QE_ISVSVN },
            tcb_date: "2024-03-13T00:00:00Z",
            tcb_status: "UpToDate",
        }],
    };
    Ok(serde_json::to_string(&identity)?)
}

/// `unix` as an RFC 3339 UTC timestamp with second precision (`2025-06-19T10:16:03Z`).
pub(super) fn rfc3339(unix: u64) -> Result<String, SyntheticError> {
    let t = offset_date_time(unix)?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// `unix` as a `time::OffsetDateTime` (what rcgen takes).
pub(super) fn offset_date_time(unix: u64) -> Result<time::OffsetDateTime, SyntheticError> {
    i64::try_from(unix)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .ok_or(SyntheticError::TimeOutOfRange { unix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_seconds() {
        assert_eq!(rfc3339(1_750_377_600).unwrap(), "2025-06-20T00:00:00Z");
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn tcb_info_parses_as_dcap_tcb_info() {
        let json = tcb_info_json("2025-06-20T00:00:00Z", "2025-07-20T00:00:00Z").unwrap();
        let info: dcap_qvl::tcb_info::TcbInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(info.tcb_levels.len(), LEVELS.len());
        assert_eq!(info.tdx_module_identities.len(), 1);
    }
}
