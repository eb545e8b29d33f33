//! Build-recipe check: rebuild the firmware from a declared recipe and compare its MRTD.
//!
//! A policy file declares, in a `[build]` table:
//!
//! ```toml
//! [build]
//! recipe_digest = "<blake3 of the recipe, hex>"
//! recipe = "recipe.sh"            # path (relative to the policy file) or http(s) URL
//! command = "sh recipe.sh"        # run with `sh -c` in a fresh directory holding the recipe
//! output = "out/OVMF.fd"          # relative path of the built image in that directory
//! expected_mr_td = "<hex>"
//! order = "per-page"              # optional: "per-page" (default) or "section"
//! # Optional, for RTMR1/RTMR2 of a direct kernel boot built by the same recipe:
//! kernel = "out/bzImage"          # relative paths in the build directory
//! initrd = "out/initrd.img"
//! cmdline = "console=ttyS0"
//! memory = "2G"
//! expected_rtmr1 = "<hex>"
//! expected_rtmr2 = "<hex>"
//! ```
//!
//! [`verify_build`] runs the steps in order (fetch, digest, build, measure, compare) and reports
//! each to the caller; the first failure stops it and names its step. This module runs processes
//! and touches the file system; fetching URLs is left to the caller, so the library stays free
//! of an HTTP client and an async runtime.

use std::fmt;
use std::path::Path;
use std::process::Command;

use thiserror::Error;

use super::build_policy::{BootPolicy, BuildPolicy, RecipeLocation};
use crate::measure::{
    compute_boot_rtmrs, measure_mr_td, BootRtmrs, DirectBoot, KernelError, RebuiltMeasurements,
    TdvfError,
};
use crate::tdx::MEASUREMENT_LEN;

/// Largest recipe accepted (16 MiB).
pub const MAX_RECIPE_LEN: usize = 16 << 20;
/// Largest built image accepted (256 MiB).
pub const MAX_IMAGE_LEN: u64 = 256 << 20;

/// A step of [`verify_build`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Obtain the recipe bytes.
    Fetch,
    /// Compare the recipe's blake3 digest with the declared one.
    Digest,
    /// Run the declared build command.
    Build,
    /// Parse the built image and compute its MRTD.
    Measure,
    /// Compare the computed MRTD with the declared one.
    Compare,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fetch => "fetch",
            Self::Digest => "digest",
            Self::Build => "build",
            Self::Measure => "measure",
            Self::Compare => "compare",
        })
    }
}

/// Why [`verify_build`] failed; [`VerifyBuildError::step`] names the step.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum VerifyBuildError {
    /// The build command could not be started or exited unsuccessfully.
    #[error("step build: {0}")]
    Build(String),
    /// The recipe's digest differs from the declared one.
    #[error("step digest: recipe blake3 {actual} does not match declared {expected}")]
    DigestMismatch {
        /// Declared digest (hex).
        expected: String,
        /// Digest of the fetched recipe (hex).
        actual: String,
    },
    /// The recipe could not be obtained.
    #[error("step fetch: {0}")]
    Fetch(String),
    /// The build did not leave a usable image at the declared output path.
    #[error("step measure: {0}")]
    Image(String),
    /// The built kernel cannot be measured.
    #[error("step measure: kernel: {0}")]
    Kernel(#[from] KernelError),
    /// The built image is not a valid TDVF image.
    #[error("step measure: {0}")]
    Measure(#[from] TdvfError),
    /// The built image's MRTD differs from the declared one.
    #[error("step compare: MRTD of the rebuilt image {actual} does not match declared {expected}")]
    MrTdMismatch {
        /// Declared MRTD (hex).
        expected: String,
        /// MRTD of the rebuilt image (hex).
        actual: String,
    },
    /// An RTMR of the rebuilt boot differs from the declared one.
    #[error(
        "step compare: {register} of the rebuilt boot {actual} does not match declared {expected}"
    )]
    RtmrMismatch {
        /// `RTMR1` or `RTMR2`.
        register: &'static str,
        /// Declared value (hex).
        expected: String,
        /// Value computed from the rebuild (hex).
        actual: String,
    },
}

impl VerifyBuildError {
    /// The step that failed.
    pub fn step(&self) -> Step {
        match self {
            Self::Build(_) => Step::Build,
            Self::DigestMismatch { .. } => Step::Digest,
            Self::Fetch(_) => Step::Fetch,
            Self::Image(_) | Self::Kernel(_) | Self::Measure(_) => Step::Measure,
            Self::MrTdMismatch { .. } | Self::RtmrMismatch { .. } => Step::Compare,
        }
    }
}

/// What a successful [`verify_build`] established.
///
/// Only [`verify_build`] makes one; [`BuildVerdict::rebuilt`] hands its registers to
/// [`crate::policy::Policy::pin_rebuilt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildVerdict {
    /// blake3 of the recipe (equal to the declared one).
    pub recipe_digest: [u8; 32],
    /// MRTD of the rebuilt image (equal to the declared one).
    pub mr_td: [u8; MEASUREMENT_LEN],
    /// RTMR1 and RTMR2 of the rebuilt boot, when the policy declares one.
    pub boot_rtmrs: Option<BootRtmrs>,
    rebuilt: RebuiltMeasurements,
}

impl BuildVerdict {
    /// The registers the rebuild produced, for pinning a transport policy.
    pub fn rebuilt(&self) -> &RebuiltMeasurements {
        &self.rebuilt
    }
}

/// Fetches a recipe URL; supplied by the caller (the library has no HTTP client).
pub type FetchUrl<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>, String>;

/// Runs the declared build and checks it, reporting each passed step with what it checked.
///
/// Blocks for as long as the build runs; the build has no time limit of its own.
pub fn verify_build(
    policy: &BuildPolicy,
    fetch_url: FetchUrl<'_>,
    report: &mut dyn FnMut(Step, &str),
) -> Result<BuildVerdict, VerifyBuildError> {
    let recipe = match &policy.recipe {
        RecipeLocation::Path(path) => read_capped(path, MAX_RECIPE_LEN as u64)
            .map_err(|e| VerifyBuildError::Fetch(format!("{}: {e}", path.display())))?,
        RecipeLocation::Url(url) => {
            fetch_url(url).map_err(|e| VerifyBuildError::Fetch(format!("{url}: {e}")))?
        }
    };
    if recipe.len() > MAX_RECIPE_LEN {
        return Err(VerifyBuildError::Fetch(format!(
            "recipe larger than {MAX_RECIPE_LEN} bytes"
        )));
    }
    report(
        Step::Fetch,
        &format!("{} bytes from {}", recipe.len(), policy.recipe),
    );

    let digest = *blake3::hash(&recipe).as_bytes();
    if digest != policy.recipe_digest {
        return Err(VerifyBuildError::DigestMismatch {
            expected: hex::encode(policy.recipe_digest),
            actual: hex::encode(digest),
        });
    }
    report(
        Step::Digest,
        &format!("blake3 {} matches", hex::encode(digest)),
    );

    let dir = BuildDir::create()
        .map_err(|e| VerifyBuildError::Build(format!("temporary directory: {e}")))?;
    let name = recipe_file_name(&policy.recipe);
    std::fs::write(dir.path().join(&name), &recipe)
        .map_err(|e| VerifyBuildError::Build(format!("writing the recipe: {e}")))?;
    let out = Command::new("sh")
        .arg("-c")
        .arg(&policy.command)
        .current_dir(dir.path())
        .env("RECIPE", &name)
        .output()
        .map_err(|e| VerifyBuildError::Build(format!("starting `sh -c`: {e}")))?;
    if !out.status.success() {
        return Err(VerifyBuildError::Build(format!(
            "`{}` exited with {}; stderr ends: {}",
            policy.command,
            out.status,
            tail(&out.stderr)
        )));
    }
    report(
        Step::Build,
        &format!("`{}` succeeded in {}", policy.command, dir.path().display()),
    );

    let image_path = dir.path().join(&policy.output);
    let image = read_capped(&image_path, MAX_IMAGE_LEN)
        .map_err(|e| VerifyBuildError::Image(format!("{}: {e}", policy.output.display())))?;
    let mr_td = measure_mr_td(&image, policy.order)?;
    report(
        Step::Measure,
        &format!(
            "{} ({} bytes, order {:?}): MRTD {}",
            policy.output.display(),
            image.len(),
            policy.order,
            hex::encode(mr_td)
        ),
    );

    let boot_rtmrs = match &policy.boot {
        Some(boot) => {
            let rtmrs = measure_boot(dir.path(), boot)?;
            report(
                Step::Measure,
                &format!(
                    "{} (memory {} bytes): RTMR1 {}, RTMR2 {}",
                    boot.kernel.display(),
                    boot.memory_size,
                    hex::encode(rtmrs.rtmr1),
                    hex::encode(rtmrs.rtmr2)
                ),
            );
            Some(rtmrs)
        }
        None => None,
    };

    if mr_td != policy.expected_mr_td {
        return Err(VerifyBuildError::MrTdMismatch {
            expected: hex::encode(policy.expected_mr_td),
            actual: hex::encode(mr_td),
        });
    }
    report(Step::Compare, "MRTD matches the declared value");
    if let (Some(boot), Some(rtmrs)) = (&policy.boot, &boot_rtmrs) {
        let pairs = [
            ("RTMR1", boot.expected_rtmr1, rtmrs.rtmr1),
            ("RTMR2", boot.expected_rtmr2, rtmrs.rtmr2),
        ];
        for (register, expected, actual) in pairs {
            let Some(expected) = expected else { continue };
            if expected != actual {
                return Err(VerifyBuildError::RtmrMismatch {
                    register,
                    expected: hex::encode(expected),
                    actual: hex::encode(actual),
                });
            }
            report(
                Step::Compare,
                &format!("{register} matches the declared value"),
            );
        }
    }
    let rebuilt =
        RebuiltMeasurements::from_verified_build(mr_td, boot_rtmrs.as_ref(), digest, policy.order);
    Ok(BuildVerdict {
        recipe_digest: digest,
        mr_td,
        boot_rtmrs,
        rebuilt,
    })
}

fn measure_boot(dir: &Path, boot: &BootPolicy) -> Result<BootRtmrs, VerifyBuildError> {
    let read = |p: &Path| {
        read_capped(&dir.join(p), MAX_IMAGE_LEN)
            .map_err(|e| VerifyBuildError::Image(format!("{}: {e}", p.display())))
    };
    let kernel = read(&boot.kernel)?;
    let initrd = match &boot.initrd {
        Some(p) => read(p)?,
        None => Vec::new(),
    };
    let rtmrs = compute_boot_rtmrs(&DirectBoot {
        kernel: &kernel,
        initrd: &initrd,
        cmdline: &boot.cmdline,
        memory_size: boot.memory_size,
    })?;
    Ok(rtmrs)
}

/// Name the recipe gets in the build directory: its last path segment if that is a plain file
/// name, else `recipe`.
fn recipe_file_name(location: &RecipeLocation) -> String {
    let last = match location {
        RecipeLocation::Path(p) => p.file_name().and_then(|n| n.to_str()).map(str::to_owned),
        RecipeLocation::Url(u) => u
            .split(['?', '#'])
            .next()
            .and_then(|s| s.rsplit('/').next())
            .map(str::to_owned),
    };
    last.filter(|n| {
        !n.is_empty()
            && !n.starts_with('.')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    })
    .unwrap_or_else(|| "recipe".to_owned())
}

fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(cap.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other(format!("larger than {cap} bytes")));
    }
    Ok(buf)
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(5);
    lines.get(start..).unwrap_or_default().join(" | ")
}

/// A fresh directory under the system temporary directory for one build, removed on drop.
struct BuildDir(std::path::PathBuf);

impl BuildDir {
    fn create() -> std::io::Result<Self> {
        use crate::crypto::{SecureRandom, SystemRng};
        let mut suffix = [0u8; 8];
        SystemRng::new()
            .fill(&mut suffix)
            .map_err(|_| std::io::Error::other("no randomness for the directory name"))?;
        let path = std::env::temp_dir().join(format!("ratls-build-{}", hex::encode(suffix)));
        // create_dir fails if the name exists: a directory planted by someone else is never used.
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(%error, dir = %self.0.display(), "build directory not removed");
        }
    }
}
