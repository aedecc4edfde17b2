//! The message identification (`messageIdentification`): an..35, chosen by the sender, the key
//! of de-duplication (NCTS error 26 for a duplicate).

use super::text_identifier;

/// A message identification: 1 to 35 printable characters, no white space.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(String);

/// The text is not a valid message identification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid message identification {0:?}: expected 1 to 35 printable characters without spaces"
)]
pub struct InvalidMessageId(pub String);

impl MessageId {
    /// The longest message identification, in characters.
    pub const MAX_LEN: usize = 35;

    /// Parses a message identification.
    pub fn parse(text: &str) -> Result<Self, InvalidMessageId> {
        let len = text.chars().count();
        if (1..=Self::MAX_LEN).contains(&len)
            && !text.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            Ok(MessageId(text.to_owned()))
        } else {
            Err(InvalidMessageId(text.to_owned()))
        }
    }

    /// The message identification as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_identifier!(MessageId, InvalidMessageId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in [
            "M1",
            "KZ-2026-11-21-000001",
            "12345678901234567890123456789012345",
        ] {
            assert!(MessageId::parse(ok).is_ok(), "{ok:?} rejected");
        }
        for bad in ["", "a b", "x\u{0}", "123456789012345678901234567890123456"] {
            assert!(MessageId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
