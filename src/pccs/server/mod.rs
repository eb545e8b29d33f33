//! A PCCS-compatible collateral service: a small HTTP/1.1 server on tokio serving the four
//! routes of [`super::PcsClient`] from a directory of collateral files ([`DirSource`]) or from
//! upstream services through a per-item cache ([`UpstreamSource`]). Neither ever serves an item
//! outside its window: an item whose nextUpdate has passed is refetched or answered with 404.
//!
//! One request per connection (`Connection: close`), `GET` only, request head at most 8 KiB
//! read within 10 s; at most 256 connections are served at once. Routes and formats:
//! `docs/collateral.md`. [`serve`] speaks plain HTTP on TCP; [`serve_connection`] answers one
//! request on any byte stream, so a caller can put TLS (or anything else) in front.

// Parses bytes from the network or from files: no panics, no unchecked arithmetic.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use core::fmt;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::cache::{load_dir, CachedCollateral};
use super::check::signed_facts;
use super::clock::Clock;
use super::platform::{Fmspc, PckCa};
use super::wire::{self, SignedItem, SignedJson};

mod upstream;

pub use upstream::UpstreamSource;

/// Largest request head read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time allowed to send the request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// How long a directory listing is reused before the directory is read again (seconds).
const DIR_RELOAD: u64 = 10;

/// A request the service understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// `GET /tdx/certification/v4/tcb?fmspc=HEX[&tcbEvaluationDataNumber=N]`.
    TcbInfo {
        /// The FMSPC asked for.
        fmspc: Fmspc,
        /// The evaluation data number asked for, if any.
        evaluation: Option<u32>,
    },
    /// `GET /tdx/certification/v4/qe/identity[?tcbEvaluationDataNumber=N]`.
    QeIdentity {
        /// The evaluation data number asked for, if any.
        evaluation: Option<u32>,
    },
    /// `GET /sgx/certification/v4/pckcrl?ca=processor|platform[&encoding=der]`.
    PckCrl {
        /// The CA.
        ca: PckCa,
        /// DER body (`encoding=der`) rather than PEM.
        der: bool,
    },
    /// `GET /sgx/certification/v4/rootcacrl` (hex-encoded DER body).
    RootCaCrl,
}

impl Route {
    /// Reads a request target (path and query). `Err` is the HTTP status to answer.
    pub fn parse(target: &str) -> Result<Self, u16> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut params = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(name, value);
        }
        let evaluation = match params.get("tcbEvaluationDataNumber") {
            None => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| 400u16)?),
        };
        match path {
            "/tdx/certification/v4/tcb" => {
                let fmspc = params.get("fmspc").ok_or(400u16)?;
                Ok(Self::TcbInfo {
                    fmspc: fmspc.parse().map_err(|_| 400u16)?,
                    evaluation,
                })
            }
            "/tdx/certification/v4/qe/identity" => Ok(Self::QeIdentity { evaluation }),
            "/sgx/certification/v4/pckcrl" => {
                let ca = params.get("ca").ok_or(400u16)?;
                let der = match params.get("encoding") {
                    None => false,
                    Some(&"der") => true,
                    Some(_) => return Err(400),
                };
                Ok(Self::PckCrl {
                    ca: ca.parse().map_err(|_| 400u16)?,
                    der,
                })
            }
            "/sgx/certification/v4/rootcacrl" => Ok(Self::RootCaCrl),
            _ => Err(404),
        }
    }
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Issuer-chain header name and PEM value (sent percent-encoded).
    pub chain: Option<(&'static str, String)>,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    pub(super) fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            chain: None,
            content_type: "text/plain",
            body: format!("{message}\n").into_bytes(),
        }
    }

    pub(super) fn signed(
        item: SignedItem,
        header: &'static str,
        signed: &SignedJson,
        chain: &str,
    ) -> Self {
        Self {
            status: 200,
            chain: Some((header, chain.to_owned())),
            content_type: "application/json",
            body: wire::signed_json_body(item, signed).into_bytes(),
        }
    }

    pub(super) fn crl(route: &Route, der: &[u8], chain: Option<&str>) -> Self {
        let (content_type, body) = match route {
            Route::PckCrl { der: true, .. } => ("application/pkix-crl", der.to_vec()),
            Route::PckCrl { der: false, .. } => ("application/x-pem-file", crl_pem(der)),
            _ => ("text/plain", hex::encode(der).into_bytes()),
        };
        Self {
            status: 200,
            chain: chain.map(|pem| (wire::PCK_CRL_ISSUER_CHAIN, pem.to_owned())),
            content_type,
            body,
        }
    }

    /// The response bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some((name, pem)) = &self.chain {
            head.push_str(&format!("{name}: {}\r\n", wire::encode_issuer_chain(pem)));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

fn crl_pem(der: &[u8]) -> Vec<u8> {
    let mut out = String::from("-----BEGIN X509 CRL-----\n");
    let encoded = base64(der);
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(core::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END X509 CRL-----\n");
    out.into_bytes()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, sextet) in sextets.into_iter().enumerate() {
            if i <= chunk.len() {
                let index = usize::try_from(sextet).unwrap_or(0);
                out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where a service's answers come from.
pub trait ItemSource: fmt::Debug + Send + Sync + 'static {
    /// The answer to `route`.
    fn reply(&self, route: Route) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>>;
}

/// Serves `source` on `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, source: Arc<dyn ItemSource>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "collateral service: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            if let Err(error) = serve_connection(stream, source.as_ref()).await {
                tracing::debug!(%peer, %error, "collateral service: connection ended");
            }
            drop(permit);
        });
    }
}

/// Reads one request from `stream`, answers it from `source` and shuts the stream down (the
/// limits of [`serve`] apply: head size, head timeout, `GET` only).
pub async fn serve_connection<S>(mut stream: S, source: &dyn ItemSource) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reply = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Reply::error(408, "request head not received in time"),
        Ok(Err(status)) => Reply::error(status, "malformed request"),
        Ok(Ok(target)) => match Route::parse(&target) {
            Ok(route) => source.reply(route).await,
            Err(status) => Reply::error(status, "unknown route or bad parameters"),
        },
    };
    tracing::debug!(status = reply.status, "collateral service: answered");
    stream.write_all(&reply.to_bytes()).await?;
    stream.shutdown().await
}

/// Reads the request head; returns the target of a `GET`, or the status to answer.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, u16> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return Err(431);
        }
        let read = stream.read(&mut buffer).await.map_err(|_| 400u16)?;
        if read == 0 {
            return Err(400);
        }
        head.extend_from_slice(buffer.get(..read).unwrap_or_default());
    }
    let text = core::str::from_utf8(&head).map_err(|_| 400u16)?;
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Err(400);
    }
    if method != "GET" {
        return Err(405);
    }
    Ok(target.to_owned())
}

/// The entries read from a directory, shared between requests.
type Listing = Arc<Vec<Arc<CachedCollateral>>>;

/// Answers from a directory of collateral files ([`super::files`]): every `*.json` file is
/// checked at the clock's `now`; files that fail are ignored and logged. The directory is read
/// again at most every 10 s, so an air-gapped site can drop new files in.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    root_der: Vec<u8>,
    clock: Arc<dyn Clock>,
    loaded: Mutex<Option<(u64, Listing)>>,
}

impl DirSource {
    /// A source reading `dir`, trusting `root_der`.
    pub fn new(dir: PathBuf, root_der: Vec<u8>, clock: Arc<dyn Clock>) -> Self {
        Self {
            dir,
            root_der,
            clock,
            loaded: Mutex::new(None),
        }
    }

    /// The usable entries now (reading the directory if the listing is old).
    pub async fn entries(&self) -> Vec<Arc<CachedCollateral>> {
        let now = self.clock.now();
        let cached = self
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let all = match cached {
            Some((at, entries)) if now >= at && now < at.saturating_add(DIR_RELOAD) => entries,
            _ => {
                let dir = self.dir.clone();
                let root = self.root_der.clone();
                let loaded = tokio::task::spawn_blocking(move || load_dir(&dir, &root, now).0)
                    .await
                    .unwrap_or_default();
                let loaded = Arc::new(loaded);
                *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((now, Arc::clone(&loaded)));
                loaded
            }
        };
        all.iter()
            .filter(|e| e.validity.contains(now))
            .cloned()
            .collect()
    }

    async fn answer(&self, route: Route) -> Reply {
        let entries = self.entries().await;
        let number =
            |text: &str, item| signed_facts(text, item).map_or(0, |f| f.evaluation_data_number);
        let pick = |filter: &dyn Fn(&CachedCollateral) -> Option<u32>| {
            entries
                .iter()
                .filter_map(|e| filter(e).map(|n| (n, e.validity.not_after, e)))
                .max_by_key(|(n, until, _)| (*n, *until))
                .map(|(_, _, e)| Arc::clone(e))
        };
        let missing = || Reply::error(404, "no unexpired collateral for this item");
        match route {
            Route::TcbInfo { fmspc, evaluation } => {
                let Some(entry) = pick(&|e| {
                    let n = number(&e.collateral.dcap().tcb_info, "TCB info");
                    (e.key.fmspc == fmspc && evaluation.is_none_or(|asked| asked == n)).then_some(n)
                }) else {
                    return missing();
                };
                let c = entry.collateral.dcap();
                Reply::signed(
                    SignedItem::TcbInfo,
                    wire::TCB_INFO_ISSUER_CHAIN,
                    &SignedJson {
                        text: c.tcb_info.clone(),
                        signature: c.tcb_info_signature.clone(),
                    },
                    &c.tcb_info_issuer_chain,
                )
            }
            Route::QeIdentity { evaluation } => {
                let Some(entry) = pick(&|e| {
                    let n = number(&e.collateral.dcap().qe_identity, "QE identity");
                    evaluation.is_none_or(|asked| asked == n).then_some(n)
                }) else {
                    return missing();
                };
                let c = entry.collateral.dcap();
                Reply::signed(
                    SignedItem::QeIdentity,
                    wire::ENCLAVE_IDENTITY_ISSUER_CHAIN,
                    &SignedJson {
                        text: c.qe_identity.clone(),
                        signature: c.qe_identity_signature.clone(),
                    },
                    &c.qe_identity_issuer_chain,
                )
            }
            Route::PckCrl { ca, .. } => {
                let Some(entry) = pick(&|e| (e.key.ca == ca).then_some(0)) else {
                    return missing();
                };
                let c = entry.collateral.dcap();
                Reply::crl(&route, &c.pck_crl, Some(&c.pck_crl_issuer_chain))
            }
            Route::RootCaCrl => {
                let Some(entry) = pick(&|_| Some(0)) else {
                    return missing();
                };
                Reply::crl(&route, &entry.collateral.dcap().root_ca_crl, None)
            }
        }
    }
}

impl ItemSource for DirSource {
    fn reply(&self, route: Route) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(self.answer(route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_bad_parameters_are_refused() {
        assert_eq!(
            Route::parse("/tdx/certification/v4/tcb?fmspc=B0C06F000000"),
            Ok(Route::TcbInfo {
                fmspc: "B0C06F000000".parse().unwrap(),
                evaluation: None
            })
        );
        assert_eq!(
            Route::parse("/tdx/certification/v4/tcb?fmspc=b0c06f000000&tcbEvaluationDataNumber=17"),
            Ok(Route::TcbInfo {
                fmspc: "B0C06F000000".parse().unwrap(),
                evaluation: Some(17)
            })
        );
        assert_eq!(
            Route::parse("/sgx/certification/v4/pckcrl?ca=processor&encoding=der"),
            Ok(Route::PckCrl {
                ca: PckCa::Processor,
                der: true
            })
        );
        assert_eq!(
            Route::parse("/sgx/certification/v4/rootcacrl"),
            Ok(Route::RootCaCrl)
        );
        assert_eq!(Route::parse("/tdx/certification/v4/tcb"), Err(400));
        assert_eq!(Route::parse("/tdx/certification/v4/tcb?fmspc=zz"), Err(400));
        assert_eq!(
            Route::parse("/sgx/certification/v4/pckcrl?ca=other"),
            Err(400)
        );
        assert_eq!(
            Route::parse("/sgx/certification/v4/pckcrl?ca=platform&encoding=pem"),
            Err(400)
        );
        assert_eq!(Route::parse("/elsewhere"), Err(404));
    }

    #[test]
    fn pem_crl_reads_back_to_the_same_der() {
        let der = std::fs::read(format!(
            "{}/certs/vectors/v4_tdx10_phala_uptodate/pck_crl.der",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(wire::decode_crl(&crl_pem(&der), "PCK CRL").unwrap(), der);
    }
}
