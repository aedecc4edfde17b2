//! The local reference number (LRN): the declarant's own reference, an..22.

use super::text_identifier;

/// A local reference number: 1 to 22 characters, no control characters, no leading or
/// trailing white space.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lrn(String);

/// The text is not a valid LRN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid LRN {0:?}: expected 1 to 22 printable characters without leading or trailing spaces"
)]
pub struct InvalidLrn(pub String);

impl Lrn {
    /// The longest LRN, in characters.
    pub const MAX_LEN: usize = 22;

    /// Parses an LRN.
    pub fn parse(text: &str) -> Result<Self, InvalidLrn> {
        let len = text.chars().count();
        if (1..=Self::MAX_LEN).contains(&len)
            && !text.chars().any(char::is_control)
            && text.trim() == text
        {
            Ok(Lrn(text.to_owned()))
        } else {
            Err(InvalidLrn(text.to_owned()))
        }
    }

    /// The LRN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_identifier!(Lrn, InvalidLrn);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["LRN-1", "KZ 2026/0001", "a", "1234567890123456789012"] {
            assert_eq!(Lrn::parse(ok).map(|l| l.to_string()), Ok(ok.to_owned()));
        }
        for bad in ["", " LRN", "LRN ", "LR\nN", "12345678901234567890123", "\t"] {
            assert!(Lrn::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
