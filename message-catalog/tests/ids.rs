//! Identifiers: the check digits of every MRN and GRN in the P5 samples, and property tests
//! (display then parse gives the value back; no input panics).

use message_catalog::ids::{
    CountryCode, CustomsOfficeRef, Grn, GrnError, Lrn, MessageId, Mrn, MrnError, ProcedureLetter,
    Tin,
};
use proptest::prelude::*;

/// `mrn_grn_checkdigits.txt` of the P5 reference, copied in verbatim: kind, value, length,
/// verdict (`check-ok` or `check-BAD(expected N)`), sample file.
const CHECK_DIGITS: &str = include_str!("data/ids/mrn_grn_checkdigits.txt");

#[test]
fn check_digits_agree_with_the_reference_computation() {
    let mut seen = 0;
    for line in CHECK_DIGITS.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // The reference file ends with a line cut short (no verdict): skip such lines.
        let [kind, value, _len, verdict, ..] = fields.as_slice() else {
            continue;
        };
        // "check-BAD(expected 5)" is split over two fields.
        let expected_bad = verdict
            .starts_with("check-BAD")
            .then(|| {
                line.split("expected ")
                    .nth(1)
                    .and_then(|s| s.chars().next())
            })
            .flatten();
        match *kind {
            "MRN" => match (Mrn::parse(value), expected_bad) {
                (Ok(mrn), None) => assert_eq!(mrn.as_str(), *value),
                (Err(MrnError::CheckDigit { expected, .. }), Some(e)) => assert_eq!(expected, e),
                (other, _) => panic!("{value}: {other:?}, reference says {verdict}"),
            },
            "GRN" => match (Grn::parse(value), expected_bad) {
                (Ok(grn), None) => assert_eq!(grn.as_str(), *value),
                (Err(GrnError::CheckDigit { expected, .. }), Some(e)) => assert_eq!(expected, e),
                (other, _) => panic!("{value}: {other:?}, reference says {verdict}"),
            },
            other => panic!("unknown kind {other}"),
        }
        seen += 1;
    }
    assert!(seen > 50, "only {seen} reference lines read");
}

fn office() -> impl Strategy<Value = CustomsOfficeRef> {
    "[A-Z]{2}[A-Z0-9]{6}".prop_map(|s| CustomsOfficeRef::parse(&s).expect("generated to match"))
}

fn procedure() -> impl Strategy<Value = ProcedureLetter> {
    prop_oneof![
        Just(ProcedureLetter::J),
        Just(ProcedureLetter::K),
        Just(ProcedureLetter::L),
        Just(ProcedureLetter::M),
    ]
}

proptest! {
    #[test]
    fn generated_mrns_round_trip(
        year in 24u8..=99,
        office in office(),
        sequence in 0u64..36u64.pow(6),
        procedure in procedure(),
    ) {
        let mrn = Mrn::generate(year, &office, sequence, procedure).expect("in range");
        prop_assert_eq!(Mrn::parse(&mrn.to_string()), Ok(mrn));
        prop_assert_eq!(mrn.country(), office.country());
        prop_assert_eq!(mrn.year(), year);
        prop_assert_eq!(mrn.procedure(), Some(procedure));
        let json = serde_json::to_string(&mrn).expect("serialises");
        prop_assert_eq!(serde_json::from_str::<Mrn>(&json).expect("deserialises"), mrn);
    }

    #[test]
    fn mrns_differ_by_sequence(office in office(), a in 0u64..36u64.pow(6), b in 0u64..36u64.pow(6)) {
        prop_assume!(a != b);
        let x = Mrn::generate(26, &office, a, ProcedureLetter::J).expect("in range");
        let y = Mrn::generate(26, &office, b, ProcedureLetter::J).expect("in range");
        prop_assert_ne!(x, y);
    }

    #[test]
    fn a_wrong_check_digit_is_reported_as_such(
        office in office(), sequence in 0u64..36u64.pow(6), digit in 0u8..10,
    ) {
        let mrn = Mrn::generate(26, &office, sequence, ProcedureLetter::J).expect("in range");
        let mut text = mrn.to_string();
        let wrong = char::from(b'0' + digit);
        prop_assume!(!text.ends_with(wrong));
        text.pop();
        text.push(wrong);
        let is_check_digit_error = matches!(Mrn::parse(&text), Err(MrnError::CheckDigit { .. }));
        prop_assert!(is_check_digit_error);
    }

    #[test]
    fn generated_grns_round_trip(year in 0u8..=99, office in office(), sequence in 0u64..36u64.pow(6)) {
        let grn = Grn::generate(year, &office, sequence).expect("in range");
        prop_assert_eq!(Grn::parse(&grn.to_string()), Ok(grn.clone()));
        prop_assert_eq!(grn.country(), office.country());
        let with_suffix = format!("{grn}A000001");
        prop_assert!(Grn::parse(&with_suffix).is_ok());
    }

    #[test]
    fn text_identifiers_round_trip(
        lrn in "[A-Za-z0-9/-][ A-Za-z0-9/-]{0,20}[A-Za-z0-9]",
        id in "[!-~]{1,35}",
        tin in "[A-Z]{2}[!-~]{1,15}",
        office in office(),
        country in "[A-Z]{2}",
    ) {
        let l = Lrn::parse(&lrn).expect("valid LRN");
        prop_assert_eq!(Lrn::parse(&l.to_string()), Ok(l));
        let m = MessageId::parse(&id).expect("valid message id");
        prop_assert_eq!(MessageId::parse(&m.to_string()), Ok(m));
        let t = Tin::parse(&tin).expect("valid TIN");
        prop_assert_eq!(Tin::parse(&t.to_string()), Ok(t));
        prop_assert_eq!(CustomsOfficeRef::parse(&office.to_string()), Ok(office));
        let c = CountryCode::parse(&country).expect("valid country");
        prop_assert_eq!(CountryCode::parse(&c.to_string()), Ok(c));
    }

    #[test]
    fn no_input_panics(text in "\\PC*", bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let lossy = String::from_utf8_lossy(&bytes);
        for s in [text.as_str(), lossy.as_ref()] {
            let _ = Mrn::parse(s);
            let _ = Grn::parse(s);
            let _ = Lrn::parse(s);
            let _ = MessageId::parse(s);
            let _ = Tin::parse(s);
            let _ = CustomsOfficeRef::parse(s);
            let _ = CountryCode::parse(s);
            let _ = ProcedureLetter::parse(s);
        }
    }

    #[test]
    fn near_miss_mrns_do_not_panic(s in "[0-9A-Z]{16,19}") {
        if let Ok(mrn) = Mrn::parse(&s) {
            prop_assert_eq!(mrn.as_str(), s.as_str());
            let _ = (mrn.country(), mrn.year(), mrn.procedure());
        }
        if let Ok(grn) = Grn::parse(&s) {
            let _ = (grn.country(), grn.year(), grn.suffix());
        }
    }
}
