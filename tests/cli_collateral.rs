//! `ratls collateral serve`, `ratls collateral fetch` and `ratls verify-quote --pccs` over
//! real HTTP on loopback: the same verdict as `--collateral FILE` on every real vector, against
//! the project's own service (from a directory, and from an upstream with a cache directory)
//! and against a plain test server of the PCCS routes.

mod pccs_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use pccs_support::{manifest, vectors_dir, TestPccs};
use serde_json::Value;

fn ratls() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ratls"))
}

/// A running `ratls collateral serve`, killed on drop.
struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Service {
    let mut child = ratls()
        .args(["collateral", "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address: {line:?}"))
        .to_owned();
    Service { child, url }
}

fn verify(name: &str, now: u64, source: &[&str]) -> (i32, Value, String) {
    let quote = format!("{}/{name}/quote.bin", vectors_dir());
    let out = ratls()
        .args([
            "verify-quote",
            "--quote",
            &quote,
            "--now",
            &now.to_string(),
            "--json",
        ])
        .args(source)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn without_source(mut json: Value) -> Value {
    json.as_object_mut().unwrap().remove("collateral_source");
    json
}

fn dir_with_collateral(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{}/{name}/collateral.json", vectors_dir()),
        dir.path().join("collateral.json"),
    )
    .unwrap();
    dir
}

fn assert_same_verdict(name: &str, now: u64, url: &str) {
    let file = format!("{}/{name}/collateral.json", vectors_dir());
    let (code_file, json_file, _) = verify(name, now, &["--collateral", &file]);
    let (code, json, stderr) = verify(name, now, &["--pccs", url]);
    assert_eq!(code, code_file, "{name}: {stderr}");
    let source = json["collateral_source"].clone();
    assert_eq!(source["url"], url, "{name}");
    assert_eq!(source["fetched_at"], now);
    assert_eq!(source["digests"]["tcb_info"].as_str().unwrap().len(), 64);
    assert_eq!(without_source(json), json_file, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_quote_over_the_projects_service_from_a_directory_matches_the_file() {
    for entry in manifest() {
        let name = entry["name"].as_str().unwrap();
        let now = entry["now_unix"].as_u64().unwrap();
        let dir = dir_with_collateral(name);
        let service = serve(&[
            "--from-dir",
            dir.path().to_str().unwrap(),
            "--now",
            &now.to_string(),
        ]);
        assert_same_verdict(name, now, &service.url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_quote_over_a_plain_pccs_server_matches_the_file() {
    for entry in manifest() {
        let name = entry["name"].as_str().unwrap();
        let now = entry["now_unix"].as_u64().unwrap();
        let server = TestPccs::start(name).await;
        let url = server.url();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || assert_same_verdict(&name, now, &url))
            .await
            .unwrap();
    }
}

#[test]
fn unreachable_service_is_exit_1_naming_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (code, json, stderr) = verify("v4_tdx10_phala_uptodate", 1_750_377_600, &["--pccs", &url]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("connection failed"), "{stderr}");
    assert_eq!(json["verdict"], "rejected");
    assert_eq!(json["reason"], "collateral");
}

#[test]
fn service_without_the_collateral_is_exit_1_naming_the_status() {
    // A directory service with nothing unexpired at this time answers 404.
    let dir = dir_with_collateral("v4_tdx10_phala_uptodate");
    let service = serve(&[
        "--from-dir",
        dir.path().to_str().unwrap(),
        "--now",
        "1900000000",
    ]);
    let (code, _, stderr) = verify(
        "v4_tdx10_phala_uptodate",
        1_750_377_600,
        &["--pccs", &service.url],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("404"), "{stderr}");
    assert!(stderr.contains(&service.url), "{stderr}");
}

fn fetch(args: &[&str], out: &Path) -> (i32, Value) {
    let output = ratls()
        .args(["collateral", "fetch", "--out", out.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (
        output.status.code().unwrap(),
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
    )
}

#[test]
fn collateral_fetch_writes_what_collateral_accepts() {
    let name = "v5_td15ex_phala_uptodate";
    let now = "1792022400";
    let dir = dir_with_collateral(name);
    let service = serve(&["--from-dir", dir.path().to_str().unwrap(), "--now", now]);
    let out = tempfile::tempdir().unwrap();
    let quote = format!("{}/{name}/quote.bin", vectors_dir());
    let by_quote = out.path().join("by-quote.json");
    let (code, json) = fetch(
        &["--pccs", &service.url, "--quote", &quote, "--now", now],
        &by_quote,
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["fmspc"], "B0C06F000000");
    assert_eq!(json["ca"], "platform");
    let by_key = out.path().join("by-key.json");
    let (code, _) = fetch(
        &[
            "--pccs",
            &service.url,
            "--fmspc",
            "b0c06f000000",
            "--ca",
            "platform",
            "--now",
            now,
        ],
        &by_key,
    );
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read(&by_quote).unwrap(),
        std::fs::read(&by_key).unwrap()
    );
    let (code, verdict, _) = verify(
        name,
        1_792_022_400,
        &["--collateral", by_quote.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert_eq!(verdict["verdict"], "accepted");
    assert_eq!(verdict["td_report"], "td15ex");

    // Unknown FMSPC: exit 1, nothing written.
    let missing = out.path().join("missing.json");
    let (code, _) = fetch(
        &[
            "--pccs",
            &service.url,
            "--fmspc",
            "00606A000000",
            "--ca",
            "platform",
            "--now",
            now,
        ],
        &missing,
    );
    assert_eq!(code, 1);
    assert!(!missing.exists());
    // Usage errors: exit 2.
    let (code, _) = fetch(
        &["--pccs", &service.url, "--fmspc", "zz", "--ca", "platform"],
        &missing,
    );
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_service_caches_items_and_serves_them_after_a_restart_without_upstream() {
    let name = "v5_td15_gotdxguest_uptodate";
    let now = 1_772_323_200u64;
    let upstream = TestPccs::start(name).await;
    let cache = tempfile::tempdir().unwrap();
    let args = |url: String| {
        vec![
            "--upstream".to_owned(),
            url,
            "--cache-dir".to_owned(),
            cache.path().to_str().unwrap().to_owned(),
            "--now".to_owned(),
            now.to_string(),
        ]
    };
    let upstream_url = upstream.url();
    let first = args(upstream_url.clone());
    let service = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = first.iter().map(String::as_str).collect();
        serve(&refs)
    })
    .await
    .unwrap();
    let url = service.url.clone();
    tokio::task::spawn_blocking(move || {
        assert_same_verdict(name, now, &url);
        assert_same_verdict(name, now, &url);
    })
    .await
    .unwrap();
    // Two verifications, one upstream fetch per item.
    assert_eq!(upstream.count("/tdx/certification/v4/tcb"), 1);
    assert_eq!(upstream.count("/sgx/certification/v4/rootcacrl"), 1);
    let files: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");
    drop(service);
    drop(upstream);

    let second = args(upstream_url);
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = second.iter().map(String::as_str).collect();
        let service = serve(&refs);
        assert_same_verdict(name, now, &service.url);
    })
    .await
    .unwrap();
}
