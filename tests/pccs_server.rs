//! The project's PCCS-compatible service over raw TCP on loopback: routes, refusals of
//! malformed requests, and a directory with broken files in it.

mod pccs_support;

use std::sync::Arc;

use pccs_support::{entry, read};
use ratls_quic::pccs::server::{serve, DirSource};
use ratls_quic::pccs::{ClientConfig, ManualClock, PcsClient, Service};
use ratls_quic::Policy;
use ratls_quic::{QuoteVerifier, INTEL_SGX_ROOT_CA_DER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAME: &str = "v4_tdx10_phala_uptodate";

async fn start(dir: &std::path::Path, now: u64) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let source = Arc::new(DirSource::new(
        dir.to_owned(),
        INTEL_SGX_ROOT_CA_DER.to_vec(),
        Arc::new(ManualClock::new(now)),
    ));
    (addr, tokio::spawn(serve(listener, source)))
}

async fn raw(addr: &str, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn status(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

fn dir_with_good_and_broken_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let good = read(NAME, "collateral.json");
    std::fs::write(dir.path().join("good.json"), &good).unwrap();
    std::fs::write(dir.path().join("truncated.json"), &good[..good.len() / 3]).unwrap();
    let tampered = String::from_utf8(good)
        .unwrap()
        .replacen("UpToDate", "UpToDatf", 1);
    std::fs::write(dir.path().join("tampered.json"), tampered).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not collateral").unwrap();
    dir
}

#[tokio::test]
async fn malformed_requests_get_their_status() {
    let dir = dir_with_good_and_broken_files();
    let (addr, _task) = start(dir.path(), entry(NAME)["now_unix"].as_u64().unwrap()).await;
    let cases: [(&[u8], &str); 7] = [
        (
            b"POST /tdx/certification/v4/qe/identity HTTP/1.1\r\n\r\n",
            "405",
        ),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", "404"),
        (b"GET /tdx/certification/v4/tcb HTTP/1.1\r\n\r\n", "400"),
        (
            b"GET /tdx/certification/v4/tcb?fmspc=B0C06F00000G HTTP/1.1\r\n\r\n",
            "400",
        ),
        (
            b"GET /sgx/certification/v4/pckcrl?ca=both HTTP/1.1\r\n\r\n",
            "400",
        ),
        (b"GET / SPDY/3\r\n\r\n", "400"),
        (b"\x00\x01\x02\r\n\r\n", "400"),
    ];
    for (request, expected) in cases {
        let response = raw(&addr, request).await;
        assert_eq!(
            status(&response),
            expected,
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    // Exactly the limit, without the end of the head: the service reads all of it (so closing
    // resets nothing) and answers 431.
    let mut huge = b"GET /tdx/certification/v4/qe/identity HTTP/1.1\r\nX: ".to_vec();
    huge.resize(8 * 1024, b'a');
    assert_eq!(status(&raw(&addr, &huge).await), "431");
}

#[tokio::test]
async fn routes_serve_the_wire_format_and_broken_files_are_skipped() {
    let dir = dir_with_good_and_broken_files();
    let now = entry(NAME)["now_unix"].as_u64().unwrap();
    let (addr, _task) = start(dir.path(), now).await;

    let tcb = raw(
        &addr,
        b"GET /tdx/certification/v4/tcb?fmspc=b0c06f000000 HTTP/1.1\r\n\r\n",
    )
    .await;
    assert_eq!(status(&tcb), "200");
    assert!(tcb.contains("TCB-Info-Issuer-Chain: -----BEGIN%20CERTIFICATE-----%0A"));
    let body = tcb.split("\r\n\r\n").nth(1).unwrap();
    let tcb_text = String::from_utf8(read(NAME, "tcb_info.json")).unwrap();
    assert!(body.starts_with(&format!("{{\"tcbInfo\":{tcb_text},\"signature\":\"")));

    let pem = raw(
        &addr,
        b"GET /sgx/certification/v4/pckcrl?ca=platform HTTP/1.1\r\n\r\n",
    )
    .await;
    assert!(pem.contains("-----BEGIN X509 CRL-----"));
    let missing = raw(
        &addr,
        b"GET /sgx/certification/v4/pckcrl?ca=processor&encoding=der HTTP/1.1\r\n\r\n",
    )
    .await;
    assert_eq!(status(&missing), "404");
    let root = raw(
        &addr,
        b"GET /sgx/certification/v4/rootcacrl HTTP/1.1\r\n\r\n",
    )
    .await;
    let body = root.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(hex::decode(body).unwrap(), read(NAME, "root_ca_crl.der"));

    let client = PcsClient::with_clock(
        ClientConfig::new(vec![Service::pccs(&format!("http://{addr}"))]),
        Arc::new(ManualClock::new(now)),
    )
    .unwrap();
    let quote = read(NAME, "quote.bin");
    let fetched = client.fetch_for_quote(&quote).await.unwrap();
    QuoteVerifier::intel()
        .verify(
            &quote,
            &fetched.collateral,
            now,
            &Policy::authenticity_only(),
        )
        .unwrap();
}

#[tokio::test]
async fn an_evaluation_number_the_directory_lacks_is_not_found() {
    let dir = dir_with_good_and_broken_files();
    let now = entry(NAME)["now_unix"].as_u64().unwrap();
    let (addr, _task) = start(dir.path(), now).await;
    let tcb: serde_json::Value = serde_json::from_slice(&read(NAME, "tcb_info.json")).unwrap();
    let number = tcb["tcbEvaluationDataNumber"].as_u64().unwrap();
    let found = format!(
        "GET /tdx/certification/v4/tcb?fmspc=B0C06F000000&tcbEvaluationDataNumber={number} HTTP/1.1\r\n\r\n"
    );
    assert_eq!(status(&raw(&addr, found.as_bytes()).await), "200");
    let other = format!(
        "GET /tdx/certification/v4/tcb?fmspc=B0C06F000000&tcbEvaluationDataNumber={} HTTP/1.1\r\n\r\n",
        number + 1
    );
    assert_eq!(status(&raw(&addr, other.as_bytes()).await), "404");
}

async fn start_upstream(
    upstream: &str,
    clock: &Arc<ManualClock>,
) -> (String, tokio::task::JoinHandle<()>) {
    let client = PcsClient::with_clock(
        ClientConfig::new(vec![Service::pccs(upstream)]),
        Arc::clone(clock) as _,
    )
    .unwrap();
    let source = Arc::new(ratls_quic::pccs::server::UpstreamSource::new(client, None).await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (addr, tokio::spawn(serve(listener, source)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_mode_fetches_each_item_once_under_concurrent_requests() {
    let upstream = pccs_support::TestPccs::start(NAME).await;
    upstream.set_mode(pccs_support::Mode::Slow(std::time::Duration::from_millis(
        200,
    )));
    let now = entry(NAME)["now_unix"].as_u64().unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let (addr, _task) = start_upstream(&upstream.url(), &clock).await;
    let requests: Vec<_> = (0..32)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                raw(
                    &addr,
                    b"GET /tdx/certification/v4/tcb?fmspc=B0C06F000000 HTTP/1.1\r\n\r\n",
                )
                .await
            })
        })
        .collect();
    for request in requests {
        assert_eq!(status(&request.await.unwrap()), "200");
    }
    assert_eq!(upstream.count("/tdx/certification/v4/tcb"), 1);
}

#[tokio::test]
async fn upstream_mode_never_serves_an_item_after_its_window() {
    let upstream = pccs_support::TestPccs::start(NAME).await;
    let e = entry(NAME);
    let clock = Arc::new(ManualClock::new(e["now_unix"].as_u64().unwrap()));
    let (addr, _task) = start_upstream(&upstream.url(), &clock).await;
    let request = b"GET /tdx/certification/v4/qe/identity HTTP/1.1\r\n\r\n";
    assert_eq!(status(&raw(&addr, request).await), "200");
    assert_eq!(status(&raw(&addr, request).await), "200");
    assert_eq!(upstream.count("/tdx/certification/v4/qe/identity"), 1);
    // Past the QE identity's nextUpdate: the cached item is not served; upstream has nothing
    // newer, so the answer is an error (502), not the stale item.
    let qe: serde_json::Value = serde_json::from_slice(&read(NAME, "qe_identity.json")).unwrap();
    clock.set(pccs_support::unix(qe["nextUpdate"].as_str().unwrap()));
    let response = raw(&addr, request).await;
    assert_eq!(status(&response), "502", "{response}");
    assert!(response.contains("expired"), "{response}");
    assert_eq!(upstream.count("/tdx/certification/v4/qe/identity"), 2);
}
