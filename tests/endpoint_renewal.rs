//! Certificates are renewed in the background, with the same key, before they expire.

mod common;

use std::time::Duration;

use common::*;
use ratls_quic::parse_certificate;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::AttestationLevel;
use ratls_quic::ExpectedPeer;
use ratls_quic::Identity;
use ratls_quic::{Endpoint, EndpointConfig};

const LEVEL: AttestationLevel = AttestationLevel::TdxRaTlsBidirectional;

async fn short_lived(lifetime: Duration) -> Endpoint {
    let (verifier, collateral) = verifier();
    let config = EndpointConfig::builder(Identity::generate().unwrap())
        .with_policy(policy(LEVEL))
        .with_quote_provider(provider(sample_measurements()))
        .with_quote_verifier(verifier, collateral)
        .cert_lifetime(lifetime)
        .build()
        .unwrap();
    bind(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_is_renewed_at_two_thirds_with_the_same_key() {
    // Renewal is due after 2 s; validity is whole seconds, so the renewed certificate differs.
    let server = short_lived(Duration::from_secs(3)).await;
    let first = parse_certificate(&server.current_certificate()).unwrap();
    assert_eq!(
        first.not_after - first.not_before,
        60 + 3,
        "a minute of skew allowance"
    );

    let mut renewed = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let current = parse_certificate(&server.current_certificate()).unwrap();
        if current != first {
            renewed = Some(current);
            break;
        }
    }
    let renewed = renewed.expect("no renewal within 4 s of a 3 s lifetime");
    assert_eq!(renewed.peer_id, first.peer_id, "same identity key");
    assert!(renewed.not_after > first.not_after);
    assert!(
        renewed.evidence.is_some(),
        "the renewed certificate carries a fresh quote"
    );
    assert_ne!(
        renewed.evidence.as_ref().unwrap().quote,
        first.evidence.as_ref().unwrap().quote,
        "the quote binds the new validity"
    );

    // The renewed certificate is what peers now see, and they accept it.
    let client = short_lived(Duration::from_secs(3600)).await;
    let (accepted, connected) =
        pair(&server, &client, ExpectedPeer::Exactly(server.peer_id())).await;
    accepted.unwrap();
    let connected = connected.unwrap();
    let seen = connected
        .peer_identity()
        .and_then(|identity| {
            identity
                .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .expect("peer certificate chain");
    assert_eq!(
        parse_certificate(&seen[0]).unwrap().not_after,
        renewed.not_after
    );
}
