//! The wire format of Intel PCS v4 and PCCS-compatible services, both ways: reading what a
//! service sent, and writing what the project's own service sends. Pure: no I/O, no clock.
//!
//! See `docs/collateral.md` for the routes and formats byte by byte.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde_json::value::RawValue;

/// Header naming the TCB info issuer chain (PCS v4).
pub const TCB_INFO_ISSUER_CHAIN: &str = "TCB-Info-Issuer-Chain";
/// The v3 name of the same header, still sent by some PCCS versions.
pub const SGX_TCB_INFO_ISSUER_CHAIN: &str = "SGX-TCB-Info-Issuer-Chain";
/// Header naming the QE identity issuer chain.
pub const ENCLAVE_IDENTITY_ISSUER_CHAIN: &str = "SGX-Enclave-Identity-Issuer-Chain";
/// Header naming the PCK CRL issuer chain.
pub const PCK_CRL_ISSUER_CHAIN: &str = "SGX-PCK-CRL-Issuer-Chain";

/// Largest issuer-chain header value accepted (a real one is about 2.5 KB).
pub const MAX_CHAIN_HEADER_LEN: usize = 16 * 1024;

/// Why bytes from (or for) a collateral service are not what they should be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A certificate in a chain does not parse, or a chain holds none.
    #[error("{item}: issuer chain holds no well-formed certificate")]
    Certificate {
        /// Which item's chain.
        item: &'static str,
    },
    /// A certificate chain does not lead to the trusted root, or a link does not verify, or a
    /// certificate is outside its validity at `now`.
    #[error("{item}: issuer chain is wrong: {detail}")]
    Chain {
        /// Which item's chain.
        item: &'static str,
        /// What failed.
        detail: String,
    },
    /// A CRL does not parse, or its signature does not verify under its issuer.
    #[error("{item}: {detail}")]
    Crl {
        /// Which CRL.
        item: &'static str,
        /// What failed.
        detail: String,
    },
    /// The service returned another TCB evaluation data number than the one asked for.
    #[error("{item}: tcbEvaluationDataNumber {got}, asked for {asked}")]
    EvaluationNumber {
        /// Which item.
        item: &'static str,
        /// The number asked for.
        asked: u32,
        /// The number returned.
        got: u32,
    },
    /// An item is past its nextUpdate (or a certificate past its notAfter) at `now`.
    #[error("{item} expired at {next_update} (now {now})")]
    Expired {
        /// Which item.
        item: &'static str,
        /// Its nextUpdate, unix seconds.
        next_update: u64,
        /// The time of the check.
        now: u64,
    },
    /// The TCB info is for another FMSPC than the one asked for.
    #[error("TCB info is for FMSPC {got}, asked for {asked}")]
    FmspcMismatch {
        /// FMSPC asked for.
        asked: String,
        /// FMSPC returned.
        got: String,
    },
    /// A body is not the JSON expected, or lacks a field.
    #[error("{item}: {detail}")]
    Json {
        /// Which item.
        item: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// An item is not valid yet at `now` (issued in the future).
    #[error("{item} is not valid before {issued} (now {now})")]
    NotYetValid {
        /// Which item.
        item: &'static str,
        /// Its issue date, unix seconds.
        issued: u64,
        /// The time of the check.
        now: u64,
    },
    /// A percent-encoded header has a `%` not followed by two hex digits, or decodes to
    /// something that is not UTF-8.
    #[error("header {header}: bad percent-encoding")]
    PercentEncoding {
        /// The header.
        header: &'static str,
    },
    /// The signature over a signed JSON item does not verify under its issuer chain's leaf.
    #[error("{item}: signature does not verify under the issuer chain")]
    Signature {
        /// Which item.
        item: &'static str,
    },
    /// A signature is not 64 bytes of hex (r || s).
    #[error("{item}: signature is not 128 hex digits")]
    SignatureEncoding {
        /// Which item.
        item: &'static str,
    },
    /// A header or body is larger than accepted.
    #[error("{item}: {len} bytes exceed the {limit}-byte limit")]
    TooLarge {
        /// Which item.
        item: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// A signed JSON item (`tcbInfo` or `enclaveIdentity`): the exact text that was signed, and
/// the signature (ECDSA P-256 over SHA-256, r || s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedJson {
    /// The item's JSON text exactly as served (never re-serialised).
    pub text: String,
    /// The 64-byte signature.
    pub signature: Vec<u8>,
}

/// Which signed JSON item a body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignedItem {
    /// `{"tcbInfo": {...}, "signature": "..."}`.
    TcbInfo,
    /// `{"enclaveIdentity": {...}, "signature": "..."}`.
    QeIdentity,
}

impl SignedItem {
    /// The JSON member holding the signed text.
    pub fn member(self) -> &'static str {
        match self {
            Self::TcbInfo => "tcbInfo",
            Self::QeIdentity => "enclaveIdentity",
        }
    }

    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::TcbInfo => "TCB info",
            Self::QeIdentity => "QE identity",
        }
    }
}

/// Reads a TCB info or QE identity response body, keeping the signed member byte for byte.
pub fn parse_signed_json(body: &[u8], item: SignedItem) -> Result<SignedJson, WireError> {
    let name = item.name();
    let json_error = |detail: String| WireError::Json { item: name, detail };
    let members: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(body).map_err(|e| json_error(e.to_string()))?;
    let text = members
        .get(item.member())
        .ok_or_else(|| json_error(format!("no {:?} member", item.member())))?
        .get();
    if !text.starts_with('{') {
        return Err(json_error(format!("{:?} is not an object", item.member())));
    }
    let signature = members
        .get("signature")
        .ok_or_else(|| json_error("no \"signature\" member".to_owned()))?;
    let signature: String = serde_json::from_str(signature.get())
        .map_err(|_| WireError::SignatureEncoding { item: name })?;
    let signature = decode_signature(&signature, name)?;
    Ok(SignedJson {
        text: text.to_owned(),
        signature,
    })
}

/// 128 hex digits to 64 bytes.
pub(crate) fn decode_signature(text: &str, item: &'static str) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 64];
    hex::decode_to_slice(text, &mut out).map_err(|_| WireError::SignatureEncoding { item })?;
    Ok(out)
}

/// The body of a TCB info or QE identity response for `signed`.
pub fn signed_json_body(item: SignedItem, signed: &SignedJson) -> String {
    format!(
        "{{\"{}\":{},\"signature\":\"{}\"}}",
        item.member(),
        signed.text,
        hex::encode(&signed.signature)
    )
}

/// Decodes a percent-encoded issuer-chain header into PEM text, strictly: every `%` must be
/// followed by two hex digits, and the result must be UTF-8 holding at least one certificate.
pub fn decode_issuer_chain(value: &[u8], header: &'static str) -> Result<String, WireError> {
    if value.len() > MAX_CHAIN_HEADER_LEN {
        return Err(WireError::TooLarge {
            item: header,
            len: value.len(),
            limit: MAX_CHAIN_HEADER_LEN,
        });
    }
    let decoded = percent_decode_strict(value).ok_or(WireError::PercentEncoding { header })?;
    let pem = String::from_utf8(decoded).map_err(|_| WireError::PercentEncoding { header })?;
    let certs = pem_certificates(&pem, header)?;
    if certs.is_empty() {
        return Err(WireError::Certificate { item: header });
    }
    Ok(pem)
}

/// Percent-encodes `pem` for an issuer-chain header: every byte but ALPHA, DIGIT, `-`, `.`,
/// `_` and `~` becomes `%XX` (upper-case hex).
pub fn encode_issuer_chain(pem: &str) -> String {
    let mut out = String::with_capacity(pem.len().saturating_mul(2));
    for byte in pem.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode_strict(value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.iter();
    while let Some(&byte) = bytes.next() {
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        let high = hex_digit(*bytes.next()?)?;
        let low = hex_digit(*bytes.next()?)?;
        out.push((high << 4) | low);
    }
    Some(out)
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The certificates of a PEM chain, in order.
pub(crate) fn pem_certificates(
    pem: &str,
    item: &'static str,
) -> Result<Vec<CertificateDer<'static>>, WireError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| WireError::Certificate { item })
}

/// Reads a CRL body: DER (what `encoding=der` asks for), hex-encoded DER (what a PCCS serves
/// for the root CA CRL), or PEM. Returns the DER, checked to parse as one CRL and nothing more.
pub fn decode_crl(body: &[u8], item: &'static str) -> Result<Vec<u8>, WireError> {
    let crl_error = |detail: &str| WireError::Crl {
        item,
        detail: detail.to_owned(),
    };
    let der = if body.first() == Some(&0x30) {
        body.to_vec()
    } else {
        let text = core::str::from_utf8(body)
            .map_err(|_| crl_error("neither DER, hex nor PEM"))?
            .trim();
        if text.starts_with("-----BEGIN") {
            CertificateRevocationListDer::from_pem_slice(text.as_bytes())
                .map_err(|_| crl_error("PEM CRL does not decode"))?
                .as_ref()
                .to_vec()
        } else {
            hex::decode(text).map_err(|_| crl_error("neither DER, hex nor PEM"))?
        }
    };
    use x509_parser::prelude::FromDer;
    let checked = match x509_parser::revocation_list::CertificateRevocationList::from_der(&der) {
        Ok(([], _)) => Ok(()),
        Ok(_) => Err(crl_error("bytes after the CRL")),
        Err(_) => Err(crl_error("CRL does not parse")),
    };
    checked.map(|()| der)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::type_complexity
    )]

    use super::*;

    fn vector_file(name: &str, file: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/certs/vectors/{name}/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    const V4: &str = "v4_tdx10_phala_uptodate";

    #[test]
    fn signed_json_round_trips_byte_for_byte() {
        let text = String::from_utf8(vector_file(V4, "tcb_info.json")).unwrap();
        let signature =
            hex::decode(String::from_utf8(vector_file(V4, "tcb_info_signature.hex")).unwrap())
                .unwrap();
        let signed = SignedJson { text, signature };
        let body = signed_json_body(SignedItem::TcbInfo, &signed);
        assert_eq!(
            parse_signed_json(body.as_bytes(), SignedItem::TcbInfo).unwrap(),
            signed
        );
        // Whitespace around the member is the body's, not the signed text's.
        let spaced = body
            .replacen(":{", ": {", 1)
            .replace("\"signature\"", " \"signature\"");
        assert_eq!(
            parse_signed_json(spaced.as_bytes(), SignedItem::TcbInfo)
                .unwrap()
                .text,
            signed.text
        );
    }

    #[test]
    fn malformed_signed_json_is_refused_with_a_reason() {
        let cases: [(&str, fn(&WireError) -> bool); 6] = [
            ("", |e| matches!(e, WireError::Json { .. })),
            ("{\"tcbInfo\":{}}", |e| matches!(e, WireError::Json { .. })),
            ("{\"signature\":\"00\"}", |e| {
                matches!(e, WireError::Json { .. })
            }),
            ("{\"tcbInfo\":[],\"signature\":\"00\"}", |e| {
                matches!(e, WireError::Json { .. })
            }),
            ("{\"tcbInfo\":{},\"signature\":\"00\"}", |e| {
                matches!(e, WireError::SignatureEncoding { .. })
            }),
            ("{\"tcbInfo\":{},\"signature\":7}", |e| {
                matches!(e, WireError::SignatureEncoding { .. })
            }),
        ];
        for (body, expected) in cases {
            let error = parse_signed_json(body.as_bytes(), SignedItem::TcbInfo).unwrap_err();
            assert!(expected(&error), "{body}: {error:?}");
        }
        let truncated = "{\"tcbInfo\":{\"id\":\"TDX\"},\"signature\":\"ab";
        assert!(parse_signed_json(truncated.as_bytes(), SignedItem::TcbInfo).is_err());
    }

    #[test]
    fn issuer_chain_round_trips_and_bad_escapes_are_refused() {
        let pem = String::from_utf8(vector_file(V4, "tcb_info_issuer_chain.pem")).unwrap();
        let encoded = encode_issuer_chain(&pem);
        assert!(encoded.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert!(!encoded.contains('\n') && !encoded.contains('+') && !encoded.contains('/'));
        let header = TCB_INFO_ISSUER_CHAIN;
        assert_eq!(
            decode_issuer_chain(encoded.as_bytes(), header).unwrap(),
            pem
        );
        // Lower-case escapes are fine.
        let lower = encoded.replace("%0A", "%0a");
        assert_eq!(decode_issuer_chain(lower.as_bytes(), header).unwrap(), pem);
        for bad in [
            format!("{encoded}%"),
            format!("{encoded}%4"),
            encoded.replacen("%0A", "%ZZ", 1),
            encoded.replacen("%0A", "%FF", 1),
        ] {
            assert_eq!(
                decode_issuer_chain(bad.as_bytes(), header),
                Err(WireError::PercentEncoding { header }),
                "{}",
                &bad[..40]
            );
        }
        assert_eq!(
            decode_issuer_chain(b"no%20certificate", header),
            Err(WireError::Certificate { item: header })
        );
        let huge = vec![b'A'; MAX_CHAIN_HEADER_LEN + 1];
        assert!(matches!(
            decode_issuer_chain(&huge, header),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn crl_bodies_are_read_in_der_hex_and_pem() {
        let der = vector_file(V4, "pck_crl.der");
        let item = "PCK CRL";
        assert_eq!(decode_crl(&der, item).unwrap(), der);
        let hex_body = format!("{}\n", hex::encode(&der));
        assert_eq!(decode_crl(hex_body.as_bytes(), item).unwrap(), der);
        let b64 = format!(
            "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
            base64_encode(&der)
        );
        assert_eq!(decode_crl(b64.as_bytes(), item).unwrap(), der);

        let mut truncated = der.clone();
        truncated.truncate(der.len() - 10);
        assert!(matches!(
            decode_crl(&truncated, item),
            Err(WireError::Crl { .. })
        ));
        let mut longer = der.clone();
        longer.push(0);
        assert!(matches!(
            decode_crl(&longer, item),
            Err(WireError::Crl { .. })
        ));
        assert!(matches!(
            decode_crl(b"zz not a crl", item),
            Err(WireError::Crl { .. })
        ));
    }

    /// Standard base64 with padding, for the PEM test above.
    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
