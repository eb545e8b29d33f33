//! The table "Refusals on the wire" of `docs/evidence.md`, row by row: each rejection's TLS alert,
//! QUIC CRYPTO_ERROR code and reason phrase as the code produces them, and, over real UDP on
//! loopback, the exact reason phrase a refused peer reads in the CONNECTION_CLOSE.

mod common;

use std::collections::BTreeSet;

use common::raw::*;
use common::*;

use ratls_quic::evidence_log::RetiredIdentity;
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{
    AttestationLevel, Collateral, EvidenceError, Identity, PeerRejection, QuoteProvider,
    EVIDENCE_VERSION,
};

/// One row of the table.
#[derive(Debug)]
struct Row {
    case: String,
    alert: u8,
    code: u64,
    reason: String,
}

fn table() -> Vec<Row> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/evidence.md")).unwrap();
    let section = doc
        .split("## Refusals on the wire")
        .nth(1)
        .expect("docs/evidence.md has the section \"Refusals on the wire\"");
    let section = section.split("\n## ").next().unwrap();
    let rows: Vec<Row> = section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 5, "{line}");
            let alert = cells[2]
                .rsplit_once('(')
                .and_then(|(_, n)| n.strip_suffix(')'))
                .unwrap_or_else(|| panic!("alert cell {:?}", cells[2]));
            Row {
                case: cells[0].trim_matches('`').to_owned(),
                alert: alert.parse().unwrap(),
                code: u64::from_str_radix(cells[3].trim_start_matches("0x"), 16).unwrap(),
                reason: cells[4].to_owned(),
            }
        })
        .collect();
    assert!(rows.len() >= 20, "only {} rows read", rows.len());
    rows
}

/// A rejection of the kind a row names, made the way the code makes it where that is cheap
/// (policy and DCAP failures come from real verifications of synthetic quotes).
fn sample(case: &str) -> PeerRejection {
    use EvidenceError as E;
    let pid = Identity::generate().unwrap().peer_id();
    let evidence = |e| PeerRejection::Evidence(e);
    match case {
        "malformed" => evidence(E::Malformed("x")),
        "too-large" => evidence(E::TooLarge {
            what: "quote",
            len: 2,
            max: 1,
        }),
        "duplicate-extension" => evidence(E::DuplicateExtension),
        "unknown-version" => evidence(E::UnknownVersion(2)),
        "unsupported-algorithm" => evidence(E::UnsupportedAlgorithm),
        "bad-signature" => evidence(E::BadSignature),
        "empty-quote" => {
            // What the parser says of an extension whose quote is empty.
            let identity = Identity::generate().unwrap();
            let now = unix_now();
            let ext = evidence_value(EVIDENCE_VERSION, 1, &[], &spki(&identity));
            let issued = certificate_with_extension(&identity, now - 60, now + 600, ext);
            PeerRejection::Evidence(ratls_quic::parse_certificate(&issued.cert_der).unwrap_err())
        }
        "pubkey-mismatch" => {
            let identity = Identity::generate().unwrap();
            let other = Identity::generate().unwrap();
            let now = unix_now();
            let ext = evidence_value(EVIDENCE_VERSION, 1, &[1; 64], &spki(&other));
            let issued = certificate_with_extension(&identity, now - 60, now + 600, ext);
            PeerRejection::Evidence(ratls_quic::parse_certificate(&issued.cert_der).unwrap_err())
        }
        "expired" => evidence(E::Expired {
            not_after: 1,
            now: 2,
        }),
        "not-yet-valid" => evidence(E::NotYetValid {
            not_before: 2,
            now: 1,
        }),
        "binding-mismatch" => evidence(E::BindingMismatch),
        "empty-binding-input" => evidence(E::EmptyBindingInput("exporter")),
        "no-certificate" => PeerRejection::NoCertificate,
        "quote-not-authentic" | "quote-policy" => {
            let (verifier, _) = verifier();
            let collateral = Collateral::new(pki().collateral().clone()).unwrap();
            let mut other = sample_measurements();
            other.mr_td[0] ^= 1;
            let quote = provider(other)
                .quote(&ratls_quic::ReportData([7; 64]))
                .unwrap();
            let quote = if case == "quote-policy" {
                quote
            } else {
                // A byte of the signed TD report: the quote signature no longer verifies.
                let mut broken = quote;
                broken[100] ^= 1;
                broken
            };
            let policy = policy(AttestationLevel::TdxLocal);
            PeerRejection::Quote(
                verifier
                    .verify(&quote, &collateral, unix_now(), &policy)
                    .unwrap_err(),
            )
        }
        "missing-collateral" => PeerRejection::MissingCollateral,
        "below-floor" => PeerRejection::BelowFloor {
            required: AttestationLevel::TdxRaTlsBidirectional,
            presented: AttestationLevel::Software,
        },
        "unexpected-peer" => PeerRejection::UnexpectedPeer {
            expected: pid,
            found: pid,
        },
        "unknown-software-identity" => PeerRejection::UnknownSoftwareIdentity(pid),
        "retired" => PeerRejection::Retired(RetiredIdentity {
            retired: pid,
            since: 1,
            successor: None,
        }),
        other => panic!("docs/evidence.md names case {other:?}, which this test does not know"),
    }
}

/// Every rejection the handshake can produce has a row; each row's alert, code and reason are
/// the code's.
#[test]
fn every_row_of_the_table_is_what_the_code_sends() {
    let rows = table();
    let cases: BTreeSet<&str> = rows.iter().map(|row| row.case.as_str()).collect();
    assert_eq!(cases.len(), rows.len(), "a case appears twice");
    for known in [
        "malformed",
        "too-large",
        "duplicate-extension",
        "unknown-version",
        "unsupported-algorithm",
        "bad-signature",
        "empty-quote",
        "pubkey-mismatch",
        "expired",
        "not-yet-valid",
        "binding-mismatch",
        "empty-binding-input",
        "no-certificate",
        "quote-not-authentic",
        "quote-policy",
        "missing-collateral",
        "below-floor",
        "unexpected-peer",
        "unknown-software-identity",
        "retired",
    ] {
        assert!(
            cases.contains(known),
            "docs/evidence.md lacks the row {known:?}"
        );
    }
    for row in &rows {
        let rejection = sample(&row.case);
        let alert = match rejection.to_rustls_error() {
            rustls::Error::InvalidCertificate(error) => {
                u8::from(rustls::AlertDescription::from(error))
            }
            rustls::Error::NoCertificatesPresented => {
                u8::from(rustls::AlertDescription::CertificateRequired)
            }
            other => panic!("{}: {rejection:?} maps to {other:?}", row.case),
        };
        assert_eq!(alert, row.alert, "{}: {rejection:?}: alert", row.case);
        assert_eq!(0x100 + u64::from(alert), row.code, "{}: code", row.case);
        assert_eq!(
            rejection.wire_reason(),
            row.reason,
            "{}: {rejection:?}: reason",
            row.case
        );
    }
}

fn row(case: &str) -> Row {
    table().into_iter().find(|row| row.case == case).unwrap()
}

/// Asserts the peer's close is the table's row: CRYPTO_ERROR code and the reason phrase, exactly.
#[track_caller]
fn assert_reads_row(error: &quinn::ConnectionError, case: &str) {
    let row = row(case);
    match error {
        quinn::ConnectionError::ConnectionClosed(close) => {
            assert_eq!(u64::from(close.error_code), row.code, "{case}: {close:?}");
            assert_eq!(
                String::from_utf8_lossy(&close.reason),
                row.reason,
                "{case}: the reason the refused peer reads"
            );
        }
        other => panic!("{case}: expected a CONNECTION_CLOSE, got {other:?}"),
    }
}

/// Over QUIC, a client the acceptor refuses reads exactly its row's code and reason: no Rust
/// error text. Fails on the code before `close_reason.rs`, where the peer read
/// `invalid peer certificate: Other(OtherError(RejectedPeer("identity not allowed")))`.
#[tokio::test]
async fn refused_clients_read_the_documented_reason() {
    let mut software_floor = policy(AttestationLevel::Software);
    software_floor.set_level(AttestationLevel::Software);
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        software_floor,
    ))
    .await;
    let now = unix_now();
    let empty_quote = {
        let identity = Identity::generate().unwrap();
        let ext = evidence_value(EVIDENCE_VERSION, 1, &[], &spki(&identity));
        certificate_with_extension(&identity, now - 60, now + 600, ext)
    };
    let pubkey_mismatch = {
        let identity = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        let good = attested_certificate(
            &identity,
            identity.peer_id(),
            now - 60,
            now + 600,
            sample_measurements(),
        );
        let quote = ratls_quic::parse_certificate(&good.cert_der)
            .unwrap()
            .evidence
            .unwrap()
            .quote;
        let ext = evidence_value(EVIDENCE_VERSION, 1, &quote, &spki(&other));
        certificate_with_extension(&identity, now - 60, now + 600, ext)
    };
    let (plain_cert, plain_key) = plain_certificate();
    let clients = [
        ("no-certificate", ClientAuth::None),
        (
            "empty-quote",
            ClientAuth::Certificate(
                empty_quote.cert_der.clone(),
                empty_quote.key_der.clone_key(),
            ),
        ),
        (
            "pubkey-mismatch",
            ClientAuth::Certificate(
                pubkey_mismatch.cert_der.clone(),
                pubkey_mismatch.key_der.clone_key(),
            ),
        ),
        (
            "unknown-software-identity",
            ClientAuth::Certificate(plain_cert, plain_key),
        ),
    ];
    for (case, auth) in clients {
        let client = client_endpoint();
        let connecting = dial(&client, plain_client_config(auth), addr(&server));
        let (refused, outcome) = tokio::join!(accept_one(&server), raw_outcome(connecting));
        assert!(refused.is_err(), "{case}: accepted");
        assert_reads_row(&outcome, case);
    }
}

/// The dialer's refusal reaches a server the same way: a raw server presenting a certificate
/// whose quote binds another key reads the row `binding-mismatch`.
#[tokio::test]
async fn refused_servers_read_the_documented_reason() {
    let identity = Identity::generate().unwrap();
    let now = unix_now();
    let unbound = attested_certificate(
        &identity,
        Identity::generate().unwrap().peer_id(),
        now - 60,
        now + 600,
        sample_measurements(),
    );
    let raw = raw_server(&unbound);
    let raw_addr = raw.local_addr().unwrap();
    let dialer = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(AttestationLevel::TdxRaTlsBidirectional),
    ))
    .await;
    let accept = async {
        let incoming = raw.accept().await.unwrap();
        match incoming.await {
            Err(error) => error,
            Ok(conn) => conn.closed().await,
        }
    };
    let (dialed, seen) = tokio::join!(
        dialer.connect(raw_addr, ratls_quic::ExpectedPeer::AnyAllowedByPolicy),
        accept
    );
    assert!(dialed.is_err());
    assert_reads_row(&seen, "binding-mismatch");
}
