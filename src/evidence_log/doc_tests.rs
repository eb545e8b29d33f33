//! The worked example of `docs/evidence-log.md` recomputes from the code.

use super::codec::{frame, record_digest};
use super::{BondRefusal, Checkpoint, Record, RecordBody, RetirementMarker};
use crate::evidence::Role;
use crate::identity::Identity;

const TEST1_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const TEST2_SECRET: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

fn identity(secret: &str) -> Identity {
    Identity::from_secret_bytes(&hex::decode(secret).unwrap()).unwrap()
}

fn doc_vector(label: &str) -> Vec<u8> {
    let doc = include_str!("../../docs/evidence-log.md");
    let prefix = format!("{label}:");
    let line = doc
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("docs/evidence-log.md has no line `{prefix}`"));
    hex::decode(line[prefix.len()..].trim()).unwrap()
}

#[test]
fn documented_vectors_recompute() {
    let test1 = identity(TEST1_SECRET);
    let test2 = identity(TEST2_SECRET);
    let refused = Record {
        index: 0,
        time: 1_767_225_600,
        prev: [0; 32],
        body: RecordBody::BondRefused(BondRefusal {
            local: test2.peer_id(),
            local_role: Role::Server,
            peer: Some(test1.peer_id()),
            reason: "measurement".into(),
            detail: "mr_td".into(),
            cert_quote_digest: Some(*blake3::hash(b"quote").as_bytes()),
            bond_quote_digest: None,
            collateral_digest: None,
        }),
    };
    let payload = refused.encode().unwrap();
    let digest = record_digest(&payload);
    let checkpoint = Checkpoint::sign(&test2, 0, digest, 1_767_225_660);
    let marker = RetirementMarker::create(&test1, 1_767_229_200, None).unwrap();
    // Printed so the doc can be regenerated: cargo test documented_vectors -- --nocapture
    println!("refused.frame: {}", hex::encode(frame(&payload).unwrap()));
    println!("refused.digest: {}", hex::encode(digest));
    println!("checkpoint: {}", hex::encode(checkpoint.to_bytes()));
    println!("marker: {}", hex::encode(marker.encode()));
    assert_eq!(doc_vector("refused.frame"), frame(&payload).unwrap());
    assert_eq!(doc_vector("refused.digest"), digest);
    assert_eq!(doc_vector("checkpoint"), checkpoint.to_bytes());
    assert_eq!(doc_vector("marker"), marker.encode());
    Checkpoint::from_bytes(&doc_vector("checkpoint"))
        .unwrap()
        .verify_signature()
        .unwrap();
    RetirementMarker::decode(&doc_vector("marker"))
        .unwrap()
        .verify()
        .unwrap();
}
