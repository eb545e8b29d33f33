//! Interoperability with the real `mosaik` crate (see `README.md`).
//!
//! [`echo`] is a small request/response protocol written against the shape of mosaik's
//! crate-private `network::link` API (the way mosaik's own discovery ping is written), running
//! over `ratls_quic::link`: only its `use` lines differ from the same protocol inside mosaik.

pub mod echo;
