use super::*;
use crate::evidence_log::fixture::{Fixture, NOW};

#[test]
fn outcome_from_evidence_verifies_and_round_trips_through_json() {
    let fx = Fixture::new();
    let evidence = fx.evidence(NOW, [7; 32]);
    let outcome = BondOutcome::from_evidence(&fx.server, &evidence, NOW).unwrap();
    outcome.verify().unwrap();
    let facts = outcome.facts();
    assert_eq!(facts.asserter, fx.server.peer_id());
    assert_eq!(facts.peer, fx.client.peer_id());
    assert_eq!(facts.role, Role::Server);
    assert_eq!(
        facts.bond_quote_digest,
        Some(*blake3::hash(&evidence.bond_quote.as_ref().unwrap().quote).as_bytes())
    );
    assert_eq!(facts.collateral_digests, vec![*fx.collateral.digest()]);
    let back = BondOutcome::from_json(&outcome.to_json()).unwrap();
    assert_eq!(back, outcome);
    back.verify().unwrap();
}

#[test]
fn no_window_of_any_quote_appears_in_a_serialized_outcome() {
    let fx = Fixture::new();
    let evidence = fx.evidence(NOW, [7; 32]);
    let outcome = BondOutcome::from_evidence(&fx.server, &evidence, NOW).unwrap();
    let json = outcome.to_json();
    let canonical = outcome.signed_bytes();
    let quotes = [&evidence.cert_quote, &evidence.bond_quote];
    for quote in quotes.into_iter().flatten() {
        for window in quote.quote.windows(32) {
            let hex_window = hex::encode(window);
            for serialized in [json.as_bytes(), canonical.as_slice()] {
                assert!(
                    !serialized.windows(32).any(|w| w == window),
                    "raw quote bytes leaked"
                );
            }
            assert!(!json.contains(&hex_window), "hex quote bytes leaked");
        }
    }
}

#[test]
fn outcome_with_changed_field_or_signature_is_refused() {
    let fx = Fixture::new();
    let outcome = BondOutcome::from_evidence(&fx.server, &fx.evidence(NOW, [7; 32]), NOW).unwrap();
    let json = outcome.to_json();
    let level = json.replace("TdxRaTlsBidirectional", "TdxLocal");
    let time = json.replace(&format!("\"time\":{NOW}"), &format!("\"time\":{}", NOW + 1));
    let asserter = json.replace(
        &fx.server.peer_id().to_string(),
        &fx.client.peer_id().to_string(),
    );
    for changed in [level, time, asserter] {
        assert_ne!(changed, json);
        let parsed = BondOutcome::from_json(&changed).unwrap();
        assert!(matches!(parsed.verify(), Err(OutcomeError::BadSignature)));
    }
    let unknown = json.replacen('{', "{\"quote\":\"00\",", 1);
    assert!(matches!(
        BondOutcome::from_json(&unknown),
        Err(OutcomeError::Json(_))
    ));
}

#[test]
fn outcome_for_another_nodes_record_is_refused() {
    let fx = Fixture::new();
    let evidence = fx.evidence(NOW, [7; 32]);
    assert!(matches!(
        BondOutcome::from_evidence(&fx.client, &evidence, NOW),
        Err(OutcomeError::NotRecorder)
    ));
}
