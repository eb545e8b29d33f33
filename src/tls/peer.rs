//! The check both verifiers run on the peer's certificate, without I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::evidence::{parse_certificate, verify_binding};
use crate::identity::PeerId;
use crate::level::AttestationLevel;
use crate::policy::{Freshness, Policy};
use crate::tdx::{CollateralStore, QuoteVerifier, VerifiedQuote};

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
    /// The peer's identity.
    pub peer_id: PeerId,
    /// The level the peer's certificate supports, before any bond proof.
    pub level: AttestationLevel,
    /// The verified quote of the certificate; `None` for a Software peer.
    pub quote: Option<VerifiedQuote>,
    /// The certificate's validity end, unix seconds.
    pub not_after: u64,
}

/// Everything needed to judge a peer certificate. Shared by the client and server verifiers.
#[derive(Debug)]
pub struct PeerCheck {
    /// The policy the peer must satisfy.
    pub policy: Arc<Policy>,
    /// DCAP verification with its trusted root.
    pub quote_verifier: QuoteVerifier,
    /// Collateral for the peer's quotes.
    pub collateral: Arc<dyn CollateralStore>,
    /// Whether this side presents a quote too (both attested is TdxRaTlsBidirectional).
    pub local_attested: bool,
    /// How many peer certificates were checked (each full handshake checks one).
    pub checks: AtomicU64,
}

impl PeerCheck {
    /// A check for `policy` with a zero counter.
    pub fn new(
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

    /// How many peer certificates this check has judged.
    pub fn checks_run(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The level a peer with a verified quote reaches with this side: TdxLocal, or with both
    /// sides attested under per-bond freshness TdxRaTlsBidirectional, and
    /// TdxPlusReproducibleBuild when moreover the policy's Measurements are pinned from a
    /// verified rebuild ([`Policy::rebuild_pin`]), so the peer's quote carried the rebuilt MRTD.
    pub fn attested_level(&self) -> AttestationLevel {
        if self.local_attested && self.policy.freshness() == Freshness::PerBond {
            if self.policy.is_rebuild_pinned() {
                AttestationLevel::TdxPlusReproducibleBuild
            } else {
                AttestationLevel::TdxRaTlsBidirectional
            }
        } else {
            AttestationLevel::TdxLocal
        }
    }

    /// Checks a peer certificate (DER) at `now` (unix seconds): parse, validity, expected
    /// identity, quote and policy, binding of the quote to the certificate key, level floor.
    pub fn check(
        &self,
        der: &[u8],
        now: u64,
        expected: ExpectedPeer,
    ) -> Result<CertifiedPeer, PeerRejection> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let cert = parse_certificate(der)?;
        cert.check_validity(now)?;
        if let ExpectedPeer::Exactly(expected) = expected {
            if cert.peer_id != expected {
                return Err(PeerRejection::UnexpectedPeer {
                    expected,
                    found: cert.peer_id,
                });
            }
        }
        let required = self.policy.level();
        let Some(evidence) = &cert.evidence else {
            if required > AttestationLevel::Software {
                return Err(PeerRejection::BelowFloor {
                    required,
                    presented: AttestationLevel::Software,
                });
            }
            if !self
                .policy
                .software_allow
                .contains(&cert.peer_id.attestation_digest())
            {
                return Err(PeerRejection::UnknownSoftwareIdentity(cert.peer_id));
            }
            return Ok(CertifiedPeer {
                peer_id: cert.peer_id,
                level: AttestationLevel::Software,
                quote: None,
                not_after: cert.not_after,
            });
        };
        let collateral = self
            .collateral
            .collateral_for(&evidence.quote)
            .ok_or(PeerRejection::MissingCollateral)?;
        let quote = self
            .quote_verifier
            .verify(&evidence.quote, &collateral, now, &self.policy)?;
        verify_binding(&cert.binding_input(), quote.report_data())?;
        let level = self.attested_level();
        if level < required {
            return Err(PeerRejection::BelowFloor {
                required,
                presented: level,
            });
        }
        Ok(CertifiedPeer {
            peer_id: cert.peer_id,
            level,
            quote: Some(quote),
            not_after: cert.not_after,
        })
    }
}
