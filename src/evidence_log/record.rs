//! Records of the evidence log and their byte encoding (`docs/evidence-log.md`). Pure.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::codec::{Digest, Reader, Writer, FORMAT_VERSION};
use super::retire::RetirementMarker;
use super::{Checkpoint, FormatError};
use crate::evidence::{BindingInput, Role, MAX_QUOTE_LEN};
use crate::identity::PeerId;
use crate::level::AttestationLevel;

/// Largest SubjectPublicKeyInfo recorded (the binding's own limit).
pub const MAX_SPKI_LEN: usize = 1024;
/// Longest reason kind, TCB status or profile name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest free-text detail or collateral source.
pub const MAX_TEXT_LEN: usize = 2048;

/// Record kinds (the byte after the version).
mod kind {
    pub(super) const BOND_FORMED: u8 = 1;
    pub(super) const BOND_REFUSED: u8 = 2;
    pub(super) const CHECKPOINT: u8 = 3;
    pub(super) const RETIREMENT: u8 = 4;
}

/// One entry of the log: where it sits in the chain, when it was written, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the log, from 0, without gaps.
    pub index: u64,
    /// When the record was written, unix seconds.
    pub time: u64,
    /// Digest of the previous record (all zero for record 0).
    pub prev: Digest,
    /// What the record says.
    pub body: RecordBody,
}

/// What a record says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
// One record per bond, moved rarely: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum RecordBody {
    /// A bond was formed; this is the evidence of one attested peer of it.
    BondFormed(BondEvidence),
    /// A bond was refused.
    BondRefused(BondRefusal),
    /// The node signed the chain up to the previous record.
    Checkpoint(Checkpoint),
    /// An identity was retired.
    Retirement(RetirementMarker),
}

/// Everything needed to re-verify one attested peer of a formed bond.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondEvidence {
    /// The dialing peer.
    pub client: PeerId,
    /// The accepting peer.
    pub server: PeerId,
    /// Which side wrote this record.
    pub recorder: Role,
    /// Which side this evidence is about (the attested peer).
    pub subject: Role,
    /// The level the bond reached.
    pub level: AttestationLevel,
    /// The TLS exporter value the bond binds (32 or 64 bytes).
    pub exporter: Vec<u8>,
    /// The subject's certificate: the inputs of its certificate binding.
    pub certificate: CertificateFacts,
    /// The quote from the subject's certificate.
    pub cert_quote: Option<QuoteEvidence>,
    /// The subject's bond-proof quote (per-bond freshness).
    pub bond_quote: Option<QuoteEvidence>,
    /// What the recorder concluded.
    pub verdict: Verdict,
}

/// The certificate-binding inputs besides the identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// Start of validity, unix seconds.
    pub not_before: u64,
    /// End of validity, unix seconds.
    pub not_after: u64,
}

/// A quote and the collateral it was verified with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteEvidence {
    /// The quote bytes, in full.
    pub quote: Vec<u8>,
    /// blake3 of the collateral's JSON (the name of the file in the collateral directory).
    pub collateral_digest: Digest,
    /// Where the collateral came from.
    pub collateral_source: CollateralSource,
}

/// Where collateral came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollateralSource {
    /// Loaded from a file or configured in the process (the text names it).
    File(String),
    /// Fetched from a collateral service.
    Service {
        /// The service URL.
        url: String,
        /// When it was fetched, unix seconds.
        fetched_at: u64,
        /// blake3 of the TCB info, QE identity, PCK CRL and root CA CRL as fetched, in that
        /// order.
        item_digests: [Digest; 4],
    },
}

/// What the recorder concluded about the subject's evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The TCB status (as Intel spells it), empty for a Software peer.
    pub tcb_status: String,
    /// The Measurement profile that matched, empty for a Software peer.
    pub profile: String,
}

/// A refused bond: no quote bodies, only what names the attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondRefusal {
    /// The node that refused.
    pub local: PeerId,
    /// Its role in the connection.
    pub local_role: Role,
    /// The refused peer, when its certificate named one.
    pub peer: Option<PeerId>,
    /// A short machine-readable reason (for example a rejection or violation kind).
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
    /// blake3 of the peer's certificate quote, if it presented one.
    pub cert_quote_digest: Option<Digest>,
    /// blake3 of the peer's bond-proof quote, if it sent one.
    pub bond_quote_digest: Option<Digest>,
    /// Digest of the collateral used, if verification got that far.
    pub collateral_digest: Option<Digest>,
}

impl BondEvidence {
    /// The recorder's identity.
    pub fn recorder_id(&self) -> PeerId {
        self.party(self.recorder)
    }

    /// The subject's identity.
    pub fn subject_id(&self) -> PeerId {
        self.party(self.subject)
    }

    fn party(&self, role: Role) -> PeerId {
        match role {
            Role::Client => self.client,
            Role::Server => self.server,
        }
    }

    /// The inputs of the subject's certificate report_data.
    pub fn certificate_binding(&self) -> BindingInput<'_> {
        BindingInput::Certificate {
            spki_der: &self.certificate.spki_der,
            not_before: self.certificate.not_before,
            not_after: self.certificate.not_after,
            peer_id: self.subject_id(),
        }
    }

    /// The inputs of the subject's bond-proof report_data.
    pub fn bond_binding(&self) -> BindingInput<'_> {
        BindingInput::Bond {
            role: self.subject,
            client: self.client,
            server: self.server,
            exporter: &self.exporter,
        }
    }
}

impl Record {
    /// The record payload (what a frame carries and the digest covers).
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        let mut w = Writer::default();
        w.u8(FORMAT_VERSION);
        w.u8(match self.body {
            RecordBody::BondFormed(_) => kind::BOND_FORMED,
            RecordBody::BondRefused(_) => kind::BOND_REFUSED,
            RecordBody::Checkpoint(_) => kind::CHECKPOINT,
            RecordBody::Retirement(_) => kind::RETIREMENT,
        });
        w.u64(self.index);
        w.u64(self.time);
        w.bytes(&self.prev);
        match &self.body {
            RecordBody::BondFormed(b) => encode_formed(&mut w, b)?,
            RecordBody::BondRefused(r) => encode_refused(&mut w, r)?,
            RecordBody::Checkpoint(c) => w.bytes(&c.encode()),
            RecordBody::Retirement(m) => w.bytes32("retirement marker", &m.encode(), 1024)?,
        }
        Ok(w.0)
    }

    /// Reads a record payload; trailing bytes are refused.
    pub fn decode(payload: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(payload);
        let version = r.u8("record version")?;
        if version != FORMAT_VERSION {
            return Err(FormatError::UnknownVersion(version));
        }
        let kind = r.u8("record kind")?;
        let index = r.u64("record index")?;
        let time = r.u64("record time")?;
        let prev = r.array("previous digest")?;
        let body = match kind {
            kind::BOND_FORMED => RecordBody::BondFormed(decode_formed(&mut r)?),
            kind::BOND_REFUSED => RecordBody::BondRefused(decode_refused(&mut r)?),
            kind::CHECKPOINT => RecordBody::Checkpoint(Checkpoint::decode_from(&mut r)?),
            kind::RETIREMENT => RecordBody::Retirement(RetirementMarker::decode(
                r.bytes32("retirement marker", 1024)?,
            )?),
            other => return Err(FormatError::UnknownKind(other)),
        };
        r.finish("record")?;
        Ok(Self {
            index,
            time,
            prev,
            body,
        })
    }
}

pub(super) fn role_byte(role: Role) -> u8 {
    match role {
        Role::Client => 0,
        Role::Server => 1,
    }
}

pub(super) fn read_role(r: &mut Reader<'_>, what: &'static str) -> Result<Role, FormatError> {
    match r.u8(what)? {
        0 => Ok(Role::Client),
        1 => Ok(Role::Server),
        _ => Err(FormatError::Malformed(what)),
    }
}

pub(super) fn level_byte(level: AttestationLevel) -> u8 {
    AttestationLevel::ALL
        .iter()
        .position(|l| *l == level)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

pub(super) fn read_level(r: &mut Reader<'_>) -> Result<AttestationLevel, FormatError> {
    let byte = r.u8("level")?;
    AttestationLevel::ALL
        .get(usize::from(byte))
        .copied()
        .ok_or(FormatError::Malformed("level"))
}

pub(super) fn read_peer(r: &mut Reader<'_>, what: &'static str) -> Result<PeerId, FormatError> {
    Ok(PeerId::from_bytes(r.array(what)?))
}

fn encode_formed(w: &mut Writer, b: &BondEvidence) -> Result<(), FormatError> {
    w.bytes(b.client.as_bytes());
    w.bytes(b.server.as_bytes());
    w.u8(role_byte(b.recorder));
    w.u8(role_byte(b.subject));
    w.u8(level_byte(b.level));
    w.bytes16("exporter", &b.exporter, 64)?;
    w.bytes16("spki", &b.certificate.spki_der, MAX_SPKI_LEN)?;
    w.u64(b.certificate.not_before);
    w.u64(b.certificate.not_after);
    encode_quote(w, b.cert_quote.as_ref())?;
    encode_quote(w, b.bond_quote.as_ref())?;
    w.bytes16("tcb status", b.verdict.tcb_status.as_bytes(), MAX_NAME_LEN)?;
    w.bytes16("profile", b.verdict.profile.as_bytes(), MAX_NAME_LEN)?;
    Ok(())
}

fn decode_formed(r: &mut Reader<'_>) -> Result<BondEvidence, FormatError> {
    Ok(BondEvidence {
        client: read_peer(r, "client")?,
        server: read_peer(r, "server")?,
        recorder: read_role(r, "recorder role")?,
        subject: read_role(r, "subject role")?,
        level: read_level(r)?,
        exporter: r.bytes16("exporter", 64)?.to_vec(),
        certificate: CertificateFacts {
            spki_der: r.bytes16("spki", MAX_SPKI_LEN)?.to_vec(),
            not_before: r.u64("not_before")?,
            not_after: r.u64("not_after")?,
        },
        cert_quote: decode_quote(r)?,
        bond_quote: decode_quote(r)?,
        verdict: Verdict {
            tcb_status: r.string16("tcb status", MAX_NAME_LEN)?,
            profile: r.string16("profile", MAX_NAME_LEN)?,
        },
    })
}

fn encode_quote(w: &mut Writer, q: Option<&QuoteEvidence>) -> Result<(), FormatError> {
    let Some(q) = q else {
        w.u8(0);
        return Ok(());
    };
    w.u8(1);
    w.bytes32("quote", &q.quote, MAX_QUOTE_LEN)?;
    w.bytes(&q.collateral_digest);
    match &q.collateral_source {
        CollateralSource::File(name) => {
            w.u8(1);
            w.bytes16("collateral source", name.as_bytes(), MAX_TEXT_LEN)?;
        }
        CollateralSource::Service {
            url,
            fetched_at,
            item_digests,
        } => {
            w.u8(2);
            w.bytes16("collateral source", url.as_bytes(), MAX_TEXT_LEN)?;
            w.u64(*fetched_at);
            for digest in item_digests {
                w.bytes(digest);
            }
        }
    }
    Ok(())
}

fn decode_quote(r: &mut Reader<'_>) -> Result<Option<QuoteEvidence>, FormatError> {
    match r.u8("quote present")? {
        0 => return Ok(None),
        1 => {}
        _ => return Err(FormatError::Malformed("quote present")),
    }
    let quote = r.bytes32("quote", MAX_QUOTE_LEN)?.to_vec();
    let collateral_digest = r.array("collateral digest")?;
    let collateral_source = match r.u8("collateral source kind")? {
        1 => CollateralSource::File(r.string16("collateral source", MAX_TEXT_LEN)?),
        2 => CollateralSource::Service {
            url: r.string16("collateral source", MAX_TEXT_LEN)?,
            fetched_at: r.u64("collateral fetch time")?,
            item_digests: [
                r.array("collateral item digest")?,
                r.array("collateral item digest")?,
                r.array("collateral item digest")?,
                r.array("collateral item digest")?,
            ],
        },
        _ => return Err(FormatError::Malformed("collateral source kind")),
    };
    Ok(Some(QuoteEvidence {
        quote,
        collateral_digest,
        collateral_source,
    }))
}

fn encode_refused(w: &mut Writer, b: &BondRefusal) -> Result<(), FormatError> {
    w.bytes(b.local.as_bytes());
    w.u8(role_byte(b.local_role));
    match &b.peer {
        None => w.u8(0),
        Some(p) => {
            w.u8(1);
            w.bytes(p.as_bytes());
        }
    }
    w.bytes16("reason", b.reason.as_bytes(), MAX_NAME_LEN)?;
    w.bytes16("detail", b.detail.as_bytes(), MAX_TEXT_LEN)?;
    w.opt_digest(b.cert_quote_digest.as_ref());
    w.opt_digest(b.bond_quote_digest.as_ref());
    w.opt_digest(b.collateral_digest.as_ref());
    Ok(())
}

fn decode_refused(r: &mut Reader<'_>) -> Result<BondRefusal, FormatError> {
    let local = read_peer(r, "local")?;
    let local_role = read_role(r, "local role")?;
    let peer = match r.u8("peer present")? {
        0 => None,
        1 => Some(read_peer(r, "peer")?),
        _ => return Err(FormatError::Malformed("peer present")),
    };
    Ok(BondRefusal {
        local,
        local_role,
        peer,
        reason: r.string16("reason", MAX_NAME_LEN)?,
        detail: r.string16("detail", MAX_TEXT_LEN)?,
        cert_quote_digest: r.opt_digest("certificate quote digest")?,
        bond_quote_digest: r.opt_digest("bond quote digest")?,
        collateral_digest: r.opt_digest("collateral digest")?,
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::evidence_log::store::tests::sample_formed;

    fn sample() -> Record {
        Record {
            index: 7,
            time: 1_700_000_000,
            prev: [0xab; 32],
            body: sample_formed(7),
        }
    }

    #[test]
    fn formed_record_round_trips() {
        let record = sample();
        assert_eq!(Record::decode(&record.encode().unwrap()).unwrap(), record);
    }

    #[test]
    fn truncated_or_extended_record_is_refused() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(
            Record::decode(&longer),
            Err(FormatError::TrailingBytes("record"))
        );
    }

    #[test]
    fn oversized_quote_is_refused_at_encoding() {
        let mut record = sample();
        if let RecordBody::BondFormed(b) = &mut record.body {
            b.cert_quote.as_mut().unwrap().quote = vec![1; MAX_QUOTE_LEN + 1];
        }
        assert!(matches!(
            record.encode(),
            Err(FormatError::TooLarge { what: "quote", .. })
        ));
    }

    proptest! {
        #[test]
        fn mutated_record_never_panics(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = sample().encode().unwrap();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            if let Ok(decoded) = Record::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes (one encoding per record).
                prop_assert_eq!(decoded.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Record::decode(&bytes);
        }
    }
}
