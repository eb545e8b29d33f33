//! RA-TLS on QUIC for Intel TDX.
//!
//! Every peer has an Ed25519 identity and a short-lived self-signed certificate that carries a TDX
//! quote. Verifiers on both sides check that quote (DCAP signature chain to a trusted root, TCB
//! status, declared Measurements, report_data binding) inside the TLS handshake, so a peer that
//! fails is refused before any stream opens.
//!
//! # What is public
//!
//! Everything a transport user needs is at the crate root, one path per type:
//!
//! | concern | items |
//! |---|---|
//! | identity | [`Identity`], [`PeerId`], [`IdentityError`] |
//! | levels and policy | [`AttestationLevel`], [`Policy`], [`Freshness`], [`MeasurementPolicy`], [`MeasurementProfile`], [`Expected`], [`Register`], [`TcbPolicy`], [`PolicyViolation`], [`PolicyFileError`] |
//! | endpoint | [`Endpoint`], [`EndpointConfig`] and its builder states, [`Accepting`], [`AttestedConnection`], [`PeerInfo`], [`ExpectedPeer`] |
//! | your own quinn endpoint | [`AttestedTlsConfig`] (per-connection rustls configurations, bond judgement), [`PendingPeer`], [`CertifiedPeer`], [`bond_message`], [`batched_bond_message`], [`EXPORTER_LABEL`], [`BOND_REFUSED`], [`ALPN`], [`ALPN_BATCHED`] |
//! | quotes | [`QuoteProvider`], [`ConfigfsTsm`], [`QuoteVerifier`], [`AuthenticQuote`], [`VerifiedQuote`], [`Measurements`], [`ReportData`], [`TcbStatus`] |
//! | collateral | [`CollateralStore`], [`Collateral`], [`StaticCollateral`], [`VerdictCache`] |
//! | batched bond proofs | [`BondQuoteLimits`], [`PeerRate`], [`BondQuoteError`], [`BatchTree`], [`BatchPosition`], [`NodeHash`], [`leaf_hash`], [`node_hash`], [`batch_report_data`], [`verify_batch_binding`], [`BatchError`] |
//! | evidence format | [`report_data`], [`verify_binding`], [`BindingInput`], [`Role`], [`issue_certificate`], [`parse_certificate`], [`Evidence`], [`QuoteLayout`], [`bond_message`] |
//! | errors | [`Error`], [`ConfigError`], [`PeerRejection`], [`BondFailure`], [`AttestationError`], [`AuthenticityError`], [`DcapCheck`], [`EvidenceError`], [`QuoteProviderError`], [`CollateralError`] |
//!
//! Namespaces: [`link`] has mosaik's peer-transport shape (links, ALPN router, address book,
//! committee meshes) over the endpoint; [`measure`] computes Measurements from firmware and
//! kernel images (pure);
//! [`repro`] checks a declared rebuild (it reads files and runs the build); [`evidence_log`]
//! records every bond in a hash-chained, checkpoint-signed log, serves and pulls it, audits it,
//! and holds public bond outcomes and identity retirement markers; `synthetic` (feature
//! `synthetic`) makes a test PKI, quotes signed under it, and small firmware images; `pccs`
//! (feature `pccs`) fetches, caches and serves DCAP collateral.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `cli` | yes | the `ratls` tool (clap, anyhow, tempfile, a blocking HTTP client, tokio's multi-thread runtime); implies `synthetic` |
//! | `synthetic` | via `cli` | the [`synthetic`](crate#features) test PKI: tests, benchmarks, `ratls demo` |
//! | `pccs` | via `cli` | the `pccs` namespace: collateral client for Intel PCS / PCCS-compatible services (async reqwest, this crate's ring provider), the `CollateralCache` store, and a PCCS-compatible HTTP/1.1 service (`docs/collateral.md`) |
//!
//! A library user writes `ratls-quic = { version = "0.1", default-features = false }`: no
//! command-line dependencies, and no code that can make a synthetic root.
//!
//! # Core and shell
//!
//! The core (levels, identity types, evidence encoding and binding, quote layout, DCAP
//! verification, policy, the certificate and bond judgements, alert mapping, crypto) imports no
//! tokio, quinn, filesystem, process or clock: the caller passes `now`. The shell (endpoint, key
//! files, the configfs-tsm provider, rebuild checks, the CLI) does the I/O. `tests/boundary.rs`
//! keeps it so; `docs/architecture.md` has the module map. Quote generation may block and runs
//! on blocking threads, never inside a rustls callback. The crypto provider is ring, named in one
//! module.
//!
//! # Threat model in one paragraph
//!
//! The host, the network and the peer's operator are untrusted; Intel's signing chain, the TDX
//! module and the Measurements pinned in the policy are trusted. A peer is accepted when a quote
//! signed under the trusted root says its TD runs software with pinned Measurements, and that
//! quote is bound to the key that authenticated the TLS handshake and, per bond, to this very
//! connection (its TLS exporter), so a quote can be neither moved to another key nor replayed or
//! relayed into another connection.
//!
//! # What a verified quote proves
//!
//! A [`VerifiedQuote`] proves that a TDX module on a platform whose PCK chains to the trusted
//! root signed (through the quoting enclave) a TD report with these Measurements and this
//! report_data, and that the platform's TCB had the reported status in the given collateral. It
//! does not prove that the Measurements describe software you trust: that is what
//! [`MeasurementPolicy`] is for. It does not prove freshness on its own: freshness comes
//! from binding report_data to a value the verifier chose or contributed to.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::exhaustive_enums)]

// Core: no I/O, no clock.
mod crypto;
mod evidence;
mod level;
pub mod measure;
mod policy;
mod tdx;
mod tls;

// Shell: sockets, tasks, files, processes.
mod configfs;
mod endpoint;
pub mod evidence_log;
mod identity;
pub mod link;
#[cfg(feature = "pccs")]
pub mod pccs;
pub mod repro;

#[cfg(feature = "synthetic")]
pub mod synthetic;

// Entry points for the fuzz targets; not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use endpoint::{
    Accepting, AlpnRoute, AttestedConnection, BondQuoteError, BondQuoteLimits, ConfigError,
    Endpoint, EndpointConfig, EndpointConfigBuilder, Error, PeerExpiry, PeerInfo, PeerRate, Ready,
    RouteError, WantsEvidence, WantsPolicy, WantsVerifier, DEFAULT_RETRY_ABOVE_HANDSHAKES,
    EVIDENCE_EXPIRED, EVIDENCE_EXPIRED_REASON, EVIDENCE_UNRECORDED, INVALID_ALPN,
    INVALID_ALPN_REASON, KEEP_ALIVE, MAX_ALPN_LEN, MAX_CERT_LIFETIME,
};
pub use endpoint::{
    BONDED_STREAMS, PRE_BOND_BIDI_STREAMS, PRE_BOND_RECEIVE_WINDOW, PRE_BOND_UNI_STREAMS,
};
pub use evidence::{
    batch_report_data, encode_batch, leaf_hash, node_hash, path_len, root_from_path,
    verify_batch_binding, BatchError, BatchPosition, BatchTree, NodeHash, BATCH_BINDING_CONTEXT,
    BATCH_NODE_CONTEXT, MAX_AUDIT_PATH, MAX_BATCH_LEAVES,
};
pub use evidence::{
    certificate_report_data, ed25519_spki_der, issue_certificate, parse_certificate, report_data,
    spki_sha256, verify_binding, BindingInput, Evidence, EvidenceError, IssuedCertificate,
    ParsedCertificate, Role, BINDING_CONTEXT, EVIDENCE_OID, EVIDENCE_VERSION, INTEL_TEE_QUOTE_TAG,
    MAX_CERT_LEN, MAX_EXTENSION_LEN, MAX_QUOTE_LEN, MAX_VALIDITY_SECS,
};
pub use identity::{
    Identity, IdentityError, KeyFormatError, PeerId, MAX_KEY_FILE_LEN, PEER_ID_LEN,
};
pub use level::AttestationLevel;
pub use policy::{
    AttestationError, DangerousPolicy, Expected, Freshness, HexError, MeasurementMismatch,
    MeasurementPolicy, MeasurementProfile, Policy, PolicyFileError, PolicyViolation,
    RebuildPinError, Register, RemotePolicy, RemoteSectionMissing, RemoteViolation, TcbPolicy,
    VerifiedQuote, DEFAULT_MAX_COLLATERAL_AGE_SECS,
};
pub use tdx::{
    canonical_quote, normalized_quote, pck_chain_pem, AuthenticQuote, AuthenticityError,
    CacheStats, Collateral, CollateralError, CollateralProvenance, CollateralStore, ConfigfsTsm,
    DangerousQuoteVerifier, DcapCheck, DcapError, DcapStats, Measurements, QuoteFormatError,
    QuoteLayout, QuoteProvider, QuoteProviderError, QuoteVerifier, ReportData, StaticCollateral,
    TcbStatus, Td15ExFields, Td15Fields, TdReportExtras, TdReportKind, UnknownTcbStatus,
    VerdictCache, CONFIGFS_TSM_ROOT, DEFAULT_CACHE_CAPACITY, DEFAULT_MAX_CONCURRENT_DCAP,
    FAILED_QUOTE_SECS, INTEL_SGX_ROOT_CA_DER, MAX_COLLATERAL_LEN, MEASUREMENT_LEN,
};
pub use tls::{
    batched_bond_message, bond_message, AttestedTlsConfig, BondFailure, CertifiedPeer,
    ExpectedPeer, PeerRejection, PendingPeer, RefusalCounts, RejectedPeer, ALPN, ALPN_BATCHED,
    BOND_REFUSED, EXPORTER_LABEL, REFUSAL_LOG_INTERVAL_SECS,
};
