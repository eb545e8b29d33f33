//! A flood of refused handshakes is counted, and does not flood the warn log: at most one
//! `warn` line per refusal reason per `REFUSAL_LOG_INTERVAL_SECS`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::raw::*;
use common::*;

use ratls_quic::synthetic::sample_measurements;
use ratls_quic::{AttestationLevel, Identity, REFUSAL_LOG_INTERVAL_SECS};

/// Log lines written by the subscriber of this test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const FLOOD: u64 = 40;

/// 40 clients without a quote against a TDX floor: 40 refusals counted under their reason, and
/// one warn line per interval that passed, which says how many refusals it stands for. Fails on
/// the code before the log was limited (one warn line per refusal, no counts).
#[tokio::test]
async fn refusal_flood_is_counted_and_the_warn_log_limited() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread test: every task of the endpoint logs to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        policy(AttestationLevel::TdxRaTlsBidirectional),
    ))
    .await;
    let started = Instant::now();
    for _ in 0..FLOOD {
        let (cert, key) = plain_certificate();
        let client = client_endpoint();
        let connecting = dial(
            &client,
            plain_client_config(ClientAuth::Certificate(cert, key)),
            addr(&server),
        );
        let (refused, _) = tokio::join!(accept_one(&server), raw_outcome(connecting));
        assert!(refused.is_err());
    }
    let elapsed = started.elapsed().as_secs();

    let counts = server.refusal_counts();
    assert_eq!(
        counts.get("attestation level below the required floor"),
        Some(&FLOOD),
        "{counts:?}"
    );
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("peer certificate refused"))
        .collect();
    let allowed = 1 + elapsed / REFUSAL_LOG_INTERVAL_SECS;
    assert!(
        !lines.is_empty() && lines.len() as u64 <= allowed,
        "{} warn lines for {FLOOD} refusals in {elapsed} s (at most {allowed}):\n{text}",
        lines.len()
    );
    assert!(lines[0].contains("refusals=1"), "{}", lines[0]);
}
