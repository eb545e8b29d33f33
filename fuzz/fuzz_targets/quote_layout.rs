//! Fuzz target `quote_layout`: see `ratls_quic::fuzzing::quote_layout`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ratls_quic::fuzzing::quote_layout(data));
