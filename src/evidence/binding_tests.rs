use super::*;

/// RFC 8032 section 7.1, test 1 and test 2 public keys.
const PK1: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const PK2: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
/// DER SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410).
const ED25519_SPKI_PREFIX: &str = "302a300506032b6570032100";
const NOT_BEFORE: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const NOT_AFTER: u64 = 1_767_229_200; // one hour later

fn pid(hex_str: &str) -> PeerId {
    hex_str.parse().unwrap()
}

fn spki() -> Vec<u8> {
    hex::decode(format!("{ED25519_SPKI_PREFIX}{PK1}")).unwrap()
}

fn exporter() -> Vec<u8> {
    (0u8..32).collect()
}

fn cert_input(spki: &[u8]) -> BindingInput<'_> {
    BindingInput::Certificate {
        spki_der: spki,
        not_before: NOT_BEFORE,
        not_after: NOT_AFTER,
        peer_id: pid(PK1),
    }
}

fn bond_input(exporter: &[u8]) -> BindingInput<'_> {
    BindingInput::Bond {
        role: Role::Client,
        client: pid(PK1),
        server: pid(PK2),
        exporter,
    }
}

/// The value after `label:` in docs/binding.md (the doc's worked example).
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

fn rd(input: &BindingInput<'_>) -> [u8; 64] {
    report_data(input).unwrap().0
}

#[test]
fn documented_vectors_recompute() {
    let spki = spki();
    let exporter = exporter();
    let cert = cert_input(&spki);
    let bond = bond_input(&exporter);
    // Printed so the doc can be regenerated: cargo test documented_vectors -- --nocapture
    println!("cert.encoded: {}", hex::encode(encode(&cert).unwrap()));
    println!("cert.report_data: {}", hex::encode(rd(&cert)));
    println!("bond.encoded: {}", hex::encode(encode(&bond).unwrap()));
    println!("bond.report_data: {}", hex::encode(rd(&bond)));
    assert_eq!(doc_vector("cert.spki"), spki);
    assert_eq!(doc_vector("bond.exporter"), exporter);
    assert_eq!(doc_vector("cert.encoded"), encode(&cert).unwrap());
    assert_eq!(doc_vector("cert.report_data"), rd(&cert));
    assert_eq!(doc_vector("bond.encoded"), encode(&bond).unwrap());
    assert_eq!(doc_vector("bond.report_data"), rd(&bond));
    assert_eq!(doc_vector("context"), BINDING_CONTEXT.as_bytes());
}

#[test]
fn construction_is_blake3_derive_key_xof_64() {
    let spki = spki();
    let input = cert_input(&spki);
    let mut out = [0u8; 64];
    let mut h = blake3::Hasher::new_derive_key("ratls-quic report_data v1");
    h.update(&encode(&input).unwrap());
    h.finalize_xof().fill(&mut out);
    assert_eq!(rd(&input), out);
    // The first 32 bytes are blake3's ordinary derive_key output.
    assert_eq!(
        out[..32],
        blake3::derive_key(BINDING_CONTEXT, &encode(&input).unwrap())
    );
}

#[test]
fn every_certificate_field_changes_output() {
    let spki = spki();
    let base = rd(&cert_input(&spki));
    let mut other_spki = spki.clone();
    for i in 0..other_spki.len() {
        other_spki[i] ^= 0x01;
        assert_ne!(rd(&cert_input(&other_spki)), base, "spki byte {i}");
        other_spki[i] ^= 0x01;
    }
    let variants = [
        BindingInput::Certificate {
            spki_der: &spki,
            not_before: NOT_BEFORE + 1,
            not_after: NOT_AFTER,
            peer_id: pid(PK1),
        },
        BindingInput::Certificate {
            spki_der: &spki,
            not_before: NOT_BEFORE,
            not_after: NOT_AFTER + 1,
            peer_id: pid(PK1),
        },
        BindingInput::Certificate {
            spki_der: &spki,
            not_before: NOT_BEFORE,
            not_after: NOT_AFTER,
            peer_id: pid(PK2),
        },
        // Longer SPKI with the same prefix: the length prefix separates it.
        BindingInput::Certificate {
            spki_der: &[spki.as_slice(), &[0]].concat(),
            not_before: NOT_BEFORE,
            not_after: NOT_AFTER,
            peer_id: pid(PK1),
        },
    ];
    for v in &variants {
        assert_ne!(rd(v), base, "{v:?}");
    }
}

#[test]
fn every_bond_field_changes_output() {
    let exporter = exporter();
    let base = rd(&bond_input(&exporter));
    let mut other = exporter.clone();
    for i in 0..other.len() {
        other[i] ^= 0x80;
        assert_ne!(rd(&bond_input(&other)), base, "exporter byte {i}");
        other[i] ^= 0x80;
    }
    let role_swapped = BindingInput::Bond {
        role: Role::Server,
        client: pid(PK1),
        server: pid(PK2),
        exporter: &exporter,
    };
    let peers_swapped = BindingInput::Bond {
        role: Role::Client,
        client: pid(PK2),
        server: pid(PK1),
        exporter: &exporter,
    };
    let both_swapped = BindingInput::Bond {
        role: Role::Server,
        client: pid(PK2),
        server: pid(PK1),
        exporter: &exporter,
    };
    let long_exporter: Vec<u8> = (0u8..64).collect();
    for v in [
        role_swapped,
        peers_swapped,
        both_swapped,
        bond_input(&long_exporter),
    ] {
        assert_ne!(rd(&v), base, "{v:?}");
    }
    // Purposes are separated even for colliding byte lengths.
    let spki = spki();
    assert_ne!(rd(&cert_input(&spki)), base);
}

#[test]
fn missing_or_empty_expected_values_fail_closed() {
    let spki = spki();
    let zero = PeerId::from_bytes([0; 32]);
    let actual = report_data(&cert_input(&spki)).unwrap();
    let cert = |spki_der, not_before, not_after, peer_id| BindingInput::Certificate {
        spki_der,
        not_before,
        not_after,
        peer_id,
    };
    let bad_cert = [
        cert(&[][..], NOT_BEFORE, NOT_AFTER, pid(PK1)),
        cert(&spki[..], 0, NOT_AFTER, pid(PK1)),
        cert(&spki[..], NOT_BEFORE, NOT_BEFORE, pid(PK1)),
        cert(&spki[..], NOT_AFTER, NOT_BEFORE, pid(PK1)),
        cert(&spki[..], NOT_BEFORE, NOT_AFTER, zero),
    ];
    for input in &bad_cert {
        assert!(
            matches!(
                verify_binding(input, &actual),
                Err(EvidenceError::EmptyBindingInput(_))
            ),
            "{input:?}"
        );
    }
    let bond = |client, server, exporter| BindingInput::Bond {
        role: Role::Server,
        client,
        server,
        exporter,
    };
    let ex = exporter();
    let bad_bond = [
        bond(zero, pid(PK2), &ex[..]),
        bond(pid(PK1), zero, &ex[..]),
        bond(pid(PK1), pid(PK2), &[][..]),
        bond(pid(PK1), pid(PK2), &[0u8; 32][..]),
        bond(pid(PK1), pid(PK2), &ex[..16]),
        bond(pid(PK1), pid(PK2), &[1u8; 48][..]),
    ];
    for input in &bad_bond {
        assert!(
            matches!(report_data(input), Err(EvidenceError::EmptyBindingInput(_))),
            "{input:?}"
        );
    }
    let huge = vec![1u8; MAX_SPKI_LEN + 1];
    assert!(matches!(
        report_data(&cert(&huge, NOT_BEFORE, NOT_AFTER, pid(PK1))),
        Err(EvidenceError::TooLarge { .. })
    ));
}

#[test]
fn comparison_uses_all_64_bytes() {
    let exporter = exporter();
    let input = bond_input(&exporter);
    let good = report_data(&input).unwrap();
    assert!(verify_binding(&input, &good).is_ok());
    for i in 0..64 {
        let mut bad = good;
        bad.0[i] ^= 0x01;
        assert!(
            matches!(
                verify_binding(&input, &bad),
                Err(EvidenceError::BindingMismatch)
            ),
            "byte {i}"
        );
    }
}

#[test]
fn role_names_and_peer() {
    assert_eq!(Role::Client.as_str(), "client");
    assert_eq!(Role::Server.peer(), Role::Client);
}
