//! A node keeps its identity when it changes transport: mosaik's `SecretKey` is the 32-byte
//! Ed25519 secret seed (RFC 8032) and its `PeerId` the 32-byte public key, which are exactly
//! this crate's [`Identity`] seed and [`PeerId`].

use zeroize::Zeroizing;

use crate::identity::{Identity, IdentityError, PeerId, PEER_ID_LEN};

impl From<[u8; PEER_ID_LEN]> for PeerId {
    fn from(bytes: [u8; PEER_ID_LEN]) -> Self {
        Self::from_bytes(bytes)
    }
}

impl From<PeerId> for [u8; PEER_ID_LEN] {
    fn from(id: PeerId) -> Self {
        *id.as_bytes()
    }
}

impl TryFrom<&[u8]> for PeerId {
    type Error = IdentityError;

    /// 32 bytes that are a valid Ed25519 public key.
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        let bytes: [u8; PEER_ID_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::InvalidPeerId("a peer id is 32 bytes"))?;
        let id = Self::from_bytes(bytes);
        id.verifying_key()?;
        Ok(id)
    }
}

/// The identity a mosaik node with this secret key has (`SecretKey::to_bytes()`): same key,
/// same [`PeerId`].
pub fn identity_from_secret_key(secret: &[u8; 32]) -> Identity {
    // 32 bytes is always a valid Ed25519 seed.
    Identity::from_secret_bytes(secret).unwrap_or_else(|_| unreachable!("32-byte seed"))
}

/// The 32-byte secret seed of `identity`, as mosaik's `SecretKey::from_bytes` takes it.
pub fn secret_key_bytes(identity: &Identity) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(identity.pkcs8_v1().secret_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_and_peer_id_round_trip() {
        let identity = Identity::generate().unwrap();
        let secret = secret_key_bytes(&identity);
        let again = identity_from_secret_key(&secret);
        assert_eq!(again.peer_id(), identity.peer_id());
        let bytes: [u8; 32] = identity.peer_id().into();
        assert_eq!(PeerId::from(bytes), identity.peer_id());
        assert_eq!(PeerId::try_from(&bytes[..]).unwrap(), identity.peer_id());
        assert!(PeerId::try_from(&bytes[..31]).is_err());
    }

    #[test]
    fn rfc8032_test_vector_gives_the_same_peer_id() {
        // RFC 8032 §7.1, test 1.
        let secret: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        assert_eq!(
            identity_from_secret_key(&secret).peer_id().to_string(),
            public
        );
    }
}
