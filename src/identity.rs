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
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use ring::rand::{SecureRandom, SystemRandom};
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
    #[error("key file {path} is not a PKCS#8 PEM Ed25519 private key: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The key could not be encoded as PKCS#8.
    #[error("key encoding failed: {0}")]
    Encoding(String),
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

    /// The private key as PKCS#8 v1 DER, the form rustls and rcgen take.
    pub fn private_key_der(&self) -> Result<PrivateKeyDer<'static>, IdentityError> {
        let doc = self
            .pkcs8_v1()
            .to_pkcs8_der()
            .map_err(|e| IdentityError::Encoding(e.to_string()))?;
        Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            doc.as_bytes().to_vec(),
        )))
    }

    /// PKCS#8 v1: the secret seed only (OpenSSL 3.0 refuses v2 Ed25519 keys).
    fn pkcs8_v1(&self) -> KeypairBytes {
        KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
    }

    /// Reads a key file (see the module docs for the format and the checks).
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // Checked on the open handle, so the file cannot be swapped between check and read.
        let meta = file.metadata().map_err(io)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
        if meta.len() == 0 || meta.len() > MAX_KEY_FILE_LEN {
            return Err(IdentityError::BadLength {
                len: meta.len(),
                expected: "a key file is between 1 and 4096 bytes",
            });
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE_LEN)
            .read_to_string(&mut text)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => IdentityError::BadPem {
                    path: path.to_owned(),
                    reason: "not UTF-8 text".to_owned(),
                },
                _ => io(e),
            })?;
        let key = SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| IdentityError::BadPem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self { key })
    }

    /// Writes the key file atomically with mode 0600, replacing any file at `path`.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        let pem = self
            .pkcs8_v1()
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::Encoding(e.to_string()))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| io(std::io::Error::other("path has no file name")))?;
        let mut suffix = [0u8; 8];
        SystemRandom::new()
            .fill(&mut suffix)
            .map_err(|_| IdentityError::Rng)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
        let tmp = dir.join(tmp_name);

        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(pem.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            // Make the rename durable.
            File::open(&dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(e)
        })
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
mod tests {
    use super::*;

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn key_file_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let id = Identity::generate().unwrap();
        id.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Identity::load(&path).unwrap();
        assert_eq!(back.peer_id(), id.peer_id());
        // Overwrite is atomic and leaves no temporary file behind.
        Identity::generate().unwrap().save(&path).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn key_file_readable_by_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        Identity::generate().unwrap().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load(&path).unwrap_err();
        assert!(
            matches!(err, IdentityError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn truncated_garbage_and_empty_key_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.key");
        Identity::generate().unwrap().save(&good).unwrap();
        let pem = fs::read(&good).unwrap();

        let path = dir.path().join("bad.key");
        write_mode(&path, &pem[..pem.len() / 2], 0o600);
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::BadPem { .. })
        ));
        write_mode(&path, b"garbage\x00\xff not a key", 0o600);
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::BadPem { .. })
        ));
        write_mode(&path, b"", 0o600);
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::BadLength { .. })
        ));
        write_mode(&path, &[b'A'; 5000], 0o600);
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::BadLength { .. })
        ));
        let missing = dir.path().join("missing.key");
        assert!(matches!(
            Identity::load(&missing),
            Err(IdentityError::Io { .. })
        ));
    }

    #[test]
    fn openssl_style_v1_key_file_loads() {
        // RFC 8032 7.1 TEST 1 secret key as PKCS#8 v1 PEM, as `openssl genpkey` writes it.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
                   -----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openssl.key");
        write_mode(&path, pem.as_bytes(), 0o600);
        let id = Identity::load(&path).unwrap();
        assert_eq!(
            id.peer_id().to_string(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        // And we write the same bytes back.
        let out = dir.path().join("ours.key");
        id.save(&out).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), pem);
        // PKCS#8 v2 (with the public key) is accepted too.
        let v2 = id.key.to_pkcs8_pem(LineEnding::LF).unwrap();
        write_mode(&path, v2.as_bytes(), 0o600);
        assert_eq!(Identity::load(&path).unwrap().peer_id(), id.peer_id());
    }

    #[test]
    fn raw_secret_of_wrong_length_refused() {
        assert!(matches!(
            Identity::from_secret_bytes(&[7; 31]),
            Err(IdentityError::BadLength { len: 31, .. })
        ));
        assert!(Identity::from_secret_bytes(&[7; 32]).is_ok());
    }

    #[test]
    fn peer_id_hex_round_trips() {
        let id = Identity::generate().unwrap().peer_id();
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert!(text[..63].parse::<PeerId>().is_err());
        assert!(format!("{}zz", &text[..62]).parse::<PeerId>().is_err());
        assert!(format!("{text}00").parse::<PeerId>().is_err());
        assert!(id.verifying_key().is_ok());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let id = Identity::from_secret_bytes(&[0xab; 32]).unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains("abab"), "{dbg}");
        assert!(dbg.contains("PeerId("));
        assert!(format!("{:?}", id.peer_id()).len() < 24);
    }

    #[test]
    fn attestation_digest_is_blake3_of_public_key() {
        let id = Identity::generate().unwrap();
        assert_eq!(
            id.attestation_digest(),
            *blake3::hash(id.peer_id().as_bytes()).as_bytes()
        );
    }
}
