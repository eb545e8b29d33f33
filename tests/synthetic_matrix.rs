//! The negative matrix of `real_vectors.rs`, on synthetic quotes through the same verifier.

use ratls_quic::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb,
};
use ratls_quic::{pck_chain_pem, QuoteFormatError, QuoteLayout};
use ratls_quic::{
    AttestationError, Collateral, DcapCheck, Measurements, QuoteVerifier, ReportData, TcbStatus,
    VerifiedQuote,
};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy, PolicyViolation, Register};

const ISSUED: u64 = 1_790_000_000;
const NOW: u64 = ISSUED + 3_600;

struct Fixture {
    pki: SyntheticPki,
    collateral: Collateral,
    verifier: QuoteVerifier,
}

fn fixture() -> Fixture {
    let pki = SyntheticPki::generate(SyntheticPkiParams::new(ISSUED)).unwrap();
    let collateral = Collateral::new(pki.collateral().clone()).unwrap();
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    Fixture {
        pki,
        collateral,
        verifier,
    }
}

fn quote_with(f: &Fixture, measurements: Measurements, tcb: SyntheticTcb) -> Vec<u8> {
    f.pki
        .quote(&QuoteSpec {
            report_data: ReportData([0x5a; 64]),
            measurements,
            tcb,
        })
        .unwrap()
}

fn good(f: &Fixture) -> Vec<u8> {
    quote_with(f, sample_measurements(), SyntheticTcb::UpToDate)
}

fn pinned() -> Policy {
    Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "synthetic",
        &sample_measurements(),
    )]))
}

fn dcap_check(result: Result<VerifiedQuote, AttestationError>) -> DcapCheck {
    match result {
        Err(e) => e
            .dcap_check()
            .unwrap_or_else(|| panic!("not a DCAP failure: {e}")),
        Ok(_) => panic!("accepted"),
    }
}

fn violation(result: Result<VerifiedQuote, AttestationError>) -> PolicyViolation {
    match result {
        Err(AttestationError::Policy { violation, .. }) => violation,
        other => panic!("expected a policy violation, got {other:?}"),
    }
}

#[test]
fn synthetic_quote_passes_with_pinned_measurements() {
    let f = fixture();
    let quote = good(&f);
    let verified = f
        .verifier
        .verify(&quote, &f.collateral, NOW, &pinned())
        .unwrap();
    assert_eq!(verified.tcb_status(), TcbStatus::UpToDate);
    assert_eq!(verified.measurements(), &sample_measurements());
    assert_eq!(verified.report_data(), &ReportData([0x5a; 64]));
    assert_eq!(verified.profile(), "synthetic");
}

#[test]
fn flipped_bits_are_refused_with_the_failing_check() {
    let f = fixture();
    let quote = good(&f);
    let layout = QuoteLayout::parse(&quote).unwrap();
    let sig = layout.signed_len + 4;
    let qe_report = sig + 64 + 64 + 6;
    for (what, offset, expected) in [
        (
            "MRTD in the body",
            layout.report_offset + 136,
            DcapCheck::QuoteSignature,
        ),
        ("quote signature", sig + 1, DcapCheck::QuoteSignature),
        ("QE report", qe_report + 50, DcapCheck::QeReportSignature),
    ] {
        let mut tampered = quote.clone();
        tampered[offset] ^= 0x80;
        let result = f.verifier.verify(&tampered, &f.collateral, NOW, &pinned());
        assert_eq!(dcap_check(result), expected, "{what}");
    }

    let pem_start = pck_chain_pem(&quote).unwrap().as_ptr() as usize - quote.as_ptr() as usize;
    let mut tampered = quote.clone();
    let target = pem_start + 200;
    tampered[target] = if tampered[target] == b'A' { b'B' } else { b'A' };
    let result = f.verifier.verify(&tampered, &f.collateral, NOW, &pinned());
    assert_eq!(dcap_check(result), DcapCheck::PckChain);
}

#[test]
fn wrong_root_and_collateral_window_are_refused() {
    let f = fixture();
    let quote = good(&f);
    let result = QuoteVerifier::intel().verify(&quote, &f.collateral, NOW, &pinned());
    assert_eq!(dcap_check(result), DcapCheck::RootOrCrl);

    let other = fixture();
    let result = other.verifier.verify(&quote, &f.collateral, NOW, &pinned());
    assert_eq!(dcap_check(result), DcapCheck::RootOrCrl);

    let next_update = f.pki.params().next_update_unix();
    let result = f
        .verifier
        .verify(&quote, &f.collateral, next_update + 1, &pinned());
    assert_eq!(dcap_check(result), DcapCheck::CollateralExpired);
    let result = f
        .verifier
        .verify(&quote, &f.collateral, ISSUED - 1, &pinned());
    assert_eq!(dcap_check(result), DcapCheck::CollateralNotYetValid);
}

#[test]
fn measurement_mismatches_are_named() {
    let f = fixture();
    type Change = fn(&mut Measurements);
    let cases: [(Register, Change); 4] = [
        (Register::MrTd, |m| m.mr_td[3] ^= 1),
        (Register::Rtmr0, |m| m.rtmr[0][0] ^= 1),
        (Register::Rtmr2, |m| m.rtmr[2][9] ^= 1),
        (Register::MrConfigId, |m| m.mr_config_id[1] ^= 1),
    ];
    for (register, change) in cases {
        let mut measurements = sample_measurements();
        change(&mut measurements);
        let quote = quote_with(&f, measurements, SyntheticTcb::UpToDate);
        match violation(f.verifier.verify(&quote, &f.collateral, NOW, &pinned())) {
            PolicyViolation::Measurements(m) => {
                assert_eq!(m.mismatches, vec![("synthetic".to_owned(), register)])
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn debug_td_is_refused_unless_the_policy_allows_it() {
    let f = fixture();
    let mut measurements = sample_measurements();
    measurements.td_attributes[0] |= 1;
    let quote = quote_with(&f, measurements, SyntheticTcb::UpToDate);
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "debug",
        &measurements,
    )]));
    assert_eq!(
        violation(f.verifier.verify(&quote, &f.collateral, NOW, &policy)),
        PolicyViolation::DebugTd
    );
    policy.dangerous().allow_debug();
    let verified = f
        .verifier
        .verify(&quote, &f.collateral, NOW, &policy)
        .unwrap();
    assert!(verified.measurements().is_debug());
}

#[test]
fn profiling_td_is_refused_as_debug() {
    // dcap-qvl is asked to let debug-class TDs through so the policy names the reason; the
    // policy must then refuse the profiling bits as well as DEBUG.
    let f = fixture();
    for bit in [0x10u8, 0x20, 0x40] {
        let mut measurements = sample_measurements();
        measurements.td_attributes[0] |= bit;
        let quote = quote_with(&f, measurements, SyntheticTcb::UpToDate);
        let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
            "profiling",
            &measurements,
        )]));
        assert_eq!(
            violation(f.verifier.verify(&quote, &f.collateral, NOW, &policy)),
            PolicyViolation::DebugTd,
            "TUD bit {bit:#x}"
        );
        policy.dangerous().allow_debug();
        assert!(f
            .verifier
            .verify(&quote, &f.collateral, NOW, &policy)
            .is_ok());
    }
}

#[test]
fn tcb_statuses_and_advisories_follow_the_policy() {
    let f = fixture();
    let out_of_date = quote_with(&f, sample_measurements(), SyntheticTcb::OutOfDate);
    assert_eq!(
        violation(
            f.verifier
                .verify(&out_of_date, &f.collateral, NOW, &pinned())
        ),
        PolicyViolation::TcbStatus(TcbStatus::OutOfDate)
    );
    let hardening = quote_with(&f, sample_measurements(), SyntheticTcb::SwHardeningNeeded);
    let mut policy = pinned();
    policy.tcb.accept(TcbStatus::SwHardeningNeeded);
    let verified = f
        .verifier
        .verify(&hardening, &f.collateral, NOW, &policy)
        .unwrap();
    assert_eq!(verified.tcb_status(), TcbStatus::SwHardeningNeeded);
    assert_eq!(verified.advisory_ids(), ["INTEL-SA-00837"]);
    policy.tcb.advisory_deny.insert("INTEL-SA-00837".into());
    assert_eq!(
        violation(f.verifier.verify(&hardening, &f.collateral, NOW, &policy)),
        PolicyViolation::AdvisoryDenied("INTEL-SA-00837".into())
    );
}

#[test]
fn truncated_quote_and_empty_policy_are_refused() {
    let f = fixture();
    let quote = good(&f);
    for len in [0, 47, 600, quote.len() - 1] {
        assert!(matches!(
            f.verifier
                .verify(&quote[..len], &f.collateral, NOW, &pinned()),
            Err(AttestationError::Format(QuoteFormatError::Truncated { .. }))
        ));
    }
    let empty = Policy::new(MeasurementPolicy::default());
    assert!(matches!(
        violation(f.verifier.verify(&quote, &f.collateral, NOW, &empty)),
        PolicyViolation::Measurements(m) if m.mismatches.is_empty()
    ));
}
