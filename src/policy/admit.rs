//! The policy's judgement of an authentic quote: DCAP says whether a quote is authentic
//! ([`AuthenticQuote`]); the policy says whether it is acceptable ([`VerifiedQuote`]).

use core::ops::Deref;

use super::{Policy, PolicyViolation, QuoteFacts};
use crate::tdx::{
    AuthenticQuote, AuthenticityError, Collateral, CollateralProvenance, DcapCheck, DcapError,
    QuoteFormatError, QuoteVerifier,
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

    /// The policy violation, if the quote was authentic but refused.
    pub fn policy_violation(&self) -> Option<&PolicyViolation> {
        match self {
            Self::Policy { violation, .. } => Some(violation),
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

impl QuoteVerifier {
    /// Verifies `quote` with `collateral` at `now` (unix seconds), then judges it by `policy`:
    /// [`QuoteVerifier::verify_authentic`] followed by [`Policy::admit`].
    pub fn verify(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: u64,
        policy: &Policy,
    ) -> Result<VerifiedQuote, AttestationError> {
        let authentic = self.verify_authentic(quote, collateral, now)?;
        policy.admit(authentic, collateral, now)
    }
}
