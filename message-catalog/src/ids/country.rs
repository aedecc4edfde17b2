use std::fmt;
use std::str::FromStr;

/// An ISO 3166-1 alpha-2 country code: two ASCII capital letters (`KZ`, `AZ`, `GE`).
///
/// Stored inline (two bytes), so it is `Copy` and cheap to compare and hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

/// The text is not two ASCII capital letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid country code {0:?}: expected two capital letters A-Z")]
pub struct InvalidCountryCode(pub String);

impl CountryCode {
    /// Kazakhstan.
    pub const KZ: CountryCode = CountryCode(*b"KZ");
    /// Azerbaijan.
    pub const AZ: CountryCode = CountryCode(*b"AZ");
    /// Georgia.
    pub const GE: CountryCode = CountryCode(*b"GE");

    /// Parses two ASCII capital letters.
    pub fn parse(text: &str) -> Result<Self, InvalidCountryCode> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(CountryCode([*a, *b])),
            _ => Err(InvalidCountryCode(text.to_owned())),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII capitals by construction.
        std::str::from_utf8(&self.0).expect("a CountryCode holds two ASCII capitals")
    }
}

impl FromStr for CountryCode {
    type Err = InvalidCountryCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CountryCode::parse(s)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl serde::Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        CountryCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_two_capitals_only() {
        assert_eq!(CountryCode::parse("KZ"), Ok(CountryCode::KZ));
        for bad in ["", "K", "kz", "KZA", "K1", "ÄZ"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
