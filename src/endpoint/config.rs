//! Endpoint configuration: a typestate builder, so a missing choice does not compile.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::batch_queue::BondQuoteLimits;
use super::batcher::QuoteBatcher;
use crate::evidence::{EvidenceError, MAX_VALIDITY_SECS};
use crate::evidence_log::EvidenceSink;
use crate::identity::Identity;
use crate::level::AttestationLevel;
use crate::policy::{Freshness, Policy, RebuildPinError};
use crate::tdx::{CollateralStore, QuoteProvider, QuoteProviderError, QuoteVerifier};

/// Longest certificate lifetime the builder accepts: [`MAX_VALIDITY_SECS`] less the minute of
/// clock skew issuance backdates `not_before` by, so that every accepted lifetime issues.
pub const MAX_CERT_LIFETIME: Duration =
    Duration::from_secs(MAX_VALIDITY_SECS - super::certs::CLOCK_SKEW_SECS);

/// Handshakes in progress from which an endpoint sends QUIC Retry to unvalidated addresses by
/// default (see [`EndpointConfigBuilder::retry_above_handshakes`]).
pub const DEFAULT_RETRY_ABOVE_HANDSHAKES: usize = 64;

/// What happens to an established connection when its peer's evidence expires
/// ([`super::PeerInfo::not_after`]: the peer certificate, the PCK chain or the collateral its
/// quotes were verified with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerExpiry {
    /// Close it with [`super::EVIDENCE_EXPIRED`] (the default): a peer is trusted no longer
    /// than its evidence; it dials again with renewed evidence.
    #[default]
    Close,
    /// Keep it open: the bond stays admitted on evidence that no longer verifies. Logged.
    Keep,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The certificate lifetime is zero or longer than certificates may be.
    #[error("certificate lifetime {0:?} is outside 1 s ..= {max} s", max = MAX_CERT_LIFETIME.as_secs())]
    CertificateLifetime(Duration),
    /// Issuing this side's certificate failed.
    #[error("issuing the endpoint certificate: {0}")]
    Evidence(#[from] EvidenceError),
    /// A builder step is missing (the typestate makes this unreachable).
    #[error("incomplete endpoint configuration")]
    Incomplete,
    /// Binding the UDP socket failed.
    #[error("binding the UDP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The policy level requires this side to be attested, but no quote provider is set.
    #[error("level {0} requires this side to present quotes: set a quote provider")]
    LevelNeedsQuoteProvider(AttestationLevel),
    /// The policy level includes the TdxRemote check, but the policy declares no collateral
    /// service and does not opt out ([`Policy::check_remote_declared`]).
    #[error("{0}")]
    RemoteSectionMissing(#[from] crate::policy::RemoteSectionMissing),
    /// The policy level is not implemented by this transport yet.
    #[error("level {0} is not supported by this transport yet")]
    LevelNotSupported(AttestationLevel),
    /// Level TdxPlusReproducibleBuild, but the policy's Measurements are not pinned from a
    /// verified rebuild ([`Policy::pin_rebuilt`]).
    #[error(
        "level TdxPlusReproducibleBuild requires Measurements pinned from a verified rebuild: {0}"
    )]
    NotRebuildPinned(#[source] RebuildPinError),
    /// The TLS configuration offers no cipher suite QUIC can protect its Initial packets with.
    #[error("no QUIC initial cipher suite: {0}")]
    NoInitialCipherSuite(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The quote provider failed while issuing the first certificate.
    #[error("quote provider: {0}")]
    Provider(#[from] QuoteProviderError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Builder state: the policy is still missing.
#[derive(Debug)]
pub struct WantsPolicy;
/// Builder state: whether this side presents quotes is still open.
#[derive(Debug)]
pub struct WantsEvidence;
/// Builder state: the quote verifier and collateral are still missing.
#[derive(Debug)]
pub struct WantsVerifier;
/// Builder state: complete.
#[derive(Debug)]
pub struct Ready;

/// Everything an [`super::Endpoint`] needs. Immutable once built; shared by `Arc`.
#[derive(Debug)]
pub struct EndpointConfig {
    pub(crate) identity: Arc<Identity>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) provider: Option<Arc<dyn QuoteProvider>>,
    pub(crate) quote_verifier: QuoteVerifier,
    pub(crate) collateral: Arc<dyn CollateralStore>,
    pub(crate) cert_lifetime: Duration,
    pub(crate) bond_timeout: Duration,
    pub(crate) socket_buffer_bytes: usize,
    /// Where bonds are recorded, if anywhere.
    pub(crate) evidence: Option<EvidenceSink>,
    /// Batching and rate limits of bond quotes.
    pub(crate) bond_quote_limits: BondQuoteLimits,
    /// Makes this side's bond quotes (when it has a provider).
    pub(crate) bond_quotes: Option<QuoteBatcher>,
    /// What happens at the peer's evidence expiry.
    pub(crate) peer_expiry: PeerExpiry,
    /// Handshakes in progress above which unvalidated addresses get a QUIC Retry first.
    pub(crate) retry_above_handshakes: usize,
}

impl EndpointConfig {
    /// Starts a configuration for the peer with this identity.
    pub fn builder(identity: Identity) -> EndpointConfigBuilder<WantsPolicy> {
        EndpointConfigBuilder {
            identity,
            policy: None,
            provider: None,
            verifier: None,
            cert_lifetime: Duration::from_secs(3600),
            bond_timeout: Duration::from_secs(10),
            socket_buffer_bytes: 8 << 20,
            max_concurrent_quotes: 8,
            evidence: None,
            bond_quote_limits: BondQuoteLimits::default(),
            peer_expiry: PeerExpiry::default(),
            retry_above_handshakes: DEFAULT_RETRY_ABOVE_HANDSHAKES,
            state: PhantomData,
        }
    }

    /// This side's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The policy peers must satisfy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether this side presents quotes.
    pub fn is_attested(&self) -> bool {
        self.provider.is_some()
    }

    /// How bond quotes are batched and rate-limited.
    pub fn bond_quote_limits(&self) -> &BondQuoteLimits {
        &self.bond_quote_limits
    }
}

/// Builds an [`EndpointConfig`]; see [`EndpointConfig::builder`].
#[derive(Debug)]
pub struct EndpointConfigBuilder<State> {
    identity: Identity,
    policy: Option<Policy>,
    provider: Option<Arc<dyn QuoteProvider>>,
    verifier: Option<(QuoteVerifier, Arc<dyn CollateralStore>)>,
    cert_lifetime: Duration,
    bond_timeout: Duration,
    socket_buffer_bytes: usize,
    max_concurrent_quotes: usize,
    evidence: Option<EvidenceSink>,
    bond_quote_limits: BondQuoteLimits,
    peer_expiry: PeerExpiry,
    retry_above_handshakes: usize,
    state: PhantomData<State>,
}

impl<S> EndpointConfigBuilder<S> {
    fn to<T>(self) -> EndpointConfigBuilder<T> {
        EndpointConfigBuilder {
            identity: self.identity,
            policy: self.policy,
            provider: self.provider,
            verifier: self.verifier,
            cert_lifetime: self.cert_lifetime,
            bond_timeout: self.bond_timeout,
            socket_buffer_bytes: self.socket_buffer_bytes,
            max_concurrent_quotes: self.max_concurrent_quotes,
            evidence: self.evidence,
            bond_quote_limits: self.bond_quote_limits,
            peer_expiry: self.peer_expiry,
            retry_above_handshakes: self.retry_above_handshakes,
            state: PhantomData,
        }
    }
}

impl EndpointConfigBuilder<WantsPolicy> {
    /// The policy every peer must satisfy (level floor, Measurements, TCB, freshness).
    pub fn with_policy(mut self, policy: Policy) -> EndpointConfigBuilder<WantsEvidence> {
        self.policy = Some(policy);
        self.to()
    }
}

impl EndpointConfigBuilder<WantsEvidence> {
    /// This side presents quotes from `provider`: in its certificate (renewed in the
    /// background) and, under per-bond freshness, one fresh quote per connection.
    pub fn with_quote_provider(
        mut self,
        provider: Arc<dyn QuoteProvider>,
    ) -> EndpointConfigBuilder<WantsVerifier> {
        self.provider = Some(provider);
        self.to()
    }

    /// This side presents no quote (level Software). Peers whose policy floor is above Software
    /// will refuse it.
    pub fn without_quotes(self) -> EndpointConfigBuilder<WantsVerifier> {
        self.to()
    }
}

impl EndpointConfigBuilder<WantsVerifier> {
    /// How peer quotes are verified: the trusted root, and where collateral comes from.
    pub fn with_quote_verifier(
        mut self,
        verifier: QuoteVerifier,
        collateral: Arc<dyn CollateralStore>,
    ) -> EndpointConfigBuilder<Ready> {
        self.verifier = Some((verifier, collateral));
        self.to()
    }
}

impl EndpointConfigBuilder<Ready> {
    /// Certificate lifetime (default one hour); renewed at about two thirds of it.
    pub fn cert_lifetime(mut self, lifetime: Duration) -> Self {
        self.cert_lifetime = lifetime;
        self
    }

    /// How long a bond proof exchange may take after the handshake (default 10 s).
    pub fn bond_timeout(mut self, timeout: Duration) -> Self {
        self.bond_timeout = timeout;
        self
    }

    /// UDP send and receive buffer size (default 8 MiB).
    pub fn socket_buffer_bytes(mut self, bytes: usize) -> Self {
        self.socket_buffer_bytes = bytes;
        self
    }

    /// How many single bond quotes may run at once (default 8; at least 1). Further bonds wait.
    /// Applies to [`BondQuoteLimits::single_quotes`]; a batching endpoint runs one quote at a
    /// time (its provider serves one at a time anyway) and queues the rest into the next one.
    pub fn max_concurrent_quotes(mut self, permits: usize) -> Self {
        self.max_concurrent_quotes = permits.max(1);
        self
    }

    /// Records every formed bond (the peer's evidence, durably, before the connection is handed
    /// out) and every refused one in `sink`'s evidence log. With a required sink, a bond whose
    /// record cannot be written does not form.
    pub fn evidence_log(mut self, sink: EvidenceSink) -> Self {
        self.evidence = Some(sink);
        self
    }

    /// How bond quotes are made (default [`BondQuoteLimits::default`]: batched while the quote
    /// provider is busy, at most 64 bonds a quote, a burst of 64 and 32 a second per peer).
    /// [`BondQuoteLimits::single_quotes`] makes one quote per bond and offers only single
    /// proofs to peers.
    pub fn bond_quotes(mut self, limits: BondQuoteLimits) -> Self {
        self.bond_quote_limits = limits;
        self
    }

    /// What happens to a connection when its peer's evidence expires (default
    /// [`PeerExpiry::Close`]).
    pub fn at_peer_expiry(mut self, expiry: PeerExpiry) -> Self {
        self.peer_expiry = expiry;
        self
    }

    /// Under load, validate addresses first: while at least `handshakes` handshakes are in
    /// progress on this endpoint, an incoming connection whose source address is not validated
    /// yet is answered with a QUIC Retry, and only its second attempt (which proves it receives
    /// at that address) gets a handshake (default [`DEFAULT_RETRY_ABOVE_HANDSHAKES`]; zero
    /// retries every unvalidated attempt). Costs a validated peer one round trip; keeps spoofed
    /// sources from making this endpoint do handshake work.
    pub fn retry_above_handshakes(mut self, handshakes: usize) -> Self {
        self.retry_above_handshakes = handshakes;
        self
    }

    /// Checks the choices fit together.
    ///
    /// Level TdxRaTlsBidirectional and above need a quote provider on this side; level
    /// TdxPlusReproducibleBuild also needs a policy pinned from a verified rebuild
    /// ([`Policy::pin_rebuilt`]); level TdxRemote and every level above it need a policy with a
    /// `[remote]` section ([`Policy::set_remote`]) or the explicit opt-out
    /// ([`crate::DangerousPolicy::static_collateral`], logged here).
    pub fn build(self) -> Result<EndpointConfig, ConfigError> {
        let (Some(policy), Some((quote_verifier, collateral))) = (self.policy, self.verifier)
        else {
            // The typestate makes this unreachable; kept as an error rather than a panic.
            return Err(ConfigError::Incomplete);
        };
        let level = policy.level();
        // Levels are cumulative: from TdxRemote up, the declared services and staleness bound
        // of `[remote]`, or the explicit opt-out.
        policy.check_remote_declared()?;
        if level >= AttestationLevel::TdxRemote
            && policy.remote().is_none()
            && policy.accepts_static_collateral()
        {
            tracing::warn!(
                %level,
                "static collateral: peers reach {level} without collateral fetched from a \
                 declared service; revocations and TCB recoveries are not followed"
            );
        }
        if level >= AttestationLevel::TdxRaTlsBidirectional && self.provider.is_none() {
            return Err(ConfigError::LevelNeedsQuoteProvider(level));
        }
        if level == AttestationLevel::TdxPlusReproducibleBuild {
            policy
                .rebuild_pin()
                .map_err(ConfigError::NotRebuildPinned)?;
        }
        if self.cert_lifetime.as_secs() == 0 || self.cert_lifetime > MAX_CERT_LIFETIME {
            return Err(ConfigError::CertificateLifetime(self.cert_lifetime));
        }
        if self.peer_expiry == PeerExpiry::Keep {
            tracing::warn!("connections outlive their peer's evidence (PeerExpiry::Keep)");
        }
        if policy.freshness() == Freshness::Certificate {
            tracing::warn!(%level, "certificate freshness: bonds admitted without per-connection quotes");
        }
        // Bounds the single quotes running on blocking threads: they cannot be aborted, so a
        // flood of bonds must queue rather than pile up threads.
        let quote_permits = Arc::new(tokio::sync::Semaphore::new(self.max_concurrent_quotes));
        let bond_quotes = self.provider.as_ref().map(|provider| {
            QuoteBatcher::new(
                Arc::clone(provider),
                self.bond_quote_limits.clone(),
                Arc::clone(&quote_permits),
            )
        });
        tracing::debug!(limits = ?self.bond_quote_limits, "bond quotes");
        Ok(EndpointConfig {
            identity: Arc::new(self.identity),
            policy: Arc::new(policy),
            provider: self.provider,
            quote_verifier,
            collateral,
            cert_lifetime: self.cert_lifetime,
            bond_timeout: self.bond_timeout,
            socket_buffer_bytes: self.socket_buffer_bytes,
            evidence: self.evidence,
            bond_quote_limits: self.bond_quote_limits,
            bond_quotes,
            peer_expiry: self.peer_expiry,
            retry_above_handshakes: self.retry_above_handshakes,
        })
    }
}
