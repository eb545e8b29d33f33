//! What a link carries: values encoded to one frame each.

use bytes::Bytes;

/// A value that travels as one link frame. With the `postcard` feature (on by default) every
/// `serde` type is a `Datum`, encoded with postcard exactly as mosaik encodes it, so the same
/// types interoperate byte for byte.
pub trait Datum: Sized + Send + 'static {
    /// Why encoding failed.
    type EncodeError: std::error::Error + Send + Sync + 'static;
    /// Why decoding failed.
    type DecodeError: std::error::Error + Send + Sync + 'static;

    /// The frame payload of this value.
    fn encode(&self) -> Result<Bytes, Self::EncodeError>;

    /// The value a frame payload holds. Runs on peer bytes: must reject, never panic.
    fn decode(bytes: &[u8]) -> Result<Self, Self::DecodeError>;
}

#[cfg(feature = "postcard")]
impl<T> Datum for T
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    type EncodeError = postcard::Error;
    type DecodeError = postcard::Error;

    fn encode(&self) -> Result<Bytes, Self::EncodeError> {
        postcard::to_allocvec(self).map(Bytes::from)
    }

    fn decode(bytes: &[u8]) -> Result<Self, Self::DecodeError> {
        postcard::from_bytes(bytes)
    }
}

#[cfg(all(test, feature = "postcard"))]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        id: u64,
        name: String,
        tags: Vec<u8>,
    }

    #[test]
    fn postcard_round_trip_and_known_bytes() {
        let sample = Sample {
            id: 300,
            name: "ab".into(),
            tags: vec![1, 2],
        };
        let bytes = sample.encode().unwrap();
        // postcard: varint 300 = ac 02, then length-prefixed string and bytes.
        assert_eq!(bytes.as_ref(), &[0xac, 0x02, 2, b'a', b'b', 2, 1, 2]);
        assert_eq!(Sample::decode(&bytes).unwrap(), sample);
        for len in 0..bytes.len() {
            assert!(Sample::decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
    }
}
