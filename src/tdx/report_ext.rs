//! The fields a TD report carries beyond the TD 1.0 report: those of TD 1.5 (v5 body type 3)
//! and of TD 1.5 with extensions (v5 body type 4, `sgx_report2_body_v1_5_ex_t` in Intel's
//! `sgx_quote_5.h`).
//!
//! They are read by offset from a quote whose layout [`QuoteLayout::parse`] accepted, so every
//! size is already exact. All of them lie inside the signed region, so once the quote signature
//! verified they are as authentic as the TD 1.0 fields.
//!
//! Body type 4 is appraised like body type 3 (the same TCB fields decide the TCB status, as in
//! Intel's QVL and dcap-qvl): the added fields are reported, not judged. A policy that cares
//! about, for example, the service TDs bound to a TD reads them from here.
//!
//! | offset in the report | size | field |
//! |---|---|---|
//! | 584 | 16 | `TEE_TCB_SVN2` (TD 1.5) |
//! | 600 | 48 | `MRSERVICETD` (TD 1.5) |
//! | 648 | 1 | `VMID` (body type 4 from here on) |
//! | 649 | 32 | `TD_ID` |
//! | 681 | 48 | `DEV_INFO` (hash of the device information) |
//! | 729 | 48 | `INIT_SERVICE_TD_HASH` |
//! | 777 | 8 | `INIT_SERVICE_TD_ATTRIBUTES` |
//! | 785 | 16 | `INIT_CPU_SVN` |
//! | 801 | 16 | `INIT_TEE_TCB_SVN` |
//! | 817 | 12 | `INIT_TEE_FMSPC` |
//! | 829 | 48 | `CUR_SERVICE_TD_HASH` |
//! | 877 | 8 | `CUR_SERVICE_TD_ATTRIBUTES` |
//! | 885 | | end |

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

use super::quote::{td_report, QuoteFormatError, QuoteLayout, TdReportKind};

/// The TD 1.5 fields (v5 body types 3 and 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Td15Fields {
    /// `TEE_TCB_SVN2`: the TEE TCB SVN of the current TDX module (after a TD-preserving update).
    pub tee_tcb_svn2: [u8; 16],
    /// `MRSERVICETD`: the measurement of the service TDs bound to this TD.
    pub mr_service_td: [u8; 48],
}

/// The fields of a TD 1.5 report with extensions (v5 body type 4) after its TD 1.5 part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Td15ExFields {
    /// VM index: 0 for an unpartitioned TD or the L1 VMM, 1 to 3 for TD VMs 1 to 3.
    pub vmid: u8,
    /// TD instance ID, new at each TD launch, kept across TD-preserving updates and migration.
    pub td_id: [u8; 32],
    /// Hash of the device information.
    pub dev_info: [u8; 48],
    /// `SERVTD_HASH` of the service TDs bound when the TD was created.
    pub init_service_td_hash: [u8; 48],
    /// Attributes of the service TD bound when the TD was created.
    pub init_service_td_attributes: [u8; 8],
    /// The TD's CPUSVN at creation.
    pub init_cpu_svn: [u8; 16],
    /// The TD's `TEE_TCB_SVN` at creation.
    pub init_tee_tcb_svn: [u8; 16],
    /// Model information of the platform `INIT_TEE_TCB_SVN` was taken on.
    pub init_tee_fmspc: [u8; 12],
    /// `SERVTD_HASH` of the service TDs bound now.
    pub cur_service_td_hash: [u8; 48],
    /// Attributes of the service TD bound now.
    pub cur_service_td_attributes: [u8; 8],
}

/// What a TD report carries beyond TD 1.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdReportExtras {
    /// Which report the quote carries.
    pub kind: TdReportKind,
    /// The TD 1.5 fields (body types 3 and 4).
    pub td15: Option<Td15Fields>,
    /// The fields of body type 4.
    pub td15_ex: Option<Td15ExFields>,
}

impl TdReportExtras {
    /// Reads the extra fields of `quote`, whose layout is `layout`.
    pub fn parse(quote: &[u8], layout: &QuoteLayout) -> Result<Self, QuoteFormatError> {
        let base = layout.report_offset;
        let field = |offset: usize, len: usize| -> Result<&[u8], QuoteFormatError> {
            let start = base.saturating_add(offset);
            let end = start.saturating_add(len);
            quote.get(start..end).ok_or(QuoteFormatError::Truncated {
                field: "TD report extension",
                needed: end,
                available: quote.len(),
            })
        };
        let td15 = match layout.report {
            TdReportKind::Td10 => None,
            _ => Some(Td15Fields {
                tee_tcb_svn2: array(field(td_report::TD10_END, 16)?),
                mr_service_td: array(field(td_report::TD10_END + 16, 48)?),
            }),
        };
        let td15_ex = match layout.report {
            TdReportKind::Td15Ex => {
                let at = td_report::TD15_END;
                Some(Td15ExFields {
                    vmid: field(at, 1)?.first().copied().unwrap_or_default(),
                    td_id: array(field(at + 1, 32)?),
                    dev_info: array(field(at + 33, 48)?),
                    init_service_td_hash: array(field(at + 81, 48)?),
                    init_service_td_attributes: array(field(at + 129, 8)?),
                    init_cpu_svn: array(field(at + 137, 16)?),
                    init_tee_tcb_svn: array(field(at + 153, 16)?),
                    init_tee_fmspc: array(field(at + 169, 12)?),
                    cur_service_td_hash: array(field(at + 181, 48)?),
                    cur_service_td_attributes: array(field(at + 229, 8)?),
                })
            }
            _ => None,
        };
        Ok(Self {
            kind: layout.report,
            td15,
            td15_ex,
        })
    }
}

/// Copies a slice of length `N` (as `field` returned it) into an array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(..N) {
        out.copy_from_slice(src);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/certs/vectors/{name}/quote.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    const TD15EX: &str = "v5_td15ex_phala_uptodate";

    #[test]
    fn body_type_4_quote_has_an_885_byte_report() {
        let quote = vector(TD15EX);
        let layout = QuoteLayout::parse(&quote).unwrap();
        assert_eq!(layout.version, 5);
        assert_eq!(layout.report, TdReportKind::Td15Ex);
        assert_eq!(layout.report_offset, 54);
        assert_eq!(layout.signed_len, 48 + 6 + 885);
        assert_eq!(layout.canonical_len, quote.len());
    }

    #[test]
    fn body_type_and_size_must_agree() {
        let quote = vector(TD15EX);
        for (body_type, size) in [(4u16, 648u32), (4, 884), (4, 886), (3, 885), (2, 885)] {
            let mut changed = quote.clone();
            changed[48..50].copy_from_slice(&body_type.to_le_bytes());
            changed[50..54].copy_from_slice(&size.to_le_bytes());
            assert!(
                matches!(
                    QuoteLayout::parse(&changed),
                    Err(QuoteFormatError::BodySize { .. })
                ),
                "type {body_type} size {size}"
            );
        }
        let mut changed = quote.clone();
        changed[48] = 5;
        assert_eq!(
            QuoteLayout::parse(&changed),
            Err(QuoteFormatError::BodyType(5))
        );
    }

    #[test]
    fn every_truncation_of_a_body_type_4_quote_is_refused() {
        let quote = vector(TD15EX);
        for len in 0..quote.len() {
            assert!(
                matches!(
                    QuoteLayout::parse(&quote[..len]),
                    Err(QuoteFormatError::Truncated { .. })
                ),
                "length {len}"
            );
        }
    }

    #[test]
    fn trailing_non_zero_byte_after_a_body_type_4_quote_is_refused() {
        let mut quote = vector(TD15EX);
        quote.extend_from_slice(&[0, 0, 7]);
        assert!(matches!(
            QuoteLayout::parse(&quote),
            Err(QuoteFormatError::TrailingBytes { count: 3, .. })
        ));
    }

    #[test]
    fn extension_fields_match_intel_offsets_and_dcap_qvl() {
        let quote = vector(TD15EX);
        let layout = QuoteLayout::parse(&quote).unwrap();
        let extras = TdReportExtras::parse(&quote, &layout).unwrap();
        let parsed = dcap_qvl::quote::Quote::parse(&quote).unwrap();
        let ex = parsed.report.as_td15_ex().unwrap();
        let ours = extras.td15_ex.unwrap();
        assert_eq!(ours.vmid, ex.vmid);
        assert_eq!(ours.td_id, ex.td_id);
        assert_eq!(ours.dev_info, ex.dev_info);
        assert_eq!(ours.init_service_td_hash, ex.init_service_td_hash);
        assert_eq!(
            ours.init_service_td_attributes,
            ex.init_service_td_attributes
        );
        assert_eq!(ours.init_cpu_svn, ex.init_cpu_svn);
        assert_eq!(ours.init_tee_tcb_svn, ex.init_tee_tcb_svn);
        assert_eq!(ours.init_tee_fmspc, ex.init_tee_fmspc);
        assert_eq!(ours.cur_service_td_hash, ex.cur_service_td_hash);
        assert_eq!(ours.cur_service_td_attributes, ex.cur_service_td_attributes);
        let td15 = extras.td15.unwrap();
        assert_eq!(td15.tee_tcb_svn2, ex.base.tee_tcb_svn2);
        assert_eq!(td15.mr_service_td, ex.base.mr_service_td);
        assert_eq!(
            hex::encode(ours.td_id),
            "e1f3ee829cb6f039318b8ae3eee622622775f4c9128fee747cb662c624d88b8e"
        );
        assert_eq!(&quote[54 + 649..54 + 681], &ours.td_id[..]);
    }

    #[test]
    fn older_bodies_report_what_they_have() {
        let quote = vector("v4_tdx10_phala_uptodate");
        let layout = QuoteLayout::parse(&quote).unwrap();
        let extras = TdReportExtras::parse(&quote, &layout).unwrap();
        assert_eq!((extras.td15, extras.td15_ex), (None, None));

        let quote = vector("v5_td15_gotdxguest_uptodate");
        let layout = QuoteLayout::parse(&quote).unwrap();
        let extras = TdReportExtras::parse(&quote, &layout).unwrap();
        assert_eq!(extras.kind, TdReportKind::Td15);
        assert_eq!(
            hex::encode(extras.td15.unwrap().tee_tcb_svn2),
            "0d010400000000000000000000000000"
        );
        assert!(extras.td15_ex.is_none());
    }
}
