//! `examples/bond.rs` (the README's Rust example) runs to completion.

#[path = "../examples/bond.rs"]
mod bond;

#[test]
fn bond_example_runs() {
    bond::main().unwrap();
}
