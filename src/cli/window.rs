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
    let dcap = collateral.dcap();
    let mut window = Window {
        from: 0,
        until: u64::MAX,
    };
    for json in [&dcap.tcb_info, &dcap.qe_identity] {
        let (issued, next) = json_dates(json)?;
        window.from = window.from.max(issued);
        window.until = window.until.min(next);
    }
    for crl in [&dcap.root_ca_crl, &dcap.pck_crl] {
        let (this, next) = crl_dates(crl)?;
        window.from = window.from.max(this);
        if let Some(next) = next {
            window.until = window.until.min(next);
        }
    }
    Some(window)
}

fn json_dates(json: &str) -> Option<(u64, u64)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Dates {
        issue_date: String,
        next_update: String,
    }
    let dates: Dates = serde_json::from_str(json).ok()?;
    Some((rfc3339(&dates.issue_date)?, rfc3339(&dates.next_update)?))
}

fn rfc3339(text: &str) -> Option<u64> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp()).ok()
}

fn crl_dates(der: &[u8]) -> Option<(u64, Option<u64>)> {
    let (_, crl) = x509_parser::parse_x509_crl(der).ok()?;
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).ok();
    let this = secs(crl.last_update())?;
    let next = match crl.next_update() {
        Some(next) => Some(secs(next)?),
        None => None,
    };
    Some((this, next))
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
