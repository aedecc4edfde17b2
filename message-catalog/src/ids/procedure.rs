//! The procedure letter of an MRN (position 17): which declarations the transit declaration
//! combines.

use std::fmt;
use std::str::FromStr;

/// The procedure letter in position 17 of a P5 MRN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcedureLetter {
    /// `J`: transit declaration only (security `0`).
    J,
    /// `K`: transit combined with an exit summary declaration (security `1`).
    K,
    /// `L`: transit combined with an entry summary declaration (security `2`).
    L,
    /// `M`: transit combined with exit and entry summary declarations (security `3`).
    M,
}

/// The text is not one of `J`, `K`, `L`, `M`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid procedure letter {0:?}: expected J, K, L or M")]
pub struct InvalidProcedureLetter(pub String);

impl ProcedureLetter {
    /// Parses one of `J`, `K`, `L`, `M`.
    pub fn parse(text: &str) -> Result<Self, InvalidProcedureLetter> {
        match text {
            "J" => Ok(ProcedureLetter::J),
            "K" => Ok(ProcedureLetter::K),
            "L" => Ok(ProcedureLetter::L),
            "M" => Ok(ProcedureLetter::M),
            _ => Err(InvalidProcedureLetter(text.to_owned())),
        }
    }

    /// The letter for a byte of an MRN.
    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'J' => Some(ProcedureLetter::J),
            b'K' => Some(ProcedureLetter::K),
            b'L' => Some(ProcedureLetter::L),
            b'M' => Some(ProcedureLetter::M),
            _ => None,
        }
    }

    /// The letter that goes with a `TransitOperation/security` value (CL217: 0, 1, 2, 3).
    pub fn from_security(security: &str) -> Option<Self> {
        match security {
            "0" => Some(ProcedureLetter::J),
            "1" => Some(ProcedureLetter::K),
            "2" => Some(ProcedureLetter::L),
            "3" => Some(ProcedureLetter::M),
            _ => None,
        }
    }

    /// The letter as text.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProcedureLetter::J => "J",
            ProcedureLetter::K => "K",
            ProcedureLetter::L => "L",
            ProcedureLetter::M => "M",
        }
    }

    /// The letter as one ASCII byte.
    pub(crate) fn as_byte(&self) -> u8 {
        match self {
            ProcedureLetter::J => b'J',
            ProcedureLetter::K => b'K',
            ProcedureLetter::L => b'L',
            ProcedureLetter::M => b'M',
        }
    }
}

impl FromStr for ProcedureLetter {
    type Err = InvalidProcedureLetter;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProcedureLetter::parse(s)
    }
}

impl fmt::Display for ProcedureLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ProcedureLetter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ProcedureLetter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ProcedureLetter::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        for l in [
            ProcedureLetter::J,
            ProcedureLetter::K,
            ProcedureLetter::L,
            ProcedureLetter::M,
        ] {
            assert_eq!(ProcedureLetter::parse(&l.to_string()), Ok(l));
            assert_eq!(ProcedureLetter::from_byte(l.as_byte()), Some(l));
        }
        for bad in ["", "j", "N", "JK"] {
            assert!(ProcedureLetter::parse(bad).is_err());
        }
        assert_eq!(
            ProcedureLetter::from_security("3"),
            Some(ProcedureLetter::M)
        );
        assert_eq!(ProcedureLetter::from_security("4"), None);
    }
}
