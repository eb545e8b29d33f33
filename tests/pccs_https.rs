//! The collateral client over HTTPS on loopback: the project's own PCCS-compatible service
//! (serving a real vector's collateral from a directory) behind rustls, with a certificate
//! from a CA made here. Trusted through `ClientConfig::tls_roots` the collateral verifies;
//! without that root, or with a certificate for another name, the handshake is refused with a
//! typed error naming the URL and the request is not retried. `ratls verify-quote
//! --collateral-ca` over the same server.

mod pccs_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pccs_support::{entry, read};
use ratls_quic::pccs::server::{serve_connection, DirSource};
use ratls_quic::pccs::{ClientConfig, FetchError, ManualClock, PcsClient, Service};
use ratls_quic::{Policy, QuoteVerifier, INTEL_SGX_ROOT_CA_DER};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const NAME: &str = "v4_tdx10_phala_uptodate";

fn now() -> u64 {
    entry(NAME)["now_unix"].as_u64().unwrap()
}

/// A CA and a server certificate it issued for `names`.
struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn pki(names: &[&str]) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("CA of {}", names.join(" ")),
    );
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    Pki {
        ca_der: ca.der().clone(),
        ca_pem: ca.pem(),
        leaf_der: leaf.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
    }
}

/// The project's collateral service from a directory holding `NAME`'s collateral, behind TLS
/// on 127.0.0.1; counts the TCP connections accepted.
struct HttpsService {
    url: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for HttpsService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(pki: &Pki) -> HttpsService {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("collateral.json"),
        read(NAME, "collateral.json"),
    )
    .unwrap();
    let source = Arc::new(DirSource::new(
        dir.path().to_owned(),
        INTEL_SGX_ROOT_CA_DER.to_vec(),
        Arc::new(ManualClock::new(now())),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.leaf_der.clone(), pki.ca_der.clone()],
            pki.leaf_key.clone_key(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, source) = (acceptor.clone(), Arc::clone(&source));
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    let _ = serve_connection(stream, source.as_ref()).await;
                }
            });
        }
    });
    HttpsService {
        url,
        connections,
        task,
        _dir: dir,
    }
}

fn client(url: &str, tls_roots: Vec<CertificateDer<'static>>) -> PcsClient {
    let mut config = ClientConfig::new(vec![Service::pccs(url)]);
    config.tls_roots = tls_roots;
    config.max_attempts = 3;
    PcsClient::with_clock(config, Arc::new(ManualClock::new(now()))).unwrap()
}

/// The rustls error at the bottom of a [`FetchError::Tls`].
fn rustls_cause(error: &FetchError) -> rustls::Error {
    let FetchError::Tls { source, .. } = error else {
        panic!("not a TLS error: {error:?}");
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return tls.clone();
        }
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => current.source(),
        };
    }
    panic!("no rustls error under {error:?}");
}

#[tokio::test]
async fn collateral_over_https_with_the_ca_trusted_verifies_the_quote() {
    let pki = pki(&["127.0.0.1", "localhost"]);
    let service = start(&pki).await;
    let quote = read(NAME, "quote.bin");
    let fetched = client(&service.url, vec![pki.ca_der.clone()])
        .fetch_for_quote(&quote)
        .await
        .unwrap();
    assert_eq!(fetched.source, service.url);
    let file = ratls_quic::Collateral::from_json(&read(NAME, "collateral.json")).unwrap();
    assert_eq!(fetched.collateral.dcap().tcb_info, file.dcap().tcb_info);
    let policy = Policy::authenticity_only();
    let verifier = QuoteVerifier::intel().without_cache();
    let over_https = verifier
        .verify(&quote, &fetched.collateral, now(), &policy)
        .unwrap();
    assert_eq!(
        over_https,
        verifier.verify(&quote, &file, now(), &policy).unwrap()
    );
    assert_eq!(service.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_service_whose_ca_is_not_trusted_is_refused_once_per_item() {
    let pki = pki(&["127.0.0.1", "localhost"]);
    let service = start(&pki).await;
    // Another CA trusted, not the service's: the platform store does not know it either.
    let other = self::pki(&["127.0.0.1"]);
    for roots in [Vec::new(), vec![other.ca_der.clone()]] {
        let before = service.connections.load(Ordering::SeqCst);
        let error = client(&service.url, roots)
            .fetch_for_quote(&read(NAME, "quote.bin"))
            .await
            .unwrap_err();
        match &error {
            FetchError::Tls { url, .. } => assert!(
                url.starts_with(&format!("{}/tdx/certification/v4/tcb?fmspc=", service.url)),
                "{url}"
            ),
            other => panic!("expected a TLS error, got {other:?}"),
        }
        assert!(
            error.to_string().contains(&service.url),
            "the message names the URL: {error}"
        );
        assert!(!error.is_transient());
        assert!(
            matches!(
                rustls_cause(&error),
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "{:?}",
            rustls_cause(&error)
        );
        // One connection per item, none retried (max_attempts is 3).
        assert_eq!(service.connections.load(Ordering::SeqCst) - before, 4);
    }
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let pki = pki(&["pccs.elsewhere.example"]);
    let service = start(&pki).await;
    let error = client(&service.url, vec![pki.ca_der.clone()])
        .fetch_for_quote(&read(NAME, "quote.bin"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&service.url), "{error}");
    assert!(
        matches!(
            rustls_cause(&error),
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{error}"
    );
    assert_eq!(service.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn an_unparsable_extra_root_is_a_configuration_error() {
    let mut config = ClientConfig::new(vec![Service::pccs("https://127.0.0.1:1")]);
    config.tls_roots = vec![CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])];
    let error = PcsClient::new(config).unwrap_err();
    assert!(matches!(error, FetchError::Config(_)), "{error}");
}

fn ratls(args: &[String]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ratls"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_quote_with_collateral_ca_over_https() {
    let pki = pki(&["127.0.0.1", "localhost"]);
    let service = start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    // One file with two certificates: another CA first, the service's second.
    std::fs::write(&ca, format!("{}{}", self::pki(&["x"]).ca_pem, pki.ca_pem)).unwrap();
    let vectors = pccs_support::vectors_dir();
    let base: Vec<String> = [
        "verify-quote",
        "--quote",
        &format!("{vectors}/{NAME}/quote.bin"),
        "--now",
        &now().to_string(),
        "--json",
        "--pccs",
        &service.url,
    ]
    .map(String::from)
    .to_vec();
    let with_ca = [
        base.clone(),
        vec!["--collateral-ca".into(), ca.display().to_string()],
    ]
    .concat();
    let not_a_ca = dir.path().join("empty.pem");
    std::fs::write(
        &not_a_ca,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let with_bad_file = [
        base.clone(),
        vec!["--collateral-ca".into(), not_a_ca.display().to_string()],
    ]
    .concat();
    let (trusted, untrusted, bad_file) =
        tokio::task::spawn_blocking(move || (ratls(&with_ca), ratls(&base), ratls(&with_bad_file)))
            .await
            .unwrap();
    let stderr = String::from_utf8_lossy(&bad_file.stderr);
    assert_eq!(bad_file.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--collateral-ca"), "{stderr}");
    let stderr = String::from_utf8_lossy(&trusted.stderr);
    assert_eq!(trusted.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(json["collateral_source"]["url"], service.url.as_str());

    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");
    assert!(stderr.contains(&service.url), "{stderr}");
}

/// `ratls collateral serve` (plain HTTP on loopback) in front of the HTTPS service, killed on
/// drop.
struct Mirror(std::process::Child, String);

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mirror(upstream: &str, extra: &[String]) -> Mirror {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ratls"))
        .args([
            "collateral",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
        ])
        .arg(upstream)
        .args(["--now", &now().to_string()])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address: {line:?}"))
        .to_owned();
    Mirror(child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collateral_serve_reaches_an_https_upstream_with_collateral_ca() {
    let pki = pki(&["127.0.0.1", "localhost"]);
    let service = start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let upstream = service.url.clone();
    let quote = format!("{}/{NAME}/quote.bin", pccs_support::vectors_dir());
    let (trusted, untrusted) = tokio::task::spawn_blocking(move || {
        let verify = |mirror: &Mirror| {
            ratls(
                &[
                    "verify-quote",
                    "--quote",
                    &quote,
                    "--now",
                    &now().to_string(),
                    "--pccs",
                    &mirror.1,
                ]
                .map(String::from),
            )
        };
        let with_ca = mirror(
            &upstream,
            &["--collateral-ca".into(), ca.display().to_string()],
        );
        let without = mirror(&upstream, &[]);
        (verify(&with_ca), verify(&without))
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&trusted.stderr);
    assert_eq!(trusted.status.code(), Some(0), "{stderr}");
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    // The mirror's upstream fetch is refused at the handshake: it answers 502.
    assert!(stderr.contains("HTTP 502"), "{stderr}");
}
