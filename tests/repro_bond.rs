//! Level TdxPlusReproducibleBuild end to end: policies pinned from a rebuilt firmware image,
//! synthetic quotes carrying the computed MRTD, over real UDP on loopback.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ratls_quic::measure::{PageAddOrder, RebuildProvenance, RebuiltMeasurements};
use ratls_quic::repro::{verify_build, BuildPolicy, Step};
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::synthetic::SyntheticTdvf;
use ratls_quic::AttestationLevel;
use ratls_quic::Identity;
use ratls_quic::Measurements;
use ratls_quic::{ConfigError, EndpointConfig, Error};
use ratls_quic::{ExpectedPeer, PeerRejection};
use ratls_quic::{Policy, PolicyViolation, RebuildPinError, Register};

const LEVEL: AttestationLevel = AttestationLevel::TdxPlusReproducibleBuild;

/// The recipe text used as provenance when the image is measured directly.
const RECIPE: &[u8] = b"#!/bin/sh\n# builds the synthetic TDVF image\n";

/// MRTD (per-page order) of `SyntheticTdvf::typical(3, 0x42)`, computed by dstack-mr; the same
/// cross-check as in tests/repro_measure.rs.
const SYNTHETIC_MRTD_PER_PAGE: &str = "e9c1569a526313a78d63d2db5f0420e1da3516b6771630b4\
                                       f6433990a70152f03ba938acd4799bc2222680cf4955f8fd";

/// Debian bookworm `ovmf` 2022.11-6+deb12u2 `OVMF.fd`: its sha256, and its MRTD (per-page
/// order) as dstack-mr `single_pass` computes it (see tests/repro_measure.rs).
const DEBIAN_OVMF_SHA256: &str = "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773";
const DEBIAN_OVMF_MRTD_PER_PAGE: &str = "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5a\
                                         a9c4999a08de4057fb887fed0744d5631a212967fb231c47";

/// `SyntheticTdvf::typical(3, 0x42)`.
fn synthetic_image() -> Vec<u8> {
    SyntheticTdvf::typical(3, 0x42).build().bytes
}

fn rebuilt_from(image: &[u8]) -> RebuiltMeasurements {
    RebuiltMeasurements::from_image(
        image,
        PageAddOrder::PerPage,
        *blake3::hash(RECIPE).as_bytes(),
    )
    .unwrap()
}

/// The sample Measurements with MRTD replaced by the rebuilt one: what a TD booted from the
/// rebuilt firmware reports.
fn booted_from(rebuilt: &RebuiltMeasurements) -> Measurements {
    let mut m = sample_measurements();
    m.mr_td = *rebuilt.mr_td();
    m
}

/// The sample policy (which declares the sample MRTD) at `LEVEL`, pinned to `rebuilt`.
fn pinned_policy(rebuilt: &RebuiltMeasurements) -> Policy {
    let mut policy = policy(LEVEL);
    policy.pin_rebuilt(rebuilt);
    policy
}

fn try_config(side: Side, policy: Policy) -> Result<EndpointConfig, ConfigError> {
    let (verifier, collateral) = verifier();
    let builder = EndpointConfig::builder(Identity::generate().unwrap()).with_policy(policy);
    let builder = match side {
        Side::Software => builder.without_quotes(),
        Side::Attested(m) => builder.with_quote_provider(provider(*m)),
    };
    builder.with_quote_verifier(verifier, collateral).build()
}

/// Bonds two endpoints that both boot from `rebuilt` and pin it; checks both sides report
/// TdxPlusReproducibleBuild and the rebuilt MRTD, and that streams work.
async fn bond_both_ways(rebuilt: &RebuiltMeasurements) {
    bond_both_ways_with(rebuilt, &pinned_policy(rebuilt)).await;
}

/// As [`bond_both_ways`], both sides under `policy`.
async fn bond_both_ways_with(rebuilt: &RebuiltMeasurements, policy: &Policy) {
    let measurements = booted_from(rebuilt);
    assert_ne!(measurements.mr_td, sample_measurements().mr_td);
    let server_id = Identity::generate().unwrap();
    let server_peer = server_id.peer_id();
    let server = bind(config(
        server_id,
        Side::Attested(Box::new(measurements)),
        policy.clone(),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(measurements)),
        policy.clone(),
    ))
    .await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::Exactly(server_peer)).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    for conn in [&accepted, &connected] {
        assert_eq!(conn.peer().level(), LEVEL);
        assert_eq!(conn.peer().measurements().unwrap().mr_td, *rebuilt.mr_td());
        assert!(conn.peer().bond_quote().is_some());
    }
    let ((), reply) = tokio::join!(echo_once(&accepted), round_trip(&connected, b"rebuilt"));
    assert_eq!(reply, b"rebuilt");
}

/// The typed reason a side refused its peer: a Measurements violation, by register.
fn measurement_registers(error: &Error) -> Vec<Register> {
    let rejection = error
        .rejection()
        .unwrap_or_else(|| panic!("not a typed rejection: {error}"));
    // Refused before DCAP (Prechecked) or after it (Policy): the same violation.
    let Some(PolicyViolation::Measurements(mismatch)) = (match rejection {
        PeerRejection::Quote(error) => error.policy_violation(),
        _ => None,
    }) else {
        panic!("not a Measurements violation: {rejection:?}");
    };
    mismatch.mismatches.iter().map(|(_, r)| *r).collect()
}

#[tokio::test]
async fn bond_at_reproducible_build_level_with_rebuilt_mrtd() {
    let rebuilt = rebuilt_from(&synthetic_image());
    assert_eq!(hex::encode(rebuilt.mr_td()), SYNTHETIC_MRTD_PER_PAGE);
    bond_both_ways(&rebuilt).await;
}

#[tokio::test]
async fn peer_whose_mrtd_is_only_declared_is_refused() {
    // The policy file declares the sample MRTD; the rebuild replaced it. A server that boots the
    // declared (not rebuilt) firmware is refused by the client, naming mr_td.
    let rebuilt = rebuilt_from(&synthetic_image());
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(sample_measurements())),
        pinned_policy(&rebuilt),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(booted_from(&rebuilt))),
        pinned_policy(&rebuilt),
    ))
    .await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    assert!(accepted.is_err());
    assert_eq!(
        measurement_registers(&connected.unwrap_err()),
        vec![Register::MrTd]
    );

    // The other way round: a client booted from another firmware, refused by the server.
    let other = rebuilt_from(&SyntheticTdvf::typical(3, 0x43).build().bytes);
    assert_ne!(other.mr_td(), rebuilt.mr_td());
    let server = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(booted_from(&rebuilt))),
        pinned_policy(&rebuilt),
    ))
    .await;
    let client = bind(config(
        Identity::generate().unwrap(),
        Side::Attested(Box::new(booted_from(&other))),
        pinned_policy(&rebuilt),
    ))
    .await;
    let (accepted, connected) = pair(&server, &client, ExpectedPeer::AnyAllowedByPolicy).await;
    assert!(connected.is_err());
    assert_eq!(
        measurement_registers(&accepted.unwrap_err()),
        vec![Register::MrTd]
    );
}

#[test]
fn policy_at_level_without_rebuild_is_refused_at_build() {
    let text = format!(
        "version = 1\nlevel = \"TdxPlusReproducibleBuild\"\n\n[[profile]]\nname = \"prod\"\n\
         mr_td = \"{}\"\nrtmr0 = \"any\"\nrtmr1 = \"any\"\nrtmr2 = \"any\"\nrtmr3 = \"any\"\n\
         mr_config_id = \"any\"\nmr_owner = \"any\"\nmr_owner_config = \"any\"\n\
         \n[dangerous]\nstatic_collateral = true\n",
        hex::encode(sample_measurements().mr_td)
    );
    let policy = Policy::from_toml(&text).unwrap();
    assert_eq!(policy.level(), LEVEL);
    let err = try_config(
        Side::Attested(Box::new(sample_measurements())),
        policy.clone(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::NotRebuildPinned(RebuildPinError::NotPinned)
        ),
        "{err:?}"
    );

    // Pinned, but this side presents no quotes: still refused.
    let rebuilt = rebuilt_from(&synthetic_image());
    let mut pinned = policy;
    pinned.pin_rebuilt(&rebuilt);
    let err = try_config(Side::Software, pinned.clone()).unwrap_err();
    assert!(
        matches!(err, ConfigError::LevelNeedsQuoteProvider(LEVEL)),
        "{err:?}"
    );
    assert!(try_config(Side::Attested(Box::new(booted_from(&rebuilt))), pinned).is_ok());
}

#[test]
fn pinned_policy_below_the_level_floor_still_builds() {
    // A rebuild-pinned policy with a lower floor is fine: bonds simply report the level reached.
    let rebuilt = rebuilt_from(&synthetic_image());
    let mut policy = policy(AttestationLevel::TdxRaTlsBidirectional);
    policy.pin_rebuilt(&rebuilt);
    assert!(try_config(Side::Attested(Box::new(booted_from(&rebuilt))), policy).is_ok());
}

/// Writes `image` as a "source" outside the build directory, a recipe copying it, and a policy
/// with a `[build]` section declaring the recipe digest and `expected_mr_td`.
fn build_fixture(dir: &Path, image: &[u8], order: &str) -> (PathBuf, Vec<u8>) {
    let source = dir.join("source.fd");
    std::fs::write(&source, image).unwrap();
    let recipe = format!(
        "#!/bin/sh\nset -e\nmkdir -p out\ncp '{}' out/tdvf.fd\n",
        source.display()
    )
    .into_bytes();
    std::fs::write(dir.join("recipe.sh"), &recipe).unwrap();
    let page_order = match order {
        "section" => PageAddOrder::PerSection,
        _ => PageAddOrder::PerPage,
    };
    let mr_td = ratls_quic::measure::measure_mr_td(image, page_order).unwrap();
    let policy = format!(
        "[build]\nrecipe_digest = \"{}\"\nrecipe = \"recipe.sh\"\ncommand = \"sh recipe.sh\"\n\
         output = \"out/tdvf.fd\"\nexpected_mr_td = \"{}\"\norder = \"{order}\"\n",
        blake3::hash(&recipe).to_hex(),
        hex::encode(mr_td)
    );
    let path = dir.join("policy.toml");
    std::fs::write(&path, policy).unwrap();
    (path, recipe)
}

fn run_verify_build(policy_path: &Path) -> ratls_quic::repro::BuildVerdict {
    let text = std::fs::read_to_string(policy_path).unwrap();
    let build = BuildPolicy::from_toml(&text, policy_path.parent().unwrap()).unwrap();
    let no_urls = |url: &str| Err(format!("no network in this test: {url}"));
    let mut steps = Vec::new();
    let verdict = verify_build(&build, &no_urls, &mut |step, _| steps.push(step)).unwrap();
    for step in [
        Step::Fetch,
        Step::Digest,
        Step::Build,
        Step::Measure,
        Step::Compare,
    ] {
        assert!(steps.contains(&step), "{step} not reported: {steps:?}");
    }
    verdict
}

#[tokio::test]
async fn verify_build_result_pins_the_policy_and_bonds() {
    let dir = tempfile::tempdir().unwrap();
    let image = synthetic_image();
    let (policy_path, recipe) = build_fixture(dir.path(), &image, "per-page");
    let verdict = run_verify_build(&policy_path);
    let rebuilt = verdict.rebuilt();
    assert_eq!(rebuilt.recipe_digest(), blake3::hash(&recipe).as_bytes());
    assert_eq!(rebuilt.mr_td(), &verdict.mr_td);
    assert_eq!(rebuilt.mr_td(), rebuilt_from(&image).mr_td());
    assert!(rebuilt.rtmr1().is_none() && rebuilt.rtmr2().is_none());
    bond_both_ways(rebuilt).await;
}

/// Debian's OVMF.fd, when the test script fetched it (`scripts/fetch-ovmf.sh`).
/// Debian's OVMF.fd as `scripts/fetch-ovmf.sh` unpacks it. Missing is a failure under CI, where
/// the test script fetches it, and a skip elsewhere.
fn debian_ovmf() -> Option<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ovmf/usr/share/ovmf/OVMF.fd");
    let image = std::fs::read(path).ok();
    assert!(
        image.is_some() || std::env::var("CI").as_deref() != Ok("true"),
        "target/ovmf/usr/share/ovmf/OVMF.fd is missing: run scripts/fetch-ovmf.sh"
    );
    image
}

#[tokio::test]
async fn debian_ovmf_rebuild_pins_the_policy_and_bonds() {
    let Some(image) = debian_ovmf() else {
        eprintln!("skipped: target/ovmf/usr/share/ovmf/OVMF.fd is absent (scripts/fetch-ovmf.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (policy_path, _) = build_fixture(dir.path(), &image, "per-page");
    let verdict = run_verify_build(&policy_path);
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&image));
    if sha256 == DEBIAN_OVMF_SHA256 {
        assert_eq!(
            hex::encode(verdict.rebuilt().mr_td()),
            DEBIAN_OVMF_MRTD_PER_PAGE
        );
    } else {
        eprintln!("OVMF.fd is not the pinned Debian build ({sha256}): MRTD not cross-checked");
    }
    bond_both_ways(verdict.rebuilt()).await;
}

#[tokio::test]
async fn emitted_policy_file_carries_the_rebuild_and_bonds() {
    let dir = tempfile::tempdir().unwrap();
    let image = synthetic_image();
    let (policy_path, recipe) = build_fixture(dir.path(), &image, "section");
    let out_path = dir.path().join("transport.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ratls"))
        .arg("verify-build")
        .arg("--policy")
        .arg(&policy_path)
        .arg("--emit-policy")
        .arg(&out_path)
        .arg("--static-collateral")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("wrote "), "{stdout}");

    let policy = Policy::from_toml(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(policy.level(), LEVEL);
    let pin = policy.rebuild_pin().unwrap();
    assert_eq!(pin.provenance(), RebuildProvenance::PolicyFile);
    assert_eq!(pin.recipe_digest(), blake3::hash(&recipe).as_bytes());
    assert_eq!(pin.order(), PageAddOrder::PerSection);
    let expected =
        RebuiltMeasurements::from_image(&image, PageAddOrder::PerSection, [0; 32]).unwrap();
    assert_eq!(pin.mr_td(), expected.mr_td());
    bond_both_ways_with(pin, &policy).await;

    // Editing the pinned MRTD in the file breaks the record: the file is refused.
    let text = std::fs::read_to_string(&out_path).unwrap();
    let edited = text.replacen(
        &format!("mr_td = \"{}\"\nrtmr0", hex::encode(pin.mr_td())),
        &format!(
            "mr_td = \"{}\"\nrtmr0",
            hex::encode(sample_measurements().mr_td)
        ),
        1,
    );
    assert_ne!(edited, text);
    assert!(matches!(
        Policy::from_toml(&edited),
        Err(ratls_quic::PolicyFileError::Rebuild(m)) if m.contains("mr_td")
    ));
}
