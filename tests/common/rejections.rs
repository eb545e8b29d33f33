//! Helpers of the rejection matrix (tests/rejections_*.rs).

use ratls_quic::synthetic::sample_measurements;
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::{AttestationError, Endpoint, Error, PeerRejection, PolicyViolation, Register};

use super::{bind, config, policy, Side};

pub const BIDIRECTIONAL: AttestationLevel = AttestationLevel::TdxRaTlsBidirectional;

pub fn attested() -> Side {
    Side::Attested(Box::new(sample_measurements()))
}

/// An attested endpoint with the sample Measurements and the sample policy at `level`.
pub async fn attested_endpoint(level: AttestationLevel) -> Endpoint {
    bind(config(
        Identity::generate().unwrap(),
        attested(),
        policy(level),
    ))
    .await
}

/// The single profile mismatch of a Measurements violation.
#[track_caller]
pub fn measurement_mismatch(rejection: &PeerRejection) -> Register {
    match rejection {
        // Refused before DCAP verification (the Measurements are compared first), or after it.
        PeerRejection::Quote(
            AttestationError::Prechecked {
                violation: PolicyViolation::Measurements(mismatch),
                ..
            }
            | AttestationError::Policy {
                violation: PolicyViolation::Measurements(mismatch),
                ..
            },
        ) => {
            assert_eq!(mismatch.mismatches.len(), 1, "{mismatch:?}");
            assert_eq!(mismatch.mismatches[0].0, "sample");
            mismatch.mismatches[0].1
        }
        other => panic!("expected a Measurements violation, got {other:?}"),
    }
}

#[track_caller]
pub fn rejection<T: std::fmt::Debug>(result: &Result<T, Error>) -> &PeerRejection {
    match result {
        Err(Error::Rejected(rejection)) => rejection,
        other => panic!("expected a typed rejection, got {other:?}"),
    }
}
