//! The movement reference number (MRN), an18 with a check digit in position 18.
//!
//! Two structures are accepted, the two that the P5 `MRNType` accepts:
//!
//! - P5 (`([2][4-9]|[3-9][0-9])[A-Z]{2}[A-Z0-9]{12}[J-M][0-9]`): year, country of departure,
//!   12 characters, procedure letter, check digit. This is what CATS allocates.
//! - legacy P4 (`([0-1][0-9]|[2][0-4])[A-Z]{2}[A-Z0-9]{13}[0-9]`): no procedure letter; still
//!   found in real P5 traffic (the P5 samples carry such MRNs), so it is accepted on input.
//!
//! Either way the last character is the check digit over the first 17 (see `check_digit`); a
//! wrong check digit is NCTS functional error 93 "invalid MRN".
//!
//! # How CATS allocates MRNs
//!
//! [`Mrn::generate`] fills the 12 free characters with the six-character national part of the
//! office of departure followed by the sequence number in base 36 (digits then capitals),
//! zero-padded to six characters. Country and office come from the office reference, so two
//! offices never share an MRN, and one office gets 36^6 (about 2.2 billion) MRNs per year and
//! procedure letter before [`MrnError::SequenceOutOfRange`].

use super::{CountryCode, CustomsOfficeRef, ProcedureLetter, check_digit, text_identifier};

/// A movement reference number whose structure and check digit are valid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mrn([u8; 18]);

/// Why a text is not an MRN, or an MRN cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrnError {
    /// The text does not have the structure of an MRN.
    #[error("invalid MRN {0:?}: expected an18, YY CC 12 capitals or digits, J-M, check digit")]
    Pattern(String),
    /// The structure is right but the check digit is not (NCTS functional error 93).
    #[error("invalid MRN {mrn:?}: check digit should be {expected}")]
    CheckDigit {
        /// The text as received.
        mrn: String,
        /// The check digit the first 17 characters call for.
        expected: char,
    },
    /// [`Mrn::generate`] was given a year outside `24..=99`.
    #[error("MRN year {0} out of range: expected 24..=99")]
    YearOutOfRange(u8),
    /// [`Mrn::generate`] was given a sequence of 36^6 or more.
    #[error("MRN sequence {0} out of range: expected below 36^6")]
    SequenceOutOfRange(u64),
}

impl MrnError {
    /// The NCTS functional error code for this error when it is found in a message: 93
    /// (invalid MRN) for a wrong check digit, 14 (rule) for a wrong structure.
    pub fn ncts_code(&self) -> u16 {
        match self {
            MrnError::CheckDigit { .. } => 93,
            _ => 14,
        }
    }
}

/// Number of values the six base-36 characters of the sequence hold.
const SEQUENCE_LIMIT: u64 = 36u64.pow(6);

/// Writes `value` (below 36^6) as six base-36 characters, most significant first.
pub(crate) fn base36_six(mut value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for slot in out.iter_mut().rev() {
        let d = usize::try_from(value % 36).unwrap_or_default();
        *slot = DIGITS.get(d).copied().unwrap_or(b'0');
        value /= 36;
    }
}

fn is_alnum_cap(c: &u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

/// Whether `b` (18 bytes) has the P5 structure.
fn is_p5(b: &[u8; 18]) -> bool {
    let year_ok = matches!(
        (b[0], b[1]),
        (b'2', b'4'..=b'9') | (b'3'..=b'9', b'0'..=b'9')
    );
    year_ok
        && b[2..4].iter().all(u8::is_ascii_uppercase)
        && b[4..16].iter().all(is_alnum_cap)
        && matches!(b[16], b'J'..=b'M')
        && b[17].is_ascii_digit()
}

/// Whether `b` (18 bytes) has the legacy P4 structure.
fn is_legacy(b: &[u8; 18]) -> bool {
    let year_ok = matches!(
        (b[0], b[1]),
        (b'0'..=b'1', b'0'..=b'9') | (b'2', b'0'..=b'4')
    );
    year_ok
        && b[2..4].iter().all(u8::is_ascii_uppercase)
        && b[4..17].iter().all(is_alnum_cap)
        && b[17].is_ascii_digit()
}

impl Mrn {
    /// Parses an MRN, checking its structure, then its check digit.
    pub fn parse(text: &str) -> Result<Self, MrnError> {
        let bytes: [u8; 18] = text
            .as_bytes()
            .try_into()
            .map_err(|_| MrnError::Pattern(text.to_owned()))?;
        if !is_p5(&bytes) && !is_legacy(&bytes) {
            return Err(MrnError::Pattern(text.to_owned()));
        }
        let (body, check) = bytes.split_at(17);
        let expected =
            check_digit::compute(body).ok_or_else(|| MrnError::Pattern(text.to_owned()))?;
        if check != [expected] {
            return Err(MrnError::CheckDigit {
                mrn: text.to_owned(),
                expected: char::from(expected),
            });
        }
        Ok(Mrn(bytes))
    }

    /// Allocates the MRN for `sequence` at `office` in `year` (two digits, 24..=99) with the
    /// given procedure letter. See the module documentation for the layout; distinct
    /// `(office, sequence)` pairs give distinct MRNs for the same year and procedure letter.
    pub fn generate(
        year: u8,
        office: &CustomsOfficeRef,
        sequence: u64,
        procedure: ProcedureLetter,
    ) -> Result<Self, MrnError> {
        if !(24..=99).contains(&year) {
            return Err(MrnError::YearOutOfRange(year));
        }
        if sequence >= SEQUENCE_LIMIT {
            return Err(MrnError::SequenceOutOfRange(sequence));
        }
        let mut b = [b'0'; 18];
        b[0] = b'0' + year / 10;
        b[1] = b'0' + year % 10;
        b[2..10].copy_from_slice(office.as_str().as_bytes());
        base36_six(sequence, &mut b[10..16]);
        b[16] = procedure.as_byte();
        b[17] = check_digit::compute(&b[..17]).expect("generated MRN bodies are [0-9A-Z]");
        Ok(Mrn(b))
    }

    /// The MRN as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("an Mrn holds ASCII only")
    }

    /// The country of departure (positions 3–4).
    pub fn country(&self) -> CountryCode {
        CountryCode::parse(self.as_str().get(2..4).unwrap_or_default())
            .expect("positions 3-4 of an Mrn are capitals")
    }

    /// The two-digit year (positions 1–2).
    pub fn year(&self) -> u8 {
        let [a, b, ..] = self.0;
        (a - b'0') * 10 + (b - b'0')
    }

    /// The procedure letter (position 17), `None` for a legacy P4 MRN.
    pub fn procedure(&self) -> Option<ProcedureLetter> {
        if self.is_legacy() {
            None
        } else {
            ProcedureLetter::from_byte(self.0[16])
        }
    }

    /// Whether this MRN has the legacy P4 structure rather than the P5 one.
    pub fn is_legacy(&self) -> bool {
        !is_p5(&self.0)
    }
}

text_identifier!(Mrn, MrnError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sample_mrns() {
        let mrn = Mrn::parse("24GB000246J8NY33L7").expect("valid sample MRN");
        assert_eq!(mrn.country().as_str(), "GB");
        assert_eq!(mrn.year(), 24);
        assert_eq!(mrn.procedure(), Some(ProcedureLetter::L));
        assert!(!mrn.is_legacy());
        let legacy = Mrn::parse("23GB000246YHVFYMJ0").expect("valid legacy MRN");
        assert!(legacy.is_legacy());
        assert_eq!(legacy.procedure(), None);
    }

    #[test]
    fn wrong_check_digit_is_error_93() {
        // cc013c-valid-mrn.xml carries this one: schema-valid, check digit should be 5.
        let err = Mrn::parse("24GB012345678901A0").expect_err("bad check digit");
        assert_eq!(
            err,
            MrnError::CheckDigit {
                mrn: "24GB012345678901A0".into(),
                expected: '5'
            }
        );
        assert_eq!(err.ncts_code(), 93);
    }

    #[test]
    fn wrong_structure_is_a_pattern_error() {
        for bad in [
            "",
            "24GB000246J8NY33L",
            "24gb000246J8NY33L7",
            "25GB000246J8NY33N7",
            "2XGB000246J8NY33L7",
            "24GB000246J8NY33L7X",
        ] {
            assert!(
                matches!(Mrn::parse(bad), Err(MrnError::Pattern(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generates_valid_unique_mrns() {
        let office = CustomsOfficeRef::parse("KZ000101").expect("valid office");
        let a = Mrn::generate(26, &office, 1, ProcedureLetter::J).expect("valid");
        let b = Mrn::generate(26, &office, 2, ProcedureLetter::J).expect("valid");
        assert_ne!(a, b);
        assert_eq!(a.as_str().get(..16), Some("26KZ000101000001"));
        assert_eq!(Mrn::parse(a.as_str()), Ok(a));
        assert_eq!(a.country(), CountryCode::KZ);
        assert_eq!(a.year(), 26);
        assert_eq!(a.procedure(), Some(ProcedureLetter::J));
        assert_eq!(
            Mrn::generate(23, &office, 1, ProcedureLetter::J),
            Err(MrnError::YearOutOfRange(23))
        );
        assert!(Mrn::generate(26, &office, SEQUENCE_LIMIT, ProcedureLetter::K).is_err());
        let last =
            Mrn::generate(99, &office, SEQUENCE_LIMIT - 1, ProcedureLetter::M).expect("valid");
        assert_eq!(last.as_str().get(10..16), Some("ZZZZZZ"));
    }
}
