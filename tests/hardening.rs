//! Hardening over real UDP on loopback: no expensive work for a peer that proved nothing (cheap
//! checks before DCAP, verdicts cached only once binding and policy passed), one byte form per
//! quote, and lifetimes.

mod common;

use std::sync::Arc;

use common::raw::*;
use common::rejections::*;
use common::*;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{
    issue_certificate, parse_certificate, AttestationError, AttestationLevel, CacheStats, Endpoint,
    EndpointConfig, EvidenceError, ExpectedPeer, Identity, PeerRejection, QuoteFormatError,
    QuoteVerifier, VerdictCache,
};

/// An attested bidirectional endpoint judging peers with `verifier` (whose counters and cache
/// the test reads through its clone).
async fn endpoint_with(quote_verifier: QuoteVerifier) -> Endpoint {
    let (_, collateral) = verifier();
    bind(
        EndpointConfig::builder(Identity::generate().unwrap())
            .with_policy(policy(BIDIRECTIONAL))
            .with_quote_provider(provider(sample_measurements()))
            .with_quote_verifier(quote_verifier, collateral)
            .build()
            .unwrap(),
    )
    .await
}

/// Presents `quote` in a certificate of a fresh identity to `server` and returns the server's
/// verdict.
async fn present(server: &Endpoint, quote: &[u8]) -> PeerRejection {
    let identity = Identity::generate().unwrap();
    let now = unix_now();
    let issued = issue_certificate(
        &identity,
        now - 60,
        now + 3600,
        Some((AttestationLevel::TdxLocal, quote)),
    )
    .unwrap();
    let (tls, _pending) = attested_client_config(&issued, ExpectedPeer::AnyAllowedByPolicy);
    let client = client_endpoint();
    let connecting = dial(&client, tls, addr(server));
    let (accepted, _observed) = tokio::join!(accept_one(server), raw_outcome(connecting));
    match accepted {
        Err(ratls_quic::Error::Rejected(rejection)) => rejection,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The quote in `endpoint`'s current certificate: what anyone who dialed it can harvest.
fn harvested_quote(endpoint: &Endpoint) -> Vec<u8> {
    let cert = parse_certificate(endpoint.current_certificate().as_ref()).unwrap();
    cert.evidence.unwrap().quote
}

/// `quote` with a NUL byte after its PEM chain (as Intel's quoting enclave writes it), the
/// three length fields that end with the quote grown by one: the same quote, another spelling.
fn with_trailing_nul(quote: &[u8]) -> Vec<u8> {
    let layout = ratls_quic::QuoteLayout::parse(quote).unwrap();
    let mut out = quote[..layout.canonical_len].to_vec();
    out.push(0);
    let outer = layout.signed_len + 4 + 128 + 2;
    for at in [layout.signed_len, outer, layout.pck_chain_offset - 4] {
        let value = u32::from_le_bytes(out[at..at + 4].try_into().unwrap()) + 1;
        out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    out
}

#[tokio::test]
async fn quote_bound_to_another_key_is_refused_before_dcap() {
    let (quote_verifier, _) = verifier();
    let server = endpoint_with(quote_verifier.clone()).await;
    // A genuine quote over the certificate binding of another identity.
    let other = Identity::generate().unwrap().peer_id();
    let now = unix_now();
    let report_data = ratls_quic::certificate_report_data(&other, now - 60, now + 3600).unwrap();
    let quote =
        ratls_quic::QuoteProvider::quote(&*provider(sample_measurements()), &report_data).unwrap();

    let rejection = present(&server, &quote).await;

    assert!(
        matches!(
            rejection,
            PeerRejection::Evidence(EvidenceError::BindingMismatch)
        ),
        "{rejection:?}"
    );
    assert_eq!(server.handshake_checks(), 1);
    assert_eq!(
        quote_verifier.dcap_stats().runs,
        0,
        "DCAP ran for an unbound quote"
    );
    assert_eq!(
        quote_verifier.cache_stats(),
        CacheStats::default(),
        "the verdict cache was consulted"
    );
}

#[tokio::test]
async fn quote_with_other_measurements_is_refused_before_dcap() {
    let (quote_verifier, _) = verifier();
    let server = endpoint_with(quote_verifier.clone()).await;
    let identity = Identity::generate().unwrap();
    let mut other = sample_measurements();
    other.rtmr[3][0] ^= 1;
    let now = unix_now();
    let issued = attested_certificate(&identity, identity.peer_id(), now - 60, now + 3600, other);
    let (tls, _pending) = attested_client_config(&issued, ExpectedPeer::AnyAllowedByPolicy);
    let client = client_endpoint();
    let connecting = dial(&client, tls, addr(&server));
    let (accepted, _) = tokio::join!(accept_one(&server), raw_outcome(connecting));

    assert!(
        matches!(
            rejection(&accepted),
            PeerRejection::Quote(AttestationError::Prechecked { .. })
        ),
        "{accepted:?}"
    );
    assert_eq!(
        measurement_mismatch(rejection(&accepted)),
        ratls_quic::Register::Rtmr3
    );
    assert_eq!(quote_verifier.dcap_stats().runs, 0);
    assert_eq!(quote_verifier.cache_stats(), CacheStats::default());
}

#[tokio::test]
async fn harvested_quote_in_another_spelling_neither_enters_nor_evicts_the_verdict_cache() {
    // One verdict slot: an attempt that took it would evict the honest peer's verdict.
    let (quote_verifier, _) = verifier();
    let quote_verifier = quote_verifier.with_cache(Arc::new(VerdictCache::new(1)));
    let server = endpoint_with(quote_verifier.clone()).await;
    let honest = attested_endpoint(BIDIRECTIONAL).await;
    let (accepted, connected) = pair(&server, &honest, ExpectedPeer::AnyAllowedByPolicy).await;
    accepted.unwrap();
    connected.unwrap();
    let before = quote_verifier.cache_stats();
    assert_eq!(before.entries, 1);
    let runs = quote_verifier.dcap_stats().runs;

    let harvested = harvested_quote(&honest);
    for variant in [harvested.clone(), with_trailing_nul(&harvested)] {
        let rejection = present(&server, &variant).await;
        assert!(
            matches!(
                rejection,
                PeerRejection::Evidence(EvidenceError::BindingMismatch)
            ),
            "{rejection:?}"
        );
    }
    assert_eq!(
        quote_verifier.cache_stats(),
        before,
        "the cache moved for refused quotes"
    );
    assert_eq!(quote_verifier.dcap_stats().runs, runs);

    // The honest peer's verdict is still there: its next bond costs no DCAP run.
    let (accepted, connected) = pair(&server, &honest, ExpectedPeer::AnyAllowedByPolicy).await;
    accepted.unwrap();
    connected.unwrap();
    assert_eq!(quote_verifier.dcap_stats().runs, runs);
    assert!(quote_verifier.cache_stats().hits > before.hits);
}

#[tokio::test]
async fn relabelled_pck_chain_and_zero_padding_are_refused_as_malformed() {
    let (quote_verifier, _) = verifier();
    let server = endpoint_with(quote_verifier.clone()).await;
    let identity = Identity::generate().unwrap();
    let now = unix_now();
    let (not_before, not_after) = (now - 60, now + 3600);
    let report_data =
        ratls_quic::certificate_report_data(&identity.peer_id(), not_before, not_after).unwrap();
    let quote =
        ratls_quic::QuoteProvider::quote(&*provider(sample_measurements()), &report_data).unwrap();
    let layout = ratls_quic::QuoteLayout::parse(&quote).unwrap();

    let mut relabelled = quote.clone();
    let at = layout.pck_chain_offset + "-----BEGIN ".len();
    relabelled[at..at + 11].copy_from_slice(b"XERTIFICATE");
    let mut padded = quote.clone();
    padded.extend_from_slice(&[0; 16]);

    for (variant, what) in [(relabelled, "relabelled"), (padded, "padded")] {
        let issued = issue_certificate(
            &identity,
            not_before,
            not_after,
            Some((AttestationLevel::TdxLocal, &variant)),
        )
        .unwrap();
        let (tls, _pending) = attested_client_config(&issued, ExpectedPeer::AnyAllowedByPolicy);
        let client = client_endpoint();
        let connecting = dial(&client, tls, addr(&server));
        let (accepted, _) = tokio::join!(accept_one(&server), raw_outcome(connecting));
        let expected = match what {
            "relabelled" => matches!(
                rejection(&accepted),
                PeerRejection::Quote(AttestationError::Format(
                    QuoteFormatError::PckChainEncoding(_)
                ))
            ),
            _ => matches!(
                rejection(&accepted),
                PeerRejection::Quote(AttestationError::Format(QuoteFormatError::TrailingBytes {
                    count: 16,
                    ..
                }))
            ),
        };
        assert!(expected, "{what}: {accepted:?}");
    }
    assert_eq!(quote_verifier.dcap_stats().runs, 0);
}

fn attested_builder() -> ratls_quic::EndpointConfigBuilder<ratls_quic::Ready> {
    let (quote_verifier, collateral) = verifier();
    EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(BIDIRECTIONAL))
        .with_quote_provider(provider(sample_measurements()))
        .with_quote_verifier(quote_verifier, collateral)
}

#[tokio::test]
async fn builder_refuses_lifetimes_that_issuance_would_refuse() {
    // Issuance backdates not_before by a minute of clock skew: 24 h of lifetime is 24 h and a
    // minute of validity, more than a certificate may have.
    let day = std::time::Duration::from_secs(24 * 3600);
    assert!(matches!(
        attested_builder().cert_lifetime(day).build(),
        Err(ratls_quic::ConfigError::CertificateLifetime(d)) if d == day
    ));
    assert_eq!(
        ratls_quic::MAX_CERT_LIFETIME,
        day - std::time::Duration::from_secs(60)
    );
    let longest = bind(
        attested_builder()
            .cert_lifetime(ratls_quic::MAX_CERT_LIFETIME)
            .build()
            .unwrap(),
    )
    .await;
    let cert = parse_certificate(longest.current_certificate().as_ref()).unwrap();
    assert_eq!(cert.not_after - cert.not_before, 24 * 3600);
}

fn application_code(error: &quinn::ConnectionError) -> Option<(u64, Vec<u8>)> {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            Some((close.error_code.into_inner(), close.reason.to_vec()))
        }
        _ => None,
    }
}

#[tokio::test]
async fn connection_closes_when_the_peer_certificate_expires() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = bind(
        attested_builder()
            .cert_lifetime(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
    )
    .await;
    let client_cert = parse_certificate(client.current_certificate().as_ref()).unwrap();
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    // The earliest end of the evidence: the client's two-second certificate, not the server's
    // hour-long one (nor the synthetic collateral's days).
    assert_eq!(accepted.not_after(), client_cert.not_after);
    assert!(connected.not_after() > client_cert.not_after + 600);

    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), accepted.closed())
        .await
        .expect("the connection outlived the peer certificate");
    assert!(
        matches!(closed, quinn::ConnectionError::LocallyClosed),
        "the acceptor closes it: {closed:?}"
    );
    let expected = Some((
        u64::from(ratls_quic::EVIDENCE_EXPIRED),
        ratls_quic::EVIDENCE_EXPIRED_REASON.as_bytes().to_vec(),
    ));
    assert!(unix_now() > client_cert.not_after);
    // The dialer reads the same code from the acceptor's close.
    let observed = tokio::time::timeout(std::time::Duration::from_secs(5), connected.closed())
        .await
        .unwrap();
    assert_eq!(application_code(&observed), expected, "{observed:?}");
}

#[tokio::test]
async fn peer_expiry_keep_leaves_the_connection_open() {
    let server = bind(
        attested_builder()
            .at_peer_expiry(ratls_quic::PeerExpiry::Keep)
            .build()
            .unwrap(),
    )
    .await;
    let client = bind(
        attested_builder()
            .cert_lifetime(std::time::Duration::from_secs(1))
            .at_peer_expiry(ratls_quic::PeerExpiry::Keep)
            .build()
            .unwrap(),
    )
    .await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    let not_after = accepted.not_after();
    while unix_now() <= not_after + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (echoed, ()) = tokio::join!(round_trip(&connected, b"still here"), echo_once(&accepted));
    assert_eq!(echoed, b"still here");
}

/// A quote provider that counts the quotes it makes.
#[derive(Debug)]
struct Counting {
    inner: Arc<ratls_quic::synthetic::SyntheticQuoteProvider>,
    made: std::sync::atomic::AtomicUsize,
}

impl ratls_quic::QuoteProvider for Counting {
    fn quote(
        &self,
        report_data: &ratls_quic::ReportData,
    ) -> Result<Vec<u8>, ratls_quic::QuoteProviderError> {
        self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.quote(report_data)
    }

    fn name(&self) -> &'static str {
        "counting"
    }
}

#[tokio::test]
async fn software_dialer_that_sends_garbage_costs_the_acceptor_no_quote() {
    let client_id = Identity::generate().unwrap();
    let mut software_floor = policy(AttestationLevel::Software);
    software_floor
        .software_allow
        .insert(client_id.attestation_digest());
    let counting = Arc::new(Counting {
        inner: provider(sample_measurements()),
        made: Default::default(),
    });
    let (quote_verifier, collateral) = verifier();
    let server = bind(
        EndpointConfig::builder(Identity::generate().unwrap())
            .with_policy(software_floor)
            .with_quote_provider(Arc::clone(&counting) as Arc<dyn ratls_quic::QuoteProvider>)
            .with_quote_verifier(quote_verifier, collateral)
            .build()
            .unwrap(),
    )
    .await;
    let made_at_bind = counting.made.load(std::sync::atomic::Ordering::SeqCst);
    let now = unix_now();
    let issued = issue_certificate(&client_id, now - 60, now + 3600, None).unwrap();

    for garbage in [&b"not a bond proof"[..], &b"RQB1\x07\x00\x00\x00\x00"[..]] {
        let (tls, _pending) =
            attested_client_config(&issued, ExpectedPeer::Exactly(server.peer_id()));
        let client = client_endpoint();
        let dialer = async {
            let conn = dial(&client, tls, addr(&server)).await.unwrap();
            send_bond_message(&conn, garbage).await;
            conn.closed().await
        };
        let (refused, observed) = tokio::join!(accept_one(&server), dialer);
        assert!(
            matches!(
                rejection(&refused),
                PeerRejection::Bond(ratls_quic::BondFailure::Malformed(_))
            ),
            "{refused:?}"
        );
        assert_bond_refused(&observed);
    }
    assert_eq!(
        counting.made.load(std::sync::atomic::Ordering::SeqCst),
        made_at_bind,
        "a dialer that proved nothing made the acceptor quote"
    );

    // An honest Software dialer still bonds, and costs the one quote its bond needs.
    let (tls, _pending) = attested_client_config(&issued, ExpectedPeer::Exactly(server.peer_id()));
    let client = client_endpoint();
    let dialer = async {
        let conn = dial(&client, tls, addr(&server)).await.unwrap();
        send_bond_message(&conn, &ratls_quic::bond_message(None)).await;
        let mut proof = conn.accept_uni().await.unwrap();
        proof.read_to_end(1 << 16).await.unwrap()
    };
    let (accepted, proof) = tokio::join!(accept_one(&server), dialer);
    accepted.unwrap();
    assert!(proof.len() > 1000, "the acceptor's proof carries its quote");
    assert_eq!(
        counting.made.load(std::sync::atomic::Ordering::SeqCst),
        made_at_bind + 1
    );
}

#[tokio::test]
async fn two_hundred_sequential_bonds_from_one_peer_form_with_the_default_limits() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    assert_eq!(
        *server.config().bond_quote_limits(),
        ratls_quic::BondQuoteLimits::default()
    );
    for i in 0..200 {
        let (accepted, connected) =
            pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;
        let (accepted, connected) = (
            accepted.unwrap_or_else(|e| panic!("bond {i}: {e}")),
            connected.unwrap_or_else(|e| panic!("bond {i}: {e}")),
        );
        accepted.close(0u32.into(), b"");
        connected.close(0u32.into(), b"");
    }
}

#[tokio::test]
async fn sequential_dialer_over_its_rate_is_slowed_not_refused() {
    // A rate far below how fast one peer dials here: two quotes, then five a second.
    let endpoint = || async {
        let mut limits = ratls_quic::BondQuoteLimits::default();
        limits.peer_rate(ratls_quic::PeerRate::new(2, 5.0));
        bind(attested_builder().bond_quotes(limits).build().unwrap()).await
    };
    let (server, client) = (endpoint().await, endpoint().await);
    let started = std::time::Instant::now();
    for i in 0..20 {
        let (accepted, connected) =
            pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;
        accepted.unwrap_or_else(|e| panic!("bond {i}: {e}"));
        connected.unwrap_or_else(|e| panic!("bond {i}: {e}"));
    }
    // Eighteen quotes beyond the burst at five a second: at least 3.6 s of waiting.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(3400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn under_load_unvalidated_addresses_get_a_retry_first() {
    // From one handshake in progress on, unvalidated addresses are sent a Retry.
    let server = bind(
        attested_builder()
            .retry_above_handshakes(1)
            .build()
            .unwrap(),
    )
    .await;
    let first_client = attested_endpoint(BIDIRECTIONAL).await;
    let second_client = attested_endpoint(BIDIRECTIONAL).await;
    let expected = ExpectedPeer::Exactly(server.peer_id());

    let first_dial = first_client.connect(addr(&server), expected);
    let second_dial = second_client.connect(addr(&server), expected);
    let serve = async {
        // Below the threshold: no Retry, the address is not validated.
        let first = server.accept().await.unwrap();
        assert!(!first.remote_address_validated());
        assert_eq!(server.retries_sent(), 0);
        // The first handshake is in progress (its Accepting is held): the second dialer is
        // sent a Retry, and the attempt that reaches the application answered it.
        let second = server.accept().await.unwrap();
        assert!(second.remote_address_validated());
        assert_eq!(server.retries_sent(), 1);
        tokio::join!(first.establish(), second.establish())
    };
    let ((first, second), first_dialed, second_dialed) =
        tokio::join!(serve, first_dial, second_dial);
    for result in [
        first.map(drop),
        second.map(drop),
        first_dialed.map(drop),
        second_dialed.map(drop),
    ] {
        result.unwrap();
    }
}

#[tokio::test]
async fn at_rest_no_retry_is_sent() {
    let server = attested_endpoint(BIDIRECTIONAL).await;
    let client = attested_endpoint(BIDIRECTIONAL).await;
    let accept = async {
        let accepting = server.accept().await.unwrap();
        assert!(!accepting.remote_address_validated());
        accepting.establish().await
    };
    let (accepted, connected) = tokio::join!(
        accept,
        client.connect(addr(&server), ExpectedPeer::AnyAllowedByPolicy)
    );
    accepted.unwrap();
    connected.unwrap();
    assert_eq!(server.retries_sent(), 0);
}

/// A provider that hands out its quotes in a zero-padded buffer, as configfs-tsm may.
#[derive(Debug)]
struct Padding(Arc<ratls_quic::synthetic::SyntheticQuoteProvider>);

impl ratls_quic::QuoteProvider for Padding {
    fn quote(
        &self,
        report_data: &ratls_quic::ReportData,
    ) -> Result<Vec<u8>, ratls_quic::QuoteProviderError> {
        let mut quote = self.0.quote(report_data)?;
        quote.resize(quote.len() + 70, 0);
        Ok(quote)
    }

    fn name(&self) -> &'static str {
        "padding"
    }
}

#[tokio::test]
async fn a_provider_that_pads_its_quotes_still_bonds() {
    // Verifiers refuse padding inside certificates and proofs, so this side cuts it off first.
    let padded = || {
        let (quote_verifier, collateral) = verifier();
        EndpointConfig::builder(Identity::generate().unwrap())
            .with_policy(policy(BIDIRECTIONAL))
            .with_quote_provider(Arc::new(Padding(provider(sample_measurements()))))
            .with_quote_verifier(quote_verifier, collateral)
            .build()
            .unwrap()
    };
    let server = bind(padded()).await;
    let client = bind(padded()).await;
    let quote = harvested_quote(&server);
    assert_eq!(
        quote.len(),
        ratls_quic::QuoteLayout::parse(&quote)
            .unwrap()
            .canonical_len
    );
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    accepted.unwrap();
    connected.unwrap();
}
