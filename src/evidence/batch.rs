//! Batched bond proofs: one quote for many bonds, each with its own audit path.
//!
//! Every pending bond has its own binding value, exactly the bond report_data input of
//! [`super::binding`] (purpose `bond`, role, both identities, this connection's exporter). Its
//! leaf hash enters a Merkle tree built as in RFC 9162 section 2.1 (leaf and inner-node prefixes
//! `0x00` / `0x01`, the largest-power-of-two split for odd sizes), and the quote's report_data
//! commits to the root together with the leaf count under its own derive-key context. A verifier
//! recomputes its own leaf from its own view of the connection, climbs the audit path and
//! compares the result with the quote's report_data. `docs/binding.md` ("Batched bond proofs")
//! gives the construction byte by byte with a worked example.
//!
//! Pure: no I/O, no clock. Every input may come from a peer, so nothing here panics.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use subtle::ConstantTimeEq;

use super::binding::{encode, field, tag};
use super::{BindingInput, EvidenceError};
use crate::tdx::ReportData;

/// The blake3 derive-key context of tree nodes (leaves and inner nodes).
pub const BATCH_NODE_CONTEXT: &str = "ratls-quic bond batch v1";

/// The blake3 derive-key context of a batched report_data (version 2 of the report_data
/// construction; version 1 is [`super::BINDING_CONTEXT`]).
pub const BATCH_BINDING_CONTEXT: &str = "ratls-quic report_data v2";

/// Largest number of leaves in one batch.
pub const MAX_BATCH_LEAVES: usize = 1024;

/// Longest audit path: the depth of a tree of [`MAX_BATCH_LEAVES`] leaves.
pub const MAX_AUDIT_PATH: usize = 10;

/// Prefix of a leaf's hash input (RFC 9162 section 2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an inner node's hash input.
const NODE_PREFIX: u8 = 0x01;

/// A tree node: the first 32 bytes of blake3 in derive-key mode with [`BATCH_NODE_CONTEXT`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeHash(pub [u8; 32]);

impl NodeHash {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for NodeHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "NodeHash({})", hex::encode(self.0))
    }
}

/// Why a batch could not be built or a batch position is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The leaf count is zero or above [`MAX_BATCH_LEAVES`].
    #[error("batch leaf count {0} is outside 1 ..= {MAX_BATCH_LEAVES}")]
    CountOutOfRange(u64),
    /// The leaf index is not below the leaf count.
    #[error("leaf index {index} is not below the leaf count {count}")]
    IndexOutOfRange {
        /// The index given.
        index: u64,
        /// The leaf count given.
        count: u64,
    },
    /// A binding input of another purpose than `bond` was offered as a leaf.
    #[error("only bond binding inputs are batch leaves")]
    NotABond,
    /// The audit path does not have the length the index and count give.
    #[error("audit path has {found} hashes, index and count give {expected}")]
    PathLength {
        /// The length the tree shape gives.
        expected: usize,
        /// The length received.
        found: usize,
    },
}

/// Where one bond's leaf sits in a batch, and the hashes that lead from it to the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPosition {
    /// Zero-based index of the leaf.
    pub index: u64,
    /// Number of leaves in the batch.
    pub count: u64,
    /// Sibling hashes from the leaf's level up to the root's children (RFC 9162 order).
    pub path: Vec<NodeHash>,
}

/// The tree over one batch's leaves, with every level kept so audit paths cost no hashing.
#[derive(Clone, Debug)]
pub struct BatchTree {
    /// `levels[0]` are the leaves; the last level holds the root alone.
    levels: Vec<Vec<NodeHash>>,
}

/// The hash of a leaf: `H(0x00 || encode(input))`, where `encode(input)` is the byte string whose
/// hash is a single bond proof's report_data ([`super::report_data`]). Only purpose `bond` is a leaf; incomplete inputs fail closed as
/// they do for [`super::report_data`].
pub fn leaf_hash(input: &BindingInput<'_>) -> Result<NodeHash, EvidenceError> {
    if !matches!(input, BindingInput::Bond { .. }) {
        return Err(EvidenceError::Batch(BatchError::NotABond));
    }
    let encoded = encode(input)?;
    let mut hasher = blake3::Hasher::new_derive_key(BATCH_NODE_CONTEXT);
    hasher.update(&[LEAF_PREFIX]);
    hasher.update(&encoded);
    Ok(NodeHash(*hasher.finalize().as_bytes()))
}

/// The hash of an inner node: `H(0x01 || left || right)`.
pub fn node_hash(left: &NodeHash, right: &NodeHash) -> NodeHash {
    let mut hasher = blake3::Hasher::new_derive_key(BATCH_NODE_CONTEXT);
    hasher.update(&[NODE_PREFIX]);
    hasher.update(&left.0);
    hasher.update(&right.0);
    NodeHash(*hasher.finalize().as_bytes())
}

/// The byte string hashed into a batched report_data (exposed for documentation tests and
/// outside re-implementations): purpose `bond-batch`, the leaf count, the root.
pub fn encode_batch(root: &NodeHash, count: u64) -> Result<Vec<u8>, EvidenceError> {
    check_count(count)?;
    let mut out = Vec::with_capacity(64);
    field(&mut out, tag::PURPOSE, b"bond-batch");
    field(&mut out, tag::LEAF_COUNT, &count.to_be_bytes());
    field(&mut out, tag::ROOT, &root.0);
    Ok(out)
}

/// The 64-byte report_data of a batch: blake3 in derive-key mode with
/// [`BATCH_BINDING_CONTEXT`] over [`encode_batch`], 64 bytes of XOF output.
pub fn batch_report_data(root: &NodeHash, count: u64) -> Result<ReportData, EvidenceError> {
    let encoded = encode_batch(root, count)?;
    let mut hasher = blake3::Hasher::new_derive_key(BATCH_BINDING_CONTEXT);
    hasher.update(&encoded);
    let mut out = [0u8; 64];
    hasher.finalize_xof().fill(&mut out);
    Ok(ReportData(out))
}

/// The number of hashes in the audit path of leaf `index` in a tree of `count` leaves.
pub fn path_len(index: u64, count: u64) -> Result<usize, BatchError> {
    check_position(index, count)?;
    let (mut index, mut count, mut len) = (index, count, 0usize);
    while count > 1 {
        let k = split(count);
        if index < k {
            count = k;
        } else {
            index = index.saturating_sub(k);
            count = count.saturating_sub(k);
        }
        len = len.saturating_add(1);
    }
    Ok(len)
}

/// The root that `leaf` at `position` leads to. Fails when the position is impossible or the
/// path has the wrong length; a wrong sibling only gives a wrong root.
pub fn root_from_path(leaf: &NodeHash, position: &BatchPosition) -> Result<NodeHash, BatchError> {
    let expected = path_len(position.index, position.count)?;
    if position.path.len() != expected {
        return Err(BatchError::PathLength {
            expected,
            found: position.path.len(),
        });
    }
    climb(leaf, position.index, position.count, &position.path)
}

/// Checks that `actual` (the report_data of a verified quote) commits to the leaf of `expected`
/// at `position`: recomputes the leaf from the verifier's own binding input, climbs the audit
/// path and compares [`batch_report_data`] of the result in constant time, all 64 bytes.
///
/// A proof made for another bond (another exporter, role or peer) fails with
/// [`EvidenceError::BindingMismatch`]; an impossible position or a path of the wrong length
/// with [`EvidenceError::Batch`].
pub fn verify_batch_binding(
    expected: &BindingInput<'_>,
    position: &BatchPosition,
    actual: &ReportData,
) -> Result<(), EvidenceError> {
    let leaf = leaf_hash(expected)?;
    let root = root_from_path(&leaf, position)?;
    let want = batch_report_data(&root, position.count)?;
    if bool::from(want.as_bytes().ct_eq(actual.as_bytes())) {
        Ok(())
    } else {
        Err(EvidenceError::BindingMismatch)
    }
}

impl BatchTree {
    /// Builds the tree over `leaves` (1 ..= [`MAX_BATCH_LEAVES`] of them, in batch order).
    pub fn new(leaves: Vec<NodeHash>) -> Result<Self, BatchError> {
        let count = u64::try_from(leaves.len()).unwrap_or(u64::MAX);
        check_count(count)?;
        let mut levels = vec![leaves];
        // Pair neighbours; a lone last node moves up unchanged. This is the tree of RFC 9162's
        // recursive definition (split at the largest power of two below n), built bottom-up.
        while let Some(below) = levels.last().filter(|level| level.len() > 1) {
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    // `chunks(2)` leaves at most one lone last node: it moves up unchanged.
                    lone => lone.first().copied().unwrap_or(NodeHash([0; 32])),
                })
                .collect();
            levels.push(above);
        }
        Ok(Self { levels })
    }

    /// The number of leaves.
    pub fn count(&self) -> u64 {
        self.levels
            .first()
            .map_or(0, |leaves| u64::try_from(leaves.len()).unwrap_or(u64::MAX))
    }

    /// The root.
    pub fn root(&self) -> NodeHash {
        // `new` refuses empty batches, so the last level holds exactly the root.
        self.levels
            .last()
            .and_then(|level| level.first())
            .copied()
            .unwrap_or(NodeHash([0; 32]))
    }

    /// The report_data a quote for this batch carries.
    pub fn report_data(&self) -> Result<ReportData, EvidenceError> {
        batch_report_data(&self.root(), self.count())
    }

    /// The position and audit path of leaf `index`.
    pub fn position(&self, index: u64) -> Result<BatchPosition, BatchError> {
        let count = self.count();
        check_position(index, count)?;
        let mut path = Vec::with_capacity(MAX_AUDIT_PATH);
        let mut at = usize::try_from(index).unwrap_or(usize::MAX);
        for level in &self.levels {
            if level.len() <= 1 {
                break;
            }
            // The sibling of an even node is to its right, of an odd one to its left; a lone
            // last node has none at this level.
            if let Some(sibling) = level.get(at ^ 1) {
                path.push(*sibling);
            }
            at /= 2;
        }
        Ok(BatchPosition { index, count, path })
    }
}

/// The largest power of two strictly below `count` (`count >= 2`).
fn split(count: u64) -> u64 {
    let below = count.saturating_sub(1).max(1);
    1u64 << (63u32.saturating_sub(below.leading_zeros()))
}

/// The RFC 9162 recursion: the last path element is the sibling of the subtree that holds the
/// leaf at the top level. Depth is bounded by [`MAX_AUDIT_PATH`] (the path length was checked).
fn climb(
    leaf: &NodeHash,
    index: u64,
    count: u64,
    path: &[NodeHash],
) -> Result<NodeHash, BatchError> {
    if count <= 1 {
        return Ok(*leaf);
    }
    let Some((sibling, rest)) = path.split_last() else {
        return Err(BatchError::PathLength {
            expected: 1,
            found: 0,
        });
    };
    let k = split(count);
    if index < k {
        Ok(node_hash(&climb(leaf, index, k, rest)?, sibling))
    } else {
        let right = climb(leaf, index.saturating_sub(k), count.saturating_sub(k), rest)?;
        Ok(node_hash(sibling, &right))
    }
}

fn check_count(count: u64) -> Result<(), BatchError> {
    let max = u64::try_from(MAX_BATCH_LEAVES).unwrap_or(u64::MAX);
    if count == 0 || count > max {
        return Err(BatchError::CountOutOfRange(count));
    }
    Ok(())
}

fn check_position(index: u64, count: u64) -> Result<(), BatchError> {
    check_count(count)?;
    if index >= count {
        return Err(BatchError::IndexOutOfRange { index, count });
    }
    Ok(())
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
