//! `ratls verify-build`: rebuild from a declared recipe, check digest and MRTD, name the failing
//! step.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use ratls_quic::measure::{compute_boot_rtmrs, measure_mr_td, DirectBoot, PageAddOrder};
use ratls_quic::synthetic::{synthetic_kernel, SyntheticTdvf};

/// A build setup: a "source" image outside the build directory and a recipe that copies it.
struct Fixture {
    dir: tempfile::TempDir,
    recipe: String,
    mr_td: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = SyntheticTdvf::typical(2, 9).build().bytes;
        let source = dir.path().join("source.fd");
        std::fs::write(&source, &image).unwrap();
        let recipe = format!(
            "#!/bin/sh\nset -e\nmkdir -p out\ncp '{}' out/tdvf.fd\n",
            source.display()
        );
        std::fs::write(dir.path().join("recipe.sh"), &recipe).unwrap();
        let mr_td = hex::encode(measure_mr_td(&image, PageAddOrder::PerPage).unwrap());
        Self { dir, recipe, mr_td }
    }

    fn digest(&self) -> String {
        blake3::hash(self.recipe.as_bytes()).to_hex().to_string()
    }

    fn policy(&self, recipe: &str, digest: &str, mr_td: &str) -> std::path::PathBuf {
        let text = format!(
            "[other]\nignored = true\n\n[build]\nrecipe_digest = \"{digest}\"\n\
             recipe = \"{recipe}\"\ncommand = \"sh recipe.sh\"\noutput = \"out/tdvf.fd\"\n\
             expected_mr_td = \"{mr_td}\"\n"
        );
        let path = self.dir.path().join("policy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn good_policy(&self) -> std::path::PathBuf {
        self.policy("recipe.sh", &self.digest(), &self.mr_td)
    }
}

fn verify_build(policy: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ratls"))
        .arg("verify-build")
        .arg("--policy")
        .arg(policy)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_failed_at(out: &Output, step: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stdout(out));
    assert!(
        stdout(out).contains(&format!("FAILED {step}")),
        "{}",
        stdout(out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("step {step}:")), "{err}");
}

#[test]
fn reproducing_recipe_passes_every_step() {
    let fx = Fixture::new();
    let out = verify_build(&fx.good_policy());
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in ["fetch", "digest", "build", "measure", "compare"] {
        assert!(
            text.contains(&format!("ok {step}:")),
            "{step} missing in {text}"
        );
    }
    assert!(text.contains(&fx.mr_td));
}

#[test]
fn changed_recipe_fails_at_digest() {
    let fx = Fixture::new();
    let policy = fx.good_policy();
    std::fs::write(
        fx.dir.path().join("recipe.sh"),
        format!("{}\n# edited\n", fx.recipe),
    )
    .unwrap();
    assert_failed_at(&verify_build(&policy), "digest");
}

#[test]
fn changed_image_fails_at_compare() {
    let fx = Fixture::new();
    let policy = fx.good_policy();
    let other = SyntheticTdvf::typical(2, 10).build().bytes;
    std::fs::write(fx.dir.path().join("source.fd"), other).unwrap();
    assert_failed_at(&verify_build(&policy), "compare");
}

#[test]
fn failed_build_fails_at_build() {
    let fx = Fixture::new();
    std::fs::remove_file(fx.dir.path().join("source.fd")).unwrap();
    assert_failed_at(&verify_build(&fx.good_policy()), "build");
}

#[test]
fn non_tdvf_output_fails_at_measure() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("source.fd"), [0u8; 4096]).unwrap();
    assert_failed_at(&verify_build(&fx.good_policy()), "measure");
}

#[test]
fn missing_recipe_fails_at_fetch() {
    let fx = Fixture::new();
    let policy = fx.policy("nope.sh", &fx.digest(), &fx.mr_td);
    assert_failed_at(&verify_build(&policy), "fetch");
}

#[test]
fn bad_policy_is_usage_error() {
    let fx = Fixture::new();
    let policy = fx.policy("recipe.sh", "abcd", &fx.mr_td);
    assert_eq!(verify_build(&policy).status.code(), Some(2));
    let path = fx.dir.path().join("empty.toml");
    std::fs::write(&path, "[other]\nx = 1\n").unwrap();
    let out = verify_build(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [build] section"));
}

#[test]
fn escaping_output_path_is_usage_error() {
    let fx = Fixture::new();
    let text = format!(
        "[build]\nrecipe_digest = \"{}\"\nrecipe = \"recipe.sh\"\ncommand = \"true\"\n\
         output = \"../x.fd\"\nexpected_mr_td = \"{}\"\n",
        fx.digest(),
        fx.mr_td
    );
    let path = fx.dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    assert_eq!(verify_build(&path).status.code(), Some(2));
}

/// Serves `body` over plain HTTP/1.1 on 127.0.0.1 for one request; returns the URL base.
fn serve_once(body: Vec<u8>, status: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (base, handle)
}

#[test]
fn recipe_served_over_http_passes() {
    let fx = Fixture::new();
    let (base, server) = serve_once(fx.recipe.clone().into_bytes(), "200 OK");
    let url = format!("{base}/recipes/recipe.sh");
    let out = verify_build(&fx.policy(&url, &fx.digest(), &fx.mr_td));
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains(&format!("from {url}")));
    assert!(server
        .join()
        .unwrap()
        .starts_with("GET /recipes/recipe.sh HTTP/1.1"));
}

#[test]
fn recipe_http_error_fails_at_fetch() {
    let fx = Fixture::new();
    let (base, server) = serve_once(b"gone".to_vec(), "404 Not Found");
    let url = format!("{base}/recipe.sh");
    assert_failed_at(
        &verify_build(&fx.policy(&url, &fx.digest(), &fx.mr_td)),
        "fetch",
    );
    server.join().unwrap();
}

/// A recipe that also "builds" a kernel and an initrd; the policy pins RTMR1 and RTMR2.
fn boot_policy(fx: &Fixture, rtmr2_override: Option<&str>) -> std::path::PathBuf {
    let kernel = synthetic_kernel(12000, 3);
    let initrd = vec![0xabu8; 3000];
    std::fs::write(fx.dir.path().join("kernel.src"), &kernel).unwrap();
    std::fs::write(fx.dir.path().join("initrd.src"), &initrd).unwrap();
    let recipe = format!(
        "{}cp '{}' out/bzImage\ncp '{}' out/initrd\n",
        fx.recipe,
        fx.dir.path().join("kernel.src").display(),
        fx.dir.path().join("initrd.src").display()
    );
    std::fs::write(fx.dir.path().join("recipe.sh"), &recipe).unwrap();
    let rtmrs = compute_boot_rtmrs(&DirectBoot {
        kernel: &kernel,
        initrd: &initrd,
        cmdline: "console=ttyS0",
        memory_size: 4 << 30,
    })
    .unwrap();
    let rtmr2 = rtmr2_override.map_or_else(|| hex::encode(rtmrs.rtmr2), str::to_owned);
    let text = format!(
        "[build]\nrecipe_digest = \"{}\"\nrecipe = \"recipe.sh\"\ncommand = \"sh recipe.sh\"\n\
         output = \"out/tdvf.fd\"\nexpected_mr_td = \"{}\"\nkernel = \"out/bzImage\"\n\
         initrd = \"out/initrd\"\ncmdline = \"console=ttyS0\"\nmemory = \"4G\"\n\
         expected_rtmr1 = \"{}\"\nexpected_rtmr2 = \"{rtmr2}\"\n",
        blake3::hash(recipe.as_bytes()).to_hex(),
        fx.mr_td,
        hex::encode(rtmrs.rtmr1),
    );
    let path = fx.dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn recipe_with_direct_boot_checks_rtmrs() {
    let fx = Fixture::new();
    let out = verify_build(&boot_policy(&fx, None));
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("RTMR1 matches") && text.contains("RTMR2 matches"),
        "{text}"
    );
}

#[test]
fn changed_rtmr_fails_at_compare() {
    let fx = Fixture::new();
    let out = verify_build(&boot_policy(&fx, Some(&"00".repeat(48))));
    assert_failed_at(&out, "compare");
    assert!(String::from_utf8_lossy(&out.stderr).contains("RTMR2"));
}

#[test]
fn incomplete_boot_declaration_is_usage_error() {
    let fx = Fixture::new();
    let path = fx.good_policy();
    let text = std::fs::read_to_string(&path).unwrap() + "kernel = \"out/bzImage\"\n";
    std::fs::write(&path, text).unwrap();
    let out = verify_build(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete direct-boot"));
}
