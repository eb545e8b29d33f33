//! Synthetic TDX quotes under a test PKI made at run time.
