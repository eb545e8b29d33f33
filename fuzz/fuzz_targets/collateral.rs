//! Fuzz target `collateral`: see `ratls_quic::fuzzing::collateral`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ratls_quic::fuzzing::collateral(data));
