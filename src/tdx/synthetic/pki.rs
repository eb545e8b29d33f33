//! The test PKI: keys, certificates, CRLs, signed collateral, and one pre-signed QE report per
//! platform TCB.
//!
//! ```text
//! Synthetic SGX Root CA (self-signed)  --- signs root CA CRL
//!  |- Synthetic SGX PCK Platform CA    --- signs PCK CRL
//!  |   |- Synthetic SGX PCK Certificate, one per SyntheticTcb (SGX extension)
//!  |        signs the QE report, which binds the attestation key
//!  |- Synthetic SGX TCB Signing        --- signs TCB info and QE identity JSON
//! attestation key (per PKI)            --- signs each quote's header || body
//! ```

use crate::crypto::p256::{
    KeyPair as _, SigningKey as EcdsaKeyPair, FIXED_SIGNING as ECDSA_P256_SHA256_FIXED_SIGNING,
};
use crate::crypto::{SecureRandom, SystemRng as SystemRandom};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    CustomExtension, DistinguishedName, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

use super::collateral::{self, FMSPC, PCE_ID};
use super::quote;
use super::sgx_ext::{SgxExtension, SGX_EXTENSION_OID};
use super::{SyntheticError, SyntheticPkiParams, SyntheticTcb};

/// How long before `issued_at` the certificates become valid (one year).
const CERT_BACKDATE_SECS: u64 = 365 * 24 * 60 * 60;
/// How long after the end of the collateral window the certificates stay valid (ten years).
const CERT_TAIL_SECS: u64 = 10 * 365 * 24 * 60 * 60;
/// Organization of every synthetic certificate.
const ORGANIZATION: &str = "Synthetic TDX Attestation Test PKI";

/// One synthetic platform: a PCK leaf at one TCB level and its pre-signed QE report.
pub(super) struct Platform {
    /// PCESVN of the PCK leaf (also written into the quote header).
    pub(super) pce_svn: u16,
    /// The outer certification data element (type 6) every quote of this platform carries.
    pub(super) certification_data: Vec<u8>,
}

/// One [`Platform`] per [`SyntheticTcb`].
pub(super) struct Platforms {
    out_of_date: Platform,
    sw_hardening_needed: Platform,
    up_to_date: Platform,
}

impl Platforms {
    /// The platform whose PCK leaf lands on `tcb`.
    pub(super) fn get(&self, tcb: SyntheticTcb) -> &Platform {
        match tcb {
            SyntheticTcb::OutOfDate => &self.out_of_date,
            SyntheticTcb::SwHardeningNeeded => &self.sw_hardening_needed,
            SyntheticTcb::UpToDate => &self.up_to_date,
        }
    }
}

/// Everything [`super::SyntheticPki`] keeps after generation.
pub(super) struct Generated {
    pub(super) root_der: Vec<u8>,
    pub(super) collateral: dcap_qvl::QuoteCollateralV3,
    pub(super) attestation_key: EcdsaKeyPair,
    pub(super) attestation_public: [u8; 64],
    pub(super) qe_id: [u8; 16],
    pub(super) platforms: Platforms,
}

/// Build the whole PKI for `params`.
pub(super) fn generate(
    params: &SyntheticPkiParams,
    rng: &SystemRandom,
) -> Result<Generated, SyntheticError> {
    if params.collateral_lifetime_secs == 0 {
        return Err(SyntheticError::EmptyCollateralWindow);
    }
    let issued_at = params.issued_at_unix;
    let next_update = issued_at
        .checked_add(params.collateral_lifetime_secs)
        .ok_or(SyntheticError::TimeOutOfRange {
            unix: params.issued_at_unix,
        })?;
    let cert_not_after = next_update
        .checked_add(CERT_TAIL_SECS)
        .ok_or(SyntheticError::TimeOutOfRange { unix: next_update })?;
    let validity = (
        collateral::offset_date_time(issued_at.saturating_sub(CERT_BACKDATE_SECS))?,
        collateral::offset_date_time(cert_not_after)?,
    );

    // Certificate authorities.
    let root = CertifiedIssuer::self_signed(
        ca_params("Synthetic SGX Root CA", validity, Some(1)),
        KeyPair::generate()?,
    )?;
    let pck_ca = CertifiedIssuer::signed_by(
        ca_params("Synthetic SGX PCK Platform CA", validity, Some(0)),
        KeyPair::generate()?,
        &root,
    )?;
    let tcb_signer_key = KeyPair::generate()?;
    let tcb_signer_cert = leaf_params("Synthetic SGX TCB Signing", validity, None)
        .signed_by(&tcb_signer_key, &root)?;
    let tcb_signer = ring_key(&tcb_signer_key, rng)?;

    // CRLs, valid for exactly the collateral window.
    let crl_window = (
        collateral::offset_date_time(issued_at)?,
        collateral::offset_date_time(next_update)?,
    );
    let window_crl = |number: u64| CertificateRevocationListParams {
        this_update: crl_window.0,
        next_update: crl_window.1,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let root_ca_crl = window_crl(1).signed_by(&root)?;
    let pck_crl = window_crl(1).signed_by(&pck_ca)?;

    // Signed TCB info and QE identity.
    let issue = collateral::rfc3339(issued_at)?;
    let next = collateral::rfc3339(next_update)?;
    let tcb_info = collateral::tcb_info_json(&issue, &next)?;
    let qe_identity = collateral::qe_identity_json(&issue, &next)?;
    let tcb_info_signature = sign(&tcb_signer, rng, tcb_info.as_bytes())?;
    let qe_identity_signature = sign(&tcb_signer, rng, qe_identity.as_bytes())?;
    let signer_chain = format!("{}{}", tcb_signer_cert.pem(), root.pem());
    let collateral = dcap_qvl::QuoteCollateralV3 {
        pck_crl_issuer_chain: format!("{}{}", pck_ca.pem(), root.pem()),
        root_ca_crl: root_ca_crl.der().to_vec(),
        pck_crl: pck_crl.der().to_vec(),
        tcb_info_issuer_chain: signer_chain.clone(),
        tcb_info,
        tcb_info_signature: tcb_info_signature.to_vec(),
        qe_identity_issuer_chain: signer_chain,
        qe_identity,
        qe_identity_signature: qe_identity_signature.to_vec(),
        pck_certificate_chain: None,
    };

    // The attestation key and the QE report binding it.
    let attestation_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| SyntheticError::Crypto("generating the attestation key failed"))?;
    let attestation_key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        attestation_pkcs8.as_ref(),
        rng,
    )
    .map_err(|_| SyntheticError::Crypto("loading the attestation key failed"))?;
    let attestation_public = raw_public_key(&attestation_key)?;
    let qe_auth_data: [u8; 32] = random(rng)?;
    let mut qe_hash_input = attestation_public.to_vec();
    qe_hash_input.extend_from_slice(&qe_auth_data);
    let qe_hash = crate::crypto::sha256(&qe_hash_input);
    let mut qe_report_data = [0u8; 64];
    qe_report_data[..32].copy_from_slice(qe_hash.as_ref());

    // One PCK leaf per TCB level.
    let ppid: [u8; 16] = random(rng)?;
    let platform_instance_id: [u8; 16] = random(rng)?;
    let platform = |tcb: SyntheticTcb| -> Result<Platform, SyntheticError> {
        let (cpu_svn, pce_svn) = collateral::platform_svns(tcb);
        let extension = SgxExtension {
            ppid,
            cpu_svn,
            pce_svn,
            pce_id: PCE_ID,
            fmspc: FMSPC,
            platform_instance_id,
        };
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params("Synthetic SGX PCK Certificate", validity, Some(&extension))
            .signed_by(&leaf_key, &pck_ca)?;
        let chain = format!("{}{}{}", leaf.pem(), pck_ca.pem(), root.pem());

        let mut fields = collateral::qe_report_template(cpu_svn);
        fields.report_data = qe_report_data;
        let qe_report = quote::qe_report(&fields);
        let qe_report_signature = sign(&ring_key(&leaf_key, rng)?, rng, &qe_report)?;
        let certification_data = quote::qe_certification_data(
            &qe_report,
            &qe_report_signature,
            &qe_auth_data,
            chain.as_bytes(),
        )?;
        Ok(Platform {
            pce_svn,
            certification_data,
        })
    };
    let platforms = Platforms {
        out_of_date: platform(SyntheticTcb::OutOfDate)?,
        sw_hardening_needed: platform(SyntheticTcb::SwHardeningNeeded)?,
        up_to_date: platform(SyntheticTcb::UpToDate)?,
    };

    Ok(Generated {
        root_der: root.der().to_vec(),
        collateral,
        attestation_key,
        attestation_public,
        qe_id: random(rng)?,
        platforms,
    })
}

/// Sign `message` with ECDSA P-256 / SHA-256, returning the raw `r || s` form DCAP uses.
pub(super) fn sign(
    key: &EcdsaKeyPair,
    rng: &SystemRandom,
    message: &[u8],
) -> Result<[u8; 64], SyntheticError> {
    let signature = key
        .sign(rng, message)
        .map_err(|_| SyntheticError::Crypto("ECDSA signing failed"))?;
    <[u8; 64]>::try_from(signature.as_ref())
        .map_err(|_| SyntheticError::Crypto("ECDSA signature is not 64 bytes"))
}

fn ring_key(key: &KeyPair, rng: &SystemRandom) -> Result<EcdsaKeyPair, SyntheticError> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.serialized_der(), rng)
        .map_err(|_| SyntheticError::Crypto("ring rejected a generated P-256 key"))
}

/// The 64-byte `x || y` public key (the SEC1 point without its 0x04 prefix).
fn raw_public_key(key: &EcdsaKeyPair) -> Result<[u8; 64], SyntheticError> {
    key.public_key()
        .as_ref()
        .get(1..)
        .and_then(|xy| <[u8; 64]>::try_from(xy).ok())
        .ok_or(SyntheticError::Crypto("P-256 public key is not 65 bytes"))
}

fn random<const N: usize>(rng: &SystemRandom) -> Result<[u8; N], SyntheticError> {
    let mut out = [0u8; N];
    rng.fill(&mut out)
        .map_err(|_| SyntheticError::Crypto("the system random generator failed"))?;
    Ok(out)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn
}

type Validity = (time::OffsetDateTime, time::OffsetDateTime);

fn ca_params(common_name: &str, validity: Validity, path_len: Option<u8>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.not_before = validity.0;
    params.not_after = validity.1;
    params.is_ca = IsCa::Ca(match path_len {
        Some(len) => BasicConstraints::Constrained(len),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params
}

fn leaf_params(
    common_name: &str,
    validity: Validity,
    extension: Option<&SgxExtension>,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.not_before = validity.0;
    params.not_after = validity.1;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    params.use_authority_key_identifier_extension = true;
    if let Some(extension) = extension {
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            SGX_EXTENSION_OID,
            extension.to_der(),
        )];
    }
    params
}
