//! Templates: `{{name}}` in a case's XML files and in the manifest's values.
//!
//! Built in: `{{uuid}}` (a fresh 32-hex-digit identifier at every use, fits P5's an..35
//! message identification), `{{now}}` (P5 `dateTime`, UTC, whole seconds), `{{now+2d}}`,
//! `{{now-3h}}`, `{{now+30m}}` (offsets in days, hours, minutes), `{{today}}`,
//! `{{mrn:KZ000101}}` (a fresh, valid MRN of that office of departure: this year, a random
//! sequence, procedure J, the right check digit; for `[vars]`). Every other name
//! is a variable of the case: `lrn` (fresh per run of the case), the manifest's `[vars]`, and
//! whatever a step captured (`mrn`, a message identification ...). An unknown name is an error
//! that names it: a case never sends a message with a hole in it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

/// The variables of one run of a case.
pub type Vars = BTreeMap<String, String>;

/// A template that cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{name}}` with no such variable.
    #[error("unknown template variable {{{{{name}}}}} (known: {known})")]
    Unknown {
        /// The name.
        name: String,
        /// The variables the case has at that point.
        known: String,
    },
    /// `{{` without `}}`.
    #[error("unclosed {{{{ at byte {at}")]
    Unclosed {
        /// Where it opens.
        at: usize,
    },
    /// `{{mrn:OFFICE}}` with something that is not an office reference number.
    #[error("{{{{mrn:{office}}}}}: {why}")]
    Mrn {
        /// What was given.
        office: String,
        /// Why no MRN can be made.
        why: String,
    },
    /// `{{now+x}}` with an offset that is not `N` followed by `d`, `h` or `m`.
    #[error("bad time offset in {{{{{expr}}}}}: expected now+Nd, now-Nh or now+Nm")]
    Offset {
        /// The expression.
        expr: String,
    },
}

/// How values are written into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are (manifest values, JSON actions).
    None,
    /// XML text (`&`, `<`, `>` escaped).
    Xml,
}

/// A P5 `dateTime` (no zone; CATS sends UTC).
pub fn p5_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A fresh identifier: 32 lowercase hex digits.
pub fn uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills every `{{name}}` of `text`.
pub fn render(
    text: &str,
    vars: &Vars,
    now: DateTime<Utc>,
    escape: Escape,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError::Unclosed { at: offset + start });
        };
        let name = after[..end].trim();
        let value = value(name, vars, now)?;
        match escape {
            Escape::None => out.push_str(&value),
            Escape::Xml => out.push_str(&xml_text(&value)),
        }
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

fn value(name: &str, vars: &Vars, now: DateTime<Utc>) -> Result<String, TemplateError> {
    if let Some(v) = vars.get(name) {
        return Ok(v.clone());
    }
    match name {
        "uuid" => return Ok(uuid()),
        "now" => return Ok(p5_time(now)),
        "today" => return Ok(now.format("%Y-%m-%d").to_string()),
        _ => {}
    }
    if let Some(office) = name.strip_prefix("mrn:") {
        return fresh_mrn(office.trim(), now);
    }
    if let Some(expr) = name.strip_prefix("now") {
        let bad = || TemplateError::Offset {
            expr: name.to_owned(),
        };
        let (sign, rest) = match expr.chars().next() {
            Some('+') => (1, &expr[1..]),
            Some('-') => (-1, &expr[1..]),
            _ => return Err(bad()),
        };
        let unit = rest.chars().last().ok_or_else(bad)?;
        let n: i64 = rest[..rest.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| bad())?;
        let d = match unit {
            'd' => Duration::days(n),
            'h' => Duration::hours(n),
            'm' => Duration::minutes(n),
            _ => return Err(bad()),
        };
        return Ok(p5_time(now + d * sign));
    }
    Err(TemplateError::Unknown {
        name: name.to_owned(),
        known: vars
            .keys()
            .map(String::as_str)
            .chain(["uuid", "now", "now+Nd", "today", "mrn:OFFICE"])
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A fresh MRN allocated at `office` this year (random sequence, procedure J).
pub fn fresh_mrn(office: &str, now: DateTime<Utc>) -> Result<String, TemplateError> {
    use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};
    let bad = |why: String| TemplateError::Mrn {
        office: office.to_owned(),
        why,
    };
    let office_ref = CustomsOfficeRef::parse(office).map_err(|e| bad(e.to_string()))?;
    let year = u8::try_from(now.format("%y").to_string().parse::<u32>().unwrap_or(26))
        .map_err(|e| bad(e.to_string()))?;
    let sequence = rand::random::<u64>() % 36u64.pow(6);
    Mrn::generate(year, &office_ref, sequence, ProcedureLetter::J)
        .map(|m| m.as_str().to_owned())
        .map_err(|e| bad(e.to_string()))
}

/// `s` as XML text.
pub fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 16, 9, 30, 0)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn variables_times_and_offsets_are_filled() {
        let mut vars = Vars::new();
        vars.insert("mrn".into(), "26KZ00010100000018".into());
        let out = render(
            "<MRN>{{mrn}}</MRN><t>{{ now }}</t><e>{{now+1d}}</e><p>{{now-2h}}</p><d>{{today}}</d>",
            &vars,
            at(),
            Escape::Xml,
        )
        .expect("renders");
        assert_eq!(
            out,
            "<MRN>26KZ00010100000018</MRN><t>2026-03-16T09:30:00</t><e>2026-03-17T09:30:00</e><p>2026-03-16T07:30:00</p><d>2026-03-16</d>"
        );
    }

    #[test]
    fn uuids_are_fresh_and_fit_a_message_identification() {
        let a = render("{{uuid}}", &Vars::new(), at(), Escape::None).expect("renders");
        let b = render("{{uuid}}", &Vars::new(), at(), Escape::None).expect("renders");
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn unknown_names_and_bad_templates_are_errors_that_say_which() {
        let e =
            render("<MRN>{{mrn}}</MRN>", &Vars::new(), at(), Escape::None).expect_err("no mrn yet");
        assert!(e.to_string().contains("{{mrn}}"), "{e}");
        assert_eq!(
            render("a {{lrn", &Vars::new(), at(), Escape::None),
            Err(TemplateError::Unclosed { at: 2 })
        );
        assert!(matches!(
            render("{{now+1y}}", &Vars::new(), at(), Escape::None),
            Err(TemplateError::Offset { .. })
        ));
    }

    #[test]
    fn fresh_mrns_are_valid_and_of_their_office() {
        let a = render("{{mrn:KZ000101}}", &Vars::new(), at(), Escape::None).expect("renders");
        let b = render("{{mrn:KZ000101}}", &Vars::new(), at(), Escape::None).expect("renders");
        assert_ne!(a, b);
        assert!(a.starts_with("26KZ000101"), "{a}");
        assert!(message_catalog::ids::Mrn::parse(&a).is_ok(), "{a}");
        let e = render("{{mrn:K1}}", &Vars::new(), at(), Escape::None).expect_err("no office");
        assert!(e.to_string().contains("mrn:K1"), "{e}");
    }

    #[test]
    fn values_are_escaped_in_xml() {
        let mut vars = Vars::new();
        vars.insert("name".into(), "A & <B>".into());
        assert_eq!(
            render("{{name}}", &vars, at(), Escape::Xml).expect("renders"),
            "A &amp; &lt;B&gt;"
        );
    }
}
