//! Test fixtures: bond evidence with real synthetic quotes bound the way the endpoint binds
//! them.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::{BondEvidence, CertificateFacts, CollateralSource, QuoteEvidence, Verdict};
use crate::evidence::{ed25519_spki_der, report_data, BindingInput, Role};
use crate::identity::Identity;
use crate::level::AttestationLevel;
use crate::tdx::synthetic::{
    sample_measurements, QuoteSpec, SyntheticPki, SyntheticPkiParams, SyntheticTcb,
};
use crate::tdx::{Collateral, ReportData};

/// Start of the synthetic collateral window.
pub(crate) const ISSUED: u64 = 1_800_000_000;
/// A time inside it.
pub(crate) const NOW: u64 = ISSUED + 3600;

/// A PKI, its collateral, and two identities that bond.
pub(crate) struct Fixture {
    pub(crate) pki: Arc<SyntheticPki>,
    pub(crate) collateral: Collateral,
    pub(crate) client: Identity,
    pub(crate) server: Identity,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let pki = Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(ISSUED)).unwrap());
        let collateral = Collateral::new(pki.collateral().clone()).unwrap();
        Self {
            pki,
            collateral,
            client: Identity::generate().unwrap(),
            server: Identity::generate().unwrap(),
        }
    }

    fn quote(&self, report_data: ReportData) -> Vec<u8> {
        self.pki
            .quote(&QuoteSpec {
                report_data,
                measurements: sample_measurements(),
                tcb: SyntheticTcb::UpToDate,
            })
            .unwrap()
    }

    /// The server's record of the client's evidence in a bond at `time`, with `exporter`.
    pub(crate) fn evidence(&self, time: u64, exporter: [u8; 32]) -> BondEvidence {
        let subject = self.client.peer_id();
        let spki = ed25519_spki_der(&subject);
        let (not_before, not_after) = (time - 60, time + 3600);
        let cert_rd = report_data(&BindingInput::Certificate {
            spki_der: &spki,
            not_before,
            not_after,
            peer_id: subject,
        })
        .unwrap();
        let bond_rd = report_data(&BindingInput::Bond {
            role: Role::Client,
            client: subject,
            server: self.server.peer_id(),
            exporter: &exporter,
        })
        .unwrap();
        let quote = |q| QuoteEvidence {
            quote: q,
            collateral_digest: *self.collateral.digest(),
            collateral_source: CollateralSource::File("synthetic".into()),
        };
        BondEvidence {
            client: subject,
            server: self.server.peer_id(),
            recorder: Role::Server,
            subject: Role::Client,
            level: AttestationLevel::TdxRaTlsBidirectional,
            exporter: exporter.to_vec(),
            certificate: CertificateFacts {
                spki_der: spki.to_vec(),
                not_before,
                not_after,
            },
            cert_quote: Some(quote(self.quote(cert_rd))),
            bond_quote: Some(quote(self.quote(bond_rd))),
            verdict: Verdict {
                tcb_status: "UpToDate".into(),
                profile: "default".into(),
            },
        }
    }
}
