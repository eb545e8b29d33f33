//! Checks run on collateral before it is cached, persisted or served: every signature and chain
//! to the trusted root, and the validity window at `now`. Pure: `now` is a parameter.
//!
//! These checks do not replace DCAP verification (which runs them again, with TCB matching, for
//! every quote); they keep garbage, forgeries and expired items out of caches, and turn a bad
//! service answer into a typed error at fetch time instead of a refused peer later.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use serde::Deserialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::platform::{Fmspc, PckCa};
use super::wire::{pem_certificates, WireError};

/// The window in which collateral may be used: from the latest issue date to the earliest
/// nextUpdate (or certificate notAfter) of its items. Unix seconds; usable when
/// `not_before <= now < not_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Latest issueDate / thisUpdate of the items.
    pub not_before: u64,
    /// Earliest nextUpdate of the items, or notAfter of a certificate in their chains.
    pub not_after: u64,
}

impl Validity {
    /// Whether `now` lies inside the window.
    pub fn contains(&self, now: u64) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// What the checks learned about a collateral set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateralFacts {
    /// Validity window of the whole set.
    pub validity: Validity,
    /// The FMSPC of the TCB info.
    pub fmspc: Fmspc,
    /// The CA whose PCK CRL the set holds.
    pub ca: PckCa,
    /// `tcbEvaluationDataNumber` of the TCB info.
    pub tcb_evaluation_data_number: u32,
    /// `tcbEvaluationDataNumber` of the QE identity.
    pub qe_evaluation_data_number: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedHeader {
    issue_date: String,
    next_update: String,
    tcb_evaluation_data_number: u32,
    #[serde(default)]
    fmspc: Option<String>,
}

/// Facts about one signed JSON item.
pub(crate) struct SignedFacts {
    pub(crate) issued: u64,
    pub(crate) next_update: u64,
    pub(crate) evaluation_data_number: u32,
    pub(crate) fmspc: Option<String>,
}

/// Reads the dates, evaluation number and FMSPC of a signed JSON item (no signature check).
pub(crate) fn signed_facts(text: &str, item: &'static str) -> Result<SignedFacts, WireError> {
    let header: SignedHeader = serde_json::from_str(text).map_err(|e| WireError::Json {
        item,
        detail: e.to_string(),
    })?;
    Ok(SignedFacts {
        issued: rfc3339(&header.issue_date, item)?,
        next_update: rfc3339(&header.next_update, item)?,
        evaluation_data_number: header.tcb_evaluation_data_number,
        fmspc: header.fmspc,
    })
}

fn rfc3339(text: &str, item: &'static str) -> Result<u64, WireError> {
    let bad = || WireError::Json {
        item,
        detail: format!("{text:?} is not an RFC 3339 time"),
    };
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    u64::try_from(time.unix_timestamp()).map_err(|_| bad())
}

/// Checks `collateral` against `root_der` at `now`: the TCB info and QE identity signatures
/// under their chains' leaves, both PCK and root CRL signatures, every chain to the root, and
/// that `now` lies inside every item's window.
pub fn check_collateral(
    collateral: &dcap_qvl::QuoteCollateralV3,
    root_der: &[u8],
    now: u64,
) -> Result<CollateralFacts, WireError> {
    let mut window = Window::new(now);

    let tcb = check_signed(
        "TCB info",
        &collateral.tcb_info,
        &collateral.tcb_info_signature,
        &collateral.tcb_info_issuer_chain,
        root_der,
        &mut window,
    )?;
    let fmspc_text = tcb.fmspc.clone().unwrap_or_default();
    let fmspc: Fmspc = fmspc_text.parse().map_err(|_| WireError::Json {
        item: "TCB info",
        detail: format!("fmspc {fmspc_text:?} is not 12 hex digits"),
    })?;
    let qe = check_signed(
        "QE identity",
        &collateral.qe_identity,
        &collateral.qe_identity_signature,
        &collateral.qe_identity_issuer_chain,
        root_der,
        &mut window,
    )?;

    // PCK CRL: signed by the leaf of its chain (the PCK CA), which chains to the root.
    let pck_chain = check_chain(
        "PCK CRL issuer chain",
        &collateral.pck_crl_issuer_chain,
        root_der,
        &mut window,
    )?;
    let pck_issuer = pck_chain.first().ok_or(WireError::Certificate {
        item: "PCK CRL issuer chain",
    })?;
    let ca = check_crl("PCK CRL", &collateral.pck_crl, pck_issuer, &mut window)?;
    let ca = PckCa::from_common_name(&ca).ok_or_else(|| WireError::Crl {
        item: "PCK CRL",
        detail: format!("issued by {ca:?}, not a PCK CA"),
    })?;
    check_crl(
        "root CA CRL",
        &collateral.root_ca_crl,
        root_der,
        &mut window,
    )?;

    let validity = window.finish()?;
    Ok(CollateralFacts {
        validity,
        fmspc,
        ca,
        tcb_evaluation_data_number: tcb.evaluation_data_number,
        qe_evaluation_data_number: qe.evaluation_data_number,
    })
}

/// Checks one signed JSON item on its own (signature under its chain's leaf, chain to the
/// root, window at `now`), for a service that caches items one by one. Returns its window and
/// its evaluation data number.
pub fn check_signed_item(
    item: super::wire::SignedItem,
    signed: &super::wire::SignedJson,
    chain_pem: &str,
    root_der: &[u8],
    now: u64,
) -> Result<(Validity, u32), WireError> {
    let mut window = Window::new(now);
    let facts = check_signed(
        item.name(),
        &signed.text,
        &signed.signature,
        chain_pem,
        root_der,
        &mut window,
    )?;
    Ok((window.finish()?, facts.evaluation_data_number))
}

/// Checks one CRL on its own: signed by the leaf of `chain_pem` (chained to the root), or by
/// the root itself when there is no chain; window at `now`. Returns its window.
pub fn check_crl_item(
    item: &'static str,
    der: &[u8],
    chain_pem: Option<&str>,
    root_der: &[u8],
    now: u64,
) -> Result<Validity, WireError> {
    let mut window = Window::new(now);
    match chain_pem {
        Some(pem) => {
            let chain = check_chain(item, pem, root_der, &mut window)?;
            let issuer = chain.first().ok_or(WireError::Certificate { item })?;
            check_crl(item, der, issuer, &mut window)?;
        }
        None => {
            check_crl(item, der, root_der, &mut window)?;
        }
    }
    window.finish()
}

/// Running intersection of validity windows, remembering which item bounds it.
struct Window {
    now: u64,
    not_before: (u64, &'static str),
    not_after: (u64, &'static str),
}

impl Window {
    fn new(now: u64) -> Self {
        Self {
            now,
            not_before: (0, ""),
            not_after: (u64::MAX, ""),
        }
    }

    fn add(&mut self, item: &'static str, from: u64, until: u64) {
        if from > self.not_before.0 {
            self.not_before = (from, item);
        }
        if until < self.not_after.0 {
            self.not_after = (until, item);
        }
    }

    fn finish(self) -> Result<Validity, WireError> {
        if self.now >= self.not_after.0 {
            return Err(WireError::Expired {
                item: self.not_after.1,
                next_update: self.not_after.0,
                now: self.now,
            });
        }
        if self.now < self.not_before.0 {
            return Err(WireError::NotYetValid {
                item: self.not_before.1,
                issued: self.not_before.0,
                now: self.now,
            });
        }
        Ok(Validity {
            not_before: self.not_before.0,
            not_after: self.not_after.0,
        })
    }
}

fn check_signed(
    item: &'static str,
    text: &str,
    signature: &[u8],
    chain_pem: &str,
    root_der: &[u8],
    window: &mut Window,
) -> Result<SignedFacts, WireError> {
    let chain = check_chain(item, chain_pem, root_der, window)?;
    let leaf = chain.first().ok_or(WireError::Certificate { item })?;
    let (_, leaf) = X509Certificate::from_der(leaf).map_err(|_| WireError::Certificate { item })?;
    let key = leaf.public_key().subject_public_key.data.as_ref();
    if signature.len() != 64 {
        return Err(WireError::SignatureEncoding { item });
    }
    if !crate::crypto::p256_verifies(key, text.as_bytes(), signature) {
        return Err(WireError::Signature { item });
    }
    let facts = signed_facts(text, item)?;
    window.add(item, facts.issued, facts.next_update);
    Ok(facts)
}

/// Checks a PEM chain link by link: each certificate signed by the next, the last one either
/// the trusted root itself or signed by it, each inside its validity at `now`. Returns the DER
/// certificates.
fn check_chain(
    item: &'static str,
    pem: &str,
    root_der: &[u8],
    window: &mut Window,
) -> Result<Vec<Vec<u8>>, WireError> {
    let chain_error = |detail: &str| WireError::Chain {
        item,
        detail: detail.to_owned(),
    };
    let ders: Vec<Vec<u8>> = pem_certificates(pem, item)?
        .into_iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    if ders.is_empty() {
        return Err(WireError::Certificate { item });
    }
    let (_, root) = X509Certificate::from_der(root_der)
        .map_err(|_| chain_error("trusted root does not parse"))?;
    let mut certs = Vec::with_capacity(ders.len());
    for der in &ders {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|_| WireError::Certificate { item })?;
        if !rest.is_empty() {
            return Err(WireError::Certificate { item });
        }
        certs.push(cert);
    }
    let mut previous: Option<&X509Certificate<'_>> = None;
    for (cert, der) in certs.iter().zip(&ders) {
        if let Some(child) = previous {
            child
                .verify_signature(Some(cert.public_key()))
                .map_err(|_| chain_error("a certificate is not signed by the next one"))?;
        }
        let from = u64::try_from(cert.validity().not_before.timestamp()).unwrap_or(0);
        let until = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
        window.add(item, from, until);
        if der.as_slice() == root_der {
            return Ok(ders);
        }
        previous = Some(cert);
    }
    // The chain does not include the root: its last certificate must be signed by it.
    match previous {
        Some(last) if last.verify_signature(Some(root.public_key())).is_ok() => {
            window.add(
                item,
                u64::try_from(root.validity().not_before.timestamp()).unwrap_or(0),
                u64::try_from(root.validity().not_after.timestamp()).unwrap_or(0),
            );
            Ok(ders)
        }
        _ => Err(chain_error("does not lead to the trusted root")),
    }
}

/// Checks a CRL's signature under `issuer_der` and adds its window; returns the issuer's
/// common name.
fn check_crl(
    item: &'static str,
    der: &[u8],
    issuer_der: &[u8],
    window: &mut Window,
) -> Result<String, WireError> {
    let crl_error = |detail: &str| WireError::Crl {
        item,
        detail: detail.to_owned(),
    };
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|_| crl_error("CRL does not parse"))?;
    let (_, issuer) =
        X509Certificate::from_der(issuer_der).map_err(|_| crl_error("issuer does not parse"))?;
    if crl.issuer() != issuer.subject() {
        return Err(crl_error("issuer name is not its chain's leaf"));
    }
    crl.verify_signature(issuer.public_key())
        .map_err(|_| crl_error("signature does not verify under its issuer"))?;
    let from = u64::try_from(crl.last_update().timestamp()).unwrap_or(0);
    let until = crl
        .next_update()
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .ok_or_else(|| crl_error("no nextUpdate"))?;
    window.add(item, from, until);
    let name = crl
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::tdx::INTEL_SGX_ROOT_CA_DER;

    fn vector(name: &str) -> (dcap_qvl::QuoteCollateralV3, serde_json::Value) {
        let dir = format!("{}/certs/vectors", env!("CARGO_MANIFEST_DIR"));
        let collateral = serde_json::from_slice(
            &std::fs::read(format!("{dir}/{name}/collateral.json")).unwrap(),
        )
        .unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/vectors.json")).unwrap()).unwrap();
        let entry = manifest
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone();
        (collateral, entry)
    }

    const NAMES: [&str; 3] = [
        "v4_tdx10_phala_uptodate",
        "v5_td15_gotdxguest_uptodate",
        "v5_td15ex_phala_uptodate",
    ];

    #[test]
    fn real_collateral_passes_with_its_window() {
        for name in NAMES {
            let (collateral, entry) = vector(name);
            let now = entry["now_unix"].as_u64().unwrap();
            let facts = check_collateral(&collateral, INTEL_SGX_ROOT_CA_DER, now).unwrap();
            assert_eq!(facts.fmspc.to_hex(), entry["pck_fmspc"].as_str().unwrap());
            assert_eq!(facts.ca, PckCa::Platform);
            assert!(facts.validity.contains(now));
            let until = rfc3339(entry["valid_until"].as_str().unwrap(), "t").unwrap();
            assert_eq!(facts.validity.not_after, until, "{name}");
            assert!(matches!(
                check_collateral(&collateral, INTEL_SGX_ROOT_CA_DER, until),
                Err(WireError::Expired { .. })
            ));
        }
    }

    #[test]
    fn every_tampered_item_is_refused_by_kind() {
        let (good, entry) = vector("v4_tdx10_phala_uptodate");
        let now = entry["now_unix"].as_u64().unwrap();
        let check =
            |c: &dcap_qvl::QuoteCollateralV3| check_collateral(c, INTEL_SGX_ROOT_CA_DER, now);

        let mut c = good.clone();
        c.tcb_info = c.tcb_info.replacen("UpToDate", "UpToDatf", 1);
        assert_eq!(check(&c), Err(WireError::Signature { item: "TCB info" }));

        let mut c = good.clone();
        c.qe_identity_signature[3] ^= 1;
        assert_eq!(
            check(&c),
            Err(WireError::Signature {
                item: "QE identity"
            })
        );

        // The PCK CRL chain (PCK CA, root) did not sign the TCB info.
        let mut c = good.clone();
        c.tcb_info_issuer_chain = c.pck_crl_issuer_chain.clone();
        assert_eq!(check(&c), Err(WireError::Signature { item: "TCB info" }));

        let mut c = good.clone();
        let n = c.pck_crl.len();
        c.pck_crl[n - 5] ^= 1;
        assert!(matches!(
            check(&c),
            Err(WireError::Crl {
                item: "PCK CRL",
                ..
            })
        ));

        let mut c = good.clone();
        c.root_ca_crl = c.pck_crl.clone();
        assert!(matches!(
            check(&c),
            Err(WireError::Crl {
                item: "root CA CRL",
                ..
            })
        ));

        let mut c = good.clone();
        c.tcb_info_signature.truncate(10);
        assert_eq!(
            check(&c),
            Err(WireError::SignatureEncoding { item: "TCB info" })
        );
    }

    #[test]
    fn chain_to_another_root_is_refused() {
        let (good, entry) = vector("v4_tdx10_phala_uptodate");
        let now = entry["now_unix"].as_u64().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let other_root = params.self_signed(&key).unwrap();
        assert!(matches!(
            check_collateral(&good, other_root.der(), now),
            Err(WireError::Chain { .. })
        ));
        // A chain of one self-signed certificate that is not the root.
        let mut c = good.clone();
        c.tcb_info_issuer_chain = other_root.pem();
        assert!(matches!(
            check_collateral(&c, INTEL_SGX_ROOT_CA_DER, now),
            Err(WireError::Chain {
                item: "TCB info",
                ..
            })
        ));
    }

    #[cfg(feature = "synthetic")]
    #[test]
    fn synthetic_collateral_passes_under_its_own_root_only() {
        let pki = crate::tdx::synthetic::SyntheticPki::generate(
            crate::tdx::synthetic::SyntheticPkiParams::new(1_750_000_000),
        )
        .unwrap();
        let facts = check_collateral(pki.collateral(), pki.root_der(), 1_750_000_100).unwrap();
        assert_eq!(facts.ca, PckCa::Platform);
        assert!(check_collateral(pki.collateral(), INTEL_SGX_ROOT_CA_DER, 1_750_000_100).is_err());
    }
}
