//! Which collateral a quote needs: the FMSPC and the PCK CA named by the PCK leaf certificate in
//! the quote's certification data.
//!
//! The leaf carries the Intel SGX extension (OID 1.2.840.113741.1.13.1), a SEQUENCE of
//! (OID, value) pairs; the FMSPC is the 6-byte OCTET STRING under OID
//! 1.2.840.113741.1.13.1.4. The CA is named by the leaf's issuer common name: "Intel SGX PCK
//! Processor CA" or "Intel SGX PCK Platform CA". Nothing here is verified: the key only chooses
//! which collateral to look up, and DCAP verification checks the chain and the FMSPC again.

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

use core::fmt;
use core::str::FromStr;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::der_parser::ber::BerObject;
use x509_parser::prelude::FromDer;

use crate::tdx::quote::pck_chain_pem;

/// OID of the Intel SGX extension of PCK certificates.
const SGX_EXTENSION_OID: &str = "1.2.840.113741.1.13.1";
/// OID of the FMSPC inside it.
const FMSPC_OID: &str = "1.2.840.113741.1.13.1.4";

/// The CA that issued a platform's PCK certificate; PCK CRLs are per CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PckCa {
    /// Intel SGX PCK Platform CA (multi-package platforms, most TDX hosts).
    Platform,
    /// Intel SGX PCK Processor CA.
    Processor,
}

impl PckCa {
    /// The value of the `ca` query parameter: `platform` or `processor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Processor => "processor",
        }
    }

    /// The CA from a certificate common name: one ending in "PCK Platform CA" or "PCK
    /// Processor CA" ("Intel SGX PCK Platform CA", and the synthetic test PKI's "Synthetic SGX
    /// PCK Platform CA"). The name only selects collateral; verification checks the chain.
    pub fn from_common_name(name: &str) -> Option<Self> {
        if name.ends_with("PCK Platform CA") {
            Some(Self::Platform)
        } else if name.ends_with("PCK Processor CA") {
            Some(Self::Processor)
        } else {
            None
        }
    }
}

impl fmt::Display for PckCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PckCa {
    type Err = PlatformKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "platform" => Ok(Self::Platform),
            "processor" => Ok(Self::Processor),
            _ => Err(PlatformKeyError::UnknownCa(text.to_owned())),
        }
    }
}

/// A platform's family-model-stepping-platform-custom SKU (6 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fmspc(pub [u8; 6]);

impl Fmspc {
    /// Upper-case hex, as Intel's services write it (`B0C06F000000`).
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }
}

impl fmt::Debug for Fmspc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fmspc({})", self.to_hex())
    }
}

impl fmt::Display for Fmspc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Fmspc {
    type Err = PlatformKeyError;

    /// Twelve hex digits, either case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        hex::decode_to_slice(text, &mut out)
            .map_err(|_| PlatformKeyError::BadFmspc(text.to_owned()))?;
        Ok(Self(out))
    }
}

/// What collateral is keyed by: one TCB info per FMSPC, one PCK CRL per CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlatformKey {
    /// The platform's FMSPC.
    pub fmspc: Fmspc,
    /// The CA of its PCK certificate.
    pub ca: PckCa,
}

impl fmt::Display for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.fmspc, self.ca)
    }
}

/// Why no platform key could be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformKeyError {
    /// An FMSPC is not twelve hex digits.
    #[error("FMSPC {0:?} is not 12 hex digits")]
    BadFmspc(String),
    /// The PCK leaf is not a DER certificate.
    #[error("the PCK leaf certificate does not parse")]
    Certificate,
    /// The PCK leaf's issuer is neither PCK CA.
    #[error("the PCK leaf is issued by {0:?}, not a PCK Processor or Platform CA")]
    Issuer(String),
    /// The PCK leaf has no (or a malformed) SGX extension, or no FMSPC in it.
    #[error("the PCK leaf has no well-formed SGX extension with an FMSPC")]
    MissingFmspc,
    /// The quote carries no PEM certificate.
    #[error("the quote carries no PCK certificate")]
    NoCertificate,
    /// The quote is malformed.
    #[error("malformed quote: {0}")]
    Quote(#[from] crate::tdx::quote::QuoteFormatError),
    /// A CA name other than `processor` or `platform`.
    #[error("PCK CA {0:?} is neither processor nor platform")]
    UnknownCa(String),
}

impl PlatformKey {
    /// The key of the collateral `quote` needs, read from its PCK leaf certificate.
    pub fn from_quote(quote: &[u8]) -> Result<Self, PlatformKeyError> {
        let pem = pck_chain_pem(quote)?;
        let leaf = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or(PlatformKeyError::NoCertificate)?
            .map_err(|_| PlatformKeyError::Certificate)?;
        Self::from_pck_leaf(&leaf)
    }

    /// The key named by a PCK leaf certificate (DER).
    pub fn from_pck_leaf(der: &[u8]) -> Result<Self, PlatformKeyError> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|_| PlatformKeyError::Certificate)?;
        let issuer = cert
            .issuer()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default();
        let ca = PckCa::from_common_name(issuer)
            .ok_or_else(|| PlatformKeyError::Issuer(issuer.to_owned()))?;
        let extension = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == SGX_EXTENSION_OID)
            .ok_or(PlatformKeyError::MissingFmspc)?;
        let fmspc = fmspc_from_sgx_extension(extension.value)?;
        Ok(Self { fmspc, ca })
    }
}

/// The FMSPC inside the DER value of the SGX extension.
fn fmspc_from_sgx_extension(value: &[u8]) -> Result<Fmspc, PlatformKeyError> {
    let (_, top) =
        x509_parser::der_parser::parse_der(value).map_err(|_| PlatformKeyError::MissingFmspc)?;
    let entries = top
        .as_sequence()
        .map_err(|_| PlatformKeyError::MissingFmspc)?;
    for entry in entries {
        let Some((oid, value)) = pair(entry) else {
            continue;
        };
        if oid != FMSPC_OID {
            continue;
        }
        let bytes = value
            .as_slice()
            .map_err(|_| PlatformKeyError::MissingFmspc)?;
        let fmspc: [u8; 6] = bytes
            .try_into()
            .map_err(|_| PlatformKeyError::MissingFmspc)?;
        return Ok(Fmspc(fmspc));
    }
    Err(PlatformKeyError::MissingFmspc)
}

/// An (OID, value) SEQUENCE of the SGX extension.
fn pair<'a>(entry: &'a BerObject<'a>) -> Option<(String, &'a BerObject<'a>)> {
    let items = entry.as_sequence().ok()?;
    let (oid, rest) = items.split_first()?;
    let value = rest.first()?;
    Some((oid.as_oid().ok()?.to_id_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/certs/vectors/{name}/quote.bin",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn real_quotes_name_their_fmspc_and_ca() {
        for (name, fmspc) in [
            ("v4_tdx10_phala_uptodate", "B0C06F000000"),
            ("v5_td15_gotdxguest_uptodate", "90C06F000000"),
            ("v5_td15ex_phala_uptodate", "B0C06F000000"),
        ] {
            let key = PlatformKey::from_quote(&quote(name)).unwrap();
            assert_eq!(key.fmspc.to_hex(), fmspc, "{name}");
            assert_eq!(key.ca, PckCa::Platform, "{name}");
            assert_eq!(key.to_string(), format!("{fmspc}-platform"));
        }
    }

    #[cfg(feature = "synthetic")]
    #[test]
    fn synthetic_pck_leaf_is_read_the_same_way() {
        let pki = crate::tdx::synthetic::SyntheticPki::generate(
            crate::tdx::synthetic::SyntheticPkiParams::new(1_750_000_000),
        )
        .unwrap();
        let spec = crate::tdx::synthetic::QuoteSpec {
            report_data: crate::tdx::ReportData([1; 64]),
            measurements: crate::tdx::synthetic::sample_measurements(),
            tcb: crate::tdx::synthetic::SyntheticTcb::UpToDate,
        };
        let key = PlatformKey::from_quote(&pki.quote(&spec).unwrap()).unwrap();
        let tcb: serde_json::Value = serde_json::from_str(&pki.collateral().tcb_info).unwrap();
        assert_eq!(
            key.fmspc.to_hex(),
            tcb["fmspc"].as_str().unwrap().to_uppercase()
        );
    }

    #[test]
    fn certificates_without_the_extension_or_with_other_issuers_are_refused() {
        let chain = pck_chain_pem(&quote("v4_tdx10_phala_uptodate"))
            .unwrap()
            .to_vec();
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&chain)
            .collect::<Result<_, _>>()
            .unwrap();
        // The PCK Platform CA certificate is issued by the root and has no SGX extension.
        assert!(matches!(
            PlatformKey::from_pck_leaf(&certs[1]),
            Err(PlatformKeyError::Issuer(name)) if name == "Intel SGX Root CA"
        ));
        assert_eq!(
            PlatformKey::from_pck_leaf(b"not a certificate"),
            Err(PlatformKeyError::Certificate)
        );
        assert!(PlatformKey::from_quote(b"short").is_err());
    }

    #[test]
    fn fmspc_and_ca_parse_from_text() {
        let fmspc: Fmspc = "b0c06f000000".parse().unwrap();
        assert_eq!(fmspc.to_hex(), "B0C06F000000");
        assert!("b0c06f00000".parse::<Fmspc>().is_err());
        assert!("zzc06f000000".parse::<Fmspc>().is_err());
        assert_eq!("processor".parse::<PckCa>(), Ok(PckCa::Processor));
        assert!("Platform".parse::<PckCa>().is_err());
    }
}
