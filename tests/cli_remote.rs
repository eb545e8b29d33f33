//! `ratls serve` and `ratls connect` with a collateral service (`--pccs`, `--collateral-dir`):
//! the built binaries, over real QUIC and real HTTP on loopback, with the project's own
//! `ratls collateral serve --from-dir` as the service. And the static-collateral opt-out, which
//! is logged.

mod cli_support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cli_support::{identity, ratls, software_policy, Server, RATLS};

/// A running `ratls collateral serve`; killed on drop.
struct CollateralService {
    child: Child,
    url: String,
}

impl CollateralService {
    fn start(dir: &Path, from_dir: &str) -> Self {
        let mut child = Command::new(RATLS)
            .args([
                "collateral",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--from-dir",
                from_dir,
            ])
            .args(["--root", &format!("{from_dir}/root.der")])
            .current_dir(dir)
            .env_remove("RUST_LOG")
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
            .unwrap_or_else(|| panic!("collateral serve: {line:?}"))
            .to_owned();
        Self { child, url }
    }
}

impl Drop for CollateralService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SAMPLE_MR_TD: &str = "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";

fn profile() -> String {
    format!(
        "[[profile]]\nname = \"sample\"\nmr_td = \"{SAMPLE_MR_TD}\"\nrtmr0 = \"any\"\nrtmr1 = \"any\"\n\
         rtmr2 = \"any\"\nrtmr3 = \"any\"\nmr_config_id = \"any\"\nmr_owner = \"any\"\n\
         mr_owner_config = \"any\"\n"
    )
}

fn remote_policy(dir: &Path, name: &str, url: &str) {
    std::fs::write(
        dir.join(name),
        format!(
            "version = 1\nlevel = \"TdxRemote\"\n[remote]\npccs = [\"{url}\"]\n\
             max_collateral_age_secs = 600\n{}",
            profile()
        ),
    )
    .unwrap();
}

/// A synthetic server; returns it with its address. Its PKI (root.der, collateral.json) is
/// written to `dir/pki`.
fn synthetic_server(dir: &Path) -> Server {
    let (_, client_digest) = identity(dir, "client.key");
    software_policy(dir, "server.toml", &[&client_digest]);
    Server::start(
        dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "server.toml",
            "--synthetic",
            "--write-pki",
            "pki",
        ],
    )
}

fn connect(dir: &Path, addr: &str, extra: &[&str]) -> cli_support::Output {
    let mut args = vec![
        "connect",
        addr,
        "--identity",
        "client.key",
        "--root",
        "pki/root.der",
        "--message",
        "hello",
    ];
    args.extend_from_slice(extra);
    ratls(dir, &args)
}

#[test]
fn connect_reaches_tdx_remote_with_collateral_from_the_service_and_restarts_warm() {
    let dir = tempfile::tempdir().unwrap();
    let server = synthetic_server(dir.path());
    let service = CollateralService::start(dir.path(), "pki");
    remote_policy(dir.path(), "client.toml", &service.url);

    let out = connect(
        dir.path(),
        &server.addr,
        &[
            "--policy",
            "client.toml",
            "--pccs",
            &service.url,
            "--collateral-dir",
            "cdir",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("level         TdxRemote"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout
            .contains(&format!("collateral    {} fetched ", service.url)),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("digests     tcb_info "),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("reply         \"hello\""),
        "{}",
        out.all()
    );
    let persisted: Vec<_> = std::fs::read_dir(dir.path().join("cdir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(persisted, ["5053594E0000-platform.json"], "{persisted:?}");

    // JSON: the peer's collateral source.
    let out = connect(
        dir.path(),
        &server.addr,
        &["--policy", "client.toml", "--pccs", &service.url, "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let source = &json["peer"]["collateral_source"];
    assert_eq!(source["url"], service.url.as_str(), "{json}");
    assert_eq!(source["digests"]["tcb_info"].as_str().unwrap().len(), 64);

    // The service stops. A restart with the persistence directory is warm: the persisted
    // entry keeps its service and fetch time, still within max_collateral_age_secs.
    let url = service.url.clone();
    drop(service);
    let out = connect(
        dir.path(),
        &server.addr,
        &[
            "--policy",
            "client.toml",
            "--pccs",
            &url,
            "--collateral-dir",
            "cdir",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("level         TdxRemote"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout
            .contains(&format!("collateral    {url} fetched ")),
        "{}",
        out.all()
    );

    // Without it, the stopped service is reported by URL and cause, exit 1.
    let out = connect(
        dir.path(),
        &server.addr,
        &["--policy", "client.toml", "--pccs", &url],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains(&format!("error: collateral service: {url}/"))
            && out.stderr.contains("connection failed"),
        "{}",
        out.all()
    );
}

#[test]
fn a_service_without_the_collateral_is_reported_with_its_status_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let server = synthetic_server(dir.path());
    // A service of an empty directory: every route answers 404.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::copy(
        dir.path().join("pki/root.der"),
        dir.path().join("empty/root.der"),
    )
    .unwrap();
    let service = CollateralService::start(dir.path(), "empty");
    remote_policy(dir.path(), "client.toml", &service.url);
    let out = connect(
        dir.path(),
        &server.addr,
        &["--policy", "client.toml", "--pccs", &service.url],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains(&format!("error: collateral service: {}/", service.url))
            && out.stderr.contains("404"),
        "{}",
        out.all()
    );
    assert!(!out.stdout.contains("bond with"), "{}", out.all());
}

#[test]
fn a_bidirectional_policy_file_without_remote_is_refused_and_the_opt_out_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bare.toml"),
        format!(
            "version = 1\nlevel = \"TdxRaTlsBidirectional\"\n{}",
            profile()
        ),
    )
    .unwrap();
    let out = ratls(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "bare.toml",
            "--synthetic",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("needs a [remote] section")
            && out.stderr.contains("[dangerous] static_collateral = true"),
        "{}",
        out.all()
    );

    std::fs::write(
        dir.path().join("opt-out.toml"),
        format!(
            "version = 1\nlevel = \"TdxRaTlsBidirectional\"\n[dangerous]\nstatic_collateral = true\n{}",
            profile()
        ),
    )
    .unwrap();
    let mut child = Command::new(RATLS)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "opt-out.toml",
            "--synthetic",
        ])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("listening on ") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "serve did not start"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        stderr
            .matches("static collateral: peers reach TdxRaTlsBidirectional")
            .count(),
        1,
        "{stderr}"
    );
}

/// `serve --pccs` with a service that cannot be reached: the peer is refused (fail closed), the
/// server names the service's URL and the cause, and a `--once` server exits 1.
#[test]
fn serve_with_an_unreachable_service_refuses_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, server_digest) = identity(dir.path(), "server.key");
    std::fs::write(
        dir.path().join("server.toml"),
        format!("version = 1\nlevel = \"TdxLocal\"\n{}", profile()),
    )
    .unwrap();
    software_policy(dir.path(), "client.toml", &[&server_digest]);
    let server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "server.toml",
            "--identity",
            "server.key",
            "--pccs",
            "http://127.0.0.1:1",
            "--once",
        ],
    );
    let client = ratls(
        dir.path(),
        &[
            "connect",
            &server.addr,
            "--policy",
            "client.toml",
            "--synthetic",
            "--message",
            "x",
        ],
    );
    assert_eq!(client.code, 1, "{}", client.all());
    let out = server.finish(std::time::Duration::from_secs(60));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("no collateral"), "{}", out.all());
    assert!(
        out.stderr
            .contains("error: collateral service: http://127.0.0.1:1/")
            && out.stderr.contains("connection failed"),
        "{}",
        out.all()
    );
}

/// A `[remote]` policy with a collateral file: the peer is refused (no provenance), and the
/// advice says to verify through one of the policy's services.
#[test]
fn a_remote_policy_with_a_collateral_file_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let server = synthetic_server(dir.path());
    remote_policy(dir.path(), "client.toml", "http://127.0.0.1:8081");
    let out = connect(
        dir.path(),
        &server.addr,
        &[
            "--policy",
            "client.toml",
            "--collateral",
            "pki/collateral.json",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("no bond: this side refused the peer")
            && out.stdout.contains("not fetched from a collateral service")
            && out.stdout.contains("has a [remote] section")
            && out.stdout.contains("--pccs URL"),
        "{}",
        out.all()
    );
}
