//! Collateral files: what the cache persists, what `ratls collateral fetch` writes, and what
//! `ratls collateral serve --from-dir` reads.
//!
//! A file is either a bare dcap-qvl `QuoteCollateralV3` JSON object (the form `--collateral`
//! takes), or this envelope around one:
//!
//! ```json
//! {"format": "ratls-collateral-v1", "fmspc": "B0C06F000000", "ca": "platform",
//!  "source": "https://pccs.example", "fetched_at": 1750377600, "collateral": { ... }}
//! ```
//!
//! The cache names its files `{FMSPC}-{ca}.json` (upper-case hex FMSPC, `processor` or
//! `platform`) and writes them atomically: a temporary file in the same directory, fsync,
//! rename, fsync of the directory. A reader never trusts a file: it checks the collateral
//! ([`super::check::check_collateral`]) before using it, and ignores what fails.

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

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::platform::PlatformKey;
use crate::tdx::MAX_COLLATERAL_LEN;

/// The `format` value of the envelope.
pub const FORMAT: &str = "ratls-collateral-v1";

/// A collateral file's content.
#[derive(Clone, Debug)]
pub struct CollateralFile {
    /// The service it was fetched from, if recorded.
    pub source: Option<String>,
    /// When it was fetched (unix seconds), if recorded.
    pub fetched_at: Option<u64>,
    /// The collateral.
    pub collateral: dcap_qvl::QuoteCollateralV3,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    fmspc: String,
    ca: String,
    source: Option<String>,
    fetched_at: Option<u64>,
    collateral: dcap_qvl::QuoteCollateralV3,
}

/// The cache's file name for `key`.
pub fn file_name(key: &PlatformKey) -> String {
    format!("{}-{}.json", key.fmspc.to_hex(), key.ca)
}

/// The envelope for one platform's collateral.
pub fn encode(
    key: &PlatformKey,
    source: Option<&str>,
    fetched_at: Option<u64>,
    collateral: &dcap_qvl::QuoteCollateralV3,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec_pretty(&Envelope {
        format: FORMAT.to_owned(),
        fmspc: key.fmspc.to_hex(),
        ca: key.ca.to_string(),
        source: source.map(str::to_owned),
        fetched_at,
        collateral: collateral.clone(),
    })
}

/// Reads a collateral file (envelope or bare `QuoteCollateralV3`).
pub fn decode(bytes: &[u8], path: &Path) -> Result<CollateralFile, StoreError> {
    let format_error = |detail: String| StoreError::Format {
        path: path.to_owned(),
        detail,
    };
    if bytes.len() > MAX_COLLATERAL_LEN {
        return Err(format_error(format!(
            "{} bytes exceed the {MAX_COLLATERAL_LEN}-byte limit",
            bytes.len()
        )));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format_error(e.to_string()))?;
    if value.get("format").is_some() {
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| format_error(e.to_string()))?;
        if envelope.format != FORMAT {
            return Err(format_error(format!(
                "unknown format {:?}",
                envelope.format
            )));
        }
        return Ok(CollateralFile {
            source: envelope.source,
            fetched_at: envelope.fetched_at,
            collateral: envelope.collateral,
        });
    }
    let collateral = serde_json::from_value(value).map_err(|e| format_error(e.to_string()))?;
    Ok(CollateralFile {
        source: None,
        fetched_at: None,
        collateral,
    })
}

/// Reads one file, refusing one larger than the collateral limit.
pub fn read(path: &Path) -> Result<CollateralFile, StoreError> {
    use std::io::Read;
    let io_error = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take((MAX_COLLATERAL_LEN as u64).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    decode(&bytes, path)
}

/// The `*.json` files of `dir`, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let io_error = |source| StoreError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in `dir`, fsync, rename over the
/// target, fsync of `dir`. A crash leaves the old file or the new one, never a mix.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let target = dir.join(name);
    let io_error = |source| StoreError::Io {
        path: target.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collateral() -> dcap_qvl::QuoteCollateralV3 {
        serde_json::from_slice(
            &std::fs::read(format!(
                "{}/certs/vectors/v4_tdx10_phala_uptodate/collateral.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn envelope_and_bare_files_both_read() {
        let key = PlatformKey {
            fmspc: "B0C06F000000".parse().unwrap(),
            ca: super::super::PckCa::Platform,
        };
        assert_eq!(file_name(&key), "B0C06F000000-platform.json");
        let c = collateral();
        let bytes = encode(&key, Some("http://x"), Some(7), &c).unwrap();
        let read = decode(&bytes, Path::new("x")).unwrap();
        assert_eq!(read.source.as_deref(), Some("http://x"));
        assert_eq!(read.fetched_at, Some(7));
        assert_eq!(read.collateral.tcb_info, c.tcb_info);
        let bare = serde_json::to_vec(&c).unwrap();
        let read = decode(&bare, Path::new("x")).unwrap();
        assert_eq!(read.source, None);
        assert_eq!(read.collateral.pck_crl, c.pck_crl);
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let key = PlatformKey {
            fmspc: "B0C06F000000".parse().unwrap(),
            ca: super::super::PckCa::Platform,
        };
        let bytes = encode(&key, None, None, &collateral()).unwrap();
        for len in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..len], Path::new("x")).is_err(), "{len}");
        }
        let other = String::from_utf8(bytes)
            .unwrap()
            .replace(FORMAT, "something-else");
        assert!(matches!(
            decode(other.as_bytes(), Path::new("x")),
            Err(StoreError::Format { .. })
        ));
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.json", b"one").unwrap();
        write_atomic(dir.path(), "a.json", b"two").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }
}
