//! The few file operations configfs-tsm needs, behind a seam.
//!
//! On configfs the kernel fills a new report entry with attribute files and answers writes to
//! `inblob` by producing `outblob` and advancing `generation`. An ordinary filesystem does none of
//! that, so tests substitute an implementation that plays the kernel's part around the same real
//! filesystem operations.

use core::fmt::Debug;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// File operations on a configfs-tsm tree. Every method may block.
pub(super) trait TsmFs: Debug + Send + Sync {
    /// Create one directory (not its parents).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Remove one directory. On configfs its attribute files go with it.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Read a whole attribute.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Write `data` to an existing attribute in one go (never creates or truncates the file).
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()>;
}

/// The real filesystem, used in production.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct StdFs;

impl TsmFs for StdFs {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        // configfs reports size 0 for attributes: read to the end rather than trust metadata.
        fs::read(path)
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // configfs binary attributes collect the bytes and hand them to the provider when the
        // file is closed, which happens when `file` drops at the end of this function.
        let mut file = fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(data)?;
        file.flush()
    }
}
