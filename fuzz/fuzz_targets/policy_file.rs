//! Fuzz target `policy_file`: see `ratls_quic::fuzzing::policy_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ratls_quic::fuzzing::policy_file(data));
