//! Identity retirement markers: a signed statement that an identity is no longer to be trusted
//! from a given time on, naming its successor when there is one. Pure.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use ed25519_dalek::Signature;

use super::codec::{Reader, Writer, FORMAT_VERSION};
use super::FormatError;
use crate::identity::{Identity, PeerId};

/// Magic of an encoded marker.
pub const RETIREMENT_MAGIC: &[u8; 4] = b"RQRM";

/// Bytes both signatures cover start with this text and a zero byte.
pub const RETIREMENT_CONTEXT: &str = "ratls-quic retirement v1";

/// Largest encoded marker.
pub const MAX_MARKER_LEN: usize = 4 + 1 + 32 + 8 + 1 + 32 + 64 + 64;

/// "Identity `retired` is retired from `time` on": signed by the retired key and, when a
/// successor is named, by the successor's key too (so nobody names a successor it does not
/// hold, and nobody retires a key it does not hold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetirementMarker {
    retired: PeerId,
    time: u64,
    successor: Option<PeerId>,
    retired_signature: [u8; 64],
    successor_signature: Option<[u8; 64]>,
}

/// Why a retirement marker is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetirementError {
    /// The retired key's signature does not verify.
    #[error("retirement marker: the retired key's signature does not verify")]
    BadRetiredSignature,
    /// The successor's signature does not verify.
    #[error("retirement marker: the successor's signature does not verify")]
    BadSuccessorSignature,
    /// The successor is the retired identity itself.
    #[error("retirement marker names the retired identity as its own successor")]
    SelfSuccession,
}

/// The identity a peer presented is retired.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("identity {retired} is retired since {since}")]
pub struct RetiredIdentity {
    /// The retired identity.
    pub retired: PeerId,
    /// Retired from this time on, unix seconds.
    pub since: u64,
    /// Its successor, if the marker names one.
    pub successor: Option<PeerId>,
}

impl RetirementMarker {
    /// Retires `retired` from `time` on, naming `successor` if given; signs with both keys.
    pub fn create(
        retired: &Identity,
        time: u64,
        successor: Option<&Identity>,
    ) -> Result<Self, RetirementError> {
        let retired_id = retired.peer_id();
        let successor_id = successor.map(Identity::peer_id);
        if successor_id == Some(retired_id) {
            return Err(RetirementError::SelfSuccession);
        }
        let message = signed_bytes(&retired_id, time, successor_id.as_ref());
        Ok(Self {
            retired: retired_id,
            time,
            successor: successor_id,
            retired_signature: retired.sign(&message),
            successor_signature: successor.map(|s| s.sign(&message)),
        })
    }

    /// The retired identity.
    pub fn retired(&self) -> PeerId {
        self.retired
    }

    /// Retired from this time on, unix seconds.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// The successor, if named.
    pub fn successor(&self) -> Option<PeerId> {
        self.successor
    }

    /// Checks both signatures.
    pub fn verify(&self) -> Result<(), RetirementError> {
        if self.successor == Some(self.retired) {
            return Err(RetirementError::SelfSuccession);
        }
        let message = signed_bytes(&self.retired, self.time, self.successor.as_ref());
        verify(&self.retired, &message, &self.retired_signature)
            .map_err(|()| RetirementError::BadRetiredSignature)?;
        match (self.successor, self.successor_signature) {
            (None, None) => Ok(()),
            (Some(successor), Some(signature)) => verify(&successor, &message, &signature)
                .map_err(|()| RetirementError::BadSuccessorSignature),
            _ => Err(RetirementError::BadSuccessorSignature),
        }
    }

    /// Whether this marker retires `peer` at `time` (the marker's signatures are not checked
    /// here: check them once, with [`Self::verify`], when loading).
    pub fn applies(&self, peer: &PeerId, time: u64) -> Option<RetiredIdentity> {
        (self.retired == *peer && time >= self.time).then_some(RetiredIdentity {
            retired: self.retired,
            since: self.time,
            successor: self.successor,
        })
    }

    /// The encoding: [`RETIREMENT_MAGIC`], version 1, retired (32), time (u64 big-endian),
    /// successor flag (0 or 1), successor (32, flag 1 only), retired key's signature (64),
    /// successor's signature (64, flag 1 only).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(RETIREMENT_MAGIC);
        w.u8(FORMAT_VERSION);
        w.bytes(self.retired.as_bytes());
        w.u64(self.time);
        match self.successor {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.bytes(s.as_bytes());
            }
        }
        w.bytes(&self.retired_signature);
        if let Some(signature) = &self.successor_signature {
            w.bytes(signature);
        }
        w.0
    }

    /// Reads [`Self::encode`]'s form. Signatures are not checked here.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>("marker magic")? != *RETIREMENT_MAGIC {
            return Err(FormatError::Malformed("marker magic"));
        }
        let version = r.u8("marker version")?;
        if version != FORMAT_VERSION {
            return Err(FormatError::UnknownVersion(version));
        }
        let retired = PeerId::from_bytes(r.array("retired identity")?);
        let time = r.u64("retirement time")?;
        let successor = match r.u8("successor flag")? {
            0 => None,
            1 => Some(PeerId::from_bytes(r.array("successor")?)),
            _ => return Err(FormatError::Malformed("successor flag")),
        };
        let retired_signature = r.array("retired signature")?;
        let successor_signature = match successor {
            None => None,
            Some(_) => Some(r.array("successor signature")?),
        };
        r.finish("retirement marker")?;
        Ok(Self {
            retired,
            time,
            successor,
            retired_signature,
            successor_signature,
        })
    }
}

/// The identities a node refuses because a verified marker retired them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetiredIdentities {
    markers: Vec<RetirementMarker>,
}

impl RetiredIdentities {
    /// Adds `marker` once its signatures verify.
    pub fn insert(&mut self, marker: RetirementMarker) -> Result<(), RetirementError> {
        marker.verify()?;
        self.markers.push(marker);
        Ok(())
    }

    /// Fails if a marker retires `peer` at `now`.
    pub fn check(&self, peer: &PeerId, now: u64) -> Result<(), RetiredIdentity> {
        match self.markers.iter().find_map(|m| m.applies(peer, now)) {
            Some(retired) => Err(retired),
            None => Ok(()),
        }
    }

    /// Whether no identity is retired.
    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// The markers.
    pub fn markers(&self) -> &[RetirementMarker] {
        &self.markers
    }
}

fn signed_bytes(retired: &PeerId, time: u64, successor: Option<&PeerId>) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(RETIREMENT_CONTEXT.as_bytes());
    w.u8(0);
    w.bytes(retired.as_bytes());
    w.u64(time);
    match successor {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.bytes(s.as_bytes());
        }
    }
    w.0
}

fn verify(signer: &PeerId, message: &[u8], signature: &[u8; 64]) -> Result<(), ()> {
    let key = signer.verifying_key().map_err(|_| ())?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn marker_with_successor_round_trips_and_verifies() {
        let old = Identity::generate().unwrap();
        let new = Identity::generate().unwrap();
        let marker = RetirementMarker::create(&old, 1000, Some(&new)).unwrap();
        let back = RetirementMarker::decode(&marker.encode()).unwrap();
        assert_eq!(back, marker);
        back.verify().unwrap();
        assert_eq!(back.successor(), Some(new.peer_id()));
        assert!(back.applies(&old.peer_id(), 1000).is_some());
        assert!(back.applies(&old.peer_id(), 999).is_none());
        assert!(back.applies(&new.peer_id(), 2000).is_none());
    }

    #[test]
    fn marker_with_any_changed_byte_is_refused() {
        let old = Identity::generate().unwrap();
        let new = Identity::generate().unwrap();
        for marker in [
            RetirementMarker::create(&old, 5, None).unwrap(),
            RetirementMarker::create(&old, 5, Some(&new)).unwrap(),
        ] {
            let bytes = marker.encode();
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x01;
                let refused = RetirementMarker::decode(&b).map_or(true, |m| m.verify().is_err());
                assert!(
                    refused,
                    "byte {i} of {} changed and still accepted",
                    bytes.len()
                );
            }
            assert!(RetirementMarker::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn marker_naming_a_successor_without_its_signature_is_refused() {
        let old = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        let mut marker = RetirementMarker::create(&old, 5, None).unwrap();
        // Name a successor the retired key did not sign for.
        marker.successor = Some(other.peer_id());
        marker.successor_signature = Some([0; 64]);
        assert!(marker.verify().is_err());
        assert_eq!(
            RetirementMarker::create(&old, 5, Some(&old)),
            Err(RetirementError::SelfSuccession)
        );
    }
}
