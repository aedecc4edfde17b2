//! The customs office reference number: country code and six capitals or digits (`KZ000101`).

use super::{CountryCode, text_identifier};

/// A customs office reference number, `[A-Z]{2}[A-Z0-9]{6}`.
///
/// Only the format is checked here: whether the office exists, and which roles it has, is
/// reference data that the node and the hub hold.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomsOfficeRef([u8; 8]);

/// The text is not `[A-Z]{2}[A-Z0-9]{6}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid customs office reference number {0:?}: expected [A-Z]{{2}}[A-Z0-9]{{6}}")]
pub struct InvalidCustomsOfficeRef(pub String);

impl CustomsOfficeRef {
    /// Parses `[A-Z]{2}[A-Z0-9]{6}`.
    pub fn parse(text: &str) -> Result<Self, InvalidCustomsOfficeRef> {
        let bytes: [u8; 8] = text
            .as_bytes()
            .try_into()
            .map_err(|_| InvalidCustomsOfficeRef(text.to_owned()))?;
        let (country, rest) = bytes.split_at(2);
        if country.iter().all(u8::is_ascii_uppercase)
            && rest
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            Ok(CustomsOfficeRef(bytes))
        } else {
            Err(InvalidCustomsOfficeRef(text.to_owned()))
        }
    }

    /// The reference number as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a CustomsOfficeRef holds ASCII only")
    }

    /// The country of the office: its first two characters.
    pub fn country(&self) -> CountryCode {
        CountryCode::parse(self.as_str().get(..2).unwrap_or_default())
            .expect("the first two characters of a CustomsOfficeRef are capitals")
    }

    /// The six characters after the country code (the national part).
    pub fn national_part(&self) -> &str {
        self.as_str().get(2..).unwrap_or_default()
    }
}

text_identifier!(CustomsOfficeRef, InvalidCustomsOfficeRef);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pilot_offices() {
        let office = CustomsOfficeRef::parse("KZ000101").expect("valid");
        assert_eq!(office.country(), CountryCode::KZ);
        assert_eq!(office.national_part(), "000101");
        assert_eq!(office.to_string(), "KZ000101");
        assert_eq!(
            serde_json::to_string(&office).expect("serialises"),
            "\"KZ000101\""
        );
    }

    #[test]
    fn rejects_wrong_formats() {
        for bad in [
            "",
            "KZ00010",
            "KZ0001011",
            "kz000101",
            "1Z000101",
            "KZ00010a",
            "KZ 00101",
        ] {
            assert!(CustomsOfficeRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
