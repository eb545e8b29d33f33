//! The `[build]` section of a policy: what [`super::verify_build`] rebuilds and expects.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::measure::{parse_memory_size, PageAddOrder};
use crate::tdx::MEASUREMENT_LEN;

/// Where the recipe comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipeLocation {
    /// A local file.
    Path(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl fmt::Display for RecipeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Url(u) => f.write_str(u),
        }
    }
}

/// The `[build]` section of a policy, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildPolicy {
    /// blake3 digest of the recipe.
    pub recipe_digest: [u8; 32],
    /// Where to get the recipe.
    pub recipe: RecipeLocation,
    /// Shell command that builds the image.
    pub command: String,
    /// Relative path of the built image in the build directory.
    pub output: PathBuf,
    /// MRTD the built image must have.
    pub expected_mr_td: [u8; MEASUREMENT_LEN],
    /// Host page-add order used to compute MRTD.
    pub order: PageAddOrder,
    /// Direct-boot outputs and the RTMRs they must give, if declared.
    pub boot: Option<BootPolicy>,
}

/// The direct-boot part of a [`BuildPolicy`]: which built files boot, and the RTMRs expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootPolicy {
    /// Relative path of the built kernel.
    pub kernel: PathBuf,
    /// Relative path of the built initrd, if any.
    pub initrd: Option<PathBuf>,
    /// Kernel command line (as given to QEMU `-append`).
    pub cmdline: String,
    /// Guest memory size in bytes.
    pub memory_size: u64,
    /// RTMR1 the boot must give, if declared.
    pub expected_rtmr1: Option<[u8; MEASUREMENT_LEN]>,
    /// RTMR2 the boot must give, if declared.
    pub expected_rtmr2: Option<[u8; MEASUREMENT_LEN]>,
}

/// A policy that cannot be used.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum PolicyError {
    /// A hex field has the wrong length or characters.
    #[error("{field}: expected {len} bytes of hex")]
    BadHex {
        /// Field name.
        field: &'static str,
        /// Expected length in bytes.
        len: usize,
    },
    /// The memory size does not parse.
    #[error("memory: not a size: {0:?}")]
    BadMemory(String),
    /// The `order` value is not known.
    #[error("order must be \"per-page\" or \"section\", got {0:?}")]
    BadOrder(String),
    /// An output path is absolute or leaves the build directory.
    #[error("outputs must be relative paths inside the build directory: {0}")]
    BadOutput(String),
    /// The direct-boot fields are incomplete.
    #[error("incomplete direct-boot declaration: {0}")]
    IncompleteBoot(&'static str),
    /// The policy has no `[build]` table.
    #[error("policy has no [build] section")]
    MissingBuild,
    /// The TOML does not parse or has unknown or missing fields.
    #[error("policy is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
}

#[derive(Deserialize)]
struct PolicyFile {
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    recipe_digest: String,
    recipe: String,
    command: String,
    output: String,
    expected_mr_td: String,
    order: Option<String>,
    expected_rtmr1: Option<String>,
    expected_rtmr2: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
    cmdline: Option<String>,
    memory: Option<String>,
}

impl BuildPolicy {
    /// Parses the `[build]` table of a policy file; relative recipe paths are resolved against
    /// `base_dir` (the directory of the policy file). Other tables are ignored.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;
        let raw = file.build.ok_or(PolicyError::MissingBuild)?;
        let boot = parse_boot(&raw)?;
        let recipe = if raw.recipe.starts_with("http://") || raw.recipe.starts_with("https://") {
            RecipeLocation::Url(raw.recipe)
        } else {
            RecipeLocation::Path(base_dir.join(raw.recipe))
        };
        let output = relative_path(&raw.output)?;
        let order = match raw.order.as_deref() {
            None | Some("per-page") => PageAddOrder::PerPage,
            Some("section") => PageAddOrder::PerSection,
            Some(other) => return Err(PolicyError::BadOrder(other.to_owned())),
        };
        Ok(Self {
            recipe_digest: parse_hex("recipe_digest", &raw.recipe_digest)?,
            recipe,
            command: raw.command,
            output,
            expected_mr_td: parse_hex("expected_mr_td", &raw.expected_mr_td)?,
            order,
            boot,
        })
    }
}

fn parse_boot(raw: &RawBuild) -> Result<Option<BootPolicy>, PolicyError> {
    let Some(kernel) = &raw.kernel else {
        let stray = raw.initrd.is_some()
            || raw.cmdline.is_some()
            || raw.memory.is_some()
            || raw.expected_rtmr1.is_some()
            || raw.expected_rtmr2.is_some();
        return if stray {
            Err(PolicyError::IncompleteBoot("kernel is required"))
        } else {
            Ok(None)
        };
    };
    let memory = raw.memory.as_deref().ok_or(PolicyError::IncompleteBoot(
        "memory is required with kernel",
    ))?;
    if raw.expected_rtmr1.is_none() && raw.expected_rtmr2.is_none() {
        return Err(PolicyError::IncompleteBoot(
            "expected_rtmr1 or expected_rtmr2 is required with kernel",
        ));
    }
    let hex48 = |field, value: &Option<String>| {
        value
            .as_deref()
            .map(|v| parse_hex::<MEASUREMENT_LEN>(field, v))
            .transpose()
    };
    Ok(Some(BootPolicy {
        kernel: relative_path(kernel)?,
        initrd: raw.initrd.as_deref().map(relative_path).transpose()?,
        cmdline: raw.cmdline.clone().unwrap_or_default(),
        memory_size: parse_memory_size(memory)
            .ok_or_else(|| PolicyError::BadMemory(memory.to_owned()))?,
        expected_rtmr1: hex48("expected_rtmr1", &raw.expected_rtmr1)?,
        expected_rtmr2: hex48("expected_rtmr2", &raw.expected_rtmr2)?,
    }))
}

fn relative_path(text: &str) -> Result<PathBuf, PolicyError> {
    let path = PathBuf::from(text);
    let inside = path.components().count() > 0
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(path)
    } else {
        Err(PolicyError::BadOutput(text.to_owned()))
    }
}

fn parse_hex<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], PolicyError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| PolicyError::BadHex { field, len: N })?;
    Ok(out)
}
