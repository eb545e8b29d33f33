//! Fuzz target `certificate`: see `ratls_quic::fuzzing::certificate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ratls_quic::fuzzing::certificate(data));
