//! Fuzz target `evidence_extension`: see `ratls_quic::fuzzing::evidence_extension`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ratls_quic::fuzzing::evidence_extension(data));
