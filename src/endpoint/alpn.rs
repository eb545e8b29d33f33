//! Several application protocols on one endpoint: which ALPNs are served or dialed, and the
//! freshness each one's bonds require.
//!
//! # Negotiation
//!
//! A dialer asking for ALPN `a` offers `[a, ratls-quic/1]`; an acceptor serving routes
//! `r1..rn` selects from `[r1, .., rn, ratls-quic/1]` in that order (TLS lets the server pick).
//! So a dialer whose ALPN is served gets it, and a dialer whose ALPN is not served still
//! completes the handshake (and so passes the certificate verifiers) on the base ALPN, after
//! which both sides close the connection with application code [`INVALID_ALPN`] (100, mosaik's
//! `InvalidAlpn`) and neither starts a bond proof. A peer that offers no ALPN this endpoint knows
//! at all is refused in the handshake with the TLS alert `no_application_protocol` (QUIC
//! CRYPTO_ERROR 0x178), as QUIC requires (RFC 9001 §8.1). Only attested peers thus learn which
//! ALPNs an endpoint serves.

use crate::level::AttestationLevel;
use crate::policy::{Freshness, Policy};
use crate::tls::ALPN;

/// QUIC application close code for an ALPN the acceptor does not serve; the number mosaik uses
/// for `InvalidAlpn`.
pub const INVALID_ALPN: u32 = 100;

/// The reason text sent with [`INVALID_ALPN`], as mosaik sends it.
pub const INVALID_ALPN_REASON: &[u8] = b"InvalidAlpn";

/// Largest ALPN protocol name TLS carries (RFC 7301: 1 to 255 bytes).
pub const MAX_ALPN_LEN: usize = 255;

/// Why an [`AlpnRoute`] cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The ALPN name is empty or longer than 255 bytes.
    #[error("ALPN names are 1 to 255 bytes, not {0}")]
    BadAlpnLength(usize),
    /// Certificate freshness was asked for an ALPN under a policy whose floor requires
    /// per-bond freshness.
    #[error(
        "certificate freshness for ALPN {alpn:?} is allowed only at TdxLocal and TdxRemote, \
         not at {level}"
    )]
    FreshnessNotAllowed {
        /// The ALPN, lossily as text.
        alpn: String,
        /// The policy floor.
        level: AttestationLevel,
    },
}

/// One application protocol of an endpoint: its ALPN name and the freshness its bonds require.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlpnRoute {
    alpn: Vec<u8>,
    freshness: Option<Freshness>,
}

impl AlpnRoute {
    /// A route whose bonds require what the endpoint policy requires (per-bond quotes by
    /// default).
    pub fn new(alpn: &[u8]) -> Result<Self, RouteError> {
        check_len(alpn)?;
        Ok(Self {
            alpn: alpn.to_vec(),
            freshness: None,
        })
    }

    /// A route whose bonds require a fresh quote per connection, whatever the policy's default
    /// (committee links, long-lived bonds).
    pub fn per_bond(alpn: &[u8]) -> Result<Self, RouteError> {
        check_len(alpn)?;
        Ok(Self {
            alpn: alpn.to_vec(),
            freshness: Some(Freshness::PerBond),
        })
    }

    /// A route whose bonds are admitted on the certificate's quote alone, with no quote per
    /// connection (frequent short calls). Loosens the freshness check, so it is named
    /// dangerous and logged; allowed only when the policy floor is TdxLocal or TdxRemote (or
    /// Software), never at TdxRaTlsBidirectional and above. Both sides of a connection must
    /// route the ALPN the same way, or the bond proof is refused.
    pub fn dangerous_certificate_freshness(
        alpn: &[u8],
        policy: &Policy,
    ) -> Result<Self, RouteError> {
        check_len(alpn)?;
        let level = policy.level();
        if level >= AttestationLevel::TdxRaTlsBidirectional {
            return Err(RouteError::FreshnessNotAllowed {
                alpn: String::from_utf8_lossy(alpn).into_owned(),
                level,
            });
        }
        tracing::warn!(
            alpn = %String::from_utf8_lossy(alpn),
            %level,
            "certificate freshness for this ALPN: its bonds are admitted without per-connection quotes"
        );
        Ok(Self {
            alpn: alpn.to_vec(),
            freshness: Some(Freshness::Certificate),
        })
    }

    /// The ALPN name.
    pub fn alpn(&self) -> &[u8] {
        &self.alpn
    }

    /// The freshness this route's bonds require under `policy`.
    pub fn freshness(&self, policy: &Policy) -> Freshness {
        self.freshness.unwrap_or_else(|| policy.freshness())
    }
}

fn check_len(alpn: &[u8]) -> Result<(), RouteError> {
    if alpn.is_empty() || alpn.len() > MAX_ALPN_LEN {
        return Err(RouteError::BadAlpnLength(alpn.len()));
    }
    Ok(())
}

/// How often a dialer of an ALPN route pings an otherwise idle connection: routed connections
/// carry long-lived links (committees, subscriptions), which QUIC's idle timeout (30 s) would
/// otherwise end. One side's pings keep both sides' idle timers from firing.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a dialer of `route` offers: its ALPN, then the base ALPN.
pub(crate) fn offered(route: &AlpnRoute) -> Vec<Vec<u8>> {
    let mut alpns = vec![route.alpn().to_vec()];
    if route.alpn() != ALPN {
        alpns.push(ALPN.to_vec());
    }
    alpns
}

/// What an acceptor serving `routes` selects from, in order: the routes, then the base ALPN.
pub(crate) fn served(routes: &[AlpnRoute]) -> Vec<Vec<u8>> {
    let mut alpns: Vec<Vec<u8>> = routes.iter().map(|r| r.alpn().to_vec()).collect();
    if !alpns.iter().any(|a| a == ALPN) {
        alpns.push(ALPN.to_vec());
    }
    alpns
}

/// The negotiated ALPN of a QUIC connection, once its handshake data is known.
pub(crate) fn negotiated(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// Closes `conn` with [`INVALID_ALPN`].
pub(crate) fn refuse(conn: &quinn::Connection) {
    conn.close(INVALID_ALPN.into(), INVALID_ALPN_REASON);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::MeasurementPolicy;

    #[test]
    fn alpn_length_checked() {
        assert_eq!(AlpnRoute::new(b""), Err(RouteError::BadAlpnLength(0)));
        assert_eq!(
            AlpnRoute::new(&[b'a'; 256]),
            Err(RouteError::BadAlpnLength(256))
        );
        assert!(AlpnRoute::new(&[b'a'; 255]).is_ok());
    }

    #[test]
    fn certificate_freshness_refused_at_bidirectional_floor() {
        let mut policy = Policy::new(MeasurementPolicy::new(Vec::new()));
        policy.set_level(AttestationLevel::TdxRaTlsBidirectional);
        assert!(matches!(
            AlpnRoute::dangerous_certificate_freshness(b"x", &policy),
            Err(RouteError::FreshnessNotAllowed { .. })
        ));
        policy.set_level(AttestationLevel::TdxLocal);
        let route = AlpnRoute::dangerous_certificate_freshness(b"x", &policy).unwrap();
        assert_eq!(route.freshness(&policy), Freshness::Certificate);
        assert_eq!(
            AlpnRoute::new(b"x").unwrap().freshness(&policy),
            Freshness::PerBond
        );
    }
}
