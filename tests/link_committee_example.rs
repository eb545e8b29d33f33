//! `examples/committee.rs` runs to completion: five members mesh, a member with other
//! Measurements is refused by all, the others keep working, and it rejoins when fixed.

#[allow(unreachable_pub)] // the example's `main` is public so that this test can call it
#[path = "../examples/committee.rs"]
mod committee;

#[test]
fn committee_example_runs() {
    committee::main().unwrap();
}
