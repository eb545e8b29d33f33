//! Which Measurements a verifier accepts: named profiles, OR across profiles.

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

use core::fmt;

use crate::tdx::{Measurements, MEASUREMENT_LEN};

/// The expected value of one register: an exact value, or `any` written out explicitly.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // a register is pinned or not
pub enum Expected<const N: usize> {
    /// Any value is accepted. Policy files must say so in so many words (`"any"`).
    Any,
    /// Exactly this value.
    Exact([u8; N]),
}

impl<const N: usize> Expected<N> {
    /// Whether `actual` satisfies this expectation.
    pub fn matches(&self, actual: &[u8; N]) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(expected) => expected == actual,
        }
    }

    /// Parses `"any"` or exactly `2 * N` hex digits (optionally prefixed `0x`).
    pub fn parse(text: &str) -> Result<Self, HexError> {
        if text == "any" {
            return Ok(Self::Any);
        }
        parse_hex::<N>(text).map(Self::Exact)
    }
}

impl<const N: usize> fmt::Debug for Expected<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Exact(value) => f.write_str(&hex::encode(value)),
        }
    }
}

/// A hex value in a policy is not what its field needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// Not hex digits.
    #[error("not hexadecimal: {0:?}")]
    NotHex(String),
    /// Hex of the wrong length.
    #[error("expected {expected} hex digits ({} bytes), got {found}", expected / 2)]
    Length {
        /// Digits required.
        expected: usize,
        /// Digits found.
        found: usize,
    },
}

/// Exactly `2 * N` hex digits, with an optional `0x` or `0X` prefix (as everywhere the tool reads
/// hex).
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if text.len() != N.saturating_mul(2) {
        return Err(HexError::Length {
            expected: N.saturating_mul(2),
            found: text.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| HexError::NotHex(text.to_owned()))?;
    Ok(out)
}

type RegisterValue = Expected<MEASUREMENT_LEN>;

/// One accepted software configuration: every register pinned or explicitly `any`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementProfile {
    /// A name for logs and errors ("prod-2026-11").
    pub name: String,
    /// Expected MRTD.
    pub mr_td: RegisterValue,
    /// Expected RTMR0..RTMR3.
    pub rtmr: [RegisterValue; 4],
    /// Expected MRCONFIGID.
    pub mr_config_id: RegisterValue,
    /// Expected MROWNER.
    pub mr_owner: RegisterValue,
    /// Expected MROWNERCONFIG.
    pub mr_owner_config: RegisterValue,
    /// Expected XFAM; `Any` when the profile does not pin it.
    pub xfam: Expected<8>,
    /// Expected TD attributes; `Any` when the profile does not pin it. The debug bit is checked
    /// separately by [`super::Policy::allows_debug`] either way.
    pub td_attributes: Expected<8>,
}

impl MeasurementProfile {
    /// A profile that pins every register to the values in `measurements`, XFAM and TD
    /// attributes included.
    pub fn exact(name: impl Into<String>, measurements: &Measurements) -> Self {
        Self {
            name: name.into(),
            mr_td: Expected::Exact(measurements.mr_td),
            rtmr: measurements.rtmr.map(Expected::Exact),
            mr_config_id: Expected::Exact(measurements.mr_config_id),
            mr_owner: Expected::Exact(measurements.mr_owner),
            mr_owner_config: Expected::Exact(measurements.mr_owner_config),
            xfam: Expected::Exact(measurements.xfam),
            td_attributes: Expected::Exact(measurements.td_attributes),
        }
    }

    /// The first register that does not match, or `None` when all do.
    pub fn first_mismatch(&self, actual: &Measurements) -> Option<Register> {
        let registers = [
            (Register::MrTd, self.mr_td.matches(&actual.mr_td)),
            (Register::Rtmr0, self.rtmr[0].matches(&actual.rtmr[0])),
            (Register::Rtmr1, self.rtmr[1].matches(&actual.rtmr[1])),
            (Register::Rtmr2, self.rtmr[2].matches(&actual.rtmr[2])),
            (Register::Rtmr3, self.rtmr[3].matches(&actual.rtmr[3])),
            (
                Register::MrConfigId,
                self.mr_config_id.matches(&actual.mr_config_id),
            ),
            (Register::MrOwner, self.mr_owner.matches(&actual.mr_owner)),
            (
                Register::MrOwnerConfig,
                self.mr_owner_config.matches(&actual.mr_owner_config),
            ),
            (Register::Xfam, self.xfam.matches(&actual.xfam)),
            (
                Register::TdAttributes,
                self.td_attributes.matches(&actual.td_attributes),
            ),
        ];
        registers
            .into_iter()
            .find(|(_, ok)| !ok)
            .map(|(register, _)| register)
    }
}

/// A register of the TD report, as named in policies and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Register {
    /// MRTD.
    MrTd,
    /// RTMR0.
    Rtmr0,
    /// RTMR1.
    Rtmr1,
    /// RTMR2.
    Rtmr2,
    /// RTMR3.
    Rtmr3,
    /// MRCONFIGID.
    MrConfigId,
    /// MROWNER.
    MrOwner,
    /// MROWNERCONFIG.
    MrOwnerConfig,
    /// XFAM.
    Xfam,
    /// TD attributes.
    TdAttributes,
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MrTd => "mr_td",
            Self::Rtmr0 => "rtmr0",
            Self::Rtmr1 => "rtmr1",
            Self::Rtmr2 => "rtmr2",
            Self::Rtmr3 => "rtmr3",
            Self::MrConfigId => "mr_config_id",
            Self::MrOwner => "mr_owner",
            Self::MrOwnerConfig => "mr_owner_config",
            Self::Xfam => "xfam",
            Self::TdAttributes => "td_attributes",
        })
    }
}

/// Named Measurement profiles with OR semantics: a quote is accepted when any one profile
/// matches all of its registers. An empty list accepts nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeasurementPolicy {
    profiles: Vec<MeasurementProfile>,
}

impl MeasurementPolicy {
    /// A policy accepting any of `profiles`.
    pub fn new(profiles: Vec<MeasurementProfile>) -> Self {
        Self { profiles }
    }

    /// A policy with one profile in which every register is `any`. For authenticity-only checks;
    /// never for a transport that should know what it talks to.
    pub fn any_measurements() -> Self {
        Self::new(vec![MeasurementProfile {
            name: "any".into(),
            mr_td: Expected::Any,
            rtmr: [Expected::Any; 4],
            mr_config_id: Expected::Any,
            mr_owner: Expected::Any,
            mr_owner_config: Expected::Any,
            xfam: Expected::Any,
            td_attributes: Expected::Any,
        }])
    }

    /// The profiles, in the order they are tried.
    pub fn profiles(&self) -> &[MeasurementProfile] {
        &self.profiles
    }

    pub(crate) fn profiles_mut(&mut self) -> &mut [MeasurementProfile] {
        &mut self.profiles
    }

    /// The name of the first profile that matches `actual`.
    pub fn check(&self, actual: &Measurements) -> Result<&str, MeasurementMismatch> {
        if self.profiles.is_empty() {
            return Err(MeasurementMismatch { mismatches: vec![] });
        }
        let mut mismatches = Vec::with_capacity(self.profiles.len());
        for profile in &self.profiles {
            match profile.first_mismatch(actual) {
                None => return Ok(&profile.name),
                Some(register) => mismatches.push((profile.name.clone(), register)),
            }
        }
        Err(MeasurementMismatch { mismatches })
    }
}

/// No profile matched: for each profile, the first register that differed. Empty when the
/// policy has no profiles at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementMismatch {
    /// (profile name, first mismatching register), one entry per profile.
    pub mismatches: Vec<(String, Register)>,
}

impl fmt::Display for MeasurementMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mismatches.is_empty() {
            return f.write_str("the policy has no measurement profiles, so it accepts nothing");
        }
        f.write_str("no measurement profile matched:")?;
        for (profile, register) in &self.mismatches {
            write!(f, " profile {profile:?} differs in {register};")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Measurements {
        let mut m = Measurements::ZERO;
        m.mr_td = [7; 48];
        m.rtmr[2] = [9; 48];
        m
    }

    #[test]
    fn exact_profile_matches_and_each_register_change_is_named() {
        let policy = MeasurementPolicy::new(vec![MeasurementProfile::exact("p", &sample())]);
        assert_eq!(policy.check(&sample()), Ok("p"));

        let mut changed = sample();
        changed.rtmr[2][47] ^= 1;
        let err = policy.check(&changed).unwrap_err();
        assert_eq!(err.mismatches, vec![("p".to_owned(), Register::Rtmr2)]);

        let mut changed = sample();
        changed.mr_config_id[0] = 1;
        let err = policy.check(&changed).unwrap_err();
        assert_eq!(err.mismatches[0].1, Register::MrConfigId);
    }

    #[test]
    fn profiles_are_ored() {
        let mut other = sample();
        other.mr_td = [1; 48];
        let policy = MeasurementPolicy::new(vec![
            MeasurementProfile::exact("a", &other),
            MeasurementProfile::exact("b", &sample()),
        ]);
        assert_eq!(policy.check(&sample()), Ok("b"));
    }

    #[test]
    fn empty_policy_accepts_nothing() {
        let err = MeasurementPolicy::default().check(&sample()).unwrap_err();
        assert!(err.mismatches.is_empty());
        assert!(err.to_string().contains("accepts nothing"));
    }

    #[test]
    fn any_matches_everything_only_where_written() {
        let mut profile = MeasurementProfile::exact("p", &sample());
        profile.rtmr[3] = Expected::Any;
        let mut changed = sample();
        changed.rtmr[3] = [0xff; 48];
        let policy = MeasurementPolicy::new(vec![profile]);
        assert_eq!(policy.check(&changed), Ok("p"));
        changed.rtmr[0] = [0xff; 48];
        assert!(policy.check(&changed).is_err());
    }

    #[test]
    fn hex_parsing_checks_length_and_digits() {
        assert_eq!(Expected::<2>::parse("any"), Ok(Expected::Any));
        assert_eq!(
            Expected::<2>::parse("0aff"),
            Ok(Expected::Exact([0x0a, 0xff]))
        );
        assert_eq!(
            Expected::<2>::parse("0af"),
            Err(HexError::Length {
                expected: 4,
                found: 3
            })
        );
        assert!(matches!(
            Expected::<2>::parse("zzzz"),
            Err(HexError::NotHex(_))
        ));
        assert!(matches!(
            Expected::<2>::parse("ANY"),
            Err(HexError::Length { .. })
        ));
    }
}
