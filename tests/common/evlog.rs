//! Evidence-log fixtures: bond evidence with synthetic quotes bound the way the endpoint binds
//! them.

use ratls_quic::evidence_log::{
    BondEvidence, CertificateFacts, CollateralSource, QuoteEvidence, Verdict,
};
use ratls_quic::synthetic::{sample_measurements, QuoteSpec, SyntheticPki, SyntheticTcb};
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::{ed25519_spki_der, report_data, BindingInput, Role};
use ratls_quic::{Collateral, ReportData};

pub fn quote(pki: &SyntheticPki, report_data: ReportData) -> Vec<u8> {
    pki.quote(&QuoteSpec {
        report_data,
        measurements: sample_measurements(),
        tcb: SyntheticTcb::UpToDate,
    })
    .unwrap()
}

/// The server's record of the client's evidence in a bond at `time`.
pub fn evidence(
    pki: &SyntheticPki,
    c: &Collateral,
    client: &Identity,
    server: &Identity,
    time: u64,
) -> BondEvidence {
    let subject = client.peer_id();
    let spki = ed25519_spki_der(&subject);
    let exporter = [time as u8 | 1; 32];
    let cert_rd = report_data(&BindingInput::Certificate {
        spki_der: &spki,
        not_before: time - 60,
        not_after: time + 3600,
        peer_id: subject,
    })
    .unwrap();
    let bond_rd = report_data(&BindingInput::Bond {
        role: Role::Client,
        client: subject,
        server: server.peer_id(),
        exporter: &exporter,
    })
    .unwrap();
    let q = |bytes| QuoteEvidence {
        quote: bytes,
        collateral_digest: *c.digest(),
        collateral_source: CollateralSource::File("synthetic".into()),
    };
    BondEvidence {
        client: subject,
        server: server.peer_id(),
        recorder: Role::Server,
        subject: Role::Client,
        level: AttestationLevel::TdxRaTlsBidirectional,
        exporter: exporter.to_vec(),
        certificate: CertificateFacts {
            spki_der: spki.to_vec(),
            not_before: time - 60,
            not_after: time + 3600,
        },
        cert_quote: Some(q(quote(pki, cert_rd))),
        bond_quote: Some(q(quote(pki, bond_rd))),
        verdict: Verdict {
            tcb_status: "UpToDate".into(),
            profile: "default".into(),
        },
    }
}
