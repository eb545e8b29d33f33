//! Fuzz target `evidence_log`: see `ratls_quic::fuzzing::evidence_log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ratls_quic::fuzzing::evidence_log(data));
