//! A plain HTTP/1.1 server on loopback that serves one real vector's collateral in the PCS v4 /
//! PCCS wire format, with switchable failure modes, and counts the requests per route. It is
//! written here, independently of the crate's own service, so the client is tested against a
//! second implementation of the wire format.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub fn vectors_dir() -> String {
    format!("{}/certs/vectors", env!("CARGO_MANIFEST_DIR"))
}

pub fn manifest() -> Vec<serde_json::Value> {
    let text = std::fs::read(format!("{}/vectors.json", vectors_dir())).unwrap();
    serde_json::from_slice::<serde_json::Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub fn entry(name: &str) -> serde_json::Value {
    manifest().into_iter().find(|e| e["name"] == name).unwrap()
}

pub fn unix(text: &str) -> u64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp() as u64
}

pub fn read(name: &str, file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{name}/{file}", vectors_dir())).unwrap()
}

/// How the server misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Serve correctly.
    Normal,
    /// Answer every request with this status.
    Status(u16),
    /// Answer the next `n` requests with this status, then serve correctly.
    StatusThenOk(u16, usize),
    /// Answer the next `n` requests with 429 and this Retry-After, then serve correctly.
    TooManyThenOk(u64, usize),
    /// Wait this long before answering.
    Slow(Duration),
    /// Serve the TCB info with one signature digit changed.
    CorruptSignature,
    /// Announce the full length but send only half of each body, then close.
    Truncate,
    /// Send issuer-chain headers with a broken percent escape.
    BadPercentEncoding,
    /// Send the TCB info under the PCK CRL's issuer chain.
    WrongChain,
}

struct Routes {
    tcb: (String, String, String),
    qe: (String, String, String),
    pck_crl: (Vec<u8>, String),
    root_crl: Vec<u8>,
    fmspc: String,
}

pub struct TestPccs {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    queries: Arc<Mutex<Vec<String>>>,
    total: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestPccs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn percent(pem: &str) -> String {
    let mut out = String::new();
    for b in pem.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TestPccs {
    /// Serves vector `name`'s collateral on 127.0.0.1.
    pub async fn start(name: &str) -> Self {
        let text = |file| String::from_utf8(read(name, file)).unwrap();
        let routes = Arc::new(Routes {
            tcb: (
                text("tcb_info.json"),
                text("tcb_info_signature.hex"),
                text("tcb_info_issuer_chain.pem"),
            ),
            qe: (
                text("qe_identity.json"),
                text("qe_identity_signature.hex"),
                text("qe_identity_issuer_chain.pem"),
            ),
            pck_crl: (read(name, "pck_crl.der"), text("pck_crl_issuer_chain.pem")),
            root_crl: read(name, "root_ca_crl.der"),
            fmspc: entry(name)["pck_fmspc"].as_str().unwrap().to_owned(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Normal));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let total = Arc::new(AtomicUsize::new(0));
        let task = {
            let (mode, counts, queries, total) = (
                Arc::clone(&mode),
                Arc::clone(&counts),
                Arc::clone(&queries),
                Arc::clone(&total),
            );
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (routes, mode, counts, queries, total) = (
                        Arc::clone(&routes),
                        Arc::clone(&mode),
                        Arc::clone(&counts),
                        Arc::clone(&queries),
                        Arc::clone(&total),
                    );
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let line = String::from_utf8_lossy(&head)
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        let target = line.split(' ').nth(1).unwrap_or("").to_owned();
                        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                        total.fetch_add(1, Ordering::SeqCst);
                        *counts.lock().unwrap().entry(path.to_owned()).or_default() += 1;
                        queries.lock().unwrap().push(target.clone());
                        let current = {
                            let mut mode = mode.lock().unwrap();
                            let current = mode.clone();
                            match &mut *mode {
                                Mode::StatusThenOk(_, n) | Mode::TooManyThenOk(_, n) => {
                                    *n -= 1;
                                    if *n == 0 {
                                        *mode = Mode::Normal;
                                    }
                                }
                                _ => {}
                            }
                            current
                        };
                        let response = respond(&routes, path, query, &current).await;
                        let _ = stream.write_all(&response).await;
                        let _ = stream.shutdown().await;
                    });
                }
            })
        };
        Self {
            addr,
            mode,
            counts,
            queries,
            total,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Requests seen on `path`.
    pub fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

fn http(status: u16, headers: &[(&str, String)], body: &[u8], announce: usize) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status} X\r\nContent-Length: {announce}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn respond(routes: &Routes, path: &str, query: &str, mode: &Mode) -> Vec<u8> {
    match mode {
        Mode::Status(status) | Mode::StatusThenOk(status, _) => {
            return http(*status, &[], b"no", 2);
        }
        Mode::TooManyThenOk(after, _) => {
            return http(429, &[("Retry-After", after.to_string())], b"slow down", 9);
        }
        Mode::Slow(wait) => tokio::time::sleep(*wait).await,
        _ => {}
    }
    let chain = |pem: &str| {
        let encoded = percent(pem);
        if *mode == Mode::BadPercentEncoding {
            encoded.replacen("%0A", "%G0", 1)
        } else {
            encoded
        }
    };
    let (headers, body): (Vec<(&str, String)>, Vec<u8>) = match path {
        "/tdx/certification/v4/tcb" => {
            if !query.contains(&format!("fmspc={}", routes.fmspc)) {
                return http(404, &[], b"unknown fmspc", 13);
            }
            let (text, signature, pem) = &routes.tcb;
            let mut signature = signature.trim().to_owned();
            if *mode == Mode::CorruptSignature {
                let first = if signature.starts_with('0') { "1" } else { "0" };
                signature.replace_range(0..1, first);
            }
            let pem = if *mode == Mode::WrongChain {
                &routes.pck_crl.1
            } else {
                pem
            };
            (
                vec![("TCB-Info-Issuer-Chain", chain(pem))],
                format!("{{\"tcbInfo\":{text},\"signature\":\"{signature}\"}}").into_bytes(),
            )
        }
        "/tdx/certification/v4/qe/identity" => {
            let (text, signature, pem) = &routes.qe;
            (
                vec![("SGX-Enclave-Identity-Issuer-Chain", chain(pem))],
                format!(
                    "{{\"enclaveIdentity\":{text},\"signature\":\"{}\"}}",
                    signature.trim()
                )
                .into_bytes(),
            )
        }
        "/sgx/certification/v4/pckcrl" => {
            if !query.contains("ca=platform") || !query.contains("encoding=der") {
                return http(404, &[], b"unknown ca", 10);
            }
            (
                vec![("SGX-PCK-CRL-Issuer-Chain", chain(&routes.pck_crl.1))],
                routes.pck_crl.0.clone(),
            )
        }
        "/sgx/certification/v4/rootcacrl" => (vec![], hex::encode(&routes.root_crl).into_bytes()),
        "/IntelSGXRootCA.der" => (vec![], routes.root_crl.clone()),
        _ => return http(404, &[], b"no route", 8),
    };
    if *mode == Mode::Truncate {
        return http(200, &headers, &body[..body.len() / 2], body.len());
    }
    http(200, &headers, &body, body.len())
}

/// The PEM PCK chain a quote carries (its certification data), for comparisons.
pub fn pck_chain(quote: &[u8]) -> String {
    String::from_utf8(ratls_quic::pck_chain_pem(quote).unwrap().to_vec()).unwrap()
}
