//! Signed checkpoints: the node's signature over (index, chain head, time). Pure.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use ed25519_dalek::Signature;

use super::codec::{Digest, Reader, Writer, FORMAT_VERSION};
use super::FormatError;
use crate::identity::{Identity, PeerId};

/// Magic of a checkpoint on its own (a checkpoint file, or one served by the evidence protocol).
pub const CHECKPOINT_MAGIC: &[u8; 4] = b"RQCP";

/// Bytes the signature covers start with this text and a zero byte.
pub const CHECKPOINT_CONTEXT: &str = "ratls-quic evidence-log checkpoint v1";

/// Length of a checkpoint body (inside a record).
pub const CHECKPOINT_BODY_LEN: usize = 8 + 32 + 8 + 32 + 64;

/// The node's signed statement that record `index` of its log has digest `head`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Index of the last record covered.
    pub index: u64,
    /// Digest of that record: the chain head.
    pub head: Digest,
    /// When the checkpoint was signed, unix seconds.
    pub time: u64,
    /// The signing node.
    pub signer: PeerId,
    /// Ed25519 signature over [`Self::signed_bytes`].
    pub signature: [u8; 64],
}

/// How a log disagrees with a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointMismatch {
    /// The checkpoint signature does not verify under its signer.
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// The log holds fewer records than the checkpoint covers: it was truncated.
    #[error("log truncated: checkpoint covers record {index}, log has {len} records")]
    Truncated {
        /// The checkpoint's index.
        index: u64,
        /// Records in the log.
        len: u64,
    },
    /// The log's record at the checkpoint's index has another digest: a forked history.
    #[error("forked history: record {index} differs from the signed checkpoint")]
    Forked {
        /// The checkpoint's index.
        index: u64,
    },
}

impl Checkpoint {
    /// Signs (index, head, time) with `identity`.
    pub fn sign(identity: &Identity, index: u64, head: Digest, time: u64) -> Self {
        let signer = identity.peer_id();
        let signature = identity.sign(&signed_bytes(index, &head, time, &signer));
        Self {
            index,
            head,
            time,
            signer,
            signature,
        }
    }

    /// The bytes the signature covers: [`CHECKPOINT_CONTEXT`], a zero byte, index (u64
    /// big-endian), head (32), time (u64 big-endian), signer (32).
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(self.index, &self.head, self.time, &self.signer)
    }

    /// Checks the signature under [`Self::signer`].
    pub fn verify_signature(&self) -> Result<(), CheckpointMismatch> {
        let key = self
            .signer
            .verifying_key()
            .map_err(|_| CheckpointMismatch::BadSignature)?;
        key.verify_strict(
            &self.signed_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| CheckpointMismatch::BadSignature)
    }

    /// Checks the signature and that `digests` (the digest of every record of a log, in order)
    /// agree with this checkpoint.
    pub fn check_log(&self, digests: &[Digest]) -> Result<(), CheckpointMismatch> {
        self.verify_signature()?;
        let len = u64::try_from(digests.len()).unwrap_or(u64::MAX);
        let at = usize::try_from(self.index)
            .ok()
            .and_then(|i| digests.get(i));
        match at {
            None => Err(CheckpointMismatch::Truncated {
                index: self.index,
                len,
            }),
            Some(digest) if *digest == self.head => Ok(()),
            Some(_) => Err(CheckpointMismatch::Forked { index: self.index }),
        }
    }

    /// The body as it appears inside a checkpoint record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.index);
        w.bytes(&self.head);
        w.u64(self.time);
        w.bytes(self.signer.as_bytes());
        w.bytes(&self.signature);
        w.0
    }

    pub(super) fn decode_from(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        Ok(Self {
            index: r.u64("checkpoint index")?,
            head: r.array("checkpoint head")?,
            time: r.u64("checkpoint time")?,
            signer: PeerId::from_bytes(r.array("checkpoint signer")?),
            signature: r.array("checkpoint signature")?,
        })
    }

    /// The standalone form: [`CHECKPOINT_MAGIC`], version byte 1, then the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5usize.saturating_add(CHECKPOINT_BODY_LEN));
        out.extend_from_slice(CHECKPOINT_MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.encode());
        out
    }

    /// Reads the standalone form. The signature is not checked here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>("checkpoint magic")? != *CHECKPOINT_MAGIC {
            return Err(FormatError::Malformed("checkpoint magic"));
        }
        let version = r.u8("checkpoint version")?;
        if version != FORMAT_VERSION {
            return Err(FormatError::UnknownVersion(version));
        }
        let checkpoint = Self::decode_from(&mut r)?;
        r.finish("checkpoint")?;
        Ok(checkpoint)
    }
}

fn signed_bytes(index: u64, head: &Digest, time: u64, signer: &PeerId) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(CHECKPOINT_CONTEXT.as_bytes());
    w.u8(0);
    w.u64(index);
    w.bytes(head);
    w.u64(time);
    w.bytes(signer.as_bytes());
    w.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_verifies() {
        let id = Identity::generate().unwrap();
        let cp = Checkpoint::sign(&id, 2, [7; 32], 1_700_000_000);
        let back = Checkpoint::from_bytes(&cp.to_bytes()).unwrap();
        assert_eq!(back, cp);
        back.check_log(&[[1; 32], [2; 32], [7; 32]]).unwrap();
        assert_eq!(
            back.check_log(&[[1; 32], [2; 32]]),
            Err(CheckpointMismatch::Truncated { index: 2, len: 2 })
        );
        assert_eq!(
            back.check_log(&[[1; 32], [2; 32], [8; 32], [9; 32]]),
            Err(CheckpointMismatch::Forked { index: 2 })
        );
    }

    #[test]
    fn checkpoint_with_changed_field_fails_signature() {
        let id = Identity::generate().unwrap();
        let cp = Checkpoint::sign(&id, 5, [3; 32], 10);
        let bytes = cp.to_bytes();
        for i in 5..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            let changed = Checkpoint::from_bytes(&b).unwrap();
            assert_eq!(
                changed.verify_signature(),
                Err(CheckpointMismatch::BadSignature),
                "byte {i}"
            );
        }
        assert!(Checkpoint::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }
}
