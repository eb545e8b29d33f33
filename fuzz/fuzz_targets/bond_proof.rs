//! Fuzz target `bond_proof`: see `ratls_quic::fuzzing::bond_proof`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ratls_quic::fuzzing::bond_proof(data));
