//! The evidence protocol's messages: a puller asks for records from an index, or for a
//! collateral document by digest, one request per bidirectional stream. Pure.
//!
//! Formats in `docs/evidence-log.md` ("Pulling the log").

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::checkpoint::CHECKPOINT_BODY_LEN;
use super::codec::{self, Digest, Reader, Writer, FORMAT_VERSION};
use super::{Checkpoint, FormatError};
use crate::MAX_COLLATERAL_LEN;

/// ALPN protocol name of evidence connections.
pub const EVIDENCE_ALPN: &[u8] = b"ratls-evidence/1";

/// Magic of every request and response.
pub const PROTOCOL_MAGIC: &[u8; 4] = b"RQEP";

/// Most records in one response.
pub const MAX_BATCH_RECORDS: u32 = 256;

/// Most frame bytes in one response (a single larger frame is still sent alone).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Largest request.
pub const MAX_REQUEST_LEN: usize = 64;

/// Largest response a puller reads.
pub const MAX_RESPONSE_LEN: usize = MAX_BATCH_BYTES
    .saturating_add(codec::MAX_PAYLOAD_LEN)
    .saturating_add(codec::FRAME_OVERHEAD)
    .saturating_add(1024);

const OP_RECORDS: u8 = 1;
const OP_COLLATERAL: u8 = 2;

/// What a puller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Records from index `from`, at most `max` of them (the server caps it further).
    Records {
        /// First index wanted.
        from: u64,
        /// Most records wanted.
        max: u32,
    },
    /// The collateral document with this digest.
    Collateral(Digest),
}

/// Why a server did not answer with data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Status {
    /// No such collateral.
    #[error("not found")]
    NotFound,
    /// The puller is not allowed to read this log.
    #[error("refused: not on the audit allow-list")]
    Refused,
    /// The request was malformed.
    #[error("bad request")]
    BadRequest,
    /// The server could not read its log.
    #[error("log unavailable")]
    Unavailable,
}

impl Status {
    fn code(self) -> u8 {
        match self {
            Self::NotFound => 1,
            Self::Refused => 2,
            Self::BadRequest => 3,
            Self::Unavailable => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::NotFound,
            2 => Self::Refused,
            3 => Self::BadRequest,
            4 => Self::Unavailable,
            _ => return None,
        })
    }
}

/// A batch of records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    /// How many records the log holds.
    pub log_len: u64,
    /// The log's latest checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// The frames, as stored, each with a valid digest.
    pub frames: Vec<Vec<u8>>,
}

impl Request {
    /// The request bytes: magic, version, op, then `from` (u64) and `max` (u32) for op 1, or
    /// the digest (32) for op 2.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = header();
        match self {
            Self::Records { from, max } => {
                w.u8(OP_RECORDS);
                w.u64(*from);
                w.u32(*max);
            }
            Self::Collateral(digest) => {
                w.u8(OP_COLLATERAL);
                w.bytes(digest);
            }
        }
        w.0
    }

    /// Reads a request.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        check_header(&mut r)?;
        let request = match r.u8("op")? {
            OP_RECORDS => Self::Records {
                from: r.u64("from")?,
                max: r.u32("max")?,
            },
            OP_COLLATERAL => Self::Collateral(r.array("digest")?),
            other => return Err(FormatError::UnknownKind(other)),
        };
        r.finish("request")?;
        Ok(request)
    }
}

fn header() -> Writer {
    let mut w = Writer::default();
    w.bytes(PROTOCOL_MAGIC);
    w.u8(FORMAT_VERSION);
    w
}

fn check_header(r: &mut Reader<'_>) -> Result<(), FormatError> {
    if r.array::<4>("protocol magic")? != *PROTOCOL_MAGIC {
        return Err(FormatError::Malformed("protocol magic"));
    }
    let version = r.u8("protocol version")?;
    if version != FORMAT_VERSION {
        return Err(FormatError::UnknownVersion(version));
    }
    Ok(())
}

/// An error response: magic, version, the status code.
pub fn encode_status(status: Status) -> Vec<u8> {
    let mut w = header();
    w.u8(status.code());
    w.0
}

/// A records response: magic, version, status 0, log length (u64), checkpoint flag (0, or 1
/// and the 144-byte checkpoint body), frame count (u32), the frames.
pub fn encode_records(batch: &RecordBatch) -> Vec<u8> {
    let mut w = header();
    w.u8(0);
    w.u64(batch.log_len);
    match &batch.checkpoint {
        None => w.u8(0),
        Some(c) => {
            w.u8(1);
            w.bytes(&c.encode());
        }
    }
    w.u32(u32::try_from(batch.frames.len()).unwrap_or(u32::MAX));
    for frame in &batch.frames {
        w.bytes(frame);
    }
    w.0
}

/// A collateral response: magic, version, status 0, the JSON with a u32 length.
pub fn encode_collateral(json: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut w = header();
    w.u8(0);
    w.bytes32("collateral", json, MAX_COLLATERAL_LEN)?;
    Ok(w.0)
}

/// Why a response was not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The server answered with an error status.
    #[error("server: {0}")]
    Status(Status),
    /// The bytes are not a response.
    #[error("malformed response: {0}")]
    Format(#[from] FormatError),
    /// A frame in the response is not a valid frame.
    #[error("frame {position} of the response is invalid: {defect:?}")]
    BadFrame {
        /// Its position in the response.
        position: usize,
        /// What is wrong.
        defect: codec::FrameDefect,
    },
    /// More frames than the protocol allows.
    #[error("response holds more than {MAX_BATCH_RECORDS} frames")]
    TooManyFrames,
}

fn status(r: &mut Reader<'_>) -> Result<(), ResponseError> {
    check_header(r)?;
    match r.u8("status")? {
        0 => Ok(()),
        code => Err(Status::from_code(code).map_or(
            ResponseError::Format(FormatError::Malformed("status")),
            ResponseError::Status,
        )),
    }
}

/// Reads a records response; every frame's digest is checked.
pub fn decode_records(bytes: &[u8]) -> Result<RecordBatch, ResponseError> {
    let mut r = Reader::new(bytes);
    status(&mut r)?;
    let log_len = r.u64("log length")?;
    let checkpoint = match r.u8("checkpoint flag")? {
        0 => None,
        1 => {
            let mut body = Reader::new(r.take("checkpoint", CHECKPOINT_BODY_LEN)?);
            Some(Checkpoint::decode_from(&mut body)?)
        }
        _ => return Err(FormatError::Malformed("checkpoint flag").into()),
    };
    let count = r.u32("frame count")?;
    if count > MAX_BATCH_RECORDS {
        return Err(ResponseError::TooManyFrames);
    }
    let rest = r.rest();
    let mut frames = Vec::new();
    let mut pos = 0usize;
    for position in 0..count as usize {
        let span = codec::frame_at(rest, pos)
            .map_err(|(defect, _)| ResponseError::BadFrame { position, defect })?;
        frames.push(rest.get(span.offset..span.end).unwrap_or_default().to_vec());
        pos = span.end;
    }
    if pos != rest.len() {
        return Err(FormatError::TrailingBytes("frames").into());
    }
    Ok(RecordBatch {
        log_len,
        checkpoint,
        frames,
    })
}

/// Reads a collateral response.
pub fn decode_collateral(bytes: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let mut r = Reader::new(bytes);
    status(&mut r)?;
    let json = r.bytes32("collateral", MAX_COLLATERAL_LEN)?.to_vec();
    r.finish("collateral response")?;
    Ok(json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::identity::Identity;

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Records { from: 5, max: 100 },
            Request::Collateral([9; 32]),
        ] {
            assert_eq!(Request::decode(&request.encode()).unwrap(), request);
        }
        assert!(Request::decode(b"RQEP\x01\x03").is_err());
        assert!(Request::decode(b"RQEP\x01\x01\x00").is_err());
    }

    #[test]
    fn records_response_round_trips_and_checks_frames() {
        let id = Identity::generate().unwrap();
        let batch = RecordBatch {
            log_len: 9,
            checkpoint: Some(Checkpoint::sign(&id, 8, [1; 32], 3)),
            frames: vec![codec::frame(b"a").unwrap(), codec::frame(b"bb").unwrap()],
        };
        let bytes = encode_records(&batch);
        assert_eq!(decode_records(&bytes).unwrap(), batch);
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode_records(&bad),
            Err(ResponseError::BadFrame { position: 1, .. })
        ));
        let mut extra = bytes;
        extra.push(0);
        assert!(decode_records(&extra).is_err());
        assert_eq!(
            decode_records(&encode_status(Status::Refused)),
            Err(ResponseError::Status(Status::Refused))
        );
    }

    #[test]
    fn collateral_response_round_trips() {
        let bytes = encode_collateral(b"{}").unwrap();
        assert_eq!(decode_collateral(&bytes).unwrap(), b"{}");
        assert_eq!(
            decode_collateral(&encode_status(Status::NotFound)),
            Err(ResponseError::Status(Status::NotFound))
        );
    }

    proptest! {
        #[test]
        fn hostile_responses_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut with_header = b"RQEP\x01\x00".to_vec();
            with_header.extend_from_slice(&bytes);
            let _ = decode_records(&bytes);
            let _ = decode_records(&with_header);
            let _ = decode_collateral(&with_header);
            let _ = Request::decode(&bytes);
        }
    }
}
