//! Byte-level building blocks of the log formats: a bounds-checked reader, a writer, the record
//! frame and the segment header. Pure: no I/O, no clock.
//!
//! Every read is checked: hostile bytes give a [`FormatError`], never a panic.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::FormatError;

/// A 32-byte blake3 digest.
pub type Digest = [u8; 32];

/// Magic that starts every record frame.
pub const FRAME_MAGIC: &[u8; 4] = b"RQLR";

/// Bytes of a frame around its payload: magic, length, digest.
pub(super) const FRAME_OVERHEAD: usize = 4 + 4 + 32;

/// Largest record payload accepted (two quotes of at most 8 KiB and their binding inputs fit
/// many times over).
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024;

/// Magic that starts every segment file.
pub const SEGMENT_MAGIC: &[u8; 4] = b"RQEL";

/// Length of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// Version byte of the segment header and of record payloads.
pub const FORMAT_VERSION: u8 = 1;

/// blake3 derive-key context of a record digest.
pub const RECORD_CONTEXT: &str = "ratls-quic evidence-log record v1";

/// blake3 derive-key context of the segment header check.
pub const SEGMENT_CONTEXT: &str = "ratls-quic evidence-log segment v1";

/// The digest of a record: blake3 in derive-key mode with [`RECORD_CONTEXT`] over the payload.
/// It is the frame's checksum and the value the next record names as its predecessor.
pub fn record_digest(payload: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new_derive_key(RECORD_CONTEXT);
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// Frames `payload`: magic, length (u32 big-endian), payload, digest.
pub(super) fn frame(payload: &[u8]) -> Result<Vec<u8>, FormatError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= MAX_PAYLOAD_LEN)
        .ok_or(FormatError::TooLarge {
            what: "record payload",
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        })?;
    let mut out = Vec::with_capacity(payload.len().saturating_add(FRAME_OVERHEAD));
    out.extend_from_slice(FRAME_MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&record_digest(payload));
    Ok(out)
}

/// Why the bytes at some offset are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameDefect {
    /// The bytes do not start with [`FRAME_MAGIC`].
    BadMagic,
    /// The declared length exceeds [`MAX_PAYLOAD_LEN`].
    TooLarge,
    /// The frame runs past the end of the data (a torn write, typically).
    Truncated,
    /// The digest does not match the payload (a changed byte, or a torn write).
    DigestMismatch,
}

/// One valid frame found by [`scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FrameSpan {
    /// Offset of the frame's magic.
    pub offset: usize,
    /// Offset of the payload.
    pub payload_start: usize,
    /// Offset one past the payload.
    pub payload_end: usize,
    /// Offset one past the frame.
    pub end: usize,
    /// The stored digest (equal to the payload's).
    pub digest: Digest,
}

/// What [`scan`] found at one place in the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scanned {
    /// A valid frame.
    Frame(FrameSpan),
    /// Bytes from `offset` to `end` that hold no valid frame. When the defect is
    /// [`FrameDefect::DigestMismatch`] the declared length was plausible, and `payload` gives
    /// the payload range the length named, so a reader can still say which record it was.
    Bad {
        /// Where the bad bytes start.
        offset: usize,
        /// Where the next valid frame starts (or the end of the data).
        end: usize,
        /// What is wrong at `offset`.
        defect: FrameDefect,
        /// The payload range the declared length names, when it lies inside the data.
        payload: Option<(usize, usize)>,
    },
}

/// Reads one frame at `offset`.
pub(super) fn frame_at(
    data: &[u8],
    offset: usize,
) -> Result<FrameSpan, (FrameDefect, Option<(usize, usize)>)> {
    let rest = data.get(offset..).unwrap_or_default();
    let Some((magic, rest)) = rest.split_first_chunk::<4>() else {
        return Err((FrameDefect::Truncated, None));
    };
    if magic != FRAME_MAGIC {
        return Err((FrameDefect::BadMagic, None));
    }
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return Err((FrameDefect::Truncated, None));
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err((FrameDefect::TooLarge, None));
    }
    let payload_start = offset.saturating_add(8);
    let payload_end = payload_start.saturating_add(len);
    let (Some(payload), Some(stored)) = (
        rest.get(..len),
        rest.get(len..).and_then(|r| r.first_chunk::<32>()),
    ) else {
        return Err((FrameDefect::Truncated, None));
    };
    if record_digest(payload) != *stored {
        return Err((
            FrameDefect::DigestMismatch,
            Some((payload_start, payload_end)),
        ));
    }
    Ok(FrameSpan {
        offset,
        payload_start,
        payload_end,
        end: payload_end.saturating_add(32),
        digest: *stored,
    })
}

/// Splits `data` (the bytes after a segment header) into valid frames and bad stretches. After a
/// bad frame the scan resumes at the next offset where a valid frame starts, so one damaged
/// record does not hide the ones after it.
pub(super) fn scan(data: &[u8]) -> Vec<Scanned> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        match frame_at(data, pos) {
            Ok(span) => {
                pos = span.end;
                out.push(Scanned::Frame(span));
            }
            Err((defect, payload)) => {
                let end = next_frame(data, pos.saturating_add(1)).unwrap_or(data.len());
                out.push(Scanned::Bad {
                    offset: pos,
                    end,
                    defect,
                    payload,
                });
                pos = end;
            }
        }
    }
    out
}

/// The first offset at or after `from` where a valid frame starts.
fn next_frame(data: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    loop {
        let window = data.get(pos..)?;
        let found = window.windows(4).position(|w| w == FRAME_MAGIC)?;
        let at = pos.saturating_add(found);
        if frame_at(data, at).is_ok() {
            return Some(at);
        }
        pos = at.saturating_add(1);
    }
}

/// A segment file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SegmentHeader {
    /// Sequence number of the segment (0 for the first).
    pub seq: u64,
    /// Index of the first record the segment holds.
    pub first_index: u64,
}

impl SegmentHeader {
    /// The 32 header bytes: magic, version, three zero bytes, seq and first index (u64
    /// big-endian), and the first 8 bytes of blake3 (derive-key, [`SEGMENT_CONTEXT`]) of the
    /// 24 bytes before.
    pub(super) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut w = Writer::default();
        w.bytes(SEGMENT_MAGIC);
        w.u8(FORMAT_VERSION);
        w.bytes(&[0, 0, 0]);
        w.u64(self.seq);
        w.u64(self.first_index);
        let check = segment_check(&w.0);
        w.bytes(&check);
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        for (slot, byte) in out.iter_mut().zip(w.0) {
            *slot = byte;
        }
        out
    }

    /// Reads a header from the start of `data`.
    pub(super) fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(data);
        if r.array::<4>("segment magic")? != *SEGMENT_MAGIC {
            return Err(FormatError::Malformed("segment magic"));
        }
        let version = r.u8("segment version")?;
        if version != FORMAT_VERSION {
            return Err(FormatError::UnknownVersion(version));
        }
        if r.array::<3>("segment reserved")? != [0, 0, 0] {
            return Err(FormatError::Malformed("segment reserved bytes"));
        }
        let seq = r.u64("segment seq")?;
        let first_index = r.u64("segment first index")?;
        let check = r.array::<8>("segment check")?;
        let covered = data
            .get(..24)
            .ok_or(FormatError::Truncated("segment header"))?;
        if segment_check(covered) != check {
            return Err(FormatError::Malformed("segment header check"));
        }
        Ok(Self { seq, first_index })
    }
}

fn segment_check(bytes: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new_derive_key(SEGMENT_CONTEXT);
    hasher.update(bytes);
    let digest = hasher.finalize();
    let mut out = [0u8; 8];
    for (slot, byte) in out.iter_mut().zip(digest.as_bytes()) {
        *slot = *byte;
    }
    out
}

/// Appends big-endian integers and length-prefixed fields.
#[derive(Debug, Default)]
pub(super) struct Writer(pub Vec<u8>);

impl Writer {
    /// One byte.
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// A u16, big-endian.
    pub(super) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// A u32, big-endian.
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// A u64, big-endian.
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Raw bytes, no length.
    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    /// A u16 length, then the bytes; refuses more than `max` (at most 65,535).
    pub(super) fn bytes16(
        &mut self,
        what: &'static str,
        v: &[u8],
        max: usize,
    ) -> Result<(), FormatError> {
        let len = checked_len::<u16>(what, v.len(), max)?;
        self.u16(len);
        self.bytes(v);
        Ok(())
    }
    /// A u32 length, then the bytes; refuses more than `max`.
    pub(super) fn bytes32(
        &mut self,
        what: &'static str,
        v: &[u8],
        max: usize,
    ) -> Result<(), FormatError> {
        let len = checked_len::<u32>(what, v.len(), max)?;
        self.u32(len);
        self.bytes(v);
        Ok(())
    }
    /// An optional 32-byte digest: 0, or 1 and the digest.
    pub(super) fn opt_digest(&mut self, v: Option<&Digest>) {
        match v {
            None => self.u8(0),
            Some(d) => {
                self.u8(1);
                self.bytes(d);
            }
        }
    }
}

fn checked_len<T: TryFrom<usize>>(
    what: &'static str,
    len: usize,
    max: usize,
) -> Result<T, FormatError> {
    let too_large = FormatError::TooLarge { what, len, max };
    if len > max {
        return Err(too_large);
    }
    T::try_from(len).map_err(|_| too_large)
}

/// Reads what [`Writer`] wrote, checking every bound.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// Fails unless everything was read.
    pub(super) fn finish(&self, what: &'static str) -> Result<(), FormatError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(FormatError::TrailingBytes(what))
        }
    }

    /// Everything not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.rest)
    }

    /// `n` raw bytes.
    pub(super) fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.rest.len() {
            return Err(FormatError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// A fixed-size array.
    pub(super) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], FormatError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(FormatError::Truncated(what))?;
        self.rest = tail;
        Ok(*head)
    }

    /// One byte.
    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(u8::from_be_bytes(self.array(what)?))
    }
    /// A big-endian u16.
    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    /// A big-endian u32.
    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    /// A big-endian u64.
    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    /// A u16-length-prefixed byte string of at most `max` bytes.
    pub(super) fn bytes16(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<&'a [u8], FormatError> {
        let len = usize::from(self.u16(what)?);
        if len > max {
            return Err(FormatError::TooLarge { what, len, max });
        }
        self.take(what, len)
    }
    /// A u32-length-prefixed byte string of at most `max` bytes.
    pub(super) fn bytes32(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<&'a [u8], FormatError> {
        let len = usize::try_from(self.u32(what)?).unwrap_or(usize::MAX);
        if len > max {
            return Err(FormatError::TooLarge { what, len, max });
        }
        self.take(what, len)
    }
    /// A u16-length-prefixed UTF-8 string of at most `max` bytes.
    pub(super) fn string16(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<String, FormatError> {
        let bytes = self.bytes16(what, max)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::Malformed(what))
    }
    /// What [`Writer::opt_digest`] wrote.
    pub(super) fn opt_digest(&mut self, what: &'static str) -> Result<Option<Digest>, FormatError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.array(what)?)),
            _ => Err(FormatError::Malformed(what)),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_scan_finds_it() {
        let mut data = frame(b"one").unwrap();
        data.extend(frame(b"two").unwrap());
        let found = scan(&data);
        assert_eq!(found.len(), 2);
        let Scanned::Frame(second) = found[1] else {
            panic!("{found:?}")
        };
        assert_eq!(&data[second.payload_start..second.payload_end], b"two");
        assert_eq!(second.digest, record_digest(b"two"));
    }

    #[test]
    fn changed_byte_is_one_bad_frame_and_scan_resumes() {
        let mut data = frame(b"first").unwrap();
        let second_at = data.len();
        data.extend(frame(b"second").unwrap());
        data.extend(frame(b"third").unwrap());
        data[second_at + 9] ^= 1;
        let found = scan(&data);
        assert_eq!(found.len(), 3);
        assert!(matches!(found[0], Scanned::Frame(_)));
        assert!(matches!(
            found[1],
            Scanned::Bad { offset, defect: FrameDefect::DigestMismatch, payload: Some(_), .. }
                if offset == second_at
        ));
        assert!(matches!(found[2], Scanned::Frame(_)));
    }

    #[test]
    fn torn_frame_is_a_truncated_tail() {
        let mut data = frame(b"whole").unwrap();
        let whole = data.len();
        let torn = frame(b"torn record").unwrap();
        for cut in 1..torn.len() {
            let mut d = data.clone();
            d.extend_from_slice(&torn[..cut]);
            let found = scan(&d);
            assert_eq!(found.len(), 2, "cut {cut}");
            assert!(
                matches!(found[1], Scanned::Bad { offset, end, .. } if offset == whole && end == d.len())
            );
        }
        data.truncate(whole);
    }

    #[test]
    fn segment_header_round_trips_and_rejects_changes() {
        let header = SegmentHeader {
            seq: 3,
            first_index: 1000,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), header);
        for i in 0..bytes.len() {
            let mut b = bytes;
            b[i] ^= 0x40;
            assert!(SegmentHeader::decode(&b).is_err(), "byte {i}");
        }
        assert!(SegmentHeader::decode(&bytes[..31]).is_err());
    }

    #[test]
    fn reader_refuses_lengths_past_the_end() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert!(r.bytes32("x", usize::MAX).is_err());
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert!(matches!(
            r.bytes16("x", 100),
            Err(FormatError::Truncated("x"))
        ));
        let mut r = Reader::new(&[0, 200]);
        assert!(matches!(
            r.bytes16("x", 100),
            Err(FormatError::TooLarge { .. })
        ));
    }
}
