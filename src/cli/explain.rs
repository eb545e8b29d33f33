//! What the tool says when something fails: each cause once, and what to do about it.
//!
//! The library's errors are typed; this module turns them into lines for a person: the refusal,
//! its cause, and a hint naming the file, key or option to change.

use std::path::Path;

use ratls_quic::{
    AttestationError, Collateral, DcapCheck, Error as EndpointError, PeerRejection, BOND_REFUSED,
};

/// An error and its causes, each written once: a cause whose text the message already contains
/// (a `thiserror` variant that prints its source, then the source again) is left out.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// [`chain`] for an `anyhow` error (its context lines, then the typed causes).
pub(crate) fn anyhow_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let line = cause.to_string();
        if line.is_empty() || text.contains(&line) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&line);
    }
    text
}

/// The hint for a wrong or stale trust anchor or collateral.
pub(crate) const STALE_PKI_HINT: &str = "wrong or stale root/collateral? The quote must chain to \
    the --root given (Intel's SGX Root CA without it), and --collateral must be that PKI's: files \
    written by `serve --synthetic --write-pki` are valid for that server run only; after a \
    restart, use the new ones";

/// A hint for a failed DCAP check, when there is one to give.
pub(crate) fn dcap_hint(check: DcapCheck) -> Option<&'static str> {
    match check {
        DcapCheck::PckChain
        | DcapCheck::RootOrCrl
        | DcapCheck::CertificateChain
        | DcapCheck::QeIdentity
        | DcapCheck::TcbInfo => Some(STALE_PKI_HINT),
        DcapCheck::CollateralExpired => Some(
            "the collateral is past its next update: give current collateral (for synthetic \
             quotes, the files the running server wrote with --write-pki)",
        ),
        DcapCheck::CollateralNotYetValid => {
            Some("the collateral was issued after this machine's clock: check the clock")
        }
        DcapCheck::TcbLevelNotFound => {
            Some("the collateral does not describe this platform: fetch the collateral for it")
        }
        _ => None,
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`, or the number when it is out of range.
pub(crate) fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .map_or_else(
            || format!("unix {secs}"),
            |t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            },
        )
}

/// A `now` this large is more likely milliseconds than seconds (year 5138 and later).
pub(crate) fn looks_like_millis(now: u64) -> bool {
    now >= 100_000_000_000
}

/// The lines explaining an expired or not-yet-valid collateral: its validity window in UTC and
/// `now`, with a hint when `now` looks like milliseconds.
pub(crate) fn window_lines(collateral: &Collateral, now: u64) -> Vec<String> {
    let mut lines = Vec::new();
    match super::window::validity(collateral) {
        Some(window) => lines.push(format!(
            "collateral valid from {} to {} (latest issue date to earliest next update of TCB \
             info, QE identity and CRLs)",
            utc(window.from),
            utc(window.until)
        )),
        None => lines.push("collateral validity window: unreadable".to_owned()),
    }
    lines.push(format!("verification time (--now {now}) is {}", utc(now)));
    if looks_like_millis(now) {
        lines.push(format!(
            "hint: --now takes unix seconds; {now} looks like milliseconds (try --now {})",
            now / 1000
        ));
    }
    lines
}

/// The short text of an attestation failure: no dcap-qvl debug text for expiry, whose window
/// [`window_lines`] states.
pub(crate) fn attestation_summary(error: &AttestationError) -> String {
    match error {
        AttestationError::Dcap {
            check: DcapCheck::CollateralExpired,
            ..
        } => "DCAP verification failed: the collateral (TCB info, QE identity or a CRL) is past \
              its next update at the verification time"
            .to_owned(),
        AttestationError::Dcap {
            check: DcapCheck::CollateralNotYetValid,
            ..
        } => "DCAP verification failed: the collateral was issued after the verification time"
            .to_owned(),
        other => chain(other),
    }
}

/// Why this side refused a peer, each cause once, without dcap-qvl's debug text for expiry.
pub(crate) fn rejection_summary(rejection: &PeerRejection) -> String {
    match rejection {
        PeerRejection::Quote(error) => {
            format!("certificate quote: {}", attestation_summary(error))
        }
        other => chain(other),
    }
}

/// What this side tells its user when it refused a peer: the reason, then what to change where.
pub(crate) fn refusal_advice(rejection: &PeerRejection, policy: &Path) -> Vec<String> {
    let policy = policy.display();
    match rejection {
        PeerRejection::UnknownSoftwareIdentity(peer) => vec![format!(
            "to admit it, add its sw digest to {policy}: under [software], \
             allow = [\"{}\"] (the peer id is not what the allow-list takes)",
            hex::encode(peer.attestation_digest())
        )],
        PeerRejection::BelowFloor {
            required,
            presented,
        } => vec![format!(
            "the peer presented level {presented}; `level` in {policy} requires {required}"
        )],
        PeerRejection::MissingCollateral => vec![
            "give --collateral FILE or --pccs URL (and --root FILE unless the peer's quotes \
             chain to Intel's SGX Root CA): without collateral every quote is refused; with \
             --pccs the fetch this refusal scheduled lets the next attempt through"
                .to_owned(),
        ],
        PeerRejection::Quote(AttestationError::Policy {
            violation: ratls_quic::PolicyViolation::Remote(_),
            ..
        }) => vec![format!(
            "{policy} has a [remote] section (TdxRemote, and every level above it): verify with \
             --pccs URL (or --pcs URL) naming one of its services, not a --collateral file"
        )],
        PeerRejection::UnexpectedPeer { .. } => {
            vec!["--expect names another peer: check the peer id the server printed".to_owned()]
        }
        PeerRejection::Quote(AttestationError::Dcap { check, .. }) => dcap_hint(*check)
            .map(|hint| vec![format!("hint: {hint}")])
            .unwrap_or_default(),
        PeerRejection::Quote(
            AttestationError::Policy { .. } | AttestationError::Prechecked { .. },
        ) => vec![format!(
            "the peer's Measurements or TCB are not admitted by {policy}; `ratls policy init \
             --from-cert` writes a policy pinning a certificate's Measurements"
        )],
        _ => Vec::new(),
    }
}

/// How a connection ended that this side did not refuse: the peer refused us, went silent, or
/// was never there. `own_digest` is this side's Software allow-list digest.
pub(crate) fn connection_failure(error: &EndpointError, own_digest: &[u8; 32]) -> Vec<String> {
    let EndpointError::Connection(conn) = error else {
        return vec![chain(error)];
    };
    match conn {
        quinn::ConnectionError::TimedOut => vec![
            "no answer: nothing responded (is `ratls serve` running there, and is the UDP port \
             reachable?)"
                .to_owned(),
        ],
        quinn::ConnectionError::ConnectionClosed(close) => {
            let code = u64::from(close.error_code);
            let reason = wire_reason(&String::from_utf8_lossy(&close.reason));
            let mut lines = match code.checked_sub(0x100).filter(|alert| *alert < 0x100) {
                Some(alert) => vec![format!(
                    "the peer refused us: TLS alert {} ({alert}): {reason}",
                    alert_name(alert)
                )],
                None => vec![format!("the peer closed the connection: {close}")],
            };
            if reason.contains("identity not allowed") {
                lines.push(format!(
                    "to be admitted, add this side's sw digest to the peer's policy file (its \
                     --policy): under [software], allow = [\"{}\"]",
                    hex::encode(own_digest)
                ));
            }
            lines
        }
        quinn::ConnectionError::ApplicationClosed(close)
            if u64::from(close.error_code) == u64::from(BOND_REFUSED) =>
        {
            vec![format!(
                "the peer refused our bond proof: {}",
                String::from_utf8_lossy(&close.reason)
            )]
        }
        quinn::ConnectionError::ApplicationClosed(close) => vec![format!(
            "the peer closed the connection: {}",
            String::from_utf8_lossy(&close.reason)
        )],
        other => vec![format!("connection failed: {other}")],
    }
}

/// The refusing side's reason inside the close reason rustls and quinn make of its error
/// ("... invalid peer certificate: Other(OtherError(RejectedPeer(\"identity not allowed\")))"),
/// or the whole text when it is not there.
fn wire_reason(text: &str) -> String {
    const START: &str = "RejectedPeer(\"";
    text.find(START)
        .and_then(|at| text.get(at.saturating_add(START.len())..))
        .and_then(|rest| rest.split_once("\")").map(|(reason, _)| reason.to_owned()))
        .unwrap_or_else(|| text.to_owned())
}

fn alert_name(alert: u64) -> &'static str {
    match alert {
        40 => "handshake_failure",
        42 => "bad_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        80 => "internal_error",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "alert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("binding 127.0.0.1:1: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_cause_printed_by_its_parent_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let text = chain(&Outer(io));
        assert_eq!(text, "binding 127.0.0.1:1: Address already in use");
        let any = anyhow::Error::new(Outer(std::io::Error::other("boom"))).context("starting");
        assert_eq!(anyhow_chain(&any), "starting: binding 127.0.0.1:1: boom");
    }

    #[test]
    fn the_refusing_sides_reason_is_read_out_of_the_close_text() {
        let text = "the cryptographic handshake failed: error 46: invalid peer certificate: \
                    Other(OtherError(RejectedPeer(\"identity not allowed\")))";
        assert_eq!(wire_reason(text), "identity not allowed");
        assert_eq!(wire_reason("something else"), "something else");
    }

    #[test]
    fn times_are_utc_and_millis_are_spotted() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_750_377_600), "2025-06-20 00:00:00 UTC");
        assert!(looks_like_millis(1_750_377_600_000));
        assert!(!looks_like_millis(1_750_377_600));
    }

    #[test]
    fn software_refusal_names_the_digest_and_the_table() {
        let id = ratls_quic::Identity::generate().unwrap();
        let advice = refusal_advice(
            &PeerRejection::UnknownSoftwareIdentity(id.peer_id()),
            Path::new("server.toml"),
        );
        let digest = hex::encode(id.attestation_digest());
        assert!(
            advice[0].contains(&format!("allow = [\"{digest}\"]")),
            "{advice:?}"
        );
        assert!(advice[0].contains("server.toml"), "{advice:?}");
        assert!(advice[0].contains("[software]"), "{advice:?}");
        assert!(!advice[0].contains(&id.peer_id().to_string()), "{advice:?}");
    }
}
