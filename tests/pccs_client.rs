//! The collateral client against a plain HTTP server on loopback serving the real vectors'
//! collateral in the PCS v4 / PCCS wire format, and its failure modes.

mod pccs_support;

use std::sync::Arc;
use std::time::Duration;

use pccs_support::{entry, manifest, read, unix, Mode, TestPccs};
use ratls_quic::pccs::wire::WireError;
use ratls_quic::pccs::{ClientConfig, FetchError, ManualClock, PcsClient, PlatformKey, Service};
use ratls_quic::Policy;
use ratls_quic::{Collateral, QuoteVerifier};

fn client(services: Vec<Service>, now: u64) -> PcsClient {
    let mut config = ClientConfig::new(services);
    config.timeout = Duration::from_millis(1500);
    config.backoff = Duration::from_millis(20);
    client_with(config, now)
}

fn client_with(config: ClientConfig, now: u64) -> PcsClient {
    PcsClient::with_clock(config, Arc::new(ManualClock::new(now))).unwrap()
}

const GOOD: &str = "v4_tdx10_phala_uptodate";

#[tokio::test]
async fn every_real_vector_fetched_over_http_gives_the_verdict_of_its_file() {
    for entry in manifest() {
        let name = entry["name"].as_str().unwrap();
        let now = entry["now_unix"].as_u64().unwrap();
        let quote = read(name, "quote.bin");
        let server = TestPccs::start(name).await;
        let fetched = client(vec![Service::pccs(&server.url())], now)
            .fetch_for_quote(&quote)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fetched.source, server.url());
        assert_eq!(fetched.fetched_at, now);
        assert_eq!(
            fetched.key.fmspc.to_hex(),
            entry["pck_fmspc"].as_str().unwrap()
        );
        let file = Collateral::from_json(&read(name, "collateral.json")).unwrap();
        // Byte for byte the signed JSON and the CRLs of the file.
        let (got, want) = (fetched.collateral.dcap(), file.dcap());
        assert_eq!(got.tcb_info, want.tcb_info, "{name}");
        assert_eq!(got.qe_identity, want.qe_identity, "{name}");
        assert_eq!(got.tcb_info_signature, want.tcb_info_signature);
        assert_eq!(got.pck_crl, want.pck_crl);
        assert_eq!(got.root_ca_crl, want.root_ca_crl);
        assert_eq!(
            fetched.digests.tcb_info,
            *blake3::hash(want.tcb_info.as_bytes()).as_bytes()
        );
        let policy = Policy::authenticity_only();
        let verifier = QuoteVerifier::intel().without_cache();
        let over_http = verifier.verify(&quote, &fetched.collateral, now, &policy);
        let from_file = verifier.verify(&quote, &file, now, &policy);
        assert_eq!(
            over_http.is_ok(),
            entry["expected"].as_str().unwrap().starts_with("OK"),
            "{name}"
        );
        match (over_http, from_file) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{name}"),
            (Err(a), Err(b)) => assert_eq!(a.dcap_check(), b.dcap_check(), "{name}"),
            (a, b) => panic!("{name}: {a:?} vs {b:?}"),
        }
        assert_eq!(server.total(), 4, "{name}: one request per item");
    }
}

#[tokio::test]
async fn intel_pcs_kind_takes_the_root_crl_from_the_configured_url() {
    let server = TestPccs::start(GOOD).await;
    let now = entry(GOOD)["now_unix"].as_u64().unwrap();
    let mut config = ClientConfig::new(vec![Service::pcs(&server.url())]);
    config.root_crl_url = Some(format!("{}/IntelSGXRootCA.der", server.url()));
    let fetched = client_with(config, now)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap();
    assert_eq!(server.count("/IntelSGXRootCA.der"), 1);
    assert_eq!(server.count("/sgx/certification/v4/rootcacrl"), 0);
    assert_eq!(
        fetched.collateral.dcap().root_ca_crl,
        read(GOOD, "root_ca_crl.der")
    );
}

async fn fetch_error(mode: Mode, config: impl FnOnce(&mut ClientConfig)) -> (FetchError, TestPccs) {
    let server = TestPccs::start(GOOD).await;
    server.set_mode(mode);
    let now = entry(GOOD)["now_unix"].as_u64().unwrap();
    let mut c = ClientConfig::new(vec![Service::pccs(&server.url())]);
    c.timeout = Duration::from_millis(1500);
    c.backoff = Duration::from_millis(20);
    config(&mut c);
    let error = client_with(c, now)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap_err();
    (error, server)
}

const TCB: &str = "/tdx/certification/v4/tcb";

#[tokio::test]
async fn not_found_and_gone_are_typed_and_not_retried() {
    let (error, server) = fetch_error(Mode::Status(404), |_| {}).await;
    assert!(
        matches!(&error, FetchError::NotFound { url } if url.contains("fmspc=B0C06F000000")),
        "{error}"
    );
    assert_eq!(server.count(TCB), 1);
    let (error, server) = fetch_error(Mode::Status(410), |_| {}).await;
    assert!(matches!(error, FetchError::Gone { .. }), "{error}");
    assert_eq!(server.count(TCB), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let (error, server) = fetch_error(Mode::Status(503), |c| c.max_attempts = 3).await;
    assert!(
        matches!(&error, FetchError::Server { status: 503, url } if url.starts_with(&server.url())),
        "{error}"
    );
    assert_eq!(server.count(TCB), 3);
    assert!(error.to_string().contains("503"));
}

#[tokio::test]
async fn server_errors_then_success_is_a_success() {
    let server = TestPccs::start(GOOD).await;
    server.set_mode(Mode::StatusThenOk(502, 2));
    let now = entry(GOOD)["now_unix"].as_u64().unwrap();
    client(vec![Service::pccs(&server.url())], now)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap();
    // Four items; the first two requests (whichever routes) failed and were retried.
    assert_eq!(server.total(), 6);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_then_succeeds() {
    let server = TestPccs::start(GOOD).await;
    server.set_mode(Mode::TooManyThenOk(1, 1));
    let now = entry(GOOD)["now_unix"].as_u64().unwrap();
    client(vec![Service::pccs(&server.url())], now)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap();
    assert_eq!(
        server.total(),
        5,
        "one request was told to wait, and retried"
    );
}

#[tokio::test]
async fn retry_after_beyond_the_cap_is_not_waited_for() {
    let (error, server) = fetch_error(Mode::TooManyThenOk(3600, 5), |_| {}).await;
    assert!(
        matches!(
            error,
            FetchError::TooManyRequests {
                retry_after: Some(3600),
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(server.count(TCB), 1);
}

#[tokio::test]
async fn slow_service_times_out_with_a_typed_error() {
    let (error, _server) = fetch_error(Mode::Slow(Duration::from_secs(30)), |c| {
        c.timeout = Duration::from_millis(300);
        c.max_attempts = 2;
    })
    .await;
    assert!(matches!(error, FetchError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("timed out"));
}

#[tokio::test]
async fn service_down_is_a_connection_error_naming_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = client(vec![Service::pccs(&url)], 1_750_377_600)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Connect { .. }), "{error}");
    assert!(error.to_string().contains(&url), "{error}");
}

#[tokio::test]
async fn services_are_tried_in_order() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let broken = TestPccs::start(GOOD).await;
    broken.set_mode(Mode::Status(404));
    let good = TestPccs::start(GOOD).await;
    let now = entry(GOOD)["now_unix"].as_u64().unwrap();
    let services = vec![
        Service::pccs(&down),
        Service::pccs(&broken.url()),
        Service::pccs(&good.url()),
    ];
    let fetched = client(services, now)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap();
    assert_eq!(fetched.source, good.url());
    assert_eq!(broken.count(TCB), 1);

    broken.set_mode(Mode::Status(404));
    let error = client(
        vec![Service::pccs(&down), Service::pccs(&broken.url())],
        now,
    )
    .fetch_for_quote(&read(GOOD, "quote.bin"))
    .await
    .unwrap_err();
    match error {
        FetchError::AllServicesFailed(errors) => {
            assert!(matches!(errors[0], FetchError::Connect { .. }));
            assert!(matches!(errors[1], FetchError::NotFound { .. }));
        }
        other => panic!("{other}"),
    }
}

fn wire_error(error: &FetchError) -> &WireError {
    error
        .wire()
        .unwrap_or_else(|| panic!("not a wire error: {error}"))
}

#[tokio::test]
async fn corrupted_signature_is_refused_at_fetch() {
    let (error, _s) = fetch_error(Mode::CorruptSignature, |_| {}).await;
    assert_eq!(
        wire_error(&error),
        &WireError::Signature { item: "TCB info" }
    );
}

#[tokio::test]
async fn wrong_issuer_chain_is_refused_at_fetch() {
    let (error, _s) = fetch_error(Mode::WrongChain, |_| {}).await;
    assert_eq!(
        wire_error(&error),
        &WireError::Signature { item: "TCB info" }
    );
}

#[tokio::test]
async fn truncated_body_is_an_incomplete_response() {
    let (error, server) = fetch_error(Mode::Truncate, |c| c.max_attempts = 2).await;
    assert!(matches!(error, FetchError::Incomplete { .. }), "{error}");
    assert_eq!(server.count(TCB), 2, "a cut body is retried");
}

#[tokio::test]
async fn bad_percent_encoding_is_refused() {
    let (error, _s) = fetch_error(Mode::BadPercentEncoding, |_| {}).await;
    assert_eq!(
        wire_error(&error),
        &WireError::PercentEncoding {
            header: "TCB-Info-Issuer-Chain"
        }
    );
}

#[tokio::test]
async fn returned_evaluation_number_must_be_the_one_asked_for() {
    let tcb: serde_json::Value = serde_json::from_slice(&read(GOOD, "tcb_info.json")).unwrap();
    let served = tcb["tcbEvaluationDataNumber"].as_u64().unwrap() as u32;
    let (error, server) = fetch_error(Mode::Normal, |c| {
        c.tcb_evaluation_data_number = Some(served + 1)
    })
    .await;
    assert_eq!(
        wire_error(&error),
        &WireError::EvaluationNumber {
            item: "TCB info",
            asked: served + 1,
            got: served
        }
    );
    assert!(server
        .queries()
        .iter()
        .any(|q| q.ends_with(&format!("&tcbEvaluationDataNumber={}", served + 1))));
}

#[tokio::test]
async fn update_parameter_is_sent() {
    let server = TestPccs::start(GOOD).await;
    let now = entry(GOOD)["now_unix"].as_u64().unwrap();
    let mut config = ClientConfig::new(vec![Service::pccs(&server.url())]);
    config.update = Some(ratls_quic::pccs::UpdateType::Early);
    client_with(config, now)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap();
    let queries = server.queries();
    assert!(queries
        .iter()
        .any(|q| q == "/tdx/certification/v4/tcb?fmspc=B0C06F000000&update=early"));
    assert!(queries
        .iter()
        .any(|q| q == "/tdx/certification/v4/qe/identity?update=early"));
}

#[tokio::test]
async fn expired_collateral_is_refused_at_fetch() {
    let e = entry(GOOD);
    let until = unix(e["valid_until"].as_str().unwrap());
    let server = TestPccs::start(GOOD).await;
    let error = client(vec![Service::pccs(&server.url())], until)
        .fetch_for_quote(&read(GOOD, "quote.bin"))
        .await
        .unwrap_err();
    assert!(
        matches!(wire_error(&error), WireError::Expired { next_update, .. } if *next_update == until),
        "{error}"
    );
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let (error, _s) = fetch_error(Mode::Normal, |c| c.max_body_len = 1000).await;
    assert!(
        matches!(error, FetchError::TooLarge { limit: 1000, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_fmspc_is_not_found() {
    let server = TestPccs::start(GOOD).await;
    let now = entry(GOOD)["now_unix"].as_u64().unwrap();
    let mut key = PlatformKey::from_quote(&read(GOOD, "quote.bin")).unwrap();
    key.fmspc = "00606A000000".parse().unwrap();
    let error = client(vec![Service::pccs(&server.url())], now)
        .fetch(key)
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::NotFound { .. }), "{error}");
}
