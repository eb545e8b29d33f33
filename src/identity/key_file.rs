//! Key files (shell: the filesystem): PKCS#8 PEM, mode 0600, written atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use super::{Identity, IdentityError, KeyFormatError, MAX_KEY_FILE_LEN};
use crate::crypto::{SecureRandom, SystemRng};

impl Identity {
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
                    source: KeyFormatError::NotText,
                },
                _ => io(e),
            })?;
        let key = SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| IdentityError::BadPem {
            path: path.to_owned(),
            source: KeyFormatError::Pkcs8(e),
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
            .map_err(IdentityError::Encoding)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| io(std::io::Error::other("path has no file name")))?;
        let mut suffix = [0u8; 8];
        SystemRng::new()
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
}
