//! Benchmarks for ratls-quic (filled in with the handshake benchmark).

fn main() {}
