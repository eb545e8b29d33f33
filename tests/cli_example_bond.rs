//! `examples/bond.rs` (the README's Rust example) runs to completion.

#[path = "../examples/bond.rs"]
#[allow(unreachable_pub)] // the example's `main` is public so that this test can call it
mod bond;

#[test]
fn bond_example_runs() {
    bond::main().unwrap();
}
