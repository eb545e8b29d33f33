//! `examples/committee.rs` runs to completion: five members mesh, a member with other
//! Measurements is refused by all, the others keep working, and it rejoins when fixed.

#[path = "../examples/committee.rs"]
mod committee;

#[test]
fn committee_example_runs() {
    committee::main().unwrap();
}
