//! Input files the subcommands share: root certificates (DER or PEM) and quote files. A file that
//! cannot be what it is meant to be is an input error (exit code 2), reported before any
//! verification runs, never a rejection.

use std::path::Path;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Largest root certificate file read.
const MAX_ROOT_LEN: u64 = 64 * 1024;

/// Largest quote file read (real quotes are about 5 KB).
pub(crate) const MAX_QUOTE_FILE_LEN: u64 = 1 << 20;

/// Largest `--collateral-ca` file read.
const MAX_CA_FILE_LEN: u64 = 1 << 20;

/// Reads the `--collateral-ca` files: each holds one or more PEM certificates (or one DER
/// certificate), trusted as extra roots for the collateral services' HTTPS certificates. A file
/// with no certificate, or one that does not parse, is an input error.
pub(crate) fn load_tls_roots(
    paths: &[std::path::PathBuf],
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut roots = Vec::new();
    for path in paths {
        let context = || format!("--collateral-ca {}", path.display());
        let bytes = super::read_limited(path, MAX_CA_FILE_LEN).with_context(context)?;
        let trimmed = bytes.trim_ascii_start();
        let found: Vec<CertificateDer<'static>> = if trimmed.starts_with(b"-----BEGIN") {
            CertificateDer::pem_slice_iter(trimmed)
                .collect::<Result<_, _>>()
                .map_err(|error| anyhow::anyhow!("bad PEM: {error}"))
                .with_context(context)?
        } else {
            vec![CertificateDer::from(
                root_der(&bytes).with_context(context)?,
            )]
        };
        anyhow::ensure!(
            !found.is_empty(),
            "{}: no certificate in the file",
            context()
        );
        for cert in &found {
            x509_parser::parse_x509_certificate(cert)
                .map_err(|error| anyhow::anyhow!("not an X.509 certificate: {error}"))
                .with_context(context)?;
        }
        roots.extend(found);
    }
    Ok(roots)
}

/// Reads a root CA certificate, DER or PEM, and returns its DER after checking that it parses as
/// one X.509 certificate with nothing after it.
pub(crate) fn load_root(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = super::read_limited(path, MAX_ROOT_LEN)?;
    root_der(&bytes).with_context(|| format!("--root {}", path.display()))
}

/// The DER of a root certificate given as DER or PEM bytes.
pub(crate) fn root_der(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    const NOT_A_CERT: &str = "not a DER or PEM certificate";
    if bytes.iter().all(u8::is_ascii_whitespace) {
        anyhow::bail!("{NOT_A_CERT} (the file is empty)");
    }
    let trimmed = bytes.trim_ascii_start();
    let der = if trimmed.starts_with(b"-----BEGIN") {
        CertificateDer::from_pem_slice(trimmed)
            .map_err(|error| anyhow::anyhow!("{NOT_A_CERT} (PEM without a certificate: {error})"))?
            .to_vec()
    } else {
        bytes.to_vec()
    };
    match x509_parser::parse_x509_certificate(&der) {
        Ok(([], _)) => Ok(der),
        Ok((rest, _)) => anyhow::bail!("{NOT_A_CERT} ({} bytes after the certificate)", rest.len()),
        Err(_) => anyhow::bail!("{NOT_A_CERT}"),
    }
}

/// Reads a quote file; an empty one (or one of zero bytes only) is an input error.
pub(crate) fn load_quote(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = super::read_limited(path, MAX_QUOTE_FILE_LEN)?;
    if bytes.iter().all(|&b| b == 0) {
        anyhow::bail!(
            "--quote {}: the file is empty{}: not a quote",
            path.display(),
            if bytes.is_empty() {
                ""
            } else {
                " (zero bytes only)"
            }
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL_DER: &[u8] = include_bytes!("../../certs/intel_sgx_root_ca.der");
    const INTEL_PEM: &[u8] = include_bytes!("../../certs/intel_sgx_root_ca.pem");

    #[test]
    fn root_is_read_from_der_and_pem_alike() {
        assert_eq!(root_der(INTEL_DER).unwrap(), INTEL_DER);
        assert_eq!(root_der(INTEL_PEM).unwrap(), INTEL_DER);
    }

    #[test]
    fn empty_random_or_trailing_root_is_not_a_certificate() {
        let mut trailing = INTEL_DER.to_vec();
        trailing.push(0);
        for bad in [
            &b""[..],
            b"\n \n",
            b"random bytes, not DER",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            &trailing,
        ] {
            let error = format!("{:#}", root_der(bad).unwrap_err());
            assert!(error.contains("not a DER or PEM certificate"), "{error}");
        }
    }
}
