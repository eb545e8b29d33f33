//! Synthetic quotes against the real dcap-qvl verifier.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dcap_qvl::verify::{QuoteVerifier, VerifiedReport};
use ratls_quic::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider,
    SyntheticTcb,
};
use ratls_quic::{Measurements, QuoteProvider, ReportData};

/// 2026-01-01T00:00:00Z.
const ISSUED_AT: u64 = 1_767_225_600;
const LIFETIME: u64 = 7 * 24 * 60 * 60;
/// Inside the collateral window.
const NOW: u64 = ISSUED_AT + 3600;

/// Header (48) + TD 1.0 body (584).
const SIGNED_LEN: usize = 632;

fn pki() -> &'static SyntheticPki {
    static PKI: OnceLock<SyntheticPki> = OnceLock::new();
    PKI.get_or_init(|| {
        SyntheticPki::generate(SyntheticPkiParams {
            issued_at_unix: ISSUED_AT,
            collateral_lifetime_secs: LIFETIME,
        })
        .unwrap()
    })
}

fn distinct_measurements() -> Measurements {
    let mut m = sample_measurements();
    m.mr_td = core::array::from_fn(|i| i as u8);
    for (r, rtmr) in m.rtmr.iter_mut().enumerate() {
        *rtmr = core::array::from_fn(|i| (0x40 * r + i) as u8);
    }
    m.mr_config_id = [0xc1; 48];
    m.mr_owner = [0xc2; 48];
    m.mr_owner_config = [0xc3; 48];
    m
}

fn spec(tcb: SyntheticTcb) -> QuoteSpec {
    QuoteSpec {
        report_data: ReportData(core::array::from_fn(|i| 0xff - i as u8)),
        measurements: distinct_measurements(),
        tcb,
    }
}

fn verify(quote: &[u8], now: u64) -> anyhow::Result<VerifiedReport> {
    QuoteVerifier::new(pki().root_der().to_vec()).verify(quote, pki().collateral(), now)
}

#[test]
fn up_to_date_quote_verifies_and_carries_chosen_values() {
    let spec = spec(SyntheticTcb::UpToDate);
    let quote = pki().quote(&spec).unwrap();
    let report = verify(&quote, NOW).unwrap();
    assert_eq!(report.status, "UpToDate");
    assert!(report.advisory_ids.is_empty());

    let td = report.report.as_td10().expect("TD 1.0 report");
    let m = &spec.measurements;
    assert_eq!(td.report_data, spec.report_data.0);
    assert_eq!(td.mr_td, m.mr_td);
    assert_eq!(td.rt_mr0, m.rtmr[0]);
    assert_eq!(td.rt_mr1, m.rtmr[1]);
    assert_eq!(td.rt_mr2, m.rtmr[2]);
    assert_eq!(td.rt_mr3, m.rtmr[3]);
    assert_eq!(td.mr_config_id, m.mr_config_id);
    assert_eq!(td.mr_owner, m.mr_owner);
    assert_eq!(td.mr_owner_config, m.mr_owner_config);
    assert_eq!(td.xfam, m.xfam);
    assert_eq!(td.td_attributes, m.td_attributes);
}

#[test]
fn quote_has_dcap_v4_tdx_layout() {
    let quote = pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap();
    let parsed = dcap_qvl::quote::Quote::parse(&quote).unwrap();
    assert_eq!(parsed.header.version, 4);
    assert_eq!(parsed.header.tee_type, 0x81);
    assert_eq!(parsed.header.qe_vendor_id, dcap_qvl::INTEL_QE_VENDOR_ID);
    assert_eq!(parsed.signed_length(), SIGNED_LEN);
    assert_eq!(parsed.inner_cert_type(), 5);
    let chain = dcap_qvl::intel::extract_cert_chain(&parsed).unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[2], pki().root_der());
    let ext = dcap_qvl::intel::parse_pck_extension(&chain[0]).unwrap();
    assert_eq!(ext.fmspc.len(), 6);
    assert_eq!(ext.ppid.len(), 16);
    assert_eq!(ext.pce_id, [0, 0]);
    assert_eq!(ext.sgx_type, 1);
    assert_eq!(ext.platform_instance_id.map(|id| id.len()), Some(16));
    assert_eq!(ext.dynamic_platform, Some(true));
    assert_eq!(ext.cached_keys, Some(true));
    assert_eq!(ext.smt_enabled, Some(true));
    assert_eq!(
        dcap_qvl::intel::pck_ca(&chain[0]).unwrap(),
        dcap_qvl::config::PckCa::Platform
    );
}

#[test]
fn lower_tcb_levels_verify_with_their_status_and_advisories() {
    for tcb in SyntheticTcb::ALL {
        let quote = pki().quote(&spec(tcb)).unwrap();
        let report = verify(&quote, NOW).unwrap();
        assert_eq!(report.status, tcb.status_name(), "{tcb:?}");
        assert_eq!(report.advisory_ids, tcb.advisory_ids(), "{tcb:?}");
    }
    let sw = verify(
        &pki().quote(&spec(SyntheticTcb::SwHardeningNeeded)).unwrap(),
        NOW,
    )
    .unwrap();
    assert_eq!(sw.status, "SWHardeningNeeded");
    assert_eq!(sw.advisory_ids, ["INTEL-SA-00837"]);
    let old = verify(&pki().quote(&spec(SyntheticTcb::OutOfDate)).unwrap(), NOW).unwrap();
    assert_eq!(old.status, "OutOfDate");
    assert!(old.advisory_ids.iter().any(|id| id == "INTEL-SA-00837"));
}

#[test]
fn quote_with_debug_td_rejected_unless_allowed() {
    let mut spec = spec(SyntheticTcb::UpToDate);
    spec.measurements.td_attributes[0] |= 0x01;
    assert!(spec.measurements.is_debug());
    let quote = pki().quote(&spec).unwrap();
    let err = verify(&quote, NOW).unwrap_err();
    assert!(format!("{err:#}").contains("Debug"), "{err:#}");
    let report = QuoteVerifier::new(pki().root_der().to_vec())
        .allow_debug(true)
        .verify(&quote, pki().collateral(), NOW)
        .unwrap();
    assert_eq!(report.status, "UpToDate");
}

#[test]
fn quote_under_intel_root_rejected() {
    let intel_root = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/certs/intel_sgx_root_ca.der"
    ))
    .unwrap();
    let quote = pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap();
    let result = QuoteVerifier::new(intel_root).verify(&quote, pki().collateral(), NOW);
    assert!(result.is_err());
    assert!(QuoteVerifier::new_prod()
        .verify(&quote, pki().collateral(), NOW)
        .is_err());
}

#[test]
fn quote_verifies_only_inside_collateral_window() {
    let quote = pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap();
    let next_update = pki().params().next_update_unix();
    assert!(verify(&quote, ISSUED_AT).is_ok());
    assert!(verify(&quote, next_update - 1).is_ok());
    let before = verify(&quote, ISSUED_AT - 1).unwrap_err();
    assert!(format!("{before:#}").contains("future"), "{before:#}");
    for now in [next_update, next_update + 1, next_update + 365 * 24 * 3600] {
        let after = verify(&quote, now).unwrap_err();
        let text = format!("{after:#}").to_lowercase();
        assert!(text.contains("expired"), "{text}");
    }
}

#[test]
fn quote_with_flipped_bit_rejected() {
    let quote = pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap();
    // Header, body (MRTD, RTMR3, report data), quote signature, attestation key.
    for index in [
        10,
        48 + 150,
        48 + 500,
        SIGNED_LEN - 1,
        SIGNED_LEN + 4,
        SIGNED_LEN + 70,
    ] {
        let mut bad = quote.clone();
        bad[index] ^= 0x01;
        assert!(verify(&bad, NOW).is_err(), "flip at {index} accepted");
    }
}

#[test]
fn quotes_differ_only_in_what_was_asked() {
    let a = pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap();
    let mut other = spec(SyntheticTcb::UpToDate);
    other.report_data.0[0] ^= 0xff;
    let b = pki().quote(&other).unwrap();
    assert_eq!(a.len(), b.len());
    assert_eq!(
        verify(&b, NOW)
            .unwrap()
            .report
            .as_td10()
            .unwrap()
            .report_data,
        other.report_data.0
    );
}

#[test]
fn provider_quotes_chosen_report_data() {
    let pki = Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(ISSUED_AT)).unwrap());
    let provider = SyntheticQuoteProvider::new(
        Arc::clone(&pki),
        sample_measurements(),
        SyntheticTcb::UpToDate,
    );
    assert_eq!(provider.name(), "synthetic");
    let report_data = ReportData([0x5c; 64]);
    let quote = provider.quote(&report_data).unwrap();
    let report = QuoteVerifier::new(pki.root_der().to_vec())
        .verify(&quote, pki.collateral(), NOW)
        .unwrap();
    let td = report.report.as_td10().unwrap();
    assert_eq!(td.report_data, report_data.0);
    assert_eq!(td.mr_td, sample_measurements().mr_td);
}

#[test]
fn collateral_json_round_trips() {
    let json = pki().collateral_json().unwrap();
    let collateral: dcap_qvl::QuoteCollateralV3 = serde_json::from_str(&json).unwrap();
    assert_eq!(&collateral, pki().collateral());
    let quote = pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap();
    QuoteVerifier::new(pki().root_der().to_vec())
        .verify(&quote, &collateral, NOW)
        .unwrap();
}

#[test]
fn other_pki_root_rejects_quote() {
    let other = SyntheticPki::generate(SyntheticPkiParams::new(ISSUED_AT)).unwrap();
    let quote = pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap();
    let result =
        QuoteVerifier::new(other.root_der().to_vec()).verify(&quote, pki().collateral(), NOW);
    assert!(result.is_err());
    let mixed =
        QuoteVerifier::new(pki().root_der().to_vec()).verify(&quote, other.collateral(), NOW);
    assert!(mixed.is_err());
}

#[test]
fn tampered_collateral_rejected() {
    let quote = pki().quote(&spec(SyntheticTcb::OutOfDate)).unwrap();
    let mut collateral = pki().collateral().clone();
    collateral.tcb_info = collateral.tcb_info.replace("\"OutOfDate\"", "\"UpToDate\"");
    assert_ne!(&collateral, pki().collateral());
    let result = QuoteVerifier::new(pki().root_der().to_vec()).verify(&quote, &collateral, NOW);
    assert!(result.is_err());
}

/// The key sets of every JSON object in `value`, keyed by path (array elements share a path).
fn json_shape(
    value: &serde_json::Value,
    path: &str,
    out: &mut std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) {
    match value {
        serde_json::Value::Object(map) => {
            let keys = out.entry(path.to_owned()).or_default();
            keys.extend(map.keys().cloned());
            for (key, child) in map {
                json_shape(child, &format!("{path}.{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                json_shape(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn collateral_json_has_intel_shape() {
    let vectors = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/certs/vectors/v4_tdx10_phala_uptodate"
    );
    for (ours, file) in [
        (&pki().collateral().tcb_info, "tcb_info.json"),
        (&pki().collateral().qe_identity, "qe_identity.json"),
    ] {
        let real: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{vectors}/{file}")).unwrap()).unwrap();
        let ours: serde_json::Value = serde_json::from_str(ours).unwrap();
        let (mut real_shape, mut our_shape) = Default::default();
        json_shape(&real, "", &mut real_shape);
        json_shape(&ours, "", &mut our_shape);
        // Intel's optional component labels ("category", "type") are left out.
        for keys in real_shape.values_mut() {
            keys.remove("category");
            keys.remove("type");
        }
        assert_eq!(our_shape, real_shape, "{file}");
    }
}

#[test]
fn windows_far_from_now_verify() {
    // 1970 (certificates backdating saturates at zero) and 2061 (GeneralizedTime dates).
    for issued_at in [0, 2_900_000_000] {
        let pki = SyntheticPki::generate(SyntheticPkiParams::new(issued_at)).unwrap();
        let quote = pki.quote(&spec(SyntheticTcb::UpToDate)).unwrap();
        let report = QuoteVerifier::new(pki.root_der().to_vec())
            .verify(&quote, pki.collateral(), issued_at + 1)
            .unwrap();
        assert_eq!(report.status, "UpToDate", "issued at {issued_at}");
    }
}

#[test]
fn zero_lifetime_is_an_error() {
    let result = SyntheticPki::generate(SyntheticPkiParams {
        issued_at_unix: ISSUED_AT,
        collateral_lifetime_secs: 0,
    });
    assert!(result.is_err());
}

/// Run with `--nocapture` to see the numbers.
#[test]
fn timing_of_generation_and_quote() {
    let start = Instant::now();
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(ISSUED_AT)).unwrap();
    let generate = start.elapsed();
    let spec = spec(SyntheticTcb::UpToDate);
    let start = Instant::now();
    let quote = pki.quote(&spec).unwrap();
    let one_quote = start.elapsed();
    let rounds = 100u32;
    let start = Instant::now();
    for _ in 0..rounds {
        pki.quote(&spec).unwrap();
    }
    let per_quote = start.elapsed() / rounds;
    let verifier = QuoteVerifier::new(pki.root_der().to_vec());
    let start = Instant::now();
    verifier.verify(&quote, pki.collateral(), NOW).unwrap();
    let verify = start.elapsed();
    println!(
        "synthetic timing: generate {generate:?}, first quote {one_quote:?}, \
         mean quote {per_quote:?} over {rounds}, one dcap-qvl verify {verify:?}, \
         quote {} bytes",
        quote.len()
    );
}

/// End of the QE auth data: everything before the inner PEM chain is covered by a signature,
/// a hash or a length check. dcap-qvl alone ignores the certification data type field, so this
/// property holds for the crate's verifier, which also checks the layout exactly.
const BEFORE_PCK_CHAIN: usize = SIGNED_LEN + 4 + 64 + 64 + 6 + 384 + 64 + 2 + 32;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    #[test]
    fn any_flipped_bit_before_pck_chain_rejected(
        index in 0..BEFORE_PCK_CHAIN,
        bit in 0u8..8,
    ) {
        static QUOTE: OnceLock<Vec<u8>> = OnceLock::new();
        let quote = QUOTE.get_or_init(|| pki().quote(&spec(SyntheticTcb::UpToDate)).unwrap());
        let mut bad = quote.clone();
        bad[index] ^= 1 << bit;
        static VERIFIER: OnceLock<(ratls_quic::QuoteVerifier, ratls_quic::Collateral)> =
            OnceLock::new();
        let (verifier, collateral) = VERIFIER.get_or_init(|| {
            (
                ratls_quic::QuoteVerifier::dangerous().trust_root(pki().root_der().to_vec()),
                ratls_quic::Collateral::new(pki().collateral().clone()).unwrap(),
            )
        });
        let policy = ratls_quic::Policy::authenticity_only();
        proptest::prop_assert!(
            verifier.verify(&bad, collateral, NOW, &policy).is_err(),
            "flip at {}:{} accepted",
            index,
            bit
        );
    }
}
