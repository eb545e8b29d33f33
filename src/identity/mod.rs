//! Long-term peer identity: an Ed25519 key pair, and the [`PeerId`] that names it.
//!
//! # Key file format
//!
//! A key file holds exactly one PKCS#8 private key as PEM with the label `PRIVATE KEY`. It is
//! written as PKCS#8 v1 (RFC 5208, no public key), the format `openssl genpkey -algorithm ed25519`
//! writes and OpenSSL 3.0 reads; [`Identity::load`] also accepts v2 (RFC 5958, with the public
//! key, which must then match the secret key). It is
//! written with mode 0600 through a temporary file in the same directory and a rename, so a reader
//! sees either the old file or the complete new one, never a partial key. [`Identity::load`]
//! refuses a file that group or others may read or write, a file larger than
//! [`MAX_KEY_FILE_LEN`], and anything that is not a single Ed25519 PKCS#8 PEM key.

use core::fmt;
use core::str::FromStr;
use std::path::PathBuf;

use crate::crypto::{SecureRandom, SystemRng as SystemRandom};
use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};

mod key_file;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

/// Length of an Ed25519 public key, and so of a [`PeerId`].
pub const PEER_ID_LEN: usize = 32;

/// Largest key file [`Identity::load`] reads. A PEM Ed25519 key is about 120 bytes.
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// Errors of the identity layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key material or key file has the wrong length (empty, oversized, or raw key bytes
    /// that are not 32 bytes long).
    #[error("bad key length: {len} bytes ({expected})")]
    BadLength {
        /// The length found.
        len: u64,
        /// What was expected.
        expected: &'static str,
    },
    /// The key file is not a PKCS#8 PEM Ed25519 private key.
    #[error("key file {path} is not a PKCS#8 PEM Ed25519 private key: {source}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        #[source]
        source: KeyFormatError,
    },
    /// The key could not be encoded as PKCS#8.
    #[error("key encoding failed: {0}")]
    Encoding(#[source] ed25519_dalek::pkcs8::Error),
    /// The text is not a peer id (64 hex digits naming a valid Ed25519 public key).
    #[error("invalid peer id: {0}")]
    InvalidPeerId(&'static str),
    /// Group or others may access the key file; it is refused rather than trusted.
    #[error("key file {path} has mode {mode:04o}: group/other access is refused, use chmod 600")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system random number generator failed.
    #[error("system random number generator failed")]
    Rng,
}

/// Why a key file's text is not an Ed25519 key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// The file is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
    /// The text is not a PKCS#8 PEM Ed25519 private key.
    #[error("{0}")]
    Pkcs8(#[source] ed25519_dalek::pkcs8::Error),
}

/// A peer's name: its 32-byte Ed25519 public key.
///
/// `Display` writes 64 lowercase hex digits, `FromStr` takes 64 hex digits of either case, and
/// `Debug` shows the first 8.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; PEER_ID_LEN]);

impl PeerId {
    /// Wraps public key bytes without checking that they are a valid Ed25519 point.
    pub const fn from_bytes(bytes: [u8; PEER_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The public key bytes.
    pub const fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// The Ed25519 public key, or an error if the bytes are not a valid point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, IdentityError> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| IdentityError::InvalidPeerId("not an Ed25519 public key"))
    }

    /// `blake3(public key)`: the digest a Software-level policy lists.
    pub fn attestation_digest(&self) -> [u8; 32] {
        *blake3::hash(&self.0).as_bytes()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = hex::encode(self.0.get(..4).unwrap_or_default());
        write!(f, "PeerId({short}…)")
    }
}

impl FromStr for PeerId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 2 * PEER_ID_LEN {
            return Err(IdentityError::InvalidPeerId("expected 64 hex digits"));
        }
        let mut bytes = [0u8; PEER_ID_LEN];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| IdentityError::InvalidPeerId("not hexadecimal"))?;
        Ok(Self(bytes))
    }
}

/// A peer's long-term Ed25519 key pair. `Debug` shows only the [`PeerId`].
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(secret.as_mut())
            .map_err(|_| IdentityError::Rng)?;
        Ok(Self {
            key: SigningKey::from_bytes(&secret),
        })
    }

    /// The key whose 32-byte secret seed is `secret` (RFC 8032).
    pub fn from_secret_bytes(secret: &[u8]) -> Result<Self, IdentityError> {
        let seed: &[u8; 32] = secret.try_into().map_err(|_| IdentityError::BadLength {
            len: secret.len() as u64,
            expected: "a raw Ed25519 secret key is 32 bytes",
        })?;
        Ok(Self {
            key: SigningKey::from_bytes(seed),
        })
    }

    /// This identity's name.
    pub fn peer_id(&self) -> PeerId {
        PeerId(self.key.verifying_key().to_bytes())
    }

    /// `blake3(public key)`, as [`PeerId::attestation_digest`].
    pub fn attestation_digest(&self) -> [u8; 32] {
        self.peer_id().attestation_digest()
    }

    /// The private key as PKCS#8 v1 DER, the form rustls and rcgen take. The copy is wiped
    /// when dropped (the encoder's own buffer is too).
    pub fn private_key_der(&self) -> Result<Zeroizing<PrivateKeyDer<'static>>, IdentityError> {
        let doc = self
            .pkcs8_v1()
            .to_pkcs8_der()
            .map_err(IdentityError::Encoding)?;
        Ok(Zeroizing::new(PrivateKeyDer::Pkcs8(
            PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()),
        )))
    }

    /// PKCS#8 v1: the secret seed only (OpenSSL 3.0 refuses v2 Ed25519 keys).
    pub(crate) fn pkcs8_v1(&self) -> KeypairBytes {
        KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
    }

    /// Signs `message` with the identity key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
