//! Policy: which Measurements and TCB states a verifier accepts.

/// Named Measurement profiles.
#[derive(Debug)]
pub struct MeasurementPolicy;
