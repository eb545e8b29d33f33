//! The harness runs end to end with tiny counts and reports sane figures for every scenario.

use ratls_bench::harness::{
    BASELINE, BASELINE_BIG_CERT, SOFTWARE, TDX_BIDIRECTIONAL, TDX_BIDIRECTIONAL_UNCACHED,
    TDX_LOCAL, TDX_LOCAL_CERT,
};
use ratls_bench::{run, LoadOptions, Options};

#[test]
fn tiny_run_reports_every_scenario_with_ordered_percentiles() {
    let options = Options {
        iterations: 5,
        warmup: 1,
        rounds: 2,
        micro_iterations: 2,
        load: LoadOptions {
            concurrency: 4,
            quote_delay_ms: 5,
            window_secs: 1,
        },
        path_delay_ms: 25,
        path_connections: 1,
        concurrency_levels: vec![1, 4],
        concurrency_window_ms: 1500,
        quote_latency_delays_ms: vec![4, 39],
        quote_latency_iterations: 2,
        bulk_bytes: 4 << 20,
        bulk_rounds: 1,
        memory_connections: 20,
        memory_exe: Some(env!("CARGO_BIN_EXE_ratls-bench").into()),
        ..Options::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(run(&options)).unwrap();

    let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            BASELINE,
            BASELINE_BIG_CERT,
            SOFTWARE,
            TDX_LOCAL_CERT,
            TDX_LOCAL,
            TDX_BIDIRECTIONAL,
            TDX_BIDIRECTIONAL_UNCACHED
        ]
    );
    assert_eq!(report.baseline, BASELINE);
    for s in &report.scenarios {
        for stats in [&s.handshake, &s.connect_echo] {
            assert_eq!(stats.n, 5, "{}", s.name);
            assert!(stats.min_us > 0.0, "{}", s.name);
            assert!(
                stats.p50_us <= stats.p90_us && stats.p90_us <= stats.p99_us,
                "{}",
                s.name
            );
            assert!(stats.p99_us <= stats.max_us, "{}", s.name);
        }
        assert!(s.connect_echo.min_us >= s.handshake.min_us, "{}", s.name);
        assert!(s.handshake_vs_baseline.p50.is_finite(), "{}", s.name);
        let acceptor = s.acceptor_handshake.expect("acceptor figures");
        assert!(
            acceptor.n >= 4 && acceptor.p50_us <= acceptor.p99_us,
            "{}",
            s.name
        );
    }
    let base = &report.scenarios[0];
    assert_eq!(base.handshake_vs_baseline.p50, 1.0);
    let big = &report.scenarios[1];
    assert!(big.info.server_cert_bytes > 5000 && big.info.server_cert_bytes < 6000);
    assert!(base.info.server_cert_bytes < 1000);

    // The client received at least the whole padded certificate before established.
    let cert = big.info.server_cert_bytes as u64;
    assert!(
        big.client_udp_p50.bytes_received > cert,
        "{:?}",
        big.client_udp_p50
    );

    let micro: Vec<&str> = report.micro.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        micro,
        [
            "dcap-verify",
            "dcap-verify-cache-repeat",
            "dcap-verify-cache-hit",
            "synthetic-quote",
            "rcgen-ed25519",
            "rcgen-ed25519-padded",
            "connection-configs"
        ]
    );
    for m in &report.micro {
        assert_eq!(m.per_call.n, 2, "{}", m.name);
        assert!(m.per_call.p50_us <= m.per_call.p99_us, "{}", m.name);
    }

    let markdown = report.to_markdown();
    assert!(markdown.contains(BASELINE_BIG_CERT));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["scenarios"].as_array().map(Vec::len), Some(7));

    // The attested levels carry a quote where they should.
    for s in &report.scenarios[2..] {
        let quoted = s.info.server_cert_bytes > 4000;
        assert_eq!(quoted, s.name != SOFTWARE, "{}", s.name);
        let client_quoted = s.info.client_cert_bytes > 4000;
        assert_eq!(
            client_quoted,
            s.name.starts_with(TDX_BIDIRECTIONAL) || s.name == TDX_LOCAL_CERT,
            "{}",
            s.name
        );
    }

    // The load cells: single-quote and batched, each with bonds and the fields a script reads.
    let load = json["load"].as_array().expect("a top-level load array");
    assert_eq!(load.len(), 2);
    for (entry, kind) in load.iter().zip(["single", "batched"]) {
        assert!(entry["name"].as_str().unwrap().contains(kind), "{entry}");
        assert_eq!(entry["concurrency"], 4);
        assert_eq!(entry["quote_delay_ms"], 5);
        for key in ["bonds_per_s", "p50_us", "p99_us"] {
            assert!(entry[key].as_f64().unwrap() > 0.0, "{key}: {entry}");
        }
        assert!(entry["quotes_made"].as_u64().is_some(), "{entry}");
    }
    for cell in &report.load {
        assert!(cell.bonds > 0 && cell.p50_us <= cell.p99_us, "{cell:?}");
        // One bond quote per bond without batching: the acceptor made at least as many.
        if cell.name.contains("single") {
            assert!(cell.quotes_made as usize >= cell.bonds, "{cell:?}");
        }
    }

    extra_cells(&report, &json);
}

/// The cells beyond loopback latency: every one ran and reports figures that make sense.
fn extra_cells(report: &ratls_bench::Report, json: &serde_json::Value) {
    // Delay relay: every scenario, each at least one round trip for the dialer, the acceptor
    // ready after the first Initial's trip; nothing dropped.
    let names: Vec<&str> = report.path.iter().map(|p| p.name.as_str()).collect();
    let scenarios: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, scenarios);
    for p in &report.path {
        assert!(p.dialer_round_trips >= 1.0, "{p:?}");
        assert!(p.acceptor_round_trips >= 1.0, "{p:?}");
        assert_eq!(p.relay_dropped, 0, "{p:?}");
    }
    // A bond costs the dialer at least the acceptance round trip more than plain mTLS.
    let plain = &report.path[0];
    let bonded = report
        .path
        .iter()
        .find(|p| p.name == TDX_BIDIRECTIONAL)
        .unwrap();
    assert!(
        bonded.dialer_round_trips > plain.dialer_round_trips + 0.5,
        "{plain:?} {bonded:?}"
    );

    // Concurrency: plain and bonded at each level, no failure.
    let cells: Vec<(&str, usize)> = report
        .concurrency
        .iter()
        .map(|c| (c.name.as_str(), c.concurrency))
        .collect();
    assert_eq!(
        cells,
        [
            (BASELINE, 1),
            (TDX_BIDIRECTIONAL, 1),
            (BASELINE, 4),
            (TDX_BIDIRECTIONAL, 4)
        ]
    );
    for c in &report.concurrency {
        assert!(c.handshakes > 0 && c.handshakes_per_s > 0.0, "{c:?}");
        assert_eq!(c.failures, 0, "{c:?}");
        assert!(c.latency.p50_us <= c.latency.p99_us, "{c:?}");
    }

    // Quote latency: a bond takes at least one quote time.
    assert_eq!(report.quote_latency.len(), 2);
    for q in &report.quote_latency {
        assert_eq!(q.handshake.n, 2, "{q:?}");
        assert!(q.handshake.min_us >= q.quote_delay_ms as f64 * 1e3, "{q:?}");
    }

    // Bulk: both sides moved every byte.
    let bulk: Vec<&str> = report.bulk.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(bulk, [BASELINE, TDX_BIDIRECTIONAL]);
    for b in &report.bulk {
        assert_eq!(b.bytes, 4 << 20);
        assert!(b.median_mb_per_s > 0.0 && b.vs_plain > 0.0, "{b:?}");
    }

    // Memory: each cell in its own process, 20 connections.
    let memory: Vec<&str> = report.memory.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(memory, [BASELINE, TDX_BIDIRECTIONAL]);
    for m in &report.memory {
        assert_eq!(m.connections, 20);
        assert!(m.own_process && m.rss_before_kib > 0, "{m:?}");
        assert!(m.rss_after_kib >= m.rss_before_kib, "{m:?}");
    }

    for key in ["path", "concurrency", "quote_latency", "bulk", "memory"] {
        assert!(json[key].as_array().is_some_and(|a| !a.is_empty()), "{key}");
    }
    let markdown = report.to_markdown();
    for title in [
        "Delayed path",
        "Concurrency",
        "Quote on the critical path",
        "bulk",
        "Memory",
    ] {
        assert!(markdown.contains(title), "{title}");
    }
}
