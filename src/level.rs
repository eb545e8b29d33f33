//! Attestation levels, totally ordered: a policy names a floor.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// How much a peer proved about itself. Ordered from weakest to strongest; a policy names a floor
/// and a peer below it is refused, never accepted at a lower level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AttestationLevel {
    /// Ed25519 self-signed certificate, no quote: the identity digest is checked against an
    /// allow-list.
    Software,
    /// A TDX quote in the certificate, verified locally with cached collateral.
    TdxLocal,
    /// As [`Self::TdxLocal`], plus a verdict from a declared collateral service at bond time.
    TdxRemote,
    /// Both peers present and verify quotes; a non-attested counterpart is refused.
    TdxRaTlsBidirectional,
    /// As [`Self::TdxRaTlsBidirectional`], and the declared Measurements are recomputed from a
    /// reproducible build.
    TdxPlusReproducibleBuild,
}

impl AttestationLevel {
    /// All levels, weakest first.
    pub const ALL: [Self; 5] = [
        Self::Software,
        Self::TdxLocal,
        Self::TdxRemote,
        Self::TdxRaTlsBidirectional,
        Self::TdxPlusReproducibleBuild,
    ];

    /// Whether this level requires a TDX quote from the peer.
    pub fn requires_quote(self) -> bool {
        self >= Self::TdxLocal
    }

    /// The stable name used in policy files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Software => "Software",
            Self::TdxLocal => "TdxLocal",
            Self::TdxRemote => "TdxRemote",
            Self::TdxRaTlsBidirectional => "TdxRaTlsBidirectional",
            Self::TdxPlusReproducibleBuild => "TdxPlusReproducibleBuild",
        }
    }
}

impl fmt::Display for AttestationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text did not name an attestation level.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown attestation level {0:?} (expected one of Software, TdxLocal, TdxRemote, TdxRaTlsBidirectional, TdxPlusReproducibleBuild)")]
pub struct UnknownLevel(pub String);

impl FromStr for AttestationLevel {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_weakest_first() {
        for pair in AttestationLevel::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
        }
    }

    #[test]
    fn level_names_round_trip() {
        for level in AttestationLevel::ALL {
            assert_eq!(level.as_str().parse::<AttestationLevel>(), Ok(level));
        }
        assert!("tdxlocal".parse::<AttestationLevel>().is_err());
    }
}
