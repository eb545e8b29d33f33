//! Interoperability with the real `mosaik` crate (see `README.md`).
