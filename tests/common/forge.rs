//! A client that completes the handshake with a valid attested certificate and then sends a
//! bond proof of its own making: replayed, with the roles swapped, malformed, or none.

use ratls_quic::synthetic::{sample_measurements, SyntheticQuoteProvider, SyntheticTcb};
use ratls_quic::Identity;
use ratls_quic::{parse_certificate, report_data, BindingInput, IssuedCertificate, Role};
use ratls_quic::{BondFailure, ExpectedPeer, PeerRejection};
use ratls_quic::{Endpoint, Error};
use ratls_quic::{Measurements, QuoteProvider, ReportData};

use super::raw::*;
use super::{accept_one, addr, assert_bond_refused, pki};

/// A client that completes the handshake with a valid attested certificate and then sends, as
/// its bond proof, a quote over `bond_input(own id, server id, this connection's exporter)`.
pub struct ForgingClient {
    /// Its identity.
    pub identity: Identity,
    measurements: Measurements,
    certificate: IssuedCertificate,
    endpoint: quinn::Endpoint,
}

impl ForgingClient {
    pub fn new() -> Self {
        let identity = Identity::generate().unwrap();
        let measurements = sample_measurements();
        let now = unix_now();
        let certificate = attested_certificate(
            &identity,
            identity.peer_id(),
            now - 60,
            now + 3600,
            measurements,
        );
        Self {
            identity,
            measurements,
            certificate,
            endpoint: client_endpoint(),
        }
    }

    pub fn quote(&self, input: &BindingInput<'_>) -> Vec<u8> {
        self.quote_with(input, self.measurements)
    }

    pub fn quote_with(&self, input: &BindingInput<'_>, measurements: Measurements) -> Vec<u8> {
        self.quote_on(input, measurements, SyntheticTcb::UpToDate)
    }

    /// A quote from the platform whose PCK leaf lands on TCB level `tcb` (the certificate's
    /// quote comes from the `UpToDate` one).
    pub fn quote_on(
        &self,
        input: &BindingInput<'_>,
        measurements: Measurements,
        tcb: SyntheticTcb,
    ) -> Vec<u8> {
        let report_data = report_data(input).unwrap();
        SyntheticQuoteProvider::new(pki(), measurements, tcb)
            .quote(&report_data)
            .unwrap()
    }

    /// A quote over `report_data` as given (a batch's, say), from this client's platform.
    pub fn quote_report_data(&self, report_data: &ReportData) -> Vec<u8> {
        SyntheticQuoteProvider::new(pki(), self.measurements, SyntheticTcb::UpToDate)
            .quote(report_data)
            .unwrap()
    }

    /// The quote inside this client's certificate.
    pub fn certificate_quote(&self) -> Vec<u8> {
        parse_certificate(&self.certificate.cert_der)
            .unwrap()
            .evidence
            .unwrap()
            .quote
    }

    /// An honest proof for a connection to `server` with this exporter.
    pub fn honest_input<'a>(&self, server: &Endpoint, exporter: &'a [u8; 32]) -> BindingInput<'a> {
        BindingInput::Bond {
            role: Role::Client,
            client: self.identity.peer_id(),
            server: server.peer_id(),
            exporter,
        }
    }

    /// Dials `server` and returns the connection (after the handshake) and its exporter.
    pub async fn dial(&self, server: &Endpoint) -> (quinn::Connection, [u8; 32]) {
        let (tls, slot) =
            attested_client_config(&self.certificate, ExpectedPeer::Exactly(server.peer_id()));
        let conn = dial(&self.endpoint, tls, addr(server)).await.unwrap();
        assert!(slot.take().is_ok(), "the server passed our check");
        let exporter = exporter(&conn);
        (conn, exporter)
    }

    /// Dials `server`, sends the bond message `forge` makes from this connection's exporter,
    /// and returns how the connection ended (it must end before any application stream).
    pub async fn forge(
        &self,
        server: &Endpoint,
        forge: impl FnOnce(&[u8; 32]) -> Vec<u8>,
    ) -> quinn::ConnectionError {
        let (conn, exporter) = self.dial(server).await;
        send_bond_message(&conn, &forge(&exporter)).await;
        conn.accept_bi()
            .await
            .expect_err("no stream on a refused bond")
    }
}

/// Runs one forged bond against `server` and returns the server's typed reason and what the
/// forger observed.
pub async fn forged_bond(
    server: &Endpoint,
    forger: &ForgingClient,
    forge: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> BondFailure {
    let (refused, observed) = tokio::join!(accept_one(server), forger.forge(server, forge));
    assert_bond_refused(&observed);
    match refused {
        Err(Error::Rejected(PeerRejection::Bond(failure))) => failure,
        other => panic!("expected a bond refusal, got {other:?}"),
    }
}
