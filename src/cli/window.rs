//! When a collateral set is valid: from the latest issue date to the earliest next update of its
//! TCB info, QE identity and CRLs. For messages only; verification decides on its own.

use ratls_quic::Collateral;

/// A validity window, unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// Latest issue date (TCB info, QE identity, CRL thisUpdate).
    pub(crate) from: u64,
    /// Earliest next update.
    pub(crate) until: u64,
}

/// The window of `collateral`, or `None` when a date cannot be read.
pub(crate) fn validity(collateral: &Collateral) -> Option<Window> {
    let (from, until) = collateral.document_window()?;
    Some(Window { from, until })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_collateral_has_a_window_around_its_vector_time() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/certs/vectors/v4_tdx10_phala_uptodate"
        );
        let bytes = std::fs::read(format!("{dir}/collateral.json")).unwrap();
        let collateral = Collateral::from_json(&bytes).unwrap();
        let window = validity(&collateral).unwrap();
        assert!(
            window.from < 1_750_377_600 && 1_750_377_600 < window.until,
            "{window:?}"
        );
    }
}
