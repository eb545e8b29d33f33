//! The byte layout of a DCAP TDX quote, read by its length fields.
//!
//! This module checks structure only (versions, lengths, TEE type); signatures are checked by
//! [`super::verify`]. It exists so that every quote is cut to its canonical length before anything
//! else looks at it, and so that malformed input gets a precise [`QuoteFormatError`].
//!
//! # Trailing bytes
//!
//! Quotes read from configfs-tsm or from published samples often arrive in a larger, zero-padded
//! buffer. Bytes after the signature data are not covered by any signature, so they carry no
//! meaning:
//!
//! - trailing **zero** bytes are accepted and dropped: the quote is cut at the end given by its
//!   length fields, and that canonical form is what gets verified, digested and forwarded;
//! - any trailing **non-zero** byte is refused with [`QuoteFormatError::TrailingBytes`], because
//!   unauthenticated data riding along with a quote could be mistaken for part of it by a
//!   consumer that does not parse by length.
//!
//! So two buffers holding the same quote with different zero padding have the same
//! `quote_digest`, and padding cannot be used to make a replayed quote look new.

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

/// Largest quote accepted, padding included. Real TDX quotes are about 5 KB.
pub(crate) const MAX_QUOTE_LEN: usize = 16 * 1024;

use super::{Measurements, ReportData};

/// Length of the quote header.
pub(crate) const HEADER_LEN: usize = 48;
const TD_REPORT10_LEN: usize = 584;
const TD_REPORT15_LEN: usize = 648;
const TD_REPORT15_EX_LEN: usize = 885;
const TEE_TYPE_TDX: u32 = 0x81;
const BODY_TYPE_TD10: u16 = 2;
const BODY_TYPE_TD15: u16 = 3;
const BODY_TYPE_TD15_EX: u16 = 4;

/// Why bytes are not a well-formed TDX quote.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteFormatError {
    /// The body type of a v5 quote is not a TD report this crate understands.
    #[error("unsupported v5 body type {0} (expected 2 = TD 1.0, 3 = TD 1.5 or 4 = TD 1.5 with extensions)")]
    BodyType(u16),
    /// The v5 body size does not match its body type.
    #[error("v5 body of type {body_type} declares {declared} bytes, expected {expected}")]
    BodySize {
        /// The declared body type.
        body_type: u16,
        /// The declared size.
        declared: u32,
        /// The size of that body type.
        expected: usize,
    },
    /// The sizes inside the signature data do not add up to the signature data length.
    #[error("certification data sizes are inconsistent: signature data ends at {signature_data_end}, certification data at {certification_data_end}, PCK chain at {pck_chain_end}")]
    CertificationDataSize {
        /// End of the signature data, from its length field.
        signature_data_end: usize,
        /// End of the certification data, from its size field.
        certification_data_end: usize,
        /// End of the PCK chain, from its size field.
        pck_chain_end: usize,
    },
    /// The certification data is not of the type DCAP TDX quotes carry.
    #[error("unsupported certification data type {0}")]
    CertificationDataType(u16),
    /// The quote is for another TEE (an SGX quote, for example).
    #[error("not a TDX quote: TEE type {0:#x}")]
    NotTdx(u32),
    /// The input is larger than the 16 KiB a quote may take.
    #[error("quote of {0} bytes exceeds the {MAX_QUOTE_LEN}-byte limit")]
    TooLarge(usize),
    /// Non-zero bytes follow the signature data.
    #[error("{count} bytes after the end of the quote, not all zero (first non-zero at offset {offset})")]
    TrailingBytes {
        /// How many bytes follow the quote.
        count: usize,
        /// Offset of the first non-zero one, from the start of the input.
        offset: usize,
    },
    /// The input ends before the structure its length fields describe.
    #[error("truncated quote: {field} needs {needed} bytes, {available} available")]
    Truncated {
        /// The part being read.
        field: &'static str,
        /// Bytes that part needs, counted from the start of the quote.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The quote version is neither 4 nor 5.
    #[error("unsupported quote version {0} (expected 4 or 5)")]
    Version(u16),
    /// The PCK chain is not spelled as Intel's quoting enclave writes it (see
    /// [`normalized_quote`]).
    #[error("PCK chain encoding is not canonical: {0}")]
    PckChainEncoding(&'static str),
}

/// Which TD report a quote carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TdReportKind {
    /// TD 1.0 report (584 bytes), in v4 quotes and v5 body type 2.
    Td10,
    /// TD 1.5 report (648 bytes), in v5 body type 3.
    Td15,
    /// TD 1.5 report with extensions (885 bytes: the TD 1.5 report, then VM index, TD ID,
    /// device info and service-TD and initial-TCB fields), in v5 body type 4. See
    /// [`TdReportExtras`](crate::TdReportExtras).
    Td15Ex,
}

/// The structure of a quote, found from its length fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteLayout {
    /// Quote format version (4 or 5).
    pub version: u16,
    /// The TD report kind.
    pub report: TdReportKind,
    /// Offset of the TD report in the quote.
    pub report_offset: usize,
    /// Length of the signed region (header and body), which the attestation key signs.
    pub signed_len: usize,
    /// Offset of the PEM PCK certificate chain inside the certification data.
    pub pck_chain_offset: usize,
    /// Total length of the quote without padding.
    pub canonical_len: usize,
}

impl QuoteLayout {
    /// Reads the layout of `bytes`, checking it is a complete TDX quote followed by nothing
    /// but zero padding.
    pub fn parse(bytes: &[u8]) -> Result<Self, QuoteFormatError> {
        if bytes.len() > MAX_QUOTE_LEN {
            return Err(QuoteFormatError::TooLarge(bytes.len()));
        }
        let version = read_u16(bytes, 0, "header")?;
        // The whole header must be there before any of it is trusted.
        take(bytes, 0, HEADER_LEN, "header")?;
        let tee_type = read_u32(bytes, 4, "header")?;
        if version != 4 && version != 5 {
            return Err(QuoteFormatError::Version(version));
        }
        if tee_type != TEE_TYPE_TDX {
            return Err(QuoteFormatError::NotTdx(tee_type));
        }

        let (report, report_offset, report_len) = if version == 4 {
            (TdReportKind::Td10, HEADER_LEN, TD_REPORT10_LEN)
        } else {
            let body_type = read_u16(bytes, HEADER_LEN, "v5 body descriptor")?;
            let declared = read_u32(bytes, HEADER_LEN + 2, "v5 body descriptor")?;
            let (kind, expected) = match body_type {
                BODY_TYPE_TD10 => (TdReportKind::Td10, TD_REPORT10_LEN),
                BODY_TYPE_TD15 => (TdReportKind::Td15, TD_REPORT15_LEN),
                BODY_TYPE_TD15_EX => (TdReportKind::Td15Ex, TD_REPORT15_EX_LEN),
                other => return Err(QuoteFormatError::BodyType(other)),
            };
            if usize::try_from(declared).ok() != Some(expected) {
                return Err(QuoteFormatError::BodySize {
                    body_type,
                    declared,
                    expected,
                });
            }
            (kind, HEADER_LEN + 6, expected)
        };
        take(bytes, report_offset, report_len, "TD report")?;
        let signed_len = report_offset.saturating_add(report_len);
        let sig_len = read_u32(bytes, signed_len, "signature data length")?;
        let sig_len =
            usize::try_from(sig_len).map_err(|_| QuoteFormatError::TooLarge(usize::MAX))?;
        let sig_offset = signed_len.saturating_add(4);
        take(bytes, sig_offset, sig_len, "signature data")?;
        let canonical_len = sig_offset.saturating_add(sig_len);
        let pck_chain_offset = check_certification_data(bytes, sig_offset, canonical_len)?;

        // `take` above proved canonical_len <= bytes.len().
        let trailing = bytes.get(canonical_len..).unwrap_or_default();
        if let Some(pos) = trailing.iter().position(|&b| b != 0) {
            return Err(QuoteFormatError::TrailingBytes {
                count: trailing.len(),
                offset: canonical_len.saturating_add(pos),
            });
        }
        Ok(Self {
            version,
            report,
            report_offset,
            signed_len,
            pck_chain_offset,
            canonical_len,
        })
    }
}

/// Checks the signature data of a v4/v5 quote is exactly: ECDSA signature (64), attestation key
/// (64), certification data of type 6 whose size is the rest, holding the QE report (384), its
/// signature (64), the QE authentication data (u16 length + bytes) and certification data of
/// type 5 (the PEM PCK chain) that ends where the quote ends. The type and size fields are
/// covered by no signature, so any slack in them would let one quote take many byte forms.
/// Returns the offset of the PEM chain.
fn check_certification_data(
    bytes: &[u8],
    sig_offset: usize,
    end: usize,
) -> Result<usize, QuoteFormatError> {
    const QE_REPORT_CERT_DATA: u16 = 6;
    const PCK_CHAIN: u16 = 5;
    let outer = sig_offset.saturating_add(64 + 64);
    let outer_type = read_u16(bytes, outer, "certification data type")?;
    if outer_type != QE_REPORT_CERT_DATA {
        return Err(QuoteFormatError::CertificationDataType(outer_type));
    }
    let outer_len = read_u32(bytes, outer.saturating_add(2), "certification data size")?;
    let outer_end = outer.saturating_add(6).saturating_add(outer_len as usize);
    let auth_len = usize::from(read_u16(
        bytes,
        outer.saturating_add(6 + 384 + 64),
        "QE auth data length",
    )?);
    let inner = outer
        .saturating_add(6 + 384 + 64 + 2)
        .saturating_add(auth_len);
    let inner_type = read_u16(bytes, inner, "PCK certification data type")?;
    if inner_type != PCK_CHAIN {
        return Err(QuoteFormatError::CertificationDataType(inner_type));
    }
    let inner_len = read_u32(
        bytes,
        inner.saturating_add(2),
        "PCK certification data size",
    )?;
    let inner_end = inner.saturating_add(6).saturating_add(inner_len as usize);
    if outer_end != end || inner_end != end {
        return Err(QuoteFormatError::CertificationDataSize {
            signature_data_end: end,
            certification_data_end: outer_end,
            pck_chain_end: inner_end,
        });
    }
    Ok(inner.saturating_add(6))
}

/// Offsets in a TD report (TD 1.0 layout; a TD 1.5 report appends `TEE_TCB_SVN2` (16) and
/// `MRSERVICETD` (48) at 584; a TD 1.5 report with extensions appends more at 648, see
/// `super::report_ext`). Every field is a little-endian byte string.
// The whole layout is written down; not every offset is read.
#[allow(dead_code)]
pub(crate) mod td_report {
    /// TEE_TCB_SVN (16).
    pub(crate) const TEE_TCB_SVN: usize = 0;
    /// MRSEAM (48).
    pub(crate) const MR_SEAM: usize = 16;
    /// MRSIGNERSEAM (48).
    pub(crate) const MR_SIGNER_SEAM: usize = 64;
    /// SEAMATTRIBUTES (8).
    pub(crate) const SEAM_ATTRIBUTES: usize = 112;
    /// TDATTRIBUTES (8).
    pub(crate) const TD_ATTRIBUTES: usize = 120;
    /// XFAM (8).
    pub(crate) const XFAM: usize = 128;
    /// MRTD (48): the first of the TD's own registers. Everything before it describes the
    /// TDX module and the TD's attributes.
    pub(crate) const MR_TD: usize = 136;
    /// MRCONFIGID (48).
    pub(crate) const MR_CONFIG_ID: usize = 184;
    /// MROWNER (48).
    pub(crate) const MR_OWNER: usize = 232;
    /// MROWNERCONFIG (48).
    pub(crate) const MR_OWNER_CONFIG: usize = 280;
    /// RTMR0..RTMR3 (4 x 48).
    pub(crate) const RTMR: usize = 328;
    /// REPORTDATA (64).
    pub(crate) const REPORT_DATA: usize = 520;
    /// End of a TD 1.0 report; start of the TD 1.5 extension.
    pub(crate) const TD10_END: usize = 584;
    /// End of a TD 1.5 report; start of the fields of body type 4.
    pub(crate) const TD15_END: usize = 648;
    /// End of a TD 1.5 report with extensions (body type 4).
    pub(crate) const TD15_EX_END: usize = 885;
}

/// The fields of a quote's TD report this crate exposes, read by offset (no signature checks).
/// For a TD 1.5 report these are the fields of its TD 1.0 part, as dcap-qvl reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TdReportFields {
    /// The TD's registers and attributes.
    pub measurements: Measurements,
    /// REPORTDATA.
    pub report_data: ReportData,
    /// MRSEAM.
    pub mr_seam: [u8; 48],
    /// TEE_TCB_SVN.
    pub tee_tcb_svn: [u8; 16],
}

impl TdReportFields {
    /// Reads the TD report of `quote`, whose layout is `layout`.
    pub(crate) fn parse(quote: &[u8], layout: &QuoteLayout) -> Result<Self, QuoteFormatError> {
        use td_report::*;
        let base = layout.report_offset;
        let field =
            |offset: usize, len: usize| take(quote, base.saturating_add(offset), len, "TD report");
        Ok(Self {
            measurements: Measurements {
                mr_td: array(field(MR_TD, 48)?),
                rtmr: [
                    array(field(RTMR, 48)?),
                    array(field(RTMR + 48, 48)?),
                    array(field(RTMR + 96, 48)?),
                    array(field(RTMR + 144, 48)?),
                ],
                mr_config_id: array(field(MR_CONFIG_ID, 48)?),
                mr_owner: array(field(MR_OWNER, 48)?),
                mr_owner_config: array(field(MR_OWNER_CONFIG, 48)?),
                xfam: array(field(XFAM, 8)?),
                td_attributes: array(field(TD_ATTRIBUTES, 8)?),
            },
            report_data: ReportData(array(field(REPORT_DATA, 64)?)),
            mr_seam: array(field(MR_SEAM, 48)?),
            tee_tcb_svn: array(field(TEE_TCB_SVN, 16)?),
        })
    }
}

/// Copies a slice `take` returned with length `N` into an array (zeros if it had another length,
/// which `take` rules out).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(..N) {
        out.copy_from_slice(src);
    }
    out
}

/// The PEM certificate chain (PCK leaf, PCK CA, root) carried in the quote's certification data
/// (type 6, QE report certification data, wrapping type 5, the PEM chain). Not verified.
pub fn pck_chain_pem(bytes: &[u8]) -> Result<&[u8], QuoteFormatError> {
    let layout = QuoteLayout::parse(bytes)?;
    // parse() proved pck_chain_offset <= canonical_len <= bytes.len().
    bytes
        .get(layout.pck_chain_offset..layout.canonical_len)
        .ok_or(QuoteFormatError::Truncated {
            field: "PCK chain",
            needed: layout.canonical_len,
            available: bytes.len(),
        })
}

/// Refuses anything after the quote, zero padding included: for quotes that arrive inside
/// a certificate or a bond proof, whose length field already delimits them, padding is a second
/// byte form of the same quote (see the module docs on the canonical form).
pub(crate) fn check_exact(bytes: &[u8], layout: &QuoteLayout) -> Result<(), QuoteFormatError> {
    if bytes.len() == layout.canonical_len {
        return Ok(());
    }
    Err(QuoteFormatError::TrailingBytes {
        count: bytes.len().saturating_sub(layout.canonical_len),
        offset: layout.canonical_len,
    })
}

/// Half the order of the P-256 group, big-endian: an ECDSA signature is canonical when its
/// `s` is at most this (the low-s form).
const P256_HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];
/// The order of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Replaces a high `s` (above n/2) by n - s in place: both verify, the low one is canonical.
/// `s` is 32 big-endian bytes.
fn low_s(s: &mut [u8]) {
    if s.len() != 32 || *s <= P256_HALF_N[..] {
        return;
    }
    let mut borrow = false;
    for (byte, n) in s.iter_mut().rev().zip(P256_N.iter().rev()) {
        let (d, b1) = n.overflowing_sub(*byte);
        let (d, b2) = d.overflowing_sub(u8::from(borrow));
        *byte = d;
        borrow = b1 || b2;
    }
}

/// Checks the PCK chain is in the form Intel's quoting enclave writes: one or more
/// `CERTIFICATE` sections in the strict encoding of RFC 7468 (LF line ends, base64 lines of 64
/// characters, the last one shorter, nothing between sections), then at most one NUL byte.
/// Returns the length without that NUL. The chain is covered by no quote signature, so any
/// other spelling (relabelled sections, extra whitespace, CRLF, text between sections) would be
/// another byte form of the same quote; and a section under another label would verify in the
/// DCAP library while escaping the verdict cache's reading of the chain's validity.
pub(crate) fn check_pck_chain_encoding(pem: &[u8]) -> Result<usize, QuoteFormatError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----\n";
    const END: &[u8] = b"-----END CERTIFICATE-----\n";
    let refuse = QuoteFormatError::PckChainEncoding;
    let text = match pem.split_last() {
        Some((0, rest)) => rest,
        _ => pem,
    };
    let mut rest = text;
    let mut sections = 0usize;
    while !rest.is_empty() {
        rest = rest.strip_prefix(BEGIN).ok_or(refuse(
            "a section does not start with the CERTIFICATE label",
        ))?;
        let mut lines = 0usize;
        loop {
            if let Some(after) = rest.strip_prefix(END) {
                rest = after;
                break;
            }
            let Some(line_len) = rest.iter().position(|&b| b == b'\n') else {
                return Err(refuse("a section does not end with the CERTIFICATE label"));
            };
            let (line, after) = rest.split_at(line_len);
            if line.is_empty() || line.len() > 64 || !line.iter().all(|&b| is_base64(b)) {
                return Err(refuse("a line is not base64 of at most 64 characters"));
            }
            lines = lines.saturating_add(1);
            let next_is_end = after.get(1..).is_some_and(|a| a.starts_with(END));
            if line.len() != 64 && !next_is_end {
                return Err(refuse(
                    "a line before the last is shorter than 64 characters",
                ));
            }
            rest = after.get(1..).unwrap_or_default();
        }
        if lines == 0 {
            return Err(refuse("an empty section"));
        }
        sections = sections.saturating_add(1);
    }
    if sections == 0 {
        return Err(refuse("no certificate"));
    }
    Ok(text.len())
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// The canonical form of a quote, the one byte form that is verified, digested
/// (`quote_digest`) and cached: cut at the end its length fields give (zero padding dropped),
/// both ECDSA signatures (the quote's, by the attestation key, and the QE report's, by the PCK)
/// in low-s form, and the PCK chain without the NUL byte the quoting enclave appends (the three
/// length fields that cover it shrink by one). A PCK chain in any other spelling than Intel's
/// is refused ([`QuoteFormatError::PckChainEncoding`]); so is non-zero trailing data.
///
/// Real quotes carry high-s signatures about half the time (the test vectors do), so high s is
/// normalised rather than refused. Every part this changes is outside what the signatures
/// cover or is the signature's own `s`, for which `s` and `n - s` verify alike: the canonical
/// form verifies exactly when the original does.
pub fn normalized_quote(bytes: &[u8]) -> Result<Vec<u8>, QuoteFormatError> {
    let layout = QuoteLayout::parse(bytes)?;
    let mut quote = take(bytes, 0, layout.canonical_len, "quote")?.to_vec();
    let pem = take(
        &quote,
        layout.pck_chain_offset,
        layout.canonical_len.saturating_sub(layout.pck_chain_offset),
        "PCK chain",
    )?;
    let text_len = check_pck_chain_encoding(pem)?;
    let pem_len = pem.len();
    let sig_offset = layout.signed_len.saturating_add(4);
    let outer = sig_offset.saturating_add(128);
    if let Some(s) = quote.get_mut(sig_offset.saturating_add(32)..sig_offset.saturating_add(64)) {
        low_s(s);
    }
    let qe_sig = outer.saturating_add(6 + 384);
    if let Some(s) = quote.get_mut(qe_sig.saturating_add(32)..qe_sig.saturating_add(64)) {
        low_s(s);
    }
    if text_len != pem_len {
        quote.truncate(layout.pck_chain_offset.saturating_add(text_len));
        // The signature data, certification data and PCK chain sizes all end at the quote's
        // end; parse() proved they are u32 fields at these offsets.
        for at in [
            layout.signed_len,
            outer.saturating_add(2),
            layout.pck_chain_offset.saturating_sub(4),
        ] {
            let value = read_u32(&quote, at, "length field")?.saturating_sub(1);
            if let Some(field) = quote.get_mut(at..at.saturating_add(4)) {
                field.copy_from_slice(&value.to_le_bytes());
            }
        }
    }
    Ok(quote)
}

/// Cuts `bytes` to the canonical quote (see the module docs on trailing bytes).
pub fn canonical_quote(bytes: &[u8]) -> Result<&[u8], QuoteFormatError> {
    let layout = QuoteLayout::parse(bytes)?;
    take(bytes, 0, layout.canonical_len, "quote")
}

fn take<'a>(
    bytes: &'a [u8],
    offset: usize,
    len: usize,
    field: &'static str,
) -> Result<&'a [u8], QuoteFormatError> {
    let needed = offset.saturating_add(len);
    bytes
        .get(offset..needed)
        .ok_or(QuoteFormatError::Truncated {
            field,
            needed,
            available: bytes.len(),
        })
}

fn read_u16(bytes: &[u8], offset: usize, field: &'static str) -> Result<u16, QuoteFormatError> {
    Ok(u16::from_le_bytes(array(take(bytes, offset, 2, field)?)))
}

fn read_u32(bytes: &[u8], offset: usize, field: &'static str) -> Result<u32, QuoteFormatError> {
    Ok(u32::from_le_bytes(array(take(bytes, offset, 4, field)?)))
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

    #[test]
    fn v4_quote_with_zero_padding_is_cut_to_its_length() {
        let quote = vector("v4_tdx10_phala_uptodate");
        assert_eq!(quote.len(), 5006);
        let layout = QuoteLayout::parse(&quote).unwrap();
        assert_eq!(layout.version, 4);
        assert_eq!(layout.report, TdReportKind::Td10);
        assert_eq!(layout.signed_len, 632);
        assert_eq!(layout.canonical_len, 4936);
    }

    #[test]
    fn v5_td15_quote_has_no_padding() {
        let quote = vector("v5_td15_gotdxguest_uptodate");
        let layout = QuoteLayout::parse(&quote).unwrap();
        assert_eq!(layout.version, 5);
        assert_eq!(layout.report, TdReportKind::Td15);
        assert_eq!(layout.signed_len, 702);
        assert_eq!(layout.canonical_len, 5006);
    }

    #[test]
    fn non_zero_trailing_byte_is_refused() {
        let mut quote = vector("v4_tdx10_phala_uptodate");
        quote[5000] = 1;
        assert_eq!(
            QuoteLayout::parse(&quote),
            Err(QuoteFormatError::TrailingBytes {
                count: 70,
                offset: 5000
            })
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        let quote = vector("v5_td15_gotdxguest_uptodate");
        for len in 0..quote.len() {
            let err = QuoteLayout::parse(&quote[..len]).unwrap_err();
            assert!(
                matches!(err, QuoteFormatError::Truncated { .. }),
                "length {len}: {err}"
            );
        }
    }

    #[test]
    fn sgx_and_unknown_versions_are_refused() {
        let mut quote = vector("v4_tdx10_phala_uptodate");
        quote[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(QuoteLayout::parse(&quote), Err(QuoteFormatError::NotTdx(0)));
        quote[0] = 3;
        assert_eq!(
            QuoteLayout::parse(&quote),
            Err(QuoteFormatError::Version(3))
        );
    }

    #[test]
    fn v5_body_descriptor_is_checked() {
        let mut quote = vector("v5_td15_gotdxguest_uptodate");
        quote[48] = 9;
        assert_eq!(
            QuoteLayout::parse(&quote),
            Err(QuoteFormatError::BodyType(9))
        );
        quote[48] = 2;
        assert!(matches!(
            QuoteLayout::parse(&quote),
            Err(QuoteFormatError::BodySize { .. })
        ));
    }

    #[test]
    fn pck_chain_is_found_in_both_versions() {
        for name in ["v4_tdx10_phala_uptodate", "v5_td15_gotdxguest_uptodate"] {
            let quote = vector(name);
            let pem = pck_chain_pem(&quote).unwrap();
            assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"), "{name}");
            let text = std::str::from_utf8(pem).unwrap();
            assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 3, "{name}");
        }
    }

    #[test]
    fn certification_data_types_and_sizes_are_exact() {
        let quote = vector("v4_tdx10_phala_uptodate");
        let outer = 632 + 4 + 128;
        let mut changed = quote.clone();
        changed[outer] = 7;
        assert_eq!(
            QuoteLayout::parse(&changed),
            Err(QuoteFormatError::CertificationDataType(7))
        );
        let mut changed = quote.clone();
        changed[outer + 2] ^= 1;
        assert!(matches!(
            QuoteLayout::parse(&changed),
            Err(QuoteFormatError::CertificationDataSize { .. })
        ));
    }

    #[test]
    fn td_report_fields_are_read_at_intel_offsets() {
        let quote = vector("v4_tdx10_phala_uptodate");
        let layout = QuoteLayout::parse(&quote).unwrap();
        let fields = TdReportFields::parse(&quote, &layout).unwrap();
        assert_eq!(
            hex::encode(fields.tee_tcb_svn),
            "06010300000000000000000000000000"
        );
        assert_eq!(
            hex::encode(fields.measurements.td_attributes),
            "0000001000000000"
        );
        assert_eq!(fields.report_data.0[..], quote[568..632]);
        assert_eq!(fields.measurements.mr_td[..], quote[184..232]);
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let quote = vec![0u8; MAX_QUOTE_LEN + 1];
        assert_eq!(
            QuoteLayout::parse(&quote),
            Err(QuoteFormatError::TooLarge(MAX_QUOTE_LEN + 1))
        );
    }
}
