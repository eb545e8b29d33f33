//! The TOML policy file.
//!
//! ```toml
//! version = 1              # schema version, required
//! level = "TdxRaTlsBidirectional"  # floor a peer must reach; this is the default
//! freshness = "per-bond"   # or "certificate" (TdxLocal/TdxRemote only; logged)
//! allow_debug = false      # optional; true accepts debug TDs (logged)
//!
//! [software]               # optional; peers without a quote, only when level = "Software"
//! allow = ["<64 hex digits: blake3 of the peer's Ed25519 public key>"]
//!
//! [tcb]                    # optional; defaults shown
//! accepted_statuses = ["UpToDate"]
//! # advisory_allow = ["INTEL-SA-00837"]   # when present, every advisory must be listed
//! advisory_deny = []
//! # max_collateral_age_secs = 2592000      # TCB info / QE identity issued at most this long ago
//!
//! [[profile]]              # one or more; a quote is accepted when any profile matches
//! name = "prod"
//! mr_td = "91eb2b44...b7"  # 96 hex digits, or "any"
//! rtmr0 = "any"
//! rtmr1 = "any"
//! rtmr2 = "any"
//! rtmr3 = "any"
//! mr_config_id = "any"
//! mr_owner = "any"
//! mr_owner_config = "any"
//! # xfam = "e702060000000000"          # optional, 16 hex digits
//! # td_attributes = "0000001000000000" # optional, 16 hex digits
//! ```
//!
//! A policy written by `ratls verify-build --emit-policy` also records the verified rebuild its
//! profiles are pinned to (see [`Policy::pin_rebuilt`]); every profile must then expect exactly
//! these values, or the file is refused:
//!
//! ```toml
//! [rebuild]
//! recipe_digest = "<64 hex digits: blake3 of the recipe>"
//! order = "per-page"       # or "section": the host page-add order MRTD was computed for
//! mr_td = "<96 hex digits>"
//! # rtmr1 = "<96 hex digits>"   # when the rebuild computed them (direct boot)
//! # rtmr2 = "<96 hex digits>"
//! ```
//!
//! Levels are cumulative: TdxRemote and every level above it (TdxRaTlsBidirectional, the
//! default, and TdxPlusReproducibleBuild) need a `[remote]` section; when present it applies at
//! every attested level:
//!
//! ```toml
//! [remote]
//! pccs = ["https://pccs.internal:8081"]   # and/or pcs = "https://api.trustedservices.intel.com"
//! max_collateral_age_secs = 600           # default; how long ago the collateral was fetched
//! ```
//!
//! or the explicit, logged opt-out that verifies with static collateral (a file) instead:
//!
//! ```toml
//! [dangerous]
//! static_collateral = true
//! ```
//!
//! A `[build]` table (the recipe declaration read by `ratls verify-build`) may share the file; this
//! reader ignores it.
//!
//! Every register except `xfam` and `td_attributes` must be present in every profile: a register
//! that may hold any value is written as `"any"`, so that nothing is left open by omission. Unknown
//! keys are errors. A file with no `[[profile]]` loads, and accepts nothing.

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

use std::collections::BTreeSet;

use serde::Deserialize;
use toml::Spanned;

use super::{Expected, HexError, MeasurementPolicy, MeasurementProfile, Policy, TcbPolicy};
use crate::tdx::TcbStatus;

/// The only schema version this crate reads.
pub(super) const POLICY_FILE_VERSION: u32 = 1;

/// A policy file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// Two profiles share a name.
    #[error("profile name {0:?} is used twice")]
    DuplicateProfile(String),
    /// A hex value is malformed.
    #[error("line {line}: profile {profile:?}, {field}: {source}")]
    Hex {
        /// The line of the value (1-based).
        line: usize,
        /// The profile.
        profile: String,
        /// The key.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        source: HexError,
    },
    /// A required register is missing from a profile.
    #[error(
        "profile {profile:?}: {} missing; write {field} = \"any\" (and so for each) to accept \
         any value, or let `ratls policy init` write every key",
        missing_list(field, also)
    )]
    MissingRegister {
        /// The profile.
        profile: String,
        /// The first missing key.
        field: &'static str,
        /// The other missing keys of the same profile, so that all are named at once.
        also: Vec<&'static str>,
    },
    /// Not valid TOML, or keys and types outside the schema (the message names the line).
    #[error("{0}")]
    Syntax(String),
    /// `freshness = "certificate"` at a level that requires per-bond freshness.
    #[error("freshness \"certificate\" is allowed only at TdxLocal and TdxRemote, not at {0}")]
    FreshnessNotAllowed(crate::level::AttestationLevel),
    /// A level from TdxRemote up without a `[remote]` section and without the opt-out.
    #[error("{0}")]
    RemoteSectionMissing(super::RemoteSectionMissing),
    /// A `[remote]` section that declares no collateral service.
    #[error("[remote] declares no collateral service (pccs = [...] or pcs = \"...\")")]
    RemoteWithoutService,
    /// `level` or `freshness` names no known value.
    #[error("{0}")]
    UnknownName(String),
    /// A software identity digest is malformed.
    #[error("line {line}: software.allow: {source}")]
    SoftwareDigest {
        /// The line of the value (1-based).
        line: usize,
        /// What is wrong with it.
        #[source]
        source: HexError,
    },
    /// The `[rebuild]` record is malformed, or a profile does not expect its values.
    #[error("rebuild: {0}")]
    Rebuild(String),
    /// `accepted_statuses` names no known TCB status.
    #[error("tcb.accepted_statuses: unknown status {0:?}")]
    UnknownStatus(String),
    /// The `version` key is missing or names another schema.
    #[error(
        "unsupported policy file version {0} (this build reads version {POLICY_FILE_VERSION})"
    )]
    Version(u32),
}

/// "rtmr2 is" or "rtmr2, rtmr3 are".
fn missing_list(first: &str, also: &[&str]) -> String {
    if also.is_empty() {
        format!("{first} is")
    } else {
        format!("{first}, {} are", also.join(", "))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    level: Option<String>,
    freshness: Option<String>,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default)]
    software: SoftwareSection,
    #[serde(default)]
    tcb: TcbSection,
    #[serde(default)]
    profile: Vec<ProfileSection>,
    rebuild: Option<RebuildSection>,
    remote: Option<RemoteSection>,
    #[serde(default)]
    dangerous: DangerousSection,
    /// Read by `ratls verify-build` ([`crate::measure::BuildPolicy`]), ignored here.
    #[allow(dead_code)]
    build: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RebuildSection {
    recipe_digest: String,
    order: Option<String>,
    mr_td: String,
    rtmr1: Option<String>,
    rtmr2: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteSection {
    #[serde(default)]
    pccs: Vec<String>,
    pcs: Option<String>,
    max_collateral_age_secs: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DangerousSection {
    #[serde(default)]
    static_collateral: bool,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftwareSection {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcbSection {
    accepted_statuses: Option<Vec<String>>,
    advisory_allow: Option<Vec<String>>,
    #[serde(default)]
    advisory_deny: Vec<String>,
    max_collateral_age_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSection {
    name: String,
    mr_td: Option<Spanned<String>>,
    rtmr0: Option<Spanned<String>>,
    rtmr1: Option<Spanned<String>>,
    rtmr2: Option<Spanned<String>>,
    rtmr3: Option<Spanned<String>>,
    mr_config_id: Option<Spanned<String>>,
    mr_owner: Option<Spanned<String>>,
    mr_owner_config: Option<Spanned<String>>,
    xfam: Option<Spanned<String>>,
    td_attributes: Option<Spanned<String>>,
}

/// The 1-based line of a value in `text`.
fn line_of<T>(text: &str, value: &Spanned<T>) -> usize {
    text.get(..value.span().start)
        .map_or(0, |before| before.matches('\n').count())
        .saturating_add(1)
}

impl Policy {
    /// Reads a policy from TOML text (the schema is in the README and `docs/policy.md`).
    pub fn from_toml(text: &str) -> Result<Self, PolicyFileError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyFileError::Syntax(e.to_string()))?;
        if file.version != POLICY_FILE_VERSION {
            return Err(PolicyFileError::Version(file.version));
        }
        let mut names = BTreeSet::new();
        let mut profiles = Vec::with_capacity(file.profile.len());
        for section in file.profile {
            if !names.insert(section.name.clone()) {
                return Err(PolicyFileError::DuplicateProfile(section.name));
            }
            profiles.push(section.into_profile(text)?);
        }
        let mut policy = Self::new(MeasurementPolicy::new(profiles));
        policy.tcb = file.tcb.into_policy()?;
        for digest in &file.software.allow {
            let digest =
                super::measurement::parse_hex::<32>(digest.get_ref()).map_err(|source| {
                    PolicyFileError::SoftwareDigest {
                        line: line_of(text, digest),
                        source,
                    }
                })?;
            policy.software_allow.insert(digest);
        }
        if let Some(level) = file.level {
            let level = level.parse().map_err(|e: crate::level::UnknownLevel| {
                PolicyFileError::UnknownName(e.to_string())
            })?;
            policy.set_level(level);
        }
        match file.freshness.as_deref() {
            None | Some("per-bond") => {}
            Some("certificate") => {
                if !policy.dangerous().certificate_freshness() {
                    return Err(PolicyFileError::FreshnessNotAllowed(policy.level()));
                }
            }
            Some(other) => {
                return Err(PolicyFileError::UnknownName(format!(
                    "unknown freshness {other:?} (expected \"per-bond\" or \"certificate\")"
                )))
            }
        }
        if file.allow_debug {
            policy.dangerous().allow_debug();
        }
        if let Some(remote) = file.remote {
            let mut services = remote.pccs;
            services.extend(remote.pcs);
            if services.is_empty() {
                return Err(PolicyFileError::RemoteWithoutService);
            }
            policy.set_remote(Some(super::RemotePolicy::new(
                services,
                remote
                    .max_collateral_age_secs
                    .unwrap_or(super::DEFAULT_MAX_COLLATERAL_AGE_SECS),
            )));
        }
        if file.dangerous.static_collateral {
            policy.dangerous().static_collateral();
        }
        policy
            .check_remote_declared()
            .map_err(PolicyFileError::RemoteSectionMissing)?;
        if let Some(rebuild) = file.rebuild {
            policy.rebuilt = Some(rebuild.into_record()?);
            policy
                .rebuild_pin()
                .map_err(|e| PolicyFileError::Rebuild(e.to_string()))?;
        }
        Ok(policy)
    }

    /// Writes this policy in the schema [`Policy::from_toml`] reads, including the `[rebuild]`
    /// record when the policy is pinned to a rebuild.
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let list = |items: Vec<String>| {
            let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
            format!("[{}]", items.join(", "))
        };
        let mut out = String::new();
        let _ = writeln!(out, "version = {POLICY_FILE_VERSION}");
        let _ = writeln!(out, "level = {}", quoted(self.level.as_str()));
        let _ = writeln!(out, "freshness = {}", quoted(self.freshness.as_str()));
        let _ = writeln!(out, "allow_debug = {}", self.allow_debug);
        if !self.software_allow.is_empty() {
            let digests = self.software_allow.iter().map(hex::encode).collect();
            let _ = writeln!(out, "\n[software]\nallow = {}", list(digests));
        }
        let tcb = &self.tcb;
        let statuses = tcb
            .accepted_statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let _ = writeln!(out, "\n[tcb]\naccepted_statuses = {}", list(statuses));
        if let Some(allow) = &tcb.advisory_allow {
            let _ = writeln!(
                out,
                "advisory_allow = {}",
                list(allow.iter().cloned().collect())
            );
        }
        let deny = tcb.advisory_deny.iter().cloned().collect();
        let _ = writeln!(out, "advisory_deny = {}", list(deny));
        if let Some(age) = tcb.max_collateral_age_secs {
            let _ = writeln!(out, "max_collateral_age_secs = {age}");
        }
        if let Some(remote) = &self.remote {
            let _ = writeln!(
                out,
                "\n[remote]\npccs = {}\nmax_collateral_age_secs = {}",
                list(remote.services().to_vec()),
                remote.max_collateral_age_secs()
            );
        }
        if self.static_collateral {
            let _ = writeln!(out, "\n[dangerous]\nstatic_collateral = true");
        }
        if let Some(rebuilt) = &self.rebuilt {
            let order = match rebuilt.order() {
                crate::measure::PageAddOrder::PerSection => "section",
                _ => "per-page",
            };
            let _ = writeln!(
                out,
                "\n[rebuild]\nrecipe_digest = {}\norder = {}\nmr_td = {}",
                quoted(&hex::encode(rebuilt.recipe_digest())),
                quoted(order),
                quoted(&hex::encode(rebuilt.mr_td()))
            );
            for (key, value) in [("rtmr1", rebuilt.rtmr1()), ("rtmr2", rebuilt.rtmr2())] {
                if let Some(value) = value {
                    let _ = writeln!(out, "{key} = {}", quoted(&hex::encode(value)));
                }
            }
        }
        for p in self.measurements.profiles() {
            let _ = writeln!(out, "\n[[profile]]\nname = {}", quoted(&p.name));
            let registers = [
                ("mr_td", &p.mr_td),
                ("rtmr0", &p.rtmr[0]),
                ("rtmr1", &p.rtmr[1]),
                ("rtmr2", &p.rtmr[2]),
                ("rtmr3", &p.rtmr[3]),
                ("mr_config_id", &p.mr_config_id),
                ("mr_owner", &p.mr_owner),
                ("mr_owner_config", &p.mr_owner_config),
            ];
            for (key, value) in registers {
                let _ = writeln!(out, "{key} = {}", quoted(&format!("{value:?}")));
            }
            for (key, value) in [("xfam", &p.xfam), ("td_attributes", &p.td_attributes)] {
                if let Expected::Exact(_) = value {
                    let _ = writeln!(out, "{key} = {}", quoted(&format!("{value:?}")));
                }
            }
        }
        out
    }
}

impl RebuildSection {
    fn into_record(self) -> Result<crate::measure::RebuiltMeasurements, PolicyFileError> {
        use crate::tdx::MEASUREMENT_LEN;
        let bad = |field: &str, e: HexError| PolicyFileError::Rebuild(format!("{field}: {e}"));
        let hex48 = |field: &str, text: &str| {
            super::measurement::parse_hex::<MEASUREMENT_LEN>(text).map_err(|e| bad(field, e))
        };
        let order = match self.order.as_deref() {
            None | Some("per-page") => crate::measure::PageAddOrder::PerPage,
            Some("section") => crate::measure::PageAddOrder::PerSection,
            Some(other) => {
                return Err(PolicyFileError::Rebuild(format!(
                    "order must be \"per-page\" or \"section\", got {other:?}"
                )))
            }
        };
        Ok(crate::measure::RebuiltMeasurements::from_policy_record(
            hex48("mr_td", &self.mr_td)?,
            self.rtmr1
                .as_deref()
                .map(|t| hex48("rtmr1", t))
                .transpose()?,
            self.rtmr2
                .as_deref()
                .map(|t| hex48("rtmr2", t))
                .transpose()?,
            super::measurement::parse_hex::<32>(&self.recipe_digest)
                .map_err(|e| bad("recipe_digest", e))?,
            order,
        ))
    }
}

impl TcbSection {
    fn into_policy(self) -> Result<TcbPolicy, PolicyFileError> {
        let mut policy = TcbPolicy::default();
        if let Some(statuses) = self.accepted_statuses {
            policy.accepted_statuses = statuses
                .into_iter()
                .map(|name| {
                    name.parse::<TcbStatus>()
                        .map_err(|_| PolicyFileError::UnknownStatus(name))
                })
                .collect::<Result<_, _>>()?;
        }
        policy.advisory_allow = self.advisory_allow.map(|ids| ids.into_iter().collect());
        policy.advisory_deny = self.advisory_deny.into_iter().collect();
        policy.max_collateral_age_secs = self.max_collateral_age_secs;
        Ok(policy)
    }
}

impl ProfileSection {
    fn into_profile(self, file: &str) -> Result<MeasurementProfile, PolicyFileError> {
        let name = self.name;
        fn parse<const N: usize>(
            file: &str,
            name: &str,
            field: &'static str,
            value: &Spanned<String>,
        ) -> Result<Expected<N>, PolicyFileError> {
            Expected::parse(value.get_ref()).map_err(|source| PolicyFileError::Hex {
                line: line_of(file, value),
                profile: name.to_owned(),
                field,
                source,
            })
        }
        let present = [
            ("mr_td", self.mr_td.is_some()),
            ("rtmr0", self.rtmr0.is_some()),
            ("rtmr1", self.rtmr1.is_some()),
            ("rtmr2", self.rtmr2.is_some()),
            ("rtmr3", self.rtmr3.is_some()),
            ("mr_config_id", self.mr_config_id.is_some()),
            ("mr_owner", self.mr_owner.is_some()),
            ("mr_owner_config", self.mr_owner_config.is_some()),
        ];
        let mut missing = present
            .iter()
            .filter(|(_, present)| !present)
            .map(|(field, _)| *field);
        if let Some(field) = missing.next() {
            return Err(PolicyFileError::MissingRegister {
                profile: name,
                field,
                also: missing.collect(),
            });
        }
        let required = |field: &'static str, value: Option<Spanned<String>>| {
            let value = value.ok_or_else(|| PolicyFileError::MissingRegister {
                profile: name.clone(),
                field,
                also: Vec::new(),
            })?;
            parse(file, &name, field, &value)
        };
        let optional = |field: &'static str, value: Option<Spanned<String>>| match value {
            None => Ok(Expected::Any),
            Some(value) => parse(file, &name, field, &value),
        };
        Ok(MeasurementProfile {
            mr_td: required("mr_td", self.mr_td)?,
            rtmr: [
                required("rtmr0", self.rtmr0)?,
                required("rtmr1", self.rtmr1)?,
                required("rtmr2", self.rtmr2)?,
                required("rtmr3", self.rtmr3)?,
            ],
            mr_config_id: required("mr_config_id", self.mr_config_id)?,
            mr_owner: required("mr_owner", self.mr_owner)?,
            mr_owner_config: required("mr_owner_config", self.mr_owner_config)?,
            xfam: optional("xfam", self.xfam)?,
            td_attributes: optional("td_attributes", self.td_attributes)?,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
[[profile]]
name = "prod"
mr_td = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
rtmr0 = "any"
rtmr1 = "any"
rtmr2 = "any"
rtmr3 = "any"
mr_config_id = "any"
mr_owner = "any"
mr_owner_config = "any"
"#;

    /// `body` at the default level (TdxRaTlsBidirectional) with the static-collateral opt-out
    /// appended, so that the tests of other sections need no `[remote]`.
    fn with_version(body: &str) -> String {
        format!("version = 1\n{body}\n[dangerous]\nstatic_collateral = true\n")
    }

    #[test]
    fn levels_from_tdx_remote_up_need_remote_or_the_opt_out() {
        use crate::AttestationLevel as L;
        for level in [
            L::TdxRemote,
            L::TdxRaTlsBidirectional,
            L::TdxPlusReproducibleBuild,
        ] {
            let text = format!("version = 1\nlevel = \"{}\"\n{PROFILE}", level.as_str());
            let err = Policy::from_toml(&text).unwrap_err();
            assert_eq!(
                err,
                PolicyFileError::RemoteSectionMissing(super::super::RemoteSectionMissing { level }),
                "{level}"
            );
            let message = err.to_string();
            assert!(message.contains("needs a [remote] section"), "{message}");
            assert!(message.contains("static_collateral = true"), "{message}");
        }
        // The default level is TdxRaTlsBidirectional: refused as well.
        assert!(matches!(
            Policy::from_toml("version = 1\n"),
            Err(PolicyFileError::RemoteSectionMissing(_))
        ));
        // Below TdxRemote nothing is needed.
        for level in [L::Software, L::TdxLocal] {
            let text = format!("version = 1\nlevel = \"{}\"\n", level.as_str());
            let policy = Policy::from_toml(&text).unwrap();
            assert!(policy.remote().is_none() && !policy.accepts_static_collateral());
        }
        // With [remote]: accepted, no opt-out.
        let text = "version = 1\n[remote]\npccs = [\"http://p\"]\n";
        let policy = Policy::from_toml(text).unwrap();
        assert!(policy.remote().is_some() && !policy.accepts_static_collateral());
        // The opt-out: accepted, and written back.
        let text = "version = 1\n[dangerous]\nstatic_collateral = true\n";
        let policy = Policy::from_toml(text).unwrap();
        assert!(policy.accepts_static_collateral() && policy.remote().is_none());
        assert!(policy
            .to_toml()
            .contains("\n[dangerous]\nstatic_collateral = true\n"));
        assert_eq!(Policy::from_toml(&policy.to_toml()).unwrap(), policy);
        // `static_collateral = false` is no opt-out; unknown keys are errors.
        assert!(matches!(
            Policy::from_toml("version = 1\n[dangerous]\nstatic_collateral = false\n"),
            Err(PolicyFileError::RemoteSectionMissing(_))
        ));
        assert!(matches!(
            Policy::from_toml("version = 1\n[dangerous]\nstatic = true\n"),
            Err(PolicyFileError::Syntax(_))
        ));
    }

    #[test]
    fn full_file_loads() {
        let text = with_version(&format!(
            "allow_debug = false\n[tcb]\naccepted_statuses = [\"UpToDate\", \"SWHardeningNeeded\"]\nadvisory_deny = [\"INTEL-SA-1\"]\nmax_collateral_age_secs = 60\n{PROFILE}"
        ));
        let policy = Policy::from_toml(&text).unwrap();
        assert_eq!(policy.measurements.profiles().len(), 1);
        assert!(policy.tcb.accepts(TcbStatus::SwHardeningNeeded));
        assert!(!policy.tcb.accepts(TcbStatus::OutOfDate));
        assert_eq!(policy.tcb.max_collateral_age_secs, Some(60));
        assert!(!policy.allows_debug());
        assert!(matches!(
            policy.measurements.profiles()[0].mr_td,
            Expected::Exact(_)
        ));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let err = Policy::from_toml(&with_version("alow_debug = true\n")).unwrap_err();
        let PolicyFileError::Syntax(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("alow_debug"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        let err = Policy::from_toml(&with_version(&PROFILE.replace("rtmr3", "rtmr4"))).unwrap_err();
        assert!(matches!(err, PolicyFileError::Syntax(m) if m.contains("rtmr4")));
    }

    #[test]
    fn missing_register_must_be_written_as_any() {
        let text = with_version(&PROFILE.replace("rtmr2 = \"any\"\n", ""));
        assert_eq!(
            Policy::from_toml(&text),
            Err(PolicyFileError::MissingRegister {
                profile: "prod".into(),
                field: "rtmr2",
                also: vec![]
            })
        );
        // Every missing register is named at once, not one error at a time.
        let text = with_version("[[profile]]\nname = \"p\"\nmr_td = \"any\"\n");
        let err = Policy::from_toml(&text).unwrap_err();
        assert_eq!(
            err,
            PolicyFileError::MissingRegister {
                profile: "p".into(),
                field: "rtmr0",
                also: vec![
                    "rtmr1",
                    "rtmr2",
                    "rtmr3",
                    "mr_config_id",
                    "mr_owner",
                    "mr_owner_config"
                ]
            }
        );
        assert!(
            err.to_string().contains(
                "rtmr0, rtmr1, rtmr2, rtmr3, mr_config_id, mr_owner, mr_owner_config are missing"
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_hex_and_wrong_length_are_named() {
        let text = with_version(&PROFILE.replace("rtmr1 = \"any\"", "rtmr1 = \"00ff\""));
        assert!(matches!(
            Policy::from_toml(&text),
            Err(PolicyFileError::Hex {
                field: "rtmr1",
                source: HexError::Length {
                    expected: 96,
                    found: 4
                },
                ..
            })
        ));
        let text = with_version(&PROFILE.replace(
            "rtmr1 = \"any\"",
            &format!("rtmr1 = \"{}\"", "g".repeat(96)),
        ));
        assert!(matches!(
            Policy::from_toml(&text),
            Err(PolicyFileError::Hex {
                field: "rtmr1",
                source: HexError::NotHex(_),
                ..
            })
        ));
    }

    #[test]
    fn hex_errors_name_their_line_and_0x_is_accepted() {
        let text = with_version(&PROFILE.replace("rtmr1 = \"any\"", "rtmr1 = \"00ff\""));
        let err = Policy::from_toml(&text).unwrap_err();
        assert!(
            matches!(err, PolicyFileError::Hex { line: 7, .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("line 7: "), "{err}");
        let mr_td = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
        let text = with_version(&PROFILE.replace(mr_td, &format!("0x{mr_td}")));
        let policy = Policy::from_toml(&text).unwrap();
        assert_eq!(
            format!("{:?}", policy.measurements.profiles()[0].mr_td),
            mr_td
        );
        let digest = format!("0X{}", "ab".repeat(32));
        let text = with_version(&format!(
            "level = \"Software\"\n[software]\nallow = [\"{digest}\"]\n"
        ));
        assert!(Policy::from_toml(&text)
            .unwrap()
            .software_allow
            .contains(&[0xab; 32]));
    }

    #[test]
    fn version_status_and_duplicates_are_checked() {
        assert_eq!(
            Policy::from_toml("version = 2\n"),
            Err(PolicyFileError::Version(2))
        );
        assert!(matches!(
            Policy::from_toml("allow_debug = true\n"),
            Err(PolicyFileError::Syntax(m)) if m.contains("version")
        ));
        assert_eq!(
            Policy::from_toml(&with_version("[tcb]\naccepted_statuses = [\"Fine\"]\n")),
            Err(PolicyFileError::UnknownStatus("Fine".into()))
        );
        assert_eq!(
            Policy::from_toml(&with_version(&format!("{PROFILE}{PROFILE}"))),
            Err(PolicyFileError::DuplicateProfile("prod".into()))
        );
    }

    #[test]
    fn level_freshness_and_software_allow_list() {
        let policy = Policy::from_toml(&with_version("")).unwrap();
        assert_eq!(
            policy.level(),
            crate::AttestationLevel::TdxRaTlsBidirectional
        );
        assert_eq!(policy.freshness(), super::super::Freshness::PerBond);

        let text = with_version("level = \"TdxLocal\"\nfreshness = \"certificate\"\n");
        let policy = Policy::from_toml(&text).unwrap();
        assert_eq!(policy.freshness(), super::super::Freshness::Certificate);

        let text = with_version("freshness = \"certificate\"\n");
        assert_eq!(
            Policy::from_toml(&text),
            Err(PolicyFileError::FreshnessNotAllowed(
                crate::AttestationLevel::TdxRaTlsBidirectional
            ))
        );
        let text = with_version("level = \"Tdx\"\n");
        assert!(matches!(
            Policy::from_toml(&text),
            Err(PolicyFileError::UnknownName(_))
        ));

        let digest = "ab".repeat(32);
        let text = with_version(&format!(
            "level = \"Software\"\n[software]\nallow = [\"{digest}\"]\n"
        ));
        let policy = Policy::from_toml(&text).unwrap();
        assert!(policy.software_allow.contains(&[0xab; 32]));
        let text = with_version("[software]\nallow = [\"abc\"]\n");
        assert!(matches!(
            Policy::from_toml(&text),
            Err(PolicyFileError::SoftwareDigest { line: 3, .. })
        ));
    }

    #[test]
    fn pinned_policy_round_trips_with_its_rebuild_record() {
        use crate::measure::{PageAddOrder, RebuiltMeasurements};
        use crate::synthetic::SyntheticTdvf;
        let image = SyntheticTdvf::typical(2, 5).build();
        let rebuilt =
            RebuiltMeasurements::from_image(&image.bytes, PageAddOrder::PerPage, [9; 32]).unwrap();
        let mut policy = Policy::from_toml(&with_version(&format!(
            "[build]\nanything = 1\n[tcb]\naccepted_statuses = [\"SWHardeningNeeded\"]\nmax_collateral_age_secs = 5\n{PROFILE}"
        )))
        .unwrap();
        policy.set_level(crate::AttestationLevel::TdxPlusReproducibleBuild);
        policy.software_allow.insert([1; 32]);
        policy.pin_rebuilt(&rebuilt);
        let text = policy.to_toml();
        let loaded = Policy::from_toml(&text).unwrap();
        let pin = loaded.rebuild_pin().unwrap();
        assert_eq!(
            pin.provenance(),
            crate::measure::RebuildProvenance::PolicyFile
        );
        assert_eq!(
            (pin.mr_td(), pin.recipe_digest()),
            (rebuilt.mr_td(), &[9; 32])
        );
        assert_eq!(loaded.measurements, policy.measurements);
        assert_eq!(loaded.tcb, policy.tcb);
        assert_eq!(loaded.software_allow, policy.software_allow);
        assert_eq!(loaded.level(), policy.level());
        assert_eq!(loaded.to_toml(), text);

        // A record that the profiles do not pin is refused.
        let unpinned = with_version(&format!(
            "[rebuild]\nrecipe_digest = \"{}\"\nmr_td = \"{}\"\n{PROFILE}",
            "00".repeat(32),
            hex::encode(rebuilt.mr_td())
        ));
        assert!(matches!(
            Policy::from_toml(&unpinned),
            Err(PolicyFileError::Rebuild(m)) if m.contains("mr_td")
        ));
    }

    #[test]
    fn file_without_profiles_loads_and_accepts_nothing() {
        let policy = Policy::from_toml(&with_version("")).unwrap();
        assert!(policy.measurements.profiles().is_empty());
    }

    #[test]
    fn remote_section_reads_writes_back_and_needs_a_service() {
        let text = with_version(
            "level = \"TdxRemote\"\n[remote]\npccs = [\"http://a/\"]\npcs = \"https://b\"\n",
        );
        let policy = Policy::from_toml(&text).unwrap();
        let remote = policy.remote().unwrap();
        assert_eq!(remote.services(), ["http://a", "https://b"]);
        assert_eq!(
            remote.max_collateral_age_secs(),
            super::super::DEFAULT_MAX_COLLATERAL_AGE_SECS
        );
        let again = Policy::from_toml(&policy.to_toml()).unwrap();
        assert_eq!(again, policy);
        assert!(matches!(
            Policy::from_toml(&with_version("[remote]\nmax_collateral_age_secs = 5\n")),
            Err(PolicyFileError::RemoteWithoutService)
        ));
        assert!(Policy::from_toml(&with_version("[remote]\npccs = [\"x\"]\nurl = 1\n")).is_err());
    }
}
