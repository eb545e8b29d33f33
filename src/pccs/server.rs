//! A PCCS-compatible collateral service: a small HTTP/1.1 server on tokio serving the four
//! routes of [`super::PcsClient`] from a directory of collateral files ([`DirSource`]) or from
//! upstream services through a per-item cache ([`UpstreamSource`]). Neither ever serves an item
//! outside its window: an item whose nextUpdate has passed is refetched or answered with 404.
//!
//! One request per connection (`Connection: close`), `GET` only, request head at most 8 KiB
//! read within 10 s; at most 256 connections are served at once. Routes and formats:
//! `docs/collateral.md`.

use core::fmt;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::cache::{load_dir, CachedCollateral};
use super::check::{check_crl_item, check_signed_item, signed_facts, Validity};
use super::client::PcsClient;
use super::clock::Clock;
use super::error::FetchError;
use super::platform::{Fmspc, PckCa};
use super::wire::{self, SignedItem, SignedJson, WireError};

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
    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            chain: None,
            content_type: "text/plain",
            body: format!("{message}\n").into_bytes(),
        }
    }

    fn signed(item: SignedItem, header: &'static str, signed: &SignedJson, chain: &str) -> Self {
        Self {
            status: 200,
            chain: Some((header, chain.to_owned())),
            content_type: "application/json",
            body: wire::signed_json_body(item, signed).into_bytes(),
        }
    }

    fn crl(route: &Route, der: &[u8], chain: Option<&str>) -> Self {
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
            if let Err(error) = handle(stream, source.as_ref()).await {
                tracing::debug!(%peer, %error, "collateral service: connection ended");
            }
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, source: &dyn ItemSource) -> std::io::Result<()> {
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
async fn read_head(stream: &mut TcpStream) -> Result<String, u16> {
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

/// Answers from upstream services (the client's, in order), caching each item until its own
/// nextUpdate and never serving it after. With a cache directory, items are also written there
/// (`{dir}/{item}.json`, see `docs/collateral.md`) and read back at start.
#[derive(Debug)]
pub struct UpstreamSource {
    client: PcsClient,
    items: Mutex<HashMap<Route, (Reply, Validity)>>,
    /// One upstream fetch per item at a time: concurrent requests wait for it.
    fetching: Mutex<HashMap<Route, Arc<tokio::sync::Mutex<()>>>>,
    cache_dir: Option<PathBuf>,
}

impl UpstreamSource {
    /// A source fetching through `client`, persisting to `cache_dir` if given.
    pub async fn new(client: PcsClient, cache_dir: Option<PathBuf>) -> Self {
        let source = Self {
            client,
            items: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            cache_dir,
        };
        source.load().await;
        source
    }

    /// The cached reply for `key` if inside its window now.
    fn cached(&self, key: Route) -> Option<Reply> {
        let now = self.client.clock().now();
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|(_, validity)| validity.contains(now))
            .map(|(reply, _)| reply.clone())
    }

    async fn answer(&self, route: Route) -> Reply {
        let key = cache_key(route);
        if let Some(reply) = self.cached(key) {
            return shape(&route, &reply);
        }
        // Single flight: the first request for an item fetches it, the others wait and then
        // find it cached (or fetch again if that fetch failed).
        let gate = Arc::clone(
            self.fetching
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default(),
        );
        let _turn = gate.lock().await;
        if let Some(reply) = self.cached(key) {
            return shape(&route, &reply);
        }
        let mut errors = Vec::new();
        for service in &self.client.config().services {
            match self.fetch(service, key).await {
                Ok((reply, validity)) => {
                    self.items
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, (reply.clone(), validity));
                    self.persist(key, &reply).await;
                    return shape(&route, &reply);
                }
                Err(error) => {
                    tracing::warn!(service = %service.base, %error, "upstream collateral fetch failed");
                    errors.push(error);
                }
            }
        }
        let status = if errors
            .iter()
            .all(|e| matches!(e, UpstreamError::Fetch(FetchError::NotFound { .. })))
        {
            404
        } else {
            502
        };
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Reply::error(status, &message)
    }

    async fn fetch(
        &self,
        service: &super::client::Service,
        key: Route,
    ) -> Result<(Reply, Validity), UpstreamError> {
        let root = &self.client.config().root_der;
        let now = self.client.clock().now();
        let reply = match key {
            Route::TcbInfo { fmspc, .. } => {
                let (signed, chain, _) = self.client.tcb_info(service, fmspc).await?;
                Reply::signed(
                    SignedItem::TcbInfo,
                    wire::TCB_INFO_ISSUER_CHAIN,
                    &signed,
                    &chain,
                )
            }
            Route::QeIdentity { .. } => {
                let (signed, chain, _) = self.client.qe_identity(service).await?;
                Reply::signed(
                    SignedItem::QeIdentity,
                    wire::ENCLAVE_IDENTITY_ISSUER_CHAIN,
                    &signed,
                    &chain,
                )
            }
            Route::PckCrl { ca, .. } => {
                let (der, chain, _) = self.client.pck_crl(service, ca).await?;
                Reply::crl(&key, &der, Some(&chain))
            }
            Route::RootCaCrl => {
                let (der, _) = self.client.root_ca_crl(service).await?;
                Reply::crl(&key, &der, None)
            }
        };
        let validity = check_reply(key, &reply, root, now)?;
        Ok((reply, validity))
    }

    async fn persist(&self, key: Route, reply: &Reply) {
        let Some(dir) = self.cache_dir.clone() else {
            return;
        };
        let name = item_file_name(key);
        let bytes = serde_json::to_vec_pretty(&serde_json::json!({
            "format": ITEM_FORMAT,
            "chain": reply.chain.as_ref().map(|(_, pem)| pem),
            "body_hex": hex::encode(&reply.body),
        }));
        let Ok(bytes) = bytes else {
            return;
        };
        let written =
            tokio::task::spawn_blocking(move || super::files::write_atomic(&dir, &name, &bytes))
                .await;
        if let Ok(Err(error)) = written {
            tracing::warn!(%error, "collateral item not persisted");
        }
    }

    async fn load(&self) {
        let Some(dir) = self.cache_dir.clone() else {
            return;
        };
        let root = self.client.config().root_der.clone();
        let now = self.client.clock().now();
        let loaded = tokio::task::spawn_blocking(move || load_items(&dir, &root, now))
            .await
            .unwrap_or_default();
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, reply, validity) in loaded {
            items.insert(key, (reply, validity));
        }
    }
}

impl ItemSource for UpstreamSource {
    fn reply(&self, route: Route) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(self.answer(route))
    }
}

#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The `format` of an item file of the upstream cache.
const ITEM_FORMAT: &str = "ratls-collateral-item-v1";

/// One cache entry per item: the evaluation number asked for does not change what upstream is
/// asked (the client's configuration decides), and the PCK CRL encoding is applied on output.
fn cache_key(route: Route) -> Route {
    match route {
        Route::TcbInfo { fmspc, .. } => Route::TcbInfo {
            fmspc,
            evaluation: None,
        },
        Route::QeIdentity { .. } => Route::QeIdentity { evaluation: None },
        Route::PckCrl { ca, .. } => Route::PckCrl { ca, der: true },
        Route::RootCaCrl => Route::RootCaCrl,
    }
}

/// The cached reply in the form `route` asks for (PEM or DER PCK CRL).
fn shape(route: &Route, cached: &Reply) -> Reply {
    match route {
        Route::PckCrl { der: false, .. } => Reply::crl(
            route,
            &cached.body,
            cached.chain.as_ref().map(|(_, pem)| pem.as_str()),
        ),
        _ => cached.clone(),
    }
}

fn item_file_name(key: Route) -> String {
    match key {
        Route::TcbInfo { fmspc, .. } => format!("tcb-{}.json", fmspc.to_hex()),
        Route::QeIdentity { .. } => "qe-identity.json".to_owned(),
        Route::PckCrl { ca, .. } => format!("pckcrl-{ca}.json"),
        Route::RootCaCrl => "rootcacrl.json".to_owned(),
    }
}

fn item_key(name: &str) -> Option<Route> {
    let stem = name.strip_suffix(".json")?;
    if let Some(fmspc) = stem.strip_prefix("tcb-") {
        return Some(Route::TcbInfo {
            fmspc: fmspc.parse().ok()?,
            evaluation: None,
        });
    }
    if let Some(ca) = stem.strip_prefix("pckcrl-") {
        return Some(Route::PckCrl {
            ca: ca.parse().ok()?,
            der: true,
        });
    }
    match stem {
        "qe-identity" => Some(Route::QeIdentity { evaluation: None }),
        "rootcacrl" => Some(Route::RootCaCrl),
        _ => None,
    }
}

/// Checks a cached reply (from upstream or from a file) as the client would.
fn check_reply(key: Route, reply: &Reply, root: &[u8], now: u64) -> Result<Validity, WireError> {
    let chain = reply.chain.as_ref().map(|(_, pem)| pem.as_str());
    let no_chain = |item| WireError::Certificate { item };
    match key {
        Route::TcbInfo { fmspc, .. } => {
            let signed = wire::parse_signed_json(&reply.body, SignedItem::TcbInfo)?;
            let (validity, _) = check_signed_item(
                SignedItem::TcbInfo,
                &signed,
                chain.ok_or(no_chain("TCB info"))?,
                root,
                now,
            )?;
            let got = signed_facts(&signed.text, "TCB info")?
                .fmspc
                .unwrap_or_default();
            if !got.eq_ignore_ascii_case(&fmspc.to_hex()) {
                return Err(WireError::FmspcMismatch {
                    asked: fmspc.to_hex(),
                    got,
                });
            }
            Ok(validity)
        }
        Route::QeIdentity { .. } => {
            let signed = wire::parse_signed_json(&reply.body, SignedItem::QeIdentity)?;
            let (validity, _) = check_signed_item(
                SignedItem::QeIdentity,
                &signed,
                chain.ok_or(no_chain("QE identity"))?,
                root,
                now,
            )?;
            Ok(validity)
        }
        Route::PckCrl { .. } => {
            let der = wire::decode_crl(&reply.body, "PCK CRL")?;
            check_crl_item(
                "PCK CRL",
                &der,
                Some(chain.ok_or(no_chain("PCK CRL"))?),
                root,
                now,
            )
        }
        Route::RootCaCrl => {
            let der = wire::decode_crl(&reply.body, "root CA CRL")?;
            check_crl_item("root CA CRL", &der, None, root, now)
        }
    }
}

fn load_items(dir: &std::path::Path, root: &[u8], now: u64) -> Vec<(Route, Reply, Validity)> {
    let mut out = Vec::new();
    let Ok(paths) = super::files::list(dir) else {
        return out;
    };
    for path in paths {
        let Some(key) = path.file_name().and_then(|n| n.to_str()).and_then(item_key) else {
            continue;
        };
        match load_item(&path, key, root, now) {
            Ok((reply, validity)) => out.push((key, reply, validity)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "collateral item file ignored")
            }
        }
    }
    out
}

fn load_item(
    path: &std::path::Path,
    key: Route,
    root: &[u8],
    now: u64,
) -> Result<(Reply, Validity), String> {
    #[derive(serde::Deserialize)]
    struct ItemFile {
        format: String,
        chain: Option<String>,
        body_hex: String,
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file: ItemFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if file.format != ITEM_FORMAT {
        return Err(format!("unknown format {:?}", file.format));
    }
    let body = hex::decode(&file.body_hex).map_err(|e| e.to_string())?;
    let reply = match key {
        Route::TcbInfo { .. } => Reply {
            status: 200,
            chain: file.chain.map(|pem| (wire::TCB_INFO_ISSUER_CHAIN, pem)),
            content_type: "application/json",
            body,
        },
        Route::QeIdentity { .. } => Reply {
            status: 200,
            chain: file
                .chain
                .map(|pem| (wire::ENCLAVE_IDENTITY_ISSUER_CHAIN, pem)),
            content_type: "application/json",
            body,
        },
        Route::PckCrl { .. } => Reply::crl(&key, &body, file.chain.as_deref()),
        Route::RootCaCrl => {
            let der = wire::decode_crl(&body, "root CA CRL").map_err(|e| e.to_string())?;
            Reply::crl(&key, &der, None)
        }
    };
    let validity = check_reply(key, &reply, root, now).map_err(|e| e.to_string())?;
    Ok((reply, validity))
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

    #[test]
    fn item_file_names_round_trip() {
        for key in [
            Route::TcbInfo {
                fmspc: "90C06F000000".parse().unwrap(),
                evaluation: None,
            },
            Route::QeIdentity { evaluation: None },
            Route::PckCrl {
                ca: PckCa::Platform,
                der: true,
            },
            Route::RootCaCrl,
        ] {
            assert_eq!(item_key(&item_file_name(key)), Some(key));
        }
    }
}
