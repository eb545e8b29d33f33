//! Hostile quote bytes: never a panic, and every change to an authenticated byte is refused.

use proptest::prelude::*;
use ratls_quic::Policy;
use ratls_quic::{pck_chain_pem, QuoteLayout};
use ratls_quic::{Collateral, QuoteVerifier};

const NAME: &str = "v5_td15_gotdxguest_uptodate";
const NOW: u64 = 1_772_323_200;

fn load() -> (Vec<u8>, Collateral) {
    let dir = format!("{}/certs/vectors/{NAME}", env!("CARGO_MANIFEST_DIR"));
    let quote = std::fs::read(format!("{dir}/quote.bin")).unwrap();
    let collateral =
        Collateral::from_json(&std::fs::read(format!("{dir}/collateral.json")).unwrap()).unwrap();
    (quote, collateral)
}

/// Offset where the PEM chain starts: everything before it is signed, hashed into the QE
/// report, or is the QE report's own signature.
fn authenticated_end(quote: &[u8]) -> usize {
    let pem = pck_chain_pem(quote).unwrap();
    pem.as_ptr() as usize - quote.as_ptr() as usize
}

fn verify(quote: &[u8], collateral: &Collateral) -> bool {
    QuoteVerifier::intel()
        .verify(quote, collateral, NOW, &Policy::authenticity_only())
        .is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        let (_, collateral) = load();
        prop_assert!(!verify(&bytes, &collateral));
        let _ = QuoteLayout::parse(&bytes);
    }

    #[test]
    fn flipped_authenticated_byte_is_refused(pos in 0usize..5006, mask in 1u8..=255) {
        let (mut quote, collateral) = load();
        let end = authenticated_end(&quote);
        let pos = pos % end;
        quote[pos] ^= mask;
        prop_assert!(!verify(&quote, &collateral), "byte {} ^ {:#x} accepted", pos, mask);
    }

    #[test]
    fn any_mutation_never_panics(pos in 0usize..5006, value in any::<u8>()) {
        let (mut quote, collateral) = load();
        quote[pos] = value;
        let _ = verify(&quote, &collateral);
    }

    #[test]
    fn truncation_is_refused(len in 0usize..5006) {
        let (quote, collateral) = load();
        prop_assert!(!verify(&quote[..len], &collateral));
    }

    #[test]
    fn trailing_bytes_accepted_only_when_zero(tail in proptest::collection::vec(any::<u8>(), 1..200)) {
        let (mut quote, collateral) = load();
        let all_zero = tail.iter().all(|&b| b == 0);
        quote.extend_from_slice(&tail);
        prop_assert_eq!(verify(&quote, &collateral), all_zero);
    }
}
