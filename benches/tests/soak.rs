//! A small soak: every bond forms, the acceptor establishes each one, and no file descriptor
//! is left open once every connection has closed.

use ratls_bench::soak::{run_soak, SoakOptions};

#[test]
fn two_hundred_bidirectional_bonds_from_sixteen_dialers_leave_nothing_open() {
    let options = SoakOptions {
        handshakes: 200,
        concurrency: 16,
        ..SoakOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(run_soak(&options)).unwrap();
    println!("{}", report.summary());
    assert_eq!(report.failures, 0, "{:?}", report.first_failure);
    assert_eq!(report.bonds, 200);
    // Warm-up bonds (one per dialer) are counted by the acceptor too.
    assert_eq!(report.accepted, 216);
    assert_eq!(report.acceptor_failures, 0);
    assert_eq!(report.fd_growth(), 0, "{report:?}");
    assert!(report.latency.p50_us <= report.latency.p99_us);
}
