//! The upstream mode of the collateral service: items fetched from upstream services through
//! the client, cached one by one until their own window ends, optionally persisted.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use super::{ItemSource, Reply, Route};
use crate::pccs::check::{check_crl_item, check_signed_item, signed_facts, Validity};
use crate::pccs::client::{PcsClient, Service};
use crate::pccs::error::FetchError;
use crate::pccs::wire::{self, SignedItem, WireError};

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
        service: &Service,
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
        let written = tokio::task::spawn_blocking(move || {
            crate::pccs::files::write_atomic(&dir, &name, &bytes)
        })
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
    let Ok(paths) = crate::pccs::files::list(dir) else {
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
    use crate::pccs::PckCa;

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
