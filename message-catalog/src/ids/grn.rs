//! The guarantee reference number (GRN):
//! `[0-9]{2}[A-Z]{2}[A-Z0-9]{12}[0-9]([A-Z][0-9]{6})?`.
//!
//! Year (2 digits), country (2 capitals), 12 characters, a check digit over the first 16
//! characters (same algorithm as the MRN, see `check_digit`), then optionally one capital and
//! six digits that identify one use of an individual guarantee.
//!
//! [`Grn::generate`] fills the 12 characters like [`super::Mrn::generate`]: the national part of
//! the office of guarantee, then the sequence in base 36 on six characters, so GRNs are unique
//! per office and sequence within a year.

use super::mrn::base36_six;
use super::{CountryCode, CustomsOfficeRef, check_digit, text_identifier};

/// A guarantee reference number whose structure and check digit are valid.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grn(String);

/// Why a text is not a GRN, or a GRN cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrnError {
    /// The text does not have the structure of a GRN.
    #[error(
        "invalid GRN {0:?}: expected YY CC 12 capitals or digits, check digit, optional [A-Z][0-9]{{6}}"
    )]
    Pattern(String),
    /// The structure is right but the check digit (position 17) is not.
    #[error("invalid GRN {grn:?}: check digit should be {expected}")]
    CheckDigit {
        /// The text as received.
        grn: String,
        /// The check digit the first 16 characters call for.
        expected: char,
    },
    /// [`Grn::generate`] was given a year above 99.
    #[error("GRN year {0} out of range: expected 0..=99")]
    YearOutOfRange(u8),
    /// [`Grn::generate`] was given a sequence of 36^6 or more.
    #[error("GRN sequence {0} out of range: expected below 36^6")]
    SequenceOutOfRange(u64),
}

fn is_alnum_cap(c: &u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

/// Whether `b` has the structure of a GRN (check digit not verified).
fn has_structure(b: &[u8]) -> bool {
    let (Some(year), Some(country), Some(middle), Some(check)) =
        (b.get(0..2), b.get(2..4), b.get(4..16), b.get(16))
    else {
        return false;
    };
    let suffix_ok = match b.get(17..) {
        Some([]) => true,
        Some([letter, digits @ ..]) => {
            letter.is_ascii_uppercase()
                && digits.len() == 6
                && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    year.iter().all(u8::is_ascii_digit)
        && country.iter().all(u8::is_ascii_uppercase)
        && middle.iter().all(is_alnum_cap)
        && check.is_ascii_digit()
        && suffix_ok
}

impl Grn {
    /// Parses a GRN, checking its structure, then its check digit.
    pub fn parse(text: &str) -> Result<Self, GrnError> {
        let b = text.as_bytes();
        if !has_structure(b) {
            return Err(GrnError::Pattern(text.to_owned()));
        }
        let body = b
            .get(..16)
            .ok_or_else(|| GrnError::Pattern(text.to_owned()))?;
        let expected =
            check_digit::compute(body).ok_or_else(|| GrnError::Pattern(text.to_owned()))?;
        if b.get(16) != Some(&expected) {
            return Err(GrnError::CheckDigit {
                grn: text.to_owned(),
                expected: char::from(expected),
            });
        }
        Ok(Grn(text.to_owned()))
    }

    /// Allocates the GRN for `sequence` at the office of guarantee `office` in `year` (two
    /// digits, 0..=99), without the individual-guarantee suffix.
    pub fn generate(year: u8, office: &CustomsOfficeRef, sequence: u64) -> Result<Self, GrnError> {
        if year > 99 {
            return Err(GrnError::YearOutOfRange(year));
        }
        if sequence >= 36u64.pow(6) {
            return Err(GrnError::SequenceOutOfRange(sequence));
        }
        let mut b = [b'0'; 17];
        b[0] = b'0' + year / 10;
        b[1] = b'0' + year % 10;
        b[2..10].copy_from_slice(office.as_str().as_bytes());
        base36_six(sequence, &mut b[10..16]);
        b[16] = check_digit::compute(&b[..16]).expect("generated GRN bodies are [0-9A-Z]");
        Ok(Grn(String::from_utf8_lossy(&b).into_owned()))
    }

    /// The GRN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country (positions 3–4).
    pub fn country(&self) -> CountryCode {
        CountryCode::parse(self.0.get(2..4).unwrap_or_default())
            .expect("positions 3-4 of a Grn are capitals")
    }

    /// The two-digit year (positions 1–2).
    pub fn year(&self) -> u8 {
        self.0
            .get(..2)
            .and_then(|y| y.parse().ok())
            .unwrap_or_default()
    }

    /// The individual-guarantee suffix (`[A-Z][0-9]{6}`), if any.
    pub fn suffix(&self) -> Option<&str> {
        self.0.get(17..).filter(|s| !s.is_empty())
    }
}

text_identifier!(Grn, GrnError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sample_grns() {
        for ok in [
            "20XI0000010000070",
            "23XI00000100000D0",
            "24GB0000010000295",
        ] {
            let grn = Grn::parse(ok).expect("valid sample GRN");
            assert_eq!(grn.as_str(), ok);
            assert_eq!(grn.suffix(), None);
        }
        let with_suffix = Grn::parse("24GB0000010000295A123456").expect("valid");
        assert_eq!(with_suffix.suffix(), Some("A123456"));
        assert_eq!(with_suffix.year(), 24);
        assert_eq!(with_suffix.country().as_str(), "GB");
    }

    #[test]
    fn distinguishes_structure_and_check_digit() {
        assert_eq!(
            Grn::parse("24GBABCDEF1234567"),
            Err(GrnError::CheckDigit {
                grn: "24GBABCDEF1234567".into(),
                expected: '9'
            })
        );
        for bad in [
            "",
            "24GB000001000029",
            "24gb0000010000295",
            "24GB0000010000295A12345",
            "24GB0000010000295a123456",
            "24GB000001000029X",
        ] {
            assert!(
                matches!(Grn::parse(bad), Err(GrnError::Pattern(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generates_valid_grns() {
        let office = CustomsOfficeRef::parse("GE000201").expect("valid office");
        let grn = Grn::generate(26, &office, 42).expect("valid");
        assert_eq!(Grn::parse(grn.as_str()), Ok(grn.clone()));
        assert_eq!(grn.as_str().get(..16), Some("26GE000201000016"));
        assert_ne!(grn, Grn::generate(26, &office, 43).expect("valid"));
        assert_eq!(
            Grn::generate(100, &office, 1),
            Err(GrnError::YearOutOfRange(100))
        );
    }
}
