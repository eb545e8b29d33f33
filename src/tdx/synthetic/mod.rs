//! Synthetic TDX quotes under a test PKI made at run time.
//!
//! Without TDX hardware, tests, benchmarks and demos still need quotes that pass the real DCAP
//! verifier (dcap-qvl). [`SyntheticPki::generate`] builds a complete stand-in for Intel's PKI:
//! a root CA, a PCK Platform CA, PCK leaf certificates carrying the Intel SGX extension (PPID,
//! TCB, PCE-ID, FMSPC, SGX type, platform instance ID, configuration), a TCB signing
//! certificate, signed TDX TCB info and TD_QE identity, and root CA and PCK CRLs. It then
//! signs DCAP v4 TDX quotes with caller-chosen report data and [`Measurements`]; the quoting
//! enclave report inside each quote binds a per-PKI attestation key exactly as a real quote
//! does. `dcap_qvl::verify::QuoteVerifier::new(pki.root_der().to_vec())` verifies them.
//!
//! # Trust
//!
//! **A production verifier never trusts this root unless told to in so many words.** Anyone can
//! run this code and sign any Measurements under a root of their own: a quote that chains to a
//! synthetic root proves nothing about hardware. Only Intel's SGX Root CA stands for TDX
//! hardware; accept another root only behind an explicit, loudly named opt-in.
//!
//! # Time
//!
//! Nothing here reads a clock. The TCB info and QE identity are issued at
//! [`SyntheticPkiParams::issued_at_unix`] with nextUpdate `issued_at_unix +
//! collateral_lifetime_secs`, and both CRLs have the same thisUpdate and nextUpdate. dcap-qvl
//! accepts a `now` with `issued_at_unix <= now < next_update` (a CRL is expired at its
//! nextUpdate) and rejects every quote outside it. Certificates are valid from
//! a year before the window to ten years after it.
//!
//! # TCB levels
//!
//! The synthetic platform's TCB info has one level per [`SyntheticTcb`]; the PCK leaf chosen by
//! [`QuoteSpec::tcb`] carries the CPUSVN and PCESVN of that level, so dcap-qvl reports that
//! status and its advisory IDs.
//!
//! # Example
//!
//! ```
//! use ratls_quic::synthetic::{QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb};
//! use ratls_quic::ReportData;
//!
//! let issued_at = 1_750_000_000;
//! let pki = SyntheticPki::generate(SyntheticPkiParams::new(issued_at))?;
//! let spec = QuoteSpec {
//!     report_data: ReportData([7; 64]),
//!     measurements: ratls_quic::synthetic::sample_measurements(),
//!     tcb: SyntheticTcb::UpToDate,
//! };
//! let quote = pki.quote(&spec)?;
//! let report = dcap_qvl::verify::QuoteVerifier::new(pki.root_der().to_vec())
//!     .verify(&quote, pki.collateral(), issued_at + 60)
//!     .expect("a synthetic quote verifies under its own root");
//! assert_eq!(report.status, "UpToDate");
//! # Ok::<(), ratls_quic::synthetic::SyntheticError>(())
//! ```

mod collateral;
mod pki;
mod quote;
mod sgx_ext;

use core::fmt;
use std::sync::Arc;

use crate::crypto::p256::SigningKey as EcdsaKeyPair;
use crate::crypto::SystemRng as SystemRandom;

use super::{Measurements, QuoteProvider, QuoteProviderError, ReportData, MEASUREMENT_LEN};

/// Why the synthetic PKI or a synthetic quote could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyntheticError {
    /// rcgen could not issue a certificate or CRL, or generate a key.
    #[error("issuing a synthetic certificate or CRL: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A key or signature operation failed.
    #[error("synthetic PKI cryptography: {0}")]
    Crypto(&'static str),
    /// `collateral_lifetime_secs` was zero, so no `now` could verify.
    #[error("the collateral lifetime is zero")]
    EmptyCollateralWindow,
    /// A length-prefixed quote field does not fit its length field.
    #[error("{field} is too long for its quote length field")]
    FieldTooLong {
        /// The field.
        field: &'static str,
    },
    /// Serializing TCB info or QE identity failed.
    #[error("serializing synthetic collateral: {0}")]
    Json(#[from] serde_json::Error),
    /// A time derived from the parameters cannot be written in a certificate or RFC 3339.
    #[error("time {unix} (unix seconds) is out of the representable range")]
    TimeOutOfRange {
        /// The offending time, or the base time it was derived from.
        unix: u64,
    },
}

/// Parameters of a [`SyntheticPki`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticPkiParams {
    /// Start of the collateral window (unix seconds): issue date of the TCB info and QE
    /// identity, thisUpdate of the CRLs. The first second at which quotes verify.
    pub issued_at_unix: u64,
    /// Length of the collateral window in seconds: their nextUpdate is
    /// `issued_at_unix + collateral_lifetime_secs`. Must be non-zero.
    pub collateral_lifetime_secs: u64,
}

impl SyntheticPkiParams {
    /// Thirty days, close to what Intel's PCS issues.
    pub const DEFAULT_LIFETIME_SECS: u64 = 30 * 24 * 60 * 60;

    /// A window starting at `issued_at_unix` lasting [`Self::DEFAULT_LIFETIME_SECS`].
    pub fn new(issued_at_unix: u64) -> Self {
        Self {
            issued_at_unix,
            collateral_lifetime_secs: Self::DEFAULT_LIFETIME_SECS,
        }
    }

    /// The nextUpdate of all collateral: the first second at which verification fails.
    pub fn next_update_unix(&self) -> u64 {
        self.issued_at_unix
            .saturating_add(self.collateral_lifetime_secs)
    }
}

/// The TCB status the platform of a synthetic quote has in the synthetic TCB info.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyntheticTcb {
    /// The lowest level: status `OutOfDate`, advisories `INTEL-SA-00106` and `INTEL-SA-00837`.
    OutOfDate,
    /// Status `SWHardeningNeeded`, advisory `INTEL-SA-00837`.
    SwHardeningNeeded,
    /// Status `UpToDate`, no advisories.
    UpToDate,
}

impl SyntheticTcb {
    /// Every level, highest first.
    pub const ALL: [Self; 3] = [Self::UpToDate, Self::SwHardeningNeeded, Self::OutOfDate];

    /// The status as Intel's TCB info and dcap-qvl spell it.
    pub const fn status_name(self) -> &'static str {
        match self {
            Self::OutOfDate => "OutOfDate",
            Self::SwHardeningNeeded => "SWHardeningNeeded",
            Self::UpToDate => "UpToDate",
        }
    }

    /// The advisory IDs dcap-qvl reports for a quote at this level.
    pub const fn advisory_ids(self) -> &'static [&'static str] {
        match self {
            Self::OutOfDate => &["INTEL-SA-00106", "INTEL-SA-00837"],
            Self::SwHardeningNeeded => &["INTEL-SA-00837"],
            Self::UpToDate => &[],
        }
    }
}

/// What a synthetic quote says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteSpec {
    /// The TD report's report data.
    pub report_data: ReportData,
    /// The TD report's registers and attributes, written verbatim (a debug TD is one with
    /// `td_attributes` bit 0 set).
    pub measurements: Measurements,
    /// Which PCK leaf, and so which TCB level, the quote carries.
    pub tcb: SyntheticTcb,
}

/// Plausible Measurements of a production TD: non-zero MRTD and RTMR0..2, XFAM of a typical
/// TD, and TD attributes with only SEPT_VE_DISABLE (bit 28) set, which dcap-qvl requires.
pub fn sample_measurements() -> Measurements {
    let mut measurements = Measurements::ZERO;
    measurements.mr_td = [0x11; MEASUREMENT_LEN];
    measurements.rtmr[0] = [0x20; MEASUREMENT_LEN];
    measurements.rtmr[1] = [0x21; MEASUREMENT_LEN];
    measurements.rtmr[2] = [0x22; MEASUREMENT_LEN];
    measurements.xfam = [0xe7, 0x02, 0x06, 0, 0, 0, 0, 0];
    measurements.td_attributes = [0, 0, 0, 0x10, 0, 0, 0, 0];
    measurements
}

/// A test PKI made at run time, and the signer of synthetic quotes under it.
///
/// Generation makes about seven P-256 keys and signs a dozen objects; quoting signs once.
/// Share one PKI (it is `Send + Sync`) behind an [`Arc`].
pub struct SyntheticPki {
    params: SyntheticPkiParams,
    root_der: Vec<u8>,
    collateral: dcap_qvl::QuoteCollateralV3,
    attestation_key: EcdsaKeyPair,
    attestation_public: [u8; 64],
    qe_id: [u8; 16],
    platforms: pki::Platforms,
    rng: SystemRandom,
}

impl SyntheticPki {
    /// Make fresh keys, certificates, CRLs and signed collateral for the window in `params`.
    pub fn generate(params: SyntheticPkiParams) -> Result<Self, SyntheticError> {
        let rng = SystemRandom::new();
        let generated = pki::generate(&params, &rng)?;
        Ok(Self {
            params,
            root_der: generated.root_der,
            collateral: generated.collateral,
            attestation_key: generated.attestation_key,
            attestation_public: generated.attestation_public,
            qe_id: generated.qe_id,
            platforms: generated.platforms,
            rng,
        })
    }

    /// The parameters this PKI was made with.
    pub fn params(&self) -> &SyntheticPkiParams {
        &self.params
    }

    /// The synthetic root CA certificate (DER). See the module docs before trusting it.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// A verifier that trusts this PKI's root instead of Intel's (logged at warn level).
    pub fn quote_verifier(&self) -> crate::tdx::QuoteVerifier {
        crate::tdx::QuoteVerifier::dangerous().trust_root(self.root_der.clone())
    }

    /// The collateral for every quote of this PKI (the PCK chain travels in the quote).
    pub fn collateral(&self) -> &dcap_qvl::QuoteCollateralV3 {
        &self.collateral
    }

    /// The collateral as dcap-qvl's `QuoteCollateralV3` JSON, as `certs/vectors` stores it.
    pub fn collateral_json(&self) -> Result<String, SyntheticError> {
        Ok(serde_json::to_string(&self.collateral)?)
    }

    /// Sign a DCAP v4 TDX quote (TD 1.0 body) saying what `spec` says.
    pub fn quote(&self, spec: &QuoteSpec) -> Result<Vec<u8>, SyntheticError> {
        let platform = self.platforms.get(spec.tcb);
        let mut out = quote::header(collateral::qe_isvsvn(), platform.pce_svn, &self.qe_id);
        quote::push_td10_body(
            &mut out,
            &collateral::SEAM,
            &spec.measurements,
            &spec.report_data,
        );
        debug_assert_eq!(out.len(), quote::HEADER_LEN + quote::TD10_BODY_LEN);
        let signature = pki::sign(&self.attestation_key, &self.rng, &out)?;
        quote::push_auth_data(
            &mut out,
            &signature,
            &self.attestation_public,
            &platform.certification_data,
        )?;
        Ok(out)
    }
}

impl fmt::Debug for SyntheticPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyntheticPki")
            .field("params", &self.params)
            .field("attestation_key", &hex::encode(self.attestation_public))
            .finish_non_exhaustive()
    }
}

/// A [`QuoteProvider`] that signs synthetic quotes with fixed Measurements and TCB level.
///
/// Quoting takes well under a millisecond and does no I/O, but follow the trait's contract
/// anyway: the configfs provider it stands in for blocks.
#[derive(Clone, Debug)]
pub struct SyntheticQuoteProvider {
    pki: Arc<SyntheticPki>,
    measurements: Measurements,
    tcb: SyntheticTcb,
}

impl SyntheticQuoteProvider {
    /// A provider quoting `measurements` at TCB level `tcb` under `pki`.
    pub fn new(pki: Arc<SyntheticPki>, measurements: Measurements, tcb: SyntheticTcb) -> Self {
        Self {
            pki,
            measurements,
            tcb,
        }
    }

    /// The PKI the quotes chain to.
    pub fn pki(&self) -> &Arc<SyntheticPki> {
        &self.pki
    }

    /// The Measurements every quote carries.
    pub fn measurements(&self) -> &Measurements {
        &self.measurements
    }
}

impl QuoteProvider for SyntheticQuoteProvider {
    fn quote(&self, report_data: &ReportData) -> Result<Vec<u8>, QuoteProviderError> {
        let spec = QuoteSpec {
            report_data: *report_data,
            measurements: self.measurements,
            tcb: self.tcb,
        };
        self.pki
            .quote(&spec)
            .map_err(|e| QuoteProviderError::Synthetic(e.to_string()))
    }

    fn name(&self) -> &'static str {
        "synthetic"
    }
}
