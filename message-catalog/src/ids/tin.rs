//! The trader identification number (TIN), following the P5 `TINNewType` (EORI or TCUIN):
//! a country code and 1 to 15 printable ASCII characters without spaces,
//! `[A-Z]{2}[!-~]{1,15}`.

use super::{CountryCode, text_identifier};

/// A trader identification number, `[A-Z]{2}[!-~]{1,15}`.
///
/// Only the format is checked: whether the number is registered (EORI, AEO, authorised trader)
/// is reference data.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tin(String);

/// The text is not `[A-Z]{2}[!-~]{1,15}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TIN {0:?}: expected a country code then 1 to 15 printable ASCII characters")]
pub struct InvalidTin(pub String);

impl Tin {
    /// Parses a TIN.
    pub fn parse(text: &str) -> Result<Self, InvalidTin> {
        let b = text.as_bytes();
        let ok = match (b.get(..2), b.get(2..)) {
            (Some(country), Some(rest)) => {
                country.iter().all(u8::is_ascii_uppercase)
                    && (1..=15).contains(&rest.len())
                    && rest.iter().all(|c| (b'!'..=b'~').contains(c))
            }
            _ => false,
        };
        if ok {
            Ok(Tin(text.to_owned()))
        } else {
            Err(InvalidTin(text.to_owned()))
        }
    }

    /// The TIN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country code in the first two characters.
    pub fn country(&self) -> CountryCode {
        CountryCode::parse(self.0.get(..2).unwrap_or_default())
            .expect("the first two characters of a Tin are capitals")
    }
}

text_identifier!(Tin, InvalidTin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        let tin = Tin::parse("KZ123456789012").expect("valid");
        assert_eq!(tin.country(), CountryCode::KZ);
        for ok in ["GB1", "AZ123456789012345", "GEab-12/x"] {
            assert!(Tin::parse(ok).is_ok(), "{ok:?} rejected");
        }
        for bad in [
            "",
            "KZ",
            "kz123",
            "KZ 123",
            "AZ1234567890123456",
            "KZ12\u{e9}",
        ] {
            assert!(Tin::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
