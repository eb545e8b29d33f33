//! The real v5 quote with TEE body type 4 (TD 1.5 with extensions, 885 bytes) from
//! `certs/vectors/v5_td15ex_phala_uptodate`, through the library.

use ratls_quic::{
    AttestationError, Collateral, DcapCheck, MeasurementPolicy, MeasurementProfile, Policy,
    QuoteVerifier, TcbStatus, TdReportKind,
};

const NAME: &str = "v5_td15ex_phala_uptodate";

struct Vector {
    quote: Vec<u8>,
    collateral: Collateral,
    entry: serde_json::Value,
    now: u64,
}

fn vector() -> Vector {
    let dir = format!("{}/certs/vectors", env!("CARGO_MANIFEST_DIR"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/vectors.json")).unwrap()).unwrap();
    let entry = manifest
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == NAME)
        .unwrap()
        .clone();
    Vector {
        quote: std::fs::read(format!("{dir}/{NAME}/quote.bin")).unwrap(),
        collateral: Collateral::from_json(
            &std::fs::read(format!("{dir}/{NAME}/collateral.json")).unwrap(),
        )
        .unwrap(),
        now: entry["now_unix"].as_u64().unwrap(),
        entry,
    }
}

fn unix(text: &str) -> u64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp() as u64
}

fn dcap_check(result: Result<ratls_quic::VerifiedQuote, AttestationError>) -> DcapCheck {
    match result {
        Err(e) => e
            .dcap_check()
            .unwrap_or_else(|| panic!("not a DCAP failure: {e}")),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn body_type_4_quote_verifies_up_to_date_with_its_extension_fields() {
    let v = vector();
    for verifier in [
        QuoteVerifier::intel(),
        QuoteVerifier::intel().without_cache(),
    ] {
        let quote = verifier
            .verify(&v.quote, &v.collateral, v.now, &Policy::authenticity_only())
            .unwrap();
        assert_eq!(quote.version(), 5);
        assert_eq!(quote.tcb_status(), TcbStatus::UpToDate);
        assert!(quote.advisory_ids().is_empty());
        assert_eq!(
            hex::encode(quote.measurements().mr_td),
            v.entry["mr_td"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(quote.report_data().0),
            v.entry["report_data"].as_str().unwrap()
        );
        let extras = quote.report_extras();
        assert_eq!(extras.kind, TdReportKind::Td15Ex);
        let td15 = extras.td15.unwrap();
        assert_eq!(
            hex::encode(td15.tee_tcb_svn2),
            v.entry["tee_tcb_svn2"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(td15.mr_service_td),
            v.entry["mr_servicetd"].as_str().unwrap()
        );
        let ex = extras.td15_ex.unwrap();
        let expected = &v.entry["td15_ex"];
        assert_eq!(u64::from(ex.vmid), expected["vmid"].as_u64().unwrap());
        assert_eq!(hex::encode(ex.td_id), expected["td_id"].as_str().unwrap());
        assert_eq!(
            hex::encode(ex.init_tee_fmspc),
            expected["init_tee_fmspc"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(ex.cur_service_td_hash),
            expected["cur_service_td_hash"].as_str().unwrap()
        );
    }
}

#[test]
fn cached_verdict_reports_the_same_extension_fields() {
    let v = vector();
    let verifier = QuoteVerifier::intel();
    let policy = Policy::authenticity_only();
    let cold = verifier
        .verify(&v.quote, &v.collateral, v.now, &policy)
        .unwrap();
    let warm = verifier
        .verify(&v.quote, &v.collateral, v.now, &policy)
        .unwrap();
    assert_eq!(verifier.cache_stats().hits, 1);
    assert_eq!(cold, warm);
    assert_eq!(warm.report_extras().td15_ex, cold.report_extras().td15_ex);
}

#[test]
fn a_flipped_bit_anywhere_in_the_extension_is_refused() {
    let v = vector();
    let policy = Policy::authenticity_only();
    let verifier = QuoteVerifier::intel();
    verifier
        .verify(&v.quote, &v.collateral, v.now, &policy)
        .unwrap();
    // From VMID (report offset 648) to the last byte of CUR_SERVICE_TD_ATTRIBUTES (884), and
    // the TD 1.5 part (TEE_TCB_SVN2 at 584): each is covered by the quote signature, warm or
    // cold.
    for report_offset in [584, 600, 648, 649, 700, 817, 828, 884] {
        let mut changed = v.quote.clone();
        changed[54 + report_offset] ^= 1;
        for verifier in [&verifier, &QuoteVerifier::intel().without_cache()] {
            let result = verifier.verify(&changed, &v.collateral, v.now, &policy);
            let check = dcap_check(result);
            assert!(
                check == DcapCheck::QuoteSignature,
                "offset {report_offset}: {check:?}"
            );
        }
    }
}

#[test]
fn now_outside_the_tcb_info_and_qe_identity_window_is_refused() {
    let v = vector();
    let policy = Policy::authenticity_only();
    let verifier = QuoteVerifier::intel().without_cache();
    let tcb: serde_json::Value = serde_json::from_str(&v.collateral.dcap().tcb_info).unwrap();
    let issued = unix(tcb["issueDate"].as_str().unwrap());
    let until = unix(v.entry["valid_until"].as_str().unwrap());
    assert!(verifier
        .verify(&v.quote, &v.collateral, issued, &policy)
        .is_ok());
    assert!(verifier
        .verify(&v.quote, &v.collateral, until, &policy)
        .is_ok());
    assert_eq!(
        dcap_check(verifier.verify(&v.quote, &v.collateral, issued - 1, &policy)),
        DcapCheck::CollateralNotYetValid
    );
    assert_eq!(
        dcap_check(verifier.verify(&v.quote, &v.collateral, until + 1, &policy)),
        DcapCheck::CollateralExpired
    );
}

#[test]
fn measurements_of_a_body_type_4_quote_are_pinned_like_any_other() {
    let v = vector();
    let verifier = QuoteVerifier::intel();
    let accepted = verifier
        .verify(&v.quote, &v.collateral, v.now, &Policy::authenticity_only())
        .unwrap();
    let pinned = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "pinned",
        accepted.measurements(),
    )]));
    assert_eq!(
        verifier
            .verify(&v.quote, &v.collateral, v.now, &pinned)
            .unwrap()
            .profile(),
        "pinned"
    );
    let mut other = *accepted.measurements();
    other.rtmr[2][0] ^= 1;
    let wrong = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "pinned", &other,
    )]));
    assert!(matches!(
        verifier.verify(&v.quote, &v.collateral, v.now, &wrong),
        Err(AttestationError::Policy { .. })
    ));
}
