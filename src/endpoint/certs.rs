//! This side's certificate: issued at start-up, renewed in the background with the same key.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::evidence::{certificate_report_data, issue_certificate, IssuedCertificate};
use crate::identity::Identity;
use crate::level::AttestationLevel;
use crate::tdx::QuoteProvider;
use crate::tls::AttestedTlsConfig;

use super::ConfigError;

/// Allowance for clocks that run behind ours.
pub(crate) const CLOCK_SKEW_SECS: u64 = 60;

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Issues a certificate valid from a minute ago for `lifetime`, with a quote binding it when
/// `provider` is set. Blocking (the quote): run it off the async executor.
pub(crate) fn issue(
    identity: &Identity,
    provider: Option<&dyn QuoteProvider>,
    lifetime: Duration,
    now: u64,
) -> Result<IssuedCertificate, ConfigError> {
    let not_before = now.saturating_sub(CLOCK_SKEW_SECS);
    let not_after = now.saturating_add(lifetime.as_secs());
    let Some(provider) = provider else {
        return Ok(issue_certificate(identity, not_before, not_after, None)?);
    };
    let report_data = certificate_report_data(&identity.peer_id(), not_before, not_after)?;
    let quote = crate::tdx::without_padding(provider.quote(&report_data)?);
    Ok(issue_certificate(
        identity,
        not_before,
        not_after,
        Some((AttestationLevel::TdxLocal, &quote)),
    )?)
}

/// Renews the certificate of `tls` at about two thirds of its lifetime, forever. Failures are
/// logged and retried; the old certificate stays in place until it expires.
pub(crate) async fn renew_forever(
    identity: Arc<Identity>,
    provider: Option<Arc<dyn QuoteProvider>>,
    lifetime: Duration,
    tls: Arc<AttestedTlsConfig>,
) {
    let period = lifetime * 2 / 3;
    let retry = (lifetime / 20).max(Duration::from_secs(1));
    let mut wait = period;
    loop {
        tokio::time::sleep(wait).await;
        let identity = Arc::clone(&identity);
        let provider = provider.clone();
        let issued = tokio::task::spawn_blocking(move || {
            issue(&identity, provider.as_deref(), lifetime, unix_now())
        })
        .await;
        wait = match issued {
            Ok(Ok(issued)) => match tls.renew(&issued) {
                Ok(()) => {
                    tracing::debug!("certificate renewed");
                    period
                }
                Err(error) => {
                    tracing::warn!(%error, "renewed certificate refused by rustls");
                    retry
                }
            },
            Ok(Err(error)) => {
                tracing::warn!(%error, "certificate renewal failed, retrying");
                retry
            }
            Err(error) => {
                tracing::warn!(%error, "certificate renewal task failed, retrying");
                retry
            }
        };
    }
}
