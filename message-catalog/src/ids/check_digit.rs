//! The check digit of MRNs and GRNs (ISO 6346 style).
//!
//! Each character gets a value (digits their face value; letters A=10, B..K=12..21,
//! L..U=23..32, V..Z=34..38, skipping the multiples of 11), is multiplied by 2 to the power
//! of its zero-based position, the products are summed, the sum is taken modulo 11, and a
//! remainder of 10 becomes 0.

/// The value of one character, or `None` when it is not `[0-9A-Z]`.
fn char_value(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some(u64::from(c - b'0')),
        b'A' => Some(10),
        b'B'..=b'K' => Some(u64::from(c - b'B') + 12),
        b'L'..=b'U' => Some(u64::from(c - b'L') + 23),
        b'V'..=b'Z' => Some(u64::from(c - b'V') + 34),
        _ => None,
    }
}

/// The check digit (`b'0'..=b'9'`) of `body`, or `None` when `body` holds a character outside
/// `[0-9A-Z]`.
pub(crate) fn compute(body: &[u8]) -> Option<u8> {
    let mut sum: u64 = 0;
    let mut weight: u64 = 1;
    for &c in body {
        // Reduce as we go so that the weights never overflow, whatever the length.
        sum = (sum + char_value(c)? * weight) % 11;
        weight = (weight * 2) % 11;
    }
    let digit = match sum % 11 {
        10 => 0,
        d => d,
    };
    // `digit` is below 10 here, so the cast cannot truncate.
    Some(b'0' + digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_values_skip_multiples_of_eleven() {
        assert_eq!(char_value(b'A'), Some(10));
        assert_eq!(char_value(b'B'), Some(12));
        assert_eq!(char_value(b'K'), Some(21));
        assert_eq!(char_value(b'L'), Some(23));
        assert_eq!(char_value(b'U'), Some(32));
        assert_eq!(char_value(b'V'), Some(34));
        assert_eq!(char_value(b'Z'), Some(38));
        assert_eq!(char_value(b'a'), None);
    }

    #[test]
    fn known_sample_mrn() {
        // From the P5 samples (CC028C.xml): 23GB000246YHVFYMJ0.
        assert_eq!(compute(b"23GB000246YHVFYMJ"), Some(b'0'));
        assert_eq!(compute(b"23GB000060KNEJKEJ"), Some(b'3'));
    }
}
