//! The byte layout of a DCAP quote.
