//! The few CBOR (RFC 8949) items the evidence extension needs: unsigned integers, byte and text
//! strings, arrays, maps and one tag. Definite lengths and shortest-form heads only, on both
//! sides: anything else is refused, so every accepted value has exactly one encoding.

// Parses bytes from the network or from files: no panics, no unchecked arithmetic.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use super::EvidenceError;

/// Major types used here.
pub(super) const UINT: u8 = 0;
pub(super) const BYTES: u8 = 2;
pub(super) const TEXT: u8 = 3;
pub(super) const ARRAY: u8 = 4;
pub(super) const MAP: u8 = 5;
pub(super) const TAG: u8 = 6;

/// Appends a shortest-form head of major type `major` with argument `value`.
pub(super) fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    if let Ok(v @ 0..=23) = u8::try_from(value) {
        out.push(m | v);
    } else if let Ok(v) = u8::try_from(value) {
        out.extend_from_slice(&[m | 24, v]);
    } else if let Ok(v) = u16::try_from(value) {
        out.push(m | 25);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        out.push(m | 26);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a byte string.
pub(super) fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    head(out, BYTES, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a text string.
pub(super) fn text(out: &mut Vec<u8>, value: &str) {
    head(out, TEXT, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// A strict reader over one buffer.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

fn malformed(what: &'static str) -> EvidenceError {
    EvidenceError::Malformed(what)
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], EvidenceError> {
        if n > self.buf.len() {
            return Err(malformed("truncated CBOR"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Reads a head and returns (major type, argument).
    pub(super) fn head(&mut self) -> Result<(u8, u64), EvidenceError> {
        let first = *self.take(1)?.first().ok_or(malformed("truncated CBOR"))?;
        let major = first >> 5;
        let info = first & 0x1f;
        let (value, min) = match info {
            0..=23 => (u64::from(info), 0),
            24 => (u64::from(self.be::<1>()?[0]), 24),
            25 => (u64::from(u16::from_be_bytes(self.be::<2>()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.be::<4>()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.be::<8>()?), 0x1_0000_0000),
            _ => return Err(malformed("indefinite or reserved CBOR length")),
        };
        if value < min {
            return Err(malformed("non-shortest CBOR head"));
        }
        Ok((major, value))
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], EvidenceError> {
        self.take(N)?
            .try_into()
            .map_err(|_| malformed("truncated CBOR"))
    }

    /// Reads a head of the given major type and returns its argument.
    pub(super) fn expect(&mut self, major: u8, what: &'static str) -> Result<u64, EvidenceError> {
        let (m, value) = self.head()?;
        if m == major {
            Ok(value)
        } else {
            Err(malformed(what))
        }
    }

    /// Reads a byte string.
    pub(super) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], EvidenceError> {
        let len = self.expect(BYTES, what)?;
        let len = usize::try_from(len).map_err(|_| malformed("truncated CBOR"))?;
        self.take(len)
    }

    /// Reads a UTF-8 text string.
    pub(super) fn text(&mut self, what: &'static str) -> Result<&'a str, EvidenceError> {
        let len = self.expect(TEXT, what)?;
        let len = usize::try_from(len).map_err(|_| malformed("truncated CBOR"))?;
        core::str::from_utf8(self.take(len)?).map_err(|_| malformed("CBOR text is not UTF-8"))
    }

    /// Fails unless every byte was consumed.
    pub(super) fn finish(&self, what: &'static str) -> Result<(), EvidenceError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(malformed(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_shortest_and_round_trip() {
        for value in [
            0u64,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            head(&mut out, UINT, value);
            let mut r = Reader::new(&out);
            assert_eq!(r.head().unwrap(), (UINT, value));
            r.finish("trailing").unwrap();
        }
        // 5 encoded with a one-byte argument is not shortest form.
        assert!(Reader::new(&[0x18, 5]).head().is_err());
        // Indefinite-length byte string.
        assert!(Reader::new(&[0x5f]).head().is_err());
        assert!(Reader::new(&[0x19, 1]).head().is_err());
        assert!(Reader::new(&[]).head().is_err());
    }
}
