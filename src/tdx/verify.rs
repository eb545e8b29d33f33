//! DCAP verification of TDX quotes.

/// Verifies TDX quotes.
#[derive(Debug)]
pub struct QuoteVerifier;

/// A quote whose signature chain was verified.
#[derive(Debug)]
pub struct VerifiedQuote;

/// TCB status of the platform.
#[derive(Debug)]
pub enum TcbStatus {
    /// Up to date.
    UpToDate,
}
