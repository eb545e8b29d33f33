#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use proptest::prelude::*;

use super::*;
use crate::evidence::{report_data, Role};
use crate::identity::PeerId;

/// RFC 8032 section 7.1, test 1 and test 2 public keys (as in the binding example).
const PK1: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const PK2: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

/// Largest tree the property tests build.
const N: usize = 70;

fn pid(hex_str: &str) -> PeerId {
    hex_str.parse().unwrap()
}

/// The exporter of the `i`-th connection in the tests: 32 bytes counting up from `32 * i`.
fn exporter(i: usize) -> Vec<u8> {
    (0..32).map(|b| (32 * i + b) as u8).collect()
}

fn bond(exporter: &[u8]) -> BindingInput<'_> {
    BindingInput::Bond {
        role: Role::Client,
        client: pid(PK1),
        server: pid(PK2),
        exporter,
    }
}

/// `count` connections' exporters, distinct (a seed keeps proptest cases apart).
fn exporters(count: usize, seed: u8) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            blake3::hash(&[seed, i as u8, (i >> 8) as u8])
                .as_bytes()
                .to_vec()
        })
        .collect()
}

fn tree_of(exporters: &[Vec<u8>]) -> BatchTree {
    let leaves = exporters
        .iter()
        .map(|e| leaf_hash(&bond(e)).unwrap())
        .collect();
    BatchTree::new(leaves).unwrap()
}

/// RFC 9162 section 2.1.1, written recursively and independently of `BatchTree`'s levels.
fn mth(leaves: &[NodeHash]) -> NodeHash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = 1usize << (usize::BITS - 1 - (leaves.len() - 1).leading_zeros());
    node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
}

/// The value after `label:` in docs/binding.md.
fn doc_vector(label: &str) -> Vec<u8> {
    let doc = include_str!("../../docs/binding.md");
    let prefix = format!("{label}:");
    let line = doc
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("docs/binding.md has no line `{prefix}`"));
    hex::decode(line[prefix.len()..].trim()).unwrap()
}

fn hashes(path: &[NodeHash]) -> Vec<u8> {
    path.iter().flat_map(|h| h.0).collect()
}

#[test]
fn documented_batch_vectors_recompute() {
    // Three connections between the same two peers: exporters 00..1f, 20..3f, 40..5f.
    let exporters: Vec<Vec<u8>> = (0..3).map(exporter).collect();
    let leaves: Vec<NodeHash> = exporters
        .iter()
        .map(|e| leaf_hash(&bond(e)).unwrap())
        .collect();
    let tree = BatchTree::new(leaves.clone()).unwrap();
    let node01 = node_hash(&leaves[0], &leaves[1]);
    let root = tree.root();
    let rd = tree.report_data().unwrap();
    let path0 = tree.position(0).unwrap().path;
    let path2 = tree.position(2).unwrap().path;
    // Printed so the doc can be regenerated: cargo test documented_batch -- --nocapture
    for (i, leaf) in leaves.iter().enumerate() {
        println!(
            "batch.leaf{i}.encoded: {}",
            hex::encode(encode(&bond(&exporters[i])).unwrap())
        );
        println!("batch.leaf{i}.hash: {}", hex::encode(leaf.0));
    }
    println!("batch.node01: {}", hex::encode(node01.0));
    println!("batch.root: {}", hex::encode(root.0));
    println!(
        "batch.encoded: {}",
        hex::encode(encode_batch(&root, 3).unwrap())
    );
    println!("batch.report_data: {}", hex::encode(rd.0));
    println!("batch.path0: {}", hex::encode(hashes(&path0)));
    println!("batch.path2: {}", hex::encode(hashes(&path2)));

    assert_eq!(
        doc_vector("batch.node_context"),
        BATCH_NODE_CONTEXT.as_bytes()
    );
    assert_eq!(
        doc_vector("batch.context"),
        BATCH_BINDING_CONTEXT.as_bytes()
    );
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(doc_vector(&format!("batch.exporter{i}")), exporters[i]);
        assert_eq!(
            doc_vector(&format!("batch.leaf{i}.encoded")),
            encode(&bond(&exporters[i])).unwrap()
        );
        assert_eq!(doc_vector(&format!("batch.leaf{i}.hash")), leaf.0);
    }
    // Leaf 0 is the bond of the binding example: the leaf input is today's bond input.
    assert_eq!(
        doc_vector("batch.leaf0.encoded"),
        doc_vector("bond.encoded")
    );
    assert_eq!(doc_vector("batch.node01"), node01.0);
    assert_eq!(doc_vector("batch.root"), root.0);
    assert_eq!(root, node_hash(&node01, &leaves[2]));
    assert_eq!(doc_vector("batch.encoded"), encode_batch(&root, 3).unwrap());
    assert_eq!(doc_vector("batch.report_data"), rd.0);
    assert_eq!(doc_vector("batch.path0"), hashes(&path0));
    assert_eq!(doc_vector("batch.path2"), hashes(&path2));
    assert_eq!(path0, vec![leaves[1], leaves[2]]);
    assert_eq!(path2, vec![node01]);
}

#[test]
fn hashes_are_blake3_derive_key_with_prefixes() {
    let e = exporter(0);
    let encoded = encode(&bond(&e)).unwrap();
    let leaf = blake3::derive_key(BATCH_NODE_CONTEXT, &[&[0u8][..], &encoded].concat());
    assert_eq!(leaf_hash(&bond(&e)).unwrap().0, leaf);
    let (l, r) = (NodeHash([1; 32]), NodeHash([2; 32]));
    let inner = blake3::derive_key(
        BATCH_NODE_CONTEXT,
        &[&[1u8][..], &[1; 32], &[2; 32]].concat(),
    );
    assert_eq!(node_hash(&l, &r).0, inner);
    let mut want = [0u8; 64];
    let mut h = blake3::Hasher::new_derive_key("ratls-quic report_data v2");
    h.update(&encode_batch(&l, 5).unwrap());
    h.finalize_xof().fill(&mut want);
    assert_eq!(batch_report_data(&l, 5).unwrap().0, want);
}

#[test]
fn batched_report_data_never_equals_the_single_one() {
    // A batch of one commits to the same leaf, but under another context and purpose.
    let e = exporter(0);
    let tree = tree_of(std::slice::from_ref(&e));
    assert_eq!(tree.root(), leaf_hash(&bond(&e)).unwrap());
    assert!(tree.position(0).unwrap().path.is_empty());
    assert_ne!(tree.report_data().unwrap(), report_data(&bond(&e)).unwrap());
    // And a single quote's report_data does not pass as a batch of one.
    let single = report_data(&bond(&e)).unwrap();
    let position = tree.position(0).unwrap();
    assert!(matches!(
        verify_batch_binding(&bond(&e), &position, &single),
        Err(EvidenceError::BindingMismatch)
    ));
}

#[test]
fn impossible_positions_and_inputs_are_typed_errors() {
    let leaf = NodeHash([7; 32]);
    let pos = |index, count, len| BatchPosition {
        index,
        count,
        path: vec![NodeHash([1; 32]); len],
    };
    let max = MAX_BATCH_LEAVES as u64;
    assert_eq!(
        root_from_path(&leaf, &pos(0, 0, 0)),
        Err(BatchError::CountOutOfRange(0))
    );
    assert_eq!(
        root_from_path(&leaf, &pos(0, max + 1, 11)),
        Err(BatchError::CountOutOfRange(max + 1))
    );
    assert_eq!(
        root_from_path(&leaf, &pos(u64::MAX, u64::MAX, 0)),
        Err(BatchError::CountOutOfRange(u64::MAX))
    );
    assert_eq!(
        root_from_path(&leaf, &pos(5, 5, 3)),
        Err(BatchError::IndexOutOfRange { index: 5, count: 5 })
    );
    assert_eq!(
        root_from_path(&leaf, &pos(0, 5, 2)),
        Err(BatchError::PathLength {
            expected: 3,
            found: 2
        })
    );
    assert_eq!(path_len(0, max), Ok(MAX_AUDIT_PATH));
    assert_eq!(path_len(max - 1, max), Ok(MAX_AUDIT_PATH));
    assert!(BatchTree::new(Vec::new()).is_err());
    assert!(BatchTree::new(vec![leaf; MAX_BATCH_LEAVES + 1]).is_err());
    assert!(encode_batch(&leaf, 0).is_err());
    let spki = [1u8; 44];
    let cert = BindingInput::Certificate {
        spki_der: &spki,
        not_before: 1,
        not_after: 2,
        peer_id: pid(PK1),
    };
    assert!(matches!(
        leaf_hash(&cert),
        Err(EvidenceError::Batch(BatchError::NotABond))
    ));
    // An incomplete bond input fails closed, as it does for single proofs.
    assert!(matches!(
        leaf_hash(&bond(&[0u8; 32])),
        Err(EvidenceError::EmptyBindingInput(_))
    ));
}

#[test]
fn largest_batch_builds_and_verifies_at_both_ends() {
    let exporters = exporters(MAX_BATCH_LEAVES, 3);
    let tree = tree_of(&exporters);
    let rd = tree.report_data().unwrap();
    for index in [0, 511, 512, MAX_BATCH_LEAVES - 1] {
        let position = tree.position(index as u64).unwrap();
        assert_eq!(position.path.len(), MAX_AUDIT_PATH);
        verify_batch_binding(&bond(&exporters[index]), &position, &rd).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every leaf's path verifies, the tree matches RFC 9162's recursive definition, and each
    /// single-bit change of leaf, sibling, index, count or root, and each path of another
    /// length, is refused.
    #[test]
    fn every_path_verifies_and_every_bit_flip_fails(count in 1usize..=N, seed in any::<u8>()) {
        let exporters = exporters(count, seed);
        let leaves: Vec<NodeHash> =
            exporters.iter().map(|e| leaf_hash(&bond(e)).unwrap()).collect();
        let tree = BatchTree::new(leaves.clone()).unwrap();
        prop_assert_eq!(tree.root(), mth(&leaves));
        prop_assert_eq!(tree.count(), count as u64);
        let rd = tree.report_data().unwrap();
        for (i, exporter) in exporters.iter().enumerate() {
            let expected = bond(exporter);
            let position = tree.position(i as u64).unwrap();
            prop_assert_eq!(position.path.len(), path_len(i as u64, count as u64).unwrap());
            prop_assert!(verify_batch_binding(&expected, &position, &rd).is_ok());

            // The leaf: any bit of this connection's exporter.
            for bit in 0..256 {
                let mut other = exporter.clone();
                other[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(verify_batch_binding(&bond(&other), &position, &rd).is_err());
            }
            // The leaf hash itself.
            let leaf = leaves[i];
            for bit in 0..256 {
                let mut bad = leaf;
                bad.0[bit / 8] ^= 1 << (bit % 8);
                let root = root_from_path(&bad, &position).unwrap();
                prop_assert_ne!(batch_report_data(&root, count as u64).unwrap(), rd);
            }
            // Each sibling.
            for s in 0..position.path.len() {
                for bit in 0..256 {
                    let mut bad = position.clone();
                    bad.path[s].0[bit / 8] ^= 1 << (bit % 8);
                    prop_assert!(verify_batch_binding(&expected, &bad, &rd).is_err());
                }
            }
            // The index and the count (as carried on the wire: 32 bits each).
            for bit in 0..32 {
                let mut bad = position.clone();
                bad.index ^= 1 << bit;
                prop_assert!(verify_batch_binding(&expected, &bad, &rd).is_err());
                let mut bad = position.clone();
                bad.count ^= 1 << bit;
                prop_assert!(verify_batch_binding(&expected, &bad, &rd).is_err());
            }
            // Paths one hash shorter or longer.
            if let Some(shorter) = position.path.split_last().map(|(_, rest)| rest.to_vec()) {
                let bad = BatchPosition { path: shorter, ..position.clone() };
                prop_assert!(
                    matches!(
                        verify_batch_binding(&expected, &bad, &rd),
                        Err(EvidenceError::Batch(BatchError::PathLength { .. }))
                    ),
                    "shorter path accepted"
                );
            }
            let mut longer = position.clone();
            longer.path.push(leaf);
            prop_assert!(
                matches!(
                    verify_batch_binding(&expected, &longer, &rd),
                    Err(EvidenceError::Batch(BatchError::PathLength { .. }))
                ),
                "longer path accepted"
            );
        }
        // The root, and so the report_data: any bit.
        for bit in 0..512 {
            let mut bad = rd;
            bad.0[bit / 8] ^= 1 << (bit % 8);
            let position = tree.position(0).unwrap();
            prop_assert!(matches!(
                verify_batch_binding(&bond(&exporters[0]), &position, &bad),
                Err(EvidenceError::BindingMismatch)
            ));
        }
        for bit in 0..256 {
            let mut root = tree.root();
            root.0[bit / 8] ^= 1 << (bit % 8);
            prop_assert_ne!(batch_report_data(&root, count as u64).unwrap(), rd);
        }
    }

    /// A proof taken to another connection (another exporter, or the same connection seen from
    /// the other role or with the peers swapped) is refused, whatever leaf it names.
    #[test]
    fn proof_moved_to_another_connection_fails(count in 1usize..=N, seed in any::<u8>()) {
        let elsewhere = exporters(1, seed ^ 0xaa).remove(0);
        let exporters = exporters(count, seed);
        let tree = tree_of(&exporters);
        let rd = tree.report_data().unwrap();
        for (i, exporter) in exporters.iter().enumerate() {
            let position = tree.position(i as u64).unwrap();
            let moved = [
                bond(&elsewhere),
                BindingInput::Bond {
                    role: Role::Server,
                    client: pid(PK1),
                    server: pid(PK2),
                    exporter,
                },
                BindingInput::Bond {
                    role: Role::Client,
                    client: pid(PK2),
                    server: pid(PK1),
                    exporter,
                },
            ];
            for input in &moved {
                prop_assert!(matches!(
                    verify_batch_binding(input, &position, &rd),
                    Err(EvidenceError::BindingMismatch)
                ));
            }
            // Another leaf's position in the same batch does not serve this connection.
            if count > 1 {
                let other = tree.position(((i + 1) % count) as u64).unwrap();
                prop_assert!(verify_batch_binding(&bond(exporter), &other, &rd).is_err());
            }
        }
    }
}
