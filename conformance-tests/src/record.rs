//! Recording: a live movement's exchange at one node turned into a case, so that a bug seen in
//! production becomes a regression case.
//!
//! What the node's API gives back: the movement's history (messages in and out, officers'
//! actions, the phases) and every message it sent its national system (the stream, with the
//! XML), and the XML the national system sent it (`GET /api/v1/movements/{mrn}/messages`, or
//! the national system's own copies with `--sent DIR`), matched to the history by message
//! type, in order. The identifiers are turned into templates (`{{lrn}}`,
//! `{{mrn}}`, a fresh message identification, `{{now}}`), so the case can be replayed as often
//! as needed.
//!
//! Officers' actions are recorded by name, office and role; the node's history does not keep
//! their other fields, so a control result is recorded as `satisfactory` and a refusal of
//! release with motivation `03` unless the history shows discrepancies (a CC019C), and the
//! manifest says so in a comment next to each.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::pointer;

/// One entry of the node's history of the movement (`GET /api/v1/movements/{mrn}`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct HistoryEntry {
    /// Its order.
    pub seq: i64,
    /// The office.
    #[serde(default)]
    pub office: String,
    /// Its role.
    #[serde(default)]
    pub role: String,
    /// `in`, `out`, `action`.
    #[serde(default)]
    pub kind: String,
    /// The message type.
    #[serde(default)]
    pub message_type: Option<String>,
    /// The action.
    #[serde(default)]
    pub action: Option<String>,
    /// From.
    #[serde(default)]
    pub from: Option<String>,
    /// To.
    #[serde(default)]
    pub to: Option<String>,
    /// The phase after it.
    #[serde(default)]
    pub phase_after: Option<String>,
}

/// What was read from the node.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// The node's country.
    pub country: String,
    /// The MRN.
    pub mrn: String,
    /// The LRN, when this node is the office of departure.
    pub lrn: Option<String>,
    /// The history, in order.
    pub history: Vec<HistoryEntry>,
    /// The messages to the national system for this movement: (type, XML), in order.
    pub stream: Vec<(String, String)>,
    /// The offices' final phases: (office, role, phase).
    pub phases: Vec<(String, String, String)>,
    /// The national system's copies of what it sent: (type, XML), in the order sent.
    pub sent: Vec<(String, String)>,
}

/// A recording that cannot become a case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The history has a message from the national system with no copy given.
    #[error(
        "the node received {0} from the national system, but no copy of it was found (neither from the node's API nor in --sent DIR)"
    )]
    MissingSent(String),
    /// Nothing happened to the movement at this node.
    #[error("the node's history of {0} is empty")]
    Empty(String),
}

/// A recorded case: `case.toml` and its files.
#[derive(Debug, Clone)]
pub struct RecordedCase {
    /// `case.toml`.
    pub manifest: String,
    /// File name → content (sent messages templated; received ones for reference).
    pub files: BTreeMap<String, String>,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Replaces the identifiers of the movement in a sent message by templates.
pub fn templatize(xml: &str, mrn: &str, lrn: Option<&str>) -> String {
    let mut out = xml.to_owned();
    if !mrn.is_empty() {
        out = out.replace(mrn, "{{mrn}}");
    }
    if let Some(lrn) = lrn.filter(|l| !l.is_empty()) {
        // Everywhere (a transport document's reference may carry it too); a short LRN only
        // as an element's whole text, where it cannot be part of another value.
        out = if lrn.len() >= 6 {
            out.replace(lrn, "{{lrn}}")
        } else {
            out.replace(&format!(">{lrn}<"), ">{{lrn}}<")
        };
    }
    for (tag, value) in [
        ("messageIdentification", "{{uuid}}"),
        ("preparationDateAndTime", "{{now}}"),
    ] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        if let Some(start) = out.find(&open)
            && let Some(len) = out[start..].find(&close)
        {
            out.replace_range(start + open.len()..start + len, value);
        }
    }
    out
}

/// Turns a recording into a case.
pub fn record(r: &Recording) -> Result<RecordedCase, RecordError> {
    if r.history.is_empty() {
        return Err(RecordError::Empty(r.mrn.clone()));
    }
    let mut files = BTreeMap::new();
    let mut m = String::new();
    let _ = writeln!(
        m,
        "description = {}",
        quote(&format!(
            "recorded from the {} node: movement {}",
            r.country, r.mrn
        ))
    );
    let mut tags: Vec<String> = vec!["recorded".into()];
    for e in &r.history {
        for t in [e.message_type.as_deref(), Some(e.role.as_str())]
            .into_iter()
            .flatten()
        {
            if !t.is_empty() && !tags.iter().any(|x| x == t) {
                tags.push(t.to_owned());
            }
        }
    }
    let _ = writeln!(
        m,
        "tags = [{}]",
        tags.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(m, "countries = [{}]", quote(&r.country));
    let mut sent = r.sent.iter();
    let mut stream = r.stream.iter();
    let mut have_mrn = false;
    let discrepancies = r.stream.iter().any(|(t, _)| t == "CC019C");
    let mut n = 0;
    // The phase each (office, role) was in after the entry before: an officer's action or a
    // national message is replayed only once the office is where it was when it happened
    // (the anticipated record may still be on its way through the hub).
    let mut phases: BTreeMap<(String, String), String> = BTreeMap::new();
    let wait = |m: &mut String, phases: &BTreeMap<(String, String), String>, e: &HistoryEntry| {
        if let Some(phase) = phases.get(&(e.office.clone(), e.role.clone())) {
            let _ = writeln!(
                m,
                "\n[[step]]\ndo = \"state\"\nat = {}\noffice = {}\nrole = {}\nphase = {}",
                quote(&r.country),
                quote(&e.office),
                quote(&e.role),
                quote(phase)
            );
        }
    };
    for e in &r.history {
        let before = phases.clone();
        if let Some(p) = &e.phase_after {
            phases.insert((e.office.clone(), e.role.clone()), p.clone());
        }
        let phases = before;
        let ty = e.message_type.clone().unwrap_or_default();
        let from_national = e.from.as_deref() == Some("national-system");
        let to_national = e.to.as_deref() == Some("national-system");
        if e.kind == "in" && from_national {
            let Some((_, xml)) = sent.find(|(t, _)| *t == ty) else {
                return Err(RecordError::MissingSent(ty));
            };
            if have_mrn {
                wait(&mut m, &phases, e);
            }
            n += 1;
            let file = format!("{n:02}-{}.xml", ty.to_ascii_lowercase());
            files.insert(file.clone(), templatize(xml, &r.mrn, r.lrn.as_deref()));
            let _ = writeln!(
                m,
                "\n[[step]]\ndo = \"send\"\nto = {}\nfile = {}",
                quote(&r.country),
                quote(&file)
            );
        } else if e.kind == "out" && to_national {
            let Some((_, xml)) = stream.find(|(t, _)| *t == ty) else {
                continue;
            };
            n += 1;
            let file = format!("{n:02}-{}.received.xml", ty.to_ascii_lowercase());
            files.insert(file, xml.clone());
            let root = pointer::parse(xml).ok();
            let mrn_in = root.as_ref().is_some_and(|root| {
                pointer::select(root, &format!("/{}/TransitOperation/MRN", root.name))
                    .map(|v| v.iter().any(|x| x == &r.mrn))
                    .unwrap_or(false)
            });
            let key = if have_mrn || r.lrn.is_none() {
                "{{mrn}}"
            } else {
                "{{lrn}}"
            };
            let _ = writeln!(
                m,
                "\n[[step]]\ndo = \"expect\"\nat = {}\ntype = {}\nkey = {}",
                quote(&r.country),
                quote(&ty),
                quote(key)
            );
            if mrn_in && !have_mrn {
                let _ = writeln!(
                    m,
                    "capture = {{ mrn = {} }}",
                    quote(&format!("/{ty}/TransitOperation/MRN"))
                );
                have_mrn = true;
            } else if mrn_in {
                let _ = writeln!(
                    m,
                    "assert = [{{ pointer = {}, equals = \"{{{{mrn}}}}\" }}]",
                    quote(&format!("/{ty}/TransitOperation/MRN"))
                );
            }
        } else if e.kind == "action" && e.from.as_deref() == Some("officer") {
            let action = e.action.clone().unwrap_or_default();
            let mut fields = vec![
                ("action", quote(&action)),
                ("office", quote(&e.office)),
                ("role", quote(&e.role)),
            ];
            let key = if have_mrn || r.lrn.is_none() {
                ("mrn", quote("{{mrn}}"))
            } else {
                ("lrn", quote("{{lrn}}"))
            };
            fields.push(key);
            let mut comment = None;
            match action.as_str() {
                "record-control-result" => {
                    let outcome = if discrepancies && e.role == "destination" {
                        "major-discrepancies"
                    } else {
                        "satisfactory"
                    };
                    fields.push(("outcome", quote(outcome)));
                    comment = Some(format!(
                        "# the node's history does not keep the outcome: recorded as {outcome}"
                    ));
                }
                "refuse-release" => {
                    fields.push(("motivation", quote("03")));
                    comment = Some(
                        "# the node's history does not keep the motivation: recorded as 03"
                            .to_owned(),
                    );
                }
                _ => {}
            }
            if have_mrn {
                wait(&mut m, &phases, e);
            }
            let _ = writeln!(m, "\n[[step]]");
            if let Some(c) = comment {
                let _ = writeln!(m, "{c}");
            }
            let _ = writeln!(
                m,
                "do = \"action\"\nat = {}\naction = {{ {} }}",
                quote(&r.country),
                fields
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    for (office, role, phase) in &r.phases {
        let _ = writeln!(
            m,
            "\n[[step]]\ndo = \"state\"\nat = {}\noffice = {}\nrole = {}\nphase = {}",
            quote(&r.country),
            quote(office),
            quote(role),
            quote(phase)
        );
    }
    Ok(RecordedCase { manifest: m, files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Manifest, Step};

    fn entry(
        kind: &str,
        ty: Option<&str>,
        action: Option<&str>,
        from: &str,
        to: &str,
    ) -> HistoryEntry {
        HistoryEntry {
            seq: 0,
            office: "KZ000101".into(),
            role: "departure".into(),
            kind: kind.into(),
            message_type: ty.map(str::to_owned),
            action: action.map(str::to_owned),
            from: Some(from.into()),
            to: Some(to.into()),
            phase_after: None,
        }
    }

    const MRN: &str = "26KZ00010100000018";

    fn recording() -> Recording {
        Recording {
            country: "KZ".into(),
            mrn: MRN.into(),
            lrn: Some("LRN-1".into()),
            history: vec![
                entry("in", Some("CC015C"), None, "national-system", "KZ000101"),
                entry("out", Some("CC028C"), None, "KZ000101", "national-system"),
                entry("action", None, Some("accept"), "system", "-"),
                HistoryEntry {
                    phase_after: Some("UnderControl".into()),
                    ..entry("out", Some("CC060C"), None, "KZ000101", "national-system")
                },
                entry("action", None, Some("record-control-result"), "officer", "-"),
                entry("out", Some("CD203C"), None, "KZ", "hub"),
                entry("out", Some("CC029C"), None, "KZ000101", "national-system"),
            ],
            stream: vec![
                ("CC028C".into(), format!("<CC028C><TransitOperation><LRN>LRN-1</LRN><MRN>{MRN}</MRN></TransitOperation></CC028C>")),
                ("CC060C".into(), format!("<CC060C><TransitOperation><MRN>{MRN}</MRN></TransitOperation></CC060C>")),
                ("CC029C".into(), format!("<CC029C><TransitOperation><MRN>{MRN}</MRN></TransitOperation></CC029C>")),
            ],
            phases: vec![("KZ000101".into(), "departure".into(), "Released".into())],
            sent: vec![(
                "CC015C".into(),
                "<CC015C><messageIdentification>M1</messageIdentification><preparationDateAndTime>2026-01-01T00:00:00</preparationDateAndTime><TransitOperation><LRN>LRN-1</LRN></TransitOperation></CC015C>".into(),
            )],
        }
    }

    #[test]
    fn a_recording_becomes_a_case_that_loads_with_templated_identifiers() {
        let case = record(&recording()).expect("records");
        let manifest: Manifest = toml::from_str(&case.manifest).expect(&case.manifest);
        let kinds: Vec<&str> = manifest.steps.iter().map(Step::kind).collect();
        assert_eq!(
            kinds,
            [
                "send", "expect", "expect", "state", "action", "expect", "state"
            ],
            "{}",
            case.manifest
        );
        let sent = &case.files["01-cc015c.xml"];
        assert!(sent.contains("<LRN>{{lrn}}</LRN>"), "{sent}");
        assert!(sent.contains("<messageIdentification>{{uuid}}</messageIdentification>"));
        assert!(sent.contains("<preparationDateAndTime>{{now}}</preparationDateAndTime>"));
        assert!(
            matches!(&manifest.steps[1], Step::Expect(e) if e.key.as_deref() == Some("{{lrn}}") && e.capture.contains_key("mrn"))
        );
        // The officer acts once the office is where it was when the officer acted.
        assert!(matches!(&manifest.steps[3], Step::State(s) if s.phase == "UnderControl"));
        assert!(
            matches!(&manifest.steps[5], Step::Expect(e) if e.key.as_deref() == Some("{{mrn}}") && e.assert.len() == 1)
        );
        assert!(case.manifest.contains("recorded as satisfactory"));
        assert!(case.manifest.contains("\"CC060C\"") && case.manifest.contains("\"departure\""));
    }

    #[test]
    fn a_message_of_the_national_system_without_its_copy_is_a_clear_error() {
        let mut r = recording();
        r.sent.clear();
        let e = record(&r).expect_err("no copy of the CC015C");
        assert_eq!(e, RecordError::MissingSent("CC015C".into()));
        assert!(e.to_string().contains("--sent DIR"));
        r.history.clear();
        assert!(matches!(record(&r), Err(RecordError::Empty(_))));
    }
}
