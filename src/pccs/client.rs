//! An async client for Intel PCS v4 and PCCS-compatible collateral services.
//!
//! One [`PcsClient`] holds one reqwest client (rustls with the crate's ring provider and the
//! platform's trust store) and an ordered list of services. [`PcsClient::fetch`] gets the four
//! items of one platform's collateral (concurrently) from the first service that serves all of
//! them, checks
//! them ([`check_collateral`]) and returns the crate's [`Collateral`].
//!
//! Transient failures (timeouts, connection errors, HTTP 429 and 5xx, a body cut short) are
//! retried with exponential backoff, honouring `Retry-After` on 429 up to a cap; anything else
//! moves on to the next service. No base URL is built in: the user declares each one.
//!
//! HTTPS servers are authenticated with the platform's trust store plus any roots in
//! [`ClientConfig::tls_roots`] (a PCCS with a certificate from its own CA). A TLS failure (an
//! unknown issuer, a certificate for another name) is [`FetchError::Tls`] and is not retried.
//! `http://` base URLs are accepted and used without TLS: the collateral items are signed by
//! Intel's PKI and checked here whatever the transport, so a party on the path cannot forge a
//! set, but it can withhold collateral or serve an older, still unexpired set (recorded as
//! fetched now), so the staleness bound of TdxRemote then holds only on a trusted path.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::check::{check_collateral, CollateralFacts};
use super::clock::{Clock, SystemClock};
use super::error::FetchError;
use super::platform::{Fmspc, PckCa, PlatformKey};
use super::wire::{self, SignedItem, SignedJson, WireError};
use crate::tdx::{Collateral, INTEL_SGX_ROOT_CA_DER};

/// What kind of service a base URL points at; they differ only in where the root CA CRL is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceKind {
    /// Intel PCS v4: the root CA CRL comes from the root certificate's CRL distribution point
    /// (or [`ClientConfig::root_crl_url`]).
    Pcs,
    /// A PCCS-compatible service: the root CA CRL comes from `{base}/sgx/certification/v4/rootcacrl`.
    Pccs,
}

/// A declared collateral service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// PCS or PCCS.
    pub kind: ServiceKind,
    /// Base URL, without a trailing slash (`https://pccs.example:8081`).
    pub base: String,
}

impl Service {
    /// A PCCS-compatible service at `base`.
    pub fn pccs(base: &str) -> Self {
        Self {
            kind: ServiceKind::Pccs,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Intel PCS (or a mirror of its routes) at `base`.
    pub fn pcs(base: &str) -> Self {
        Self {
            kind: ServiceKind::Pcs,
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

/// Which TCB info and QE identity a service should return (PCS `update` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateType {
    /// `update=standard`: the collateral of the standard TCB recovery schedule.
    Standard,
    /// `update=early`: collateral of a TCB recovery before the standard date.
    Early,
}

impl UpdateType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Early => "early",
        }
    }
}

/// Knobs of a [`PcsClient`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Services tried in order; the first that serves a complete, valid set wins.
    pub services: Vec<Service>,
    /// Timeout of one request, connection and body included. Default 10 s.
    pub timeout: Duration,
    /// Timeout of the connection alone. Default 5 s.
    pub connect_timeout: Duration,
    /// Attempts per request on transient failures (at least 1). Default 3.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled after each. Default 250 ms.
    pub backoff: Duration,
    /// Longest wait between retries. Default 5 s.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a 429 asking for more is not retried. Default 30 s.
    pub max_retry_after: Duration,
    /// Largest response body accepted. Default 1 MiB (real items are under 30 KB).
    pub max_body_len: usize,
    /// `update=` parameter of TCB info and QE identity requests; none by default.
    pub update: Option<UpdateType>,
    /// `tcbEvaluationDataNumber=` parameter; the numbers returned must equal it.
    pub tcb_evaluation_data_number: Option<u32>,
    /// Trusted root (DER) the fetched collateral must chain to. Default: Intel's.
    pub root_der: Vec<u8>,
    /// Where a [`ServiceKind::Pcs`] service's root CA CRL is fetched; default: the CRL
    /// distribution point of [`Self::root_der`].
    pub root_crl_url: Option<String>,
    /// Extra roots (DER) trusted for the services' HTTPS certificates, **in addition to** the
    /// platform's trust store: a PCCS with a certificate from its own (often self-signed) CA.
    /// Added rather than substituted so that one list of services can mix such a PCCS with
    /// Intel PCS, whose certificate chains to a public CA. Empty by default (platform store
    /// only). An unparsable root is a [`FetchError::Config`] at [`PcsClient::new`].
    pub tls_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl ClientConfig {
    /// Defaults for `services`.
    pub fn new(services: Vec<Service>) -> Self {
        Self {
            services,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 3,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            max_body_len: 1024 * 1024,
            update: None,
            tcb_evaluation_data_number: None,
            root_der: INTEL_SGX_ROOT_CA_DER.to_vec(),
            root_crl_url: None,
            tls_roots: Vec::new(),
        }
    }
}

/// Digests (blake3) of the four fetched items, to record which collateral a verdict used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemDigests {
    /// Of the TCB info JSON text as signed.
    pub tcb_info: [u8; 32],
    /// Of the QE identity JSON text as signed.
    pub qe_identity: [u8; 32],
    /// Of the PCK CRL (DER).
    pub pck_crl: [u8; 32],
    /// Of the root CA CRL (DER).
    pub root_ca_crl: [u8; 32],
}

impl ItemDigests {
    /// The digests of `collateral`'s items.
    pub fn of(collateral: &dcap_qvl::QuoteCollateralV3) -> Self {
        let hash = |bytes: &[u8]| *blake3::hash(bytes).as_bytes();
        Self {
            tcb_info: hash(collateral.tcb_info.as_bytes()),
            qe_identity: hash(collateral.qe_identity.as_bytes()),
            pck_crl: hash(&collateral.pck_crl),
            root_ca_crl: hash(&collateral.root_ca_crl),
        }
    }
}

/// One platform's collateral as fetched and checked.
#[derive(Clone, Debug)]
pub struct FetchedCollateral {
    /// The platform.
    pub key: PlatformKey,
    /// The collateral.
    pub collateral: Arc<Collateral>,
    /// Base URL of the service it came from.
    pub source: String,
    /// When it was fetched, unix seconds (the client's clock).
    pub fetched_at: u64,
    /// What the checks found (window, evaluation numbers).
    pub facts: CollateralFacts,
    /// Digests of the items.
    pub digests: ItemDigests,
}

/// The async collateral client.
#[derive(Clone, Debug)]
pub struct PcsClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    clock: Arc<dyn Clock>,
}

/// A response that passed the status checks.
struct Answer {
    url: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl PcsClient {
    /// A client with the system clock.
    pub fn new(config: ClientConfig) -> Result<Self, FetchError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A client whose fetch times and validity checks use `clock`.
    pub fn with_clock(config: ClientConfig, clock: Arc<dyn Clock>) -> Result<Self, FetchError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        if config.services.is_empty() {
            return Err(FetchError::Config("no collateral service declared".into()));
        }
        if config.update.is_some() && config.tcb_evaluation_data_number.is_some() {
            return Err(FetchError::Config(
                "update and tcbEvaluationDataNumber exclude each other".into(),
            ));
        }
        for service in &config.services {
            reqwest::Url::parse(&service.base)
                .map_err(|e| FetchError::Config(format!("{}: {e}", service.base)))?;
        }
        let tls_error = |e: rustls::Error| FetchError::Config(format!("TLS: {e}"));
        let builder = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?;
        let tls = if config.tls_roots.is_empty() {
            builder.with_platform_verifier().map_err(tls_error)?
        } else {
            let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
                config.tls_roots.iter().cloned(),
                crate::crypto::provider(),
            )
            .map_err(tls_error)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| FetchError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            config: Arc::new(config),
            clock,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The client's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The collateral `quote` needs (its FMSPC and PCK CA from the PCK leaf).
    pub async fn fetch_for_quote(&self, quote: &[u8]) -> Result<FetchedCollateral, FetchError> {
        self.fetch(PlatformKey::from_quote(quote)?).await
    }

    /// Fetches and checks the collateral of `key` from the first service that serves it all.
    pub async fn fetch(&self, key: PlatformKey) -> Result<FetchedCollateral, FetchError> {
        let mut errors = Vec::new();
        for service in &self.config.services {
            match self.fetch_from(service, key).await {
                Ok(fetched) => return Ok(fetched),
                Err(error) => {
                    tracing::warn!(service = %service.base, %key, %error, "collateral fetch failed");
                    errors.push(error);
                }
            }
        }
        if errors.len() == 1 {
            if let Some(error) = errors.pop() {
                return Err(error);
            }
        }
        Err(FetchError::AllServicesFailed(errors))
    }

    async fn fetch_from(
        &self,
        service: &Service,
        key: PlatformKey,
    ) -> Result<FetchedCollateral, FetchError> {
        // The four requests run concurrently; the first error in item order is reported.
        let (tcb, qe, pck, root) = tokio::join!(
            self.tcb_info(service, key.fmspc),
            self.qe_identity(service),
            self.pck_crl(service, key.ca),
            self.root_ca_crl(service),
        );
        let (tcb, tcb_chain, _) = tcb?;
        let (qe, qe_chain, _) = qe?;
        let (pck_crl, pck_crl_chain, crl_url) = pck?;
        let (root_ca_crl, _) = root?;
        let dcap = dcap_qvl::QuoteCollateralV3 {
            pck_crl_issuer_chain: pck_crl_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain: tcb_chain,
            tcb_info: tcb.text,
            tcb_info_signature: tcb.signature,
            qe_identity_issuer_chain: qe_chain,
            qe_identity: qe.text,
            qe_identity_signature: qe.signature,
            pck_certificate_chain: None,
        };
        let fetched_at = self.clock.now();
        let malformed = |source: WireError| FetchError::Malformed {
            url: service.base.clone(),
            source,
        };
        let facts =
            check_collateral(&dcap, &self.config.root_der, fetched_at).map_err(malformed)?;
        if facts.fmspc != key.fmspc {
            return Err(malformed(WireError::FmspcMismatch {
                asked: key.fmspc.to_hex(),
                got: facts.fmspc.to_hex(),
            }));
        }
        if facts.ca != key.ca {
            return Err(FetchError::Malformed {
                url: crl_url,
                source: WireError::Crl {
                    item: "PCK CRL",
                    detail: format!("issued by the {} CA, asked for {}", facts.ca, key.ca),
                },
            });
        }
        if let Some(asked) = self.config.tcb_evaluation_data_number {
            for (item, got) in [
                ("TCB info", facts.tcb_evaluation_data_number),
                ("QE identity", facts.qe_evaluation_data_number),
            ] {
                if got != asked {
                    return Err(malformed(WireError::EvaluationNumber { item, asked, got }));
                }
            }
        }
        let digests = ItemDigests::of(&dcap);
        let collateral = Collateral::new(dcap).map_err(|e| {
            malformed(WireError::Json {
                item: "collateral",
                detail: e.to_string(),
            })
        })?;
        Ok(FetchedCollateral {
            key,
            collateral: Arc::new(collateral),
            source: service.base.clone(),
            fetched_at,
            facts,
            digests,
        })
    }

    fn update_query(&self) -> String {
        match (self.config.update, self.config.tcb_evaluation_data_number) {
            (Some(update), _) => format!("update={}", update.as_str()),
            (None, Some(number)) => format!("tcbEvaluationDataNumber={number}"),
            (None, None) => String::new(),
        }
    }

    /// `GET {base}/tdx/certification/v4/tcb?fmspc=HEX`: the signed TCB info, its issuer chain
    /// (PEM) and the request URL.
    pub async fn tcb_info(
        &self,
        service: &Service,
        fmspc: Fmspc,
    ) -> Result<(SignedJson, String, String), FetchError> {
        let mut url = format!(
            "{}/tdx/certification/v4/tcb?fmspc={}",
            service.base,
            fmspc.to_hex()
        );
        let extra = self.update_query();
        if !extra.is_empty() {
            url.push('&');
            url.push_str(&extra);
        }
        let answer = self.get(&url).await?;
        let chain = chain_header(
            &answer,
            &[wire::TCB_INFO_ISSUER_CHAIN, wire::SGX_TCB_INFO_ISSUER_CHAIN],
        )?;
        let signed = wire::parse_signed_json(&answer.body, SignedItem::TcbInfo)
            .map_err(|source| malformed(&answer, source))?;
        Ok((signed, chain, answer.url))
    }

    /// `GET {base}/tdx/certification/v4/qe/identity`: the signed TD QE identity, its issuer
    /// chain and the request URL.
    pub async fn qe_identity(
        &self,
        service: &Service,
    ) -> Result<(SignedJson, String, String), FetchError> {
        let mut url = format!("{}/tdx/certification/v4/qe/identity", service.base);
        let extra = self.update_query();
        if !extra.is_empty() {
            url.push('?');
            url.push_str(&extra);
        }
        let answer = self.get(&url).await?;
        let chain = chain_header(&answer, &[wire::ENCLAVE_IDENTITY_ISSUER_CHAIN])?;
        let signed = wire::parse_signed_json(&answer.body, SignedItem::QeIdentity)
            .map_err(|source| malformed(&answer, source))?;
        Ok((signed, chain, answer.url))
    }

    /// `GET {base}/sgx/certification/v4/pckcrl?ca=...&encoding=der`: the PCK CRL (DER), its
    /// issuer chain and the request URL.
    pub async fn pck_crl(
        &self,
        service: &Service,
        ca: PckCa,
    ) -> Result<(Vec<u8>, String, String), FetchError> {
        let url = format!(
            "{}/sgx/certification/v4/pckcrl?ca={}&encoding=der",
            service.base,
            ca.as_str()
        );
        let answer = self.get(&url).await?;
        let chain = chain_header(&answer, &[wire::PCK_CRL_ISSUER_CHAIN])?;
        let der = wire::decode_crl(&answer.body, "PCK CRL")
            .map_err(|source| malformed(&answer, source))?;
        Ok((der, chain, answer.url))
    }

    /// The root CA CRL (DER) and its URL: `{base}/sgx/certification/v4/rootcacrl` for a PCCS,
    /// the root certificate's CRL distribution point (or the configured URL) for Intel PCS.
    pub async fn root_ca_crl(&self, service: &Service) -> Result<(Vec<u8>, String), FetchError> {
        let url = match service.kind {
            ServiceKind::Pccs => format!("{}/sgx/certification/v4/rootcacrl", service.base),
            ServiceKind::Pcs => match &self.config.root_crl_url {
                Some(url) => url.clone(),
                None => crl_distribution_point(&self.config.root_der).ok_or_else(|| {
                    FetchError::Config("the trusted root names no CRL distribution point".into())
                })?,
            },
        };
        let answer = self.get(&url).await?;
        let der = wire::decode_crl(&answer.body, "root CA CRL")
            .map_err(|source| malformed(&answer, source))?;
        Ok((der, answer.url))
    }

    /// One GET with retries on transient failures.
    async fn get(&self, url: &str) -> Result<Answer, FetchError> {
        let attempts = self.config.max_attempts.max(1);
        let mut delay = self.config.backoff;
        let mut attempt = 1;
        loop {
            let error = match self.get_once(url).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if !error.is_transient() || attempt >= attempts {
                return Err(error);
            }
            let wait = match &error {
                FetchError::TooManyRequests {
                    retry_after: Some(seconds),
                    ..
                } => {
                    let asked = Duration::from_secs(*seconds);
                    if asked > self.config.max_retry_after {
                        return Err(error);
                    }
                    asked
                }
                _ => delay,
            };
            tracing::debug!(url, attempt, ?wait, %error, "retrying collateral request");
            tokio::time::sleep(wait).await;
            delay = delay.saturating_mul(2).min(self.config.max_backoff);
            attempt += 1;
        }
    }

    async fn get_once(&self, url: &str) -> Result<Answer, FetchError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                FetchError::Timeout {
                    url: url.to_owned(),
                    seconds: self.config.timeout.as_secs_f64(),
                }
            } else if let Some(tls) = tls_cause(&source) {
                FetchError::Tls {
                    url: url.to_owned(),
                    detail: tls.to_string(),
                    source,
                }
            } else {
                FetchError::Connect {
                    url: url.to_owned(),
                    source,
                }
            }
        };
        let mut response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status();
        let owned = || url.to_owned();
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(FetchError::NotFound { url: owned() }),
            StatusCode::GONE => return Err(FetchError::Gone { url: owned() }),
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                return Err(FetchError::TooManyRequests {
                    url: owned(),
                    retry_after,
                });
            }
            s if s.is_server_error() => {
                return Err(FetchError::Server {
                    url: owned(),
                    status: s.as_u16(),
                })
            }
            s => {
                return Err(FetchError::Status {
                    url: owned(),
                    status: s.as_u16(),
                })
            }
        }
        let limit = self.config.max_body_len;
        let too_large = || FetchError::TooLarge {
            url: owned(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let incomplete = |source: reqwest::Error| {
            if source.is_timeout() {
                transport(source)
            } else {
                FetchError::Incomplete {
                    url: url.to_owned(),
                    source,
                }
            }
        };
        while let Some(chunk) = response.chunk().await.map_err(incomplete)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            url: owned(),
            headers: response.headers().clone(),
            body,
        })
    }
}

/// The TLS error (certificate refused, handshake failed) behind a transport error, if any.
fn tls_cause(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // `io::Error::source` skips the error it wraps: step into it with `get_ref`.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => current.source(),
        };
    }
    None
}

fn malformed(answer: &Answer, source: WireError) -> FetchError {
    FetchError::Malformed {
        url: answer.url.clone(),
        source,
    }
}

/// The first of `names` present, percent-decoded to PEM.
fn chain_header(answer: &Answer, names: &[&'static str]) -> Result<String, FetchError> {
    for &name in names {
        if let Some(value) = answer.headers.get(name) {
            return wire::decode_issuer_chain(value.as_bytes(), name)
                .map_err(|source| malformed(answer, source));
        }
    }
    Err(FetchError::MissingHeader {
        url: answer.url.clone(),
        header: names.first().copied().unwrap_or("issuer chain"),
    })
}

/// The first URI of a certificate's CRL distribution points.
fn crl_distribution_point(cert_der: &[u8]) -> Option<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).ok()?;
    cert.extensions().iter().find_map(|ext| {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            return None;
        };
        points
            .iter()
            .find_map(|point| match &point.distribution_point {
                Some(DistributionPointName::FullName(names)) => {
                    names.iter().find_map(|n| match n {
                        GeneralName::URI(uri) => Some((*uri).to_owned()),
                        _ => None,
                    })
                }
                _ => None,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_root_names_its_crl_distribution_point() {
        assert_eq!(
            crl_distribution_point(INTEL_SGX_ROOT_CA_DER).as_deref(),
            Some("https://certificates.trustedservices.intel.com/IntelSGXRootCA.der")
        );
    }

    #[test]
    fn configuration_errors_are_refused_before_any_request() {
        assert!(matches!(
            PcsClient::new(ClientConfig::new(vec![])),
            Err(FetchError::Config(_))
        ));
        assert!(matches!(
            PcsClient::new(ClientConfig::new(vec![Service::pccs("not a url")])),
            Err(FetchError::Config(_))
        ));
        let mut config = ClientConfig::new(vec![Service::pccs("http://127.0.0.1:1")]);
        config.update = Some(UpdateType::Early);
        config.tcb_evaluation_data_number = Some(17);
        assert!(matches!(PcsClient::new(config), Err(FetchError::Config(_))));
    }
}
