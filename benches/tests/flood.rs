//! A short, paced flood: honest bonds keep forming under every kind of unauthenticated
//! attempt, and the acceptor establishes no flood connection. The pace (20 attempts a second
//! per flooder) keeps this a test of the machinery on a debug build and a busy machine; the
//! figures at full rate come from `ratls-flood` in release (docs/security.md).

use ratls_bench::flood::{run_flood, FloodOptions};

#[test]
fn honest_bonds_form_under_a_short_flood_and_no_flood_attempt_is_established() {
    let options = FloodOptions {
        seconds: 3,
        bonders: 1,
        garbage: 2,
        harvested: 2,
        half_open: 1,
        max_rate: 20,
        ..FloodOptions::default()
    };
    let report = run_flood(&options).unwrap();
    println!("{}\n{}", report.baseline.summary(), report.flood.summary());
    for phase in [&report.baseline, &report.flood] {
        assert!(phase.bonds > 0, "{}: no bond", phase.name);
        assert_eq!(phase.bond_failures, 0, "{:?}", phase.first_failure);
        // Every connection the acceptor handed out is an honest bond (bonds that were still
        // being accepted at the end of the phase may land in the next count, so allow one).
        let extra = phase.acceptor_established.abs_diff(phase.bonds as u64);
        assert!(
            extra <= 1,
            "{}: {} established, {} bonds",
            phase.name,
            phase.acceptor_established,
            phase.bonds
        );
        assert!(phase.acceptor_cpu_s > 0.0, "{}", phase.name);
    }
    assert_eq!(report.baseline.flood_attempts, [0, 0, 0]);
    for (kind, n) in ["garbage", "harvested", "half-open"]
        .iter()
        .zip(report.flood.flood_attempts)
    {
        assert!(n > 0, "no {kind} attempt completed");
    }
    assert!(
        report.flood.acceptor_failed > 0,
        "the acceptor refused nothing"
    );
}
