//! The check both verifiers run on the peer's certificate, without I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::evidence::{parse_certificate, verify_binding};
use crate::identity::PeerId;
use crate::level::AttestationLevel;
use crate::policy::{AttestationError, Freshness, Policy, VerifiedQuote};
use crate::tdx::quote::{check_exact, TdReportFields};
use crate::tdx::{normalized_quote, CollateralStore, QuoteLayout, QuoteVerifier};

use super::PeerRejection;

/// Which peer a connection must reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpectedPeer {
    /// Exactly this identity (and it must satisfy the policy).
    Exactly(PeerId),
    /// Any identity that satisfies the policy.
    AnyAllowedByPolicy,
}

/// What the certificate check established about the peer.
#[derive(Clone, Debug)]
pub struct CertifiedPeer {
    peer_id: PeerId,
    level: AttestationLevel,
    quote: Option<VerifiedQuote>,
    not_after: u64,
}

impl CertifiedPeer {
    /// The peer's identity.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The level the peer's certificate supports with this side, before any bond proof.
    pub fn level(&self) -> AttestationLevel {
        self.level
    }

    /// The verified quote of the certificate; `None` for a Software peer.
    pub fn quote(&self) -> Option<&VerifiedQuote> {
        self.quote.as_ref()
    }

    /// The certificate's validity end, unix seconds.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    pub(crate) fn into_parts(self) -> (PeerId, AttestationLevel, Option<VerifiedQuote>) {
        (self.peer_id, self.level, self.quote)
    }
}

/// Everything needed to judge a peer's evidence, certificate and bond proof alike. Shared by
/// the client and server verifiers and the bond judgement; no I/O.
#[derive(Debug)]
pub(crate) struct PeerCheck {
    policy: Arc<Policy>,
    quote_verifier: QuoteVerifier,
    collateral: Arc<dyn CollateralStore>,
    /// Whether this side presents a quote too (both attested is TdxRaTlsBidirectional).
    local_attested: bool,
    /// How many peer certificates were checked (each full handshake checks one).
    checks: AtomicU64,
}

impl PeerCheck {
    /// A check for `policy` with a zero counter.
    pub(crate) fn new(
        policy: Arc<Policy>,
        quote_verifier: QuoteVerifier,
        collateral: Arc<dyn CollateralStore>,
        local_attested: bool,
    ) -> Self {
        Self {
            policy,
            quote_verifier,
            collateral,
            local_attested,
            checks: AtomicU64::new(0),
        }
    }

    /// The policy peers are judged by.
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many peer certificates this check has judged.
    pub(crate) fn checks_run(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The level a peer reaches with this side, from what it presented. The one place where
    /// levels are decided:
    ///
    /// - no quote: Software;
    /// - a verified quote: TdxLocal (TdxRemote when the policy has a `[remote]` section, whose
    ///   check every quote then passed, or opted out of it with static collateral), or with both sides attested under per-bond freshness
    ///   TdxRaTlsBidirectional, and TdxPlusReproducibleBuild when moreover the policy's
    ///   Measurements are pinned from a verified rebuild ([`Policy::rebuild_pin`]), so the peer's
    ///   quote carried the rebuilt MRTD.
    pub(crate) fn level_reached(&self, attested: bool) -> AttestationLevel {
        if !attested {
            AttestationLevel::Software
        } else if self.local_attested && self.policy.freshness() == Freshness::PerBond {
            if self.policy.is_rebuild_pinned() {
                AttestationLevel::TdxPlusReproducibleBuild
            } else {
                AttestationLevel::TdxRaTlsBidirectional
            }
        } else if self.policy.remote().is_some()
            || (self.policy.accepts_static_collateral()
                && self.policy.level() >= AttestationLevel::TdxRemote)
        {
            // The policy's `[remote]` check passed for the quote (it refuses otherwise), or the
            // policy opted out of it explicitly (static collateral, logged at build).
            AttestationLevel::TdxRemote
        } else {
            AttestationLevel::TdxLocal
        }
    }

    /// Verifies a peer quote (certificate or bond proof) at `now`, cheapest checks first, so
    /// that a quote which cannot pass costs microseconds rather than a DCAP verification:
    ///
    /// 1. the layout, with nothing after the quote (its field already delimits it);
    /// 2. `precheck` on the TD report read from the layout and the canonical form's digest (the caller's binding of
    ///    report_data, and whatever else it compares);
    /// 3. the policy's debug and Measurements rules on the same fields;
    /// 4. collateral, then DCAP verification ([`QuoteVerifier`]: a recent failure of the same
    ///    quote is refused without a second run; concurrent runs are bounded) and the rest of
    ///    the policy;
    /// 5. `accept` on the verified quote.
    ///
    /// The fields read in 2 and 3 are the ones the quote signature covers, so when DCAP later
    /// passes they are the verified ones; refusing on them first refuses nothing that would
    /// have passed. A verdict from full verification enters the verdict cache only after 5.
    pub(crate) fn verify_peer_quote<E: From<QuoteCheck>>(
        &self,
        quote: &[u8],
        now: u64,
        precheck: impl FnOnce(&TdReportFields, &[u8; 32]) -> Result<(), E>,
        accept: impl FnOnce(&VerifiedQuote) -> Result<(), E>,
    ) -> Result<VerifiedQuote, E> {
        let refused = |error: AttestationError| E::from(QuoteCheck::Refused(error));
        let layout = QuoteLayout::parse(quote).map_err(|e| refused(e.into()))?;
        check_exact(quote, &layout).map_err(|e| refused(e.into()))?;
        let normalized = normalized_quote(quote).map_err(|e| refused(e.into()))?;
        let fields = TdReportFields::parse(
            &normalized,
            &QuoteLayout::parse(&normalized).map_err(|e| refused(e.into()))?,
        )
        .map_err(|e| refused(e.into()))?;
        let digest = *blake3::hash(&normalized).as_bytes();
        precheck(&fields, &digest)?;
        self.policy
            .precheck(&fields.measurements, digest)
            .map_err(refused)?;
        let collateral = self
            .collateral
            .collateral_for(&normalized)
            .ok_or(E::from(QuoteCheck::MissingCollateral))?;
        self.quote_verifier
            .verify_then(&normalized, &collateral, now, &self.policy, |verified| {
                accept(verified).map_err(Wrapped)
            })
            .map_err(|error| match error {
                Wrapped(error) => error,
            })
    }

    /// Checks a peer certificate (DER) at `now` (unix seconds): parse, validity, expected
    /// identity, quote and policy, binding of the quote to the certificate key, level floor.
    pub(crate) fn check(
        &self,
        der: &[u8],
        now: u64,
        expected: ExpectedPeer,
    ) -> Result<CertifiedPeer, PeerRejection> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let cert = parse_certificate(der)?;
        cert.check_validity(now)?;
        self.policy
            .retired
            .check(&cert.peer_id, now)
            .map_err(PeerRejection::Retired)?;
        if let ExpectedPeer::Exactly(expected) = expected {
            if cert.peer_id != expected {
                return Err(PeerRejection::UnexpectedPeer {
                    expected,
                    found: cert.peer_id,
                });
            }
        }
        let required = self.policy.level();
        let quote = match &cert.evidence {
            None => {
                if required == AttestationLevel::Software
                    && !self
                        .policy
                        .software_allow
                        .contains(&cert.peer_id.attestation_digest())
                {
                    return Err(PeerRejection::UnknownSoftwareIdentity(cert.peer_id));
                }
                None
            }
            Some(evidence) => {
                let binding = cert.binding_input();
                let quote = self.verify_peer_quote(
                    &evidence.quote,
                    now,
                    |fields, _| {
                        verify_binding(&binding, &fields.report_data).map_err(PeerRejection::from)
                    },
                    |_| Ok(()),
                )?;
                Some(quote)
            }
        };
        let level = self.level_reached(quote.is_some());
        if level < required {
            return Err(PeerRejection::BelowFloor {
                required,
                presented: level,
            });
        }
        Ok(CertifiedPeer {
            peer_id: cert.peer_id,
            level,
            quote,
            not_after: cert.not_after,
        })
    }
}

/// Carries the caller's error through [`QuoteVerifier::verify_then`], whose own errors convert
/// into it.
struct Wrapped<E>(E);

impl<E: From<QuoteCheck>> From<AttestationError> for Wrapped<E> {
    fn from(error: AttestationError) -> Self {
        Self(E::from(QuoteCheck::Refused(error)))
    }
}

/// Why a peer quote did not pass [`PeerCheck::verify_peer_quote`].
#[derive(Debug)]
pub(crate) enum QuoteCheck {
    /// No collateral for it: fails closed.
    MissingCollateral,
    /// Not authentic, or refused by the policy.
    Refused(AttestationError),
}

impl From<QuoteCheck> for PeerRejection {
    fn from(check: QuoteCheck) -> Self {
        match check {
            QuoteCheck::MissingCollateral => Self::MissingCollateral,
            QuoteCheck::Refused(error) => Self::Quote(error),
        }
    }
}
