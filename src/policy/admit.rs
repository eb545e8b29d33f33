//! The policy's judgement of an authentic quote: DCAP says whether a quote is authentic
//! ([`AuthenticQuote`]); the policy says whether it is acceptable ([`VerifiedQuote`]).

use core::ops::Deref;

use super::{Policy, PolicyViolation, QuoteFacts};
use crate::tdx::{
    AuthenticQuote, AuthenticityError, Collateral, CollateralProvenance, DcapCheck, DcapError,
    Measurements, QuoteFormatError, QuoteVerifier,
};

/// A quote that passed DCAP verification and a [`Policy`]: an [`AuthenticQuote`] (its fields
/// through `Deref`) plus the name of the Measurement profile that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    authentic: AuthenticQuote,
    profile: String,
    provenance: Option<CollateralProvenance>,
}

impl VerifiedQuote {
    /// The name of the Measurement profile that matched.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Where and when the collateral this quote verified with was fetched (`None` for
    /// collateral from a file or a static store).
    pub fn collateral_provenance(&self) -> Option<&CollateralProvenance> {
        self.provenance.as_ref()
    }

    /// The authentic quote the policy accepted.
    pub fn authentic(&self) -> &AuthenticQuote {
        &self.authentic
    }
}

impl Deref for VerifiedQuote {
    type Target = AuthenticQuote;

    fn deref(&self) -> &AuthenticQuote {
        &self.authentic
    }
}

/// Why a quote was not accepted: not authentic, or authentic but refused by the policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// DCAP verification failed: the quote is not authentic at `now` under the trusted root.
    #[error("DCAP verification failed ({check:?}): {source}")]
    Dcap {
        /// Which check.
        check: DcapCheck,
        /// What the DCAP library reported.
        #[source]
        source: DcapError,
    },
    /// The bytes are not a well-formed TDX quote.
    #[error("malformed quote: {0}")]
    Format(#[from] QuoteFormatError),
    /// The verification was not run: too many at once (see
    /// [`QuoteVerifier::max_concurrent_dcap`]).
    #[error("too many quote verifications at once")]
    Busy,
    /// Refused before DCAP verification: the quote's own fields (signed, but not yet checked)
    /// already fail the policy, so whether it is authentic was never asked. An authentic quote
    /// with these fields would be refused with [`Self::Policy`] and the same violation.
    #[error("quote refused by policy before verification: {violation}")]
    Prechecked {
        /// What the policy objected to (its Measurements or debug rules).
        violation: PolicyViolation,
        /// blake3 of the quote's canonical form ([`crate::normalized_quote`]), for the record.
        quote_digest: [u8; 32],
    },
    /// The quote is authentic, but the policy refuses it.
    #[error("quote refused by policy: {violation}")]
    Policy {
        /// What the policy objected to.
        violation: PolicyViolation,
        /// The authentic quote, for reporting.
        quote: Box<AuthenticQuote>,
    },
}

impl From<AuthenticityError> for AttestationError {
    fn from(error: AuthenticityError) -> Self {
        match error {
            AuthenticityError::Dcap { check, source } => Self::Dcap { check, source },
            AuthenticityError::Format(format) => Self::Format(format),
            AuthenticityError::Busy => Self::Busy,
        }
    }
}

impl AttestationError {
    /// The DCAP check that failed, if this is a DCAP failure.
    pub fn dcap_check(&self) -> Option<DcapCheck> {
        match self {
            Self::Dcap { check, .. } => Some(*check),
            _ => None,
        }
    }

    /// The policy violation, if the quote was refused by the policy (authentic, or before
    /// verification for its Measurements).
    pub fn policy_violation(&self) -> Option<&PolicyViolation> {
        match self {
            Self::Policy { violation, .. } | Self::Prechecked { violation, .. } => Some(violation),
            _ => None,
        }
    }
}

impl Policy {
    /// Judges an authentic quote verified with `collateral` at `now` (unix seconds).
    pub fn admit(
        &self,
        authentic: AuthenticQuote,
        collateral: &Collateral,
        now: u64,
    ) -> Result<VerifiedQuote, AttestationError> {
        let facts = QuoteFacts {
            measurements: authentic.measurements(),
            tcb_status: authentic.tcb_status(),
            advisory_ids: authentic.advisory_ids(),
            tcb_info_issued: collateral.tcb_info_issued(),
            qe_identity_issued: collateral.qe_identity_issued(),
        };
        let remote = match &self.remote {
            Some(remote) => remote
                .check(collateral.provenance(), now)
                .map_err(PolicyViolation::Remote),
            None => Ok(()),
        };
        match remote.and_then(|()| self.check(&facts, now)) {
            Ok(profile) => Ok(VerifiedQuote {
                authentic,
                profile,
                provenance: collateral.provenance().cloned(),
            }),
            Err(violation) => Err(AttestationError::Policy {
                violation,
                quote: Box::new(authentic),
            }),
        }
    }
}

impl Policy {
    /// The part of the policy that needs no verification: the quote's debug attribute and
    /// Measurements, read from its layout. Run before DCAP so that a quote the policy refuses
    /// whatever its authenticity costs a comparison, not a verification.
    pub(crate) fn precheck(
        &self,
        measurements: &Measurements,
        quote_digest: [u8; 32],
    ) -> Result<(), AttestationError> {
        if measurements.is_debug() && !self.allows_debug() {
            return Err(AttestationError::Prechecked {
                violation: PolicyViolation::DebugTd,
                quote_digest,
            });
        }
        self.measurements
            .check(measurements)
            .map(|_| ())
            .map_err(|mismatch| AttestationError::Prechecked {
                violation: PolicyViolation::Measurements(mismatch),
                quote_digest,
            })
    }
}

impl QuoteVerifier {
    /// Verifies `quote` with `collateral` at `now` (unix seconds), then judges it by `policy`:
    /// [`QuoteVerifier::verify_authentic`] followed by [`Policy::admit`]. A verdict from full
    /// verification enters the verdict cache only if the policy admits the quote.
    pub fn verify(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: u64,
        policy: &Policy,
    ) -> Result<VerifiedQuote, AttestationError> {
        self.verify_then(quote, collateral, now, policy, |_| Ok(()))
    }

    /// As [`Self::verify`], with `accept` run on the verified quote after the policy: the
    /// verdict is cached only when it passes too (a binding check, for a peer's quote).
    pub(crate) fn verify_then<E: From<AttestationError>>(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: u64,
        policy: &Policy,
        accept: impl FnOnce(&VerifiedQuote) -> Result<(), E>,
    ) -> Result<VerifiedQuote, E> {
        let (authentic, pending) = self
            .authenticate(quote, collateral, now)
            .map_err(AttestationError::from)?;
        let verified = policy.admit(authentic, collateral, now)?;
        accept(&verified)?;
        self.remember(pending, now);
        Ok(verified)
    }
}
