use proptest::prelude::*;

use super::*;

fn sample(quote_len: usize) -> Evidence {
    let quote: Vec<u8> = (0..quote_len).map(|i| (i * 7 + 3) as u8).collect();
    Evidence::new(AttestationLevel::TdxLocal, quote, b"spki")
}

fn level_strategy() -> impl Strategy<Value = AttestationLevel> {
    prop::sample::select(
        AttestationLevel::ALL
            .into_iter()
            .filter(|l| l.requires_quote())
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #[test]
    fn evidence_round_trips(
        level in level_strategy(),
        quote in prop::collection::vec(any::<u8>(), 1..=MAX_QUOTE_LEN),
        hash in any::<[u8; 32]>(),
    ) {
        let ev = Evidence { level, quote, pubkey_sha256: hash };
        let bytes = ev.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_EXTENSION_LEN);
        prop_assert_eq!(Evidence::decode(&bytes).unwrap(), ev);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Evidence::decode(&bytes);
    }

    #[test]
    fn mutated_evidence_never_panics_and_never_decodes_silently_wrong(
        pos in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let ev = sample(300);
        let mut bytes = ev.encode().unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        // Either refused, or (a flip inside the quote or hash bytes) decoded to different
        // evidence: a flipped byte is never silently ignored.
        if let Ok(back) = Evidence::decode(&bytes) {
            prop_assert_ne!(back, ev);
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let bytes = sample(100).encode().unwrap();
    for len in 0..bytes.len() {
        assert!(
            matches!(
                Evidence::decode(&bytes[..len]),
                Err(EvidenceError::Malformed(_))
            ),
            "prefix of {len} bytes"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Evidence::decode(&longer),
        Err(EvidenceError::Malformed(_))
    ));
}

#[test]
fn oversized_inputs_are_refused() {
    assert!(matches!(
        sample(MAX_QUOTE_LEN + 1).encode(),
        Err(EvidenceError::TooLarge { what: "quote", .. })
    ));
    assert!(matches!(
        Evidence::decode(&vec![0u8; MAX_EXTENSION_LEN + 1]),
        Err(EvidenceError::TooLarge { .. })
    ));
    // A well-formed encoding of a quote over the cap.
    let quote = vec![1u8; MAX_QUOTE_LEN + 1];
    let mut out = Vec::new();
    cbor::head(&mut out, cbor::TAG, INTEL_TEE_QUOTE_TAG);
    cbor::head(&mut out, cbor::ARRAY, 2);
    cbor::bytes(&mut out, &quote);
    cbor::bytes(&mut out, &[0xa0]);
    assert!(matches!(
        Evidence::decode(&out),
        Err(EvidenceError::TooLarge { what: "quote", .. })
    ));
    assert!(matches!(
        sample(0).encode(),
        Err(EvidenceError::Missing("quote"))
    ));
}

/// Builds an extension value whose ratls-quic claim holds `ratls` verbatim.
fn with_ratls_claim(ratls: &[u8]) -> Vec<u8> {
    let mut hash_entry = Vec::new();
    cbor::head(&mut hash_entry, cbor::ARRAY, 2);
    cbor::head(&mut hash_entry, cbor::UINT, 1);
    cbor::bytes(&mut hash_entry, &[9; 32]);
    let mut claims = Vec::new();
    cbor::head(&mut claims, cbor::MAP, 2);
    cbor::text(&mut claims, "ratls-quic");
    cbor::bytes(&mut claims, ratls);
    cbor::text(&mut claims, "pubkey-hash");
    cbor::bytes(&mut claims, &hash_entry);
    let mut out = Vec::new();
    cbor::head(&mut out, cbor::TAG, INTEL_TEE_QUOTE_TAG);
    cbor::head(&mut out, cbor::ARRAY, 2);
    cbor::bytes(&mut out, b"quote");
    cbor::bytes(&mut out, &claims);
    out
}

#[test]
fn unknown_version_is_refused_with_its_number() {
    // Version 2 with a different shape: the version is read first.
    assert!(matches!(
        Evidence::decode(&with_ratls_claim(&[0x83, 0x02, 0x01, 0x01])),
        Err(EvidenceError::UnknownVersion(2))
    ));
    assert!(matches!(
        Evidence::decode(&with_ratls_claim(&[0x82, 0x00, 0x01])),
        Err(EvidenceError::UnknownVersion(0))
    ));
    // Our own encoder's bytes decode, as a sanity check of the helper.
    assert!(Evidence::decode(&with_ratls_claim(&[0x82, 0x01, 0x01])).is_ok());
}

#[test]
fn software_level_and_unknown_codes_are_refused() {
    for claim in [[0x82, 0x01, 0x00], [0x82, 0x01, 0x05], [0x82, 0x01, 0x17]] {
        assert!(matches!(
            Evidence::decode(&with_ratls_claim(&claim)),
            Err(EvidenceError::Malformed(_))
        ));
    }
    let ev = Evidence::new(AttestationLevel::Software, vec![1], b"k");
    assert!(matches!(ev.encode(), Err(EvidenceError::Malformed(_))));
}

#[test]
fn other_tags_and_shapes_are_refused() {
    let mut bytes = sample(10).encode().unwrap();
    // 60000 = 0xd9 0xea 0x60; make it 60001.
    assert_eq!(bytes[..3], [0xd9, 0xea, 0x60]);
    bytes[2] = 0x61;
    assert!(matches!(
        Evidence::decode(&bytes),
        Err(EvidenceError::Malformed(_))
    ));
    assert!(Evidence::decode(&[]).is_err());
    assert!(Evidence::decode(&[0xa0]).is_err());
}

#[test]
fn encoding_is_stable() {
    let ev = Evidence {
        level: AttestationLevel::TdxRaTlsBidirectional,
        quote: vec![0xaa, 0xbb],
        pubkey_sha256: [0x11; 32],
    };
    let expected = format!(
        "d9ea6082\
         42aabb\
         5842\
         a2\
         6a{}4382 0103\
         6b{}5824 8201 5820{}",
        hex::encode("ratls-quic"),
        hex::encode("pubkey-hash"),
        "11".repeat(32)
    )
    .replace(' ', "");
    assert_eq!(hex::encode(ev.encode().unwrap()), expected);
}

#[test]
fn spki_hash_matches() {
    let ev = Evidence::new(AttestationLevel::TdxLocal, vec![1], b"spki");
    assert!(ev.matches_spki(b"spki"));
    assert!(!ev.matches_spki(b"spkj"));
}
