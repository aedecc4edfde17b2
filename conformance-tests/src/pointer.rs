//! XPath-like pointers into a message, and the assertions a case makes with them.
//!
//! A pointer is `/Root/Child/Grandchild`, element names compared without their namespace
//! prefix (`ncts:CC029C` is `CC029C`), each step optionally indexed from 1 (`Seal[2]`). An
//! unindexed step matches every child of that name, as XPath does, so `/CC015C/Guarantee/
//! GuaranteeReference/GRN` finds each GRN. `equals` holds when one of the nodes found has that
//! text (trimmed). Pointers that start with `#` are JSON pointers (RFC 6901) into a JSON
//! answer (`#/movement/offices/0/phase`).

use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

/// One assertion on a message or a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// Where.
    pub pointer: String,
    /// The text there is this (templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// Something is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Nothing is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<bool>,
    /// The text there matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
}

/// An element of a parsed message: local name, text, children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The local name.
    pub name: String,
    /// The text directly inside it, trimmed.
    pub text: String,
    /// The child elements, in order.
    pub children: Vec<Element>,
}

/// A message that is not well-formed XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not well-formed XML: {0}")]
pub struct ParseError(pub String);

/// Parses `xml` into its element tree (no DTD, no entity expansion beyond the XML five).
pub fn parse(xml: &str) -> Result<Element, ParseError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let local = |name: &[u8]| -> String {
        let name = String::from_utf8_lossy(name);
        name.rsplit(':').next().unwrap_or_default().to_owned()
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => stack.push(Element {
                name: local(e.name().as_ref()),
                ..Element::default()
            }),
            Ok(Event::Empty(e)) => {
                let el = Element {
                    name: local(e.name().as_ref()),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    let text = t
                        .decode()
                        .map_err(|e| ParseError(e.to_string()))?
                        .into_owned();
                    top.text.push_str(&text);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                    let c = match name.as_str() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        other => return Err(ParseError(format!("unknown entity &{other};"))),
                    };
                    top.text.push_str(c);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
            }
            Ok(Event::End(_)) => {
                let Some(mut done) = stack.pop() else {
                    return Err(ParseError("an end tag without a start".into()));
                };
                done.text = done.text.trim().to_owned();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Ok(Event::DocType(_)) => return Err(ParseError("a DTD is not allowed".into())),
            Ok(Event::Eof) => return Err(ParseError("no root element".into())),
            Ok(_) => {}
            Err(e) => {
                return Err(ParseError(format!(
                    "{e} at byte {}",
                    reader.buffer_position()
                )));
            }
        }
    }
}

/// A pointer that is not `/Name[/Name[n]]...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pointer {pointer:?}: {why}")]
pub struct PointerError {
    /// The pointer.
    pub pointer: String,
    /// What is wrong with it.
    pub why: String,
}

/// The texts of every element `pointer` finds in `root`.
pub fn select(root: &Element, pointer: &str) -> Result<Vec<String>, PointerError> {
    let bad = |why: &str| PointerError {
        pointer: pointer.to_owned(),
        why: why.to_owned(),
    };
    let Some(path) = pointer.strip_prefix('/') else {
        return Err(bad("it must start with /"));
    };
    let mut steps = Vec::new();
    for step in path.split('/') {
        let (name, index) = match step.split_once('[') {
            Some((name, rest)) => {
                let n = rest
                    .strip_suffix(']')
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad("an index is [n] with n from 1"))?;
                (name, Some(n))
            }
            None => (step, None),
        };
        if name.is_empty() {
            return Err(bad("an empty step"));
        }
        steps.push((name.rsplit(':').next().unwrap_or(name), index));
    }
    let Some(((first, first_index), rest)) = steps.split_first() else {
        return Err(bad("no steps"));
    };
    if root.name != *first || first_index.is_some_and(|i| i != 1) {
        return Ok(Vec::new());
    }
    let mut current: Vec<&Element> = vec![root];
    for (name, index) in rest {
        let mut next = Vec::new();
        for el in current {
            let named = el.children.iter().filter(|c| c.name == *name);
            match index {
                Some(i) => next.extend(named.skip(i - 1).take(1)),
                None => next.extend(named),
            }
        }
        current = next;
    }
    Ok(current.into_iter().map(|e| e.text.clone()).collect())
}

/// The values a JSON pointer (`#/a/0/b`) finds: one or none; strings as they are, other
/// values as JSON.
pub fn select_json(doc: &serde_json::Value, pointer: &str) -> Vec<String> {
    let p = pointer.strip_prefix('#').unwrap_or(pointer);
    match doc.pointer(p) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(v) => vec![v.to_string()],
    }
}

/// A document an assertion looks into.
#[derive(Debug, Clone, Copy)]
pub enum Document<'a> {
    /// A parsed message.
    Xml(&'a Element),
    /// A JSON answer.
    Json(&'a serde_json::Value),
}

/// Where an assertion does not hold: what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What was expected (`= 26`, `present`, `absent`, `~ ^26KZ`).
    pub expected: String,
    /// What was found (`"90"`, `nothing`).
    pub actual: String,
}

impl Assertion {
    /// Checks the assertion (its `equals` already templated into `equals`) against `doc`.
    pub fn check(&self, doc: Document<'_>, equals: Option<&str>) -> Result<(), Mismatch> {
        let found = match doc {
            Document::Xml(root) if !self.pointer.starts_with('#') => select(root, &self.pointer)
                .map_err(|e| Mismatch {
                    expected: "a valid pointer".into(),
                    actual: e.to_string(),
                })?,
            Document::Xml(_) => {
                return Err(Mismatch {
                    expected: "an XML pointer (/Root/...)".into(),
                    actual: format!("the JSON pointer {}", self.pointer),
                });
            }
            Document::Json(v) => select_json(v, &self.pointer),
        };
        let shown = || {
            if found.is_empty() {
                "nothing".to_owned()
            } else {
                found
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if let Some(want) = equals
            && !found.iter().any(|v| v == want)
        {
            return Err(Mismatch {
                expected: format!("{want:?}"),
                actual: shown(),
            });
        }
        if self.present == Some(true) && found.is_empty() {
            return Err(Mismatch {
                expected: "present".into(),
                actual: "nothing".into(),
            });
        }
        if (self.absent == Some(true) || self.present == Some(false)) && !found.is_empty() {
            return Err(Mismatch {
                expected: "absent".into(),
                actual: shown(),
            });
        }
        if let Some(pattern) = &self.matches {
            let re = regex::Regex::new(pattern).map_err(|e| Mismatch {
                expected: format!("a valid regular expression {pattern:?}"),
                actual: e.to_string(),
            })?;
            if !found.iter().any(|v| re.is_match(v)) {
                return Err(Mismatch {
                    expected: format!("matching /{pattern}/"),
                    actual: shown(),
                });
            }
        }
        Ok(())
    }

    /// A short text of what this assertion expects, for tables.
    pub fn describe(&self, equals: Option<&str>) -> String {
        let mut parts = Vec::new();
        if let Some(e) = equals {
            parts.push(format!("= {e:?}"));
        }
        if self.present == Some(true) {
            parts.push("present".into());
        }
        if self.absent == Some(true) || self.present == Some(false) {
            parts.push("absent".into());
        }
        if let Some(m) = &self.matches {
            parts.push(format!("~ /{m}/"));
        }
        format!("{} {}", self.pointer, parts.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0"?>
<ncts:CC056C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageType>CC056C</messageType>
  <TransitOperation><LRN>A&amp;B</LRN></TransitOperation>
  <FunctionalError><errorPointer>/CC015C/x</errorPointer><errorCode>12</errorCode></FunctionalError>
  <FunctionalError><errorPointer>/CC015C/y</errorPointer><errorCode>14</errorCode></FunctionalError>
  <Empty/>
</ncts:CC056C>"#;

    fn assertion(pointer: &str) -> Assertion {
        Assertion {
            pointer: pointer.into(),
            equals: None,
            present: None,
            absent: None,
            matches: None,
        }
    }

    #[test]
    fn pointers_find_every_match_and_indexed_ones() {
        let root = parse(XML).expect("parses");
        assert_eq!(root.name, "CC056C");
        assert_eq!(
            select(&root, "/CC056C/FunctionalError/errorCode").expect("valid"),
            vec!["12", "14"]
        );
        assert_eq!(
            select(&root, "/CC056C/FunctionalError[2]/errorCode").expect("valid"),
            vec!["14"]
        );
        assert_eq!(
            select(&root, "/ncts:CC056C/TransitOperation/LRN").expect("valid"),
            vec!["A&B"]
        );
        assert!(
            select(&root, "/CC029C/TransitOperation")
                .expect("valid")
                .is_empty()
        );
        assert!(select(&root, "CC056C").is_err());
        assert!(select(&root, "/CC056C/FunctionalError[0]").is_err());
    }

    #[test]
    fn assertions_say_what_they_expected_and_what_they_found() {
        let root = parse(XML).expect("parses");
        let doc = Document::Xml(&root);
        let code = assertion("/CC056C/FunctionalError/errorCode");
        assert!(code.check(doc, Some("14")).is_ok());
        let miss = code.check(doc, Some("26")).expect_err("no 26");
        assert_eq!(miss.expected, "\"26\"");
        assert_eq!(miss.actual, "\"12\", \"14\"");
        let absent = Assertion {
            absent: Some(true),
            ..assertion("/CC056C/Empty")
        };
        assert_eq!(
            absent.check(doc, None).expect_err("there").expected,
            "absent"
        );
        let present = Assertion {
            present: Some(true),
            ..assertion("/CC056C/TransitOperation/MRN")
        };
        assert_eq!(
            present.check(doc, None).expect_err("no MRN").actual,
            "nothing"
        );
        let matches = Assertion {
            matches: Some("^/CC015C/".into()),
            ..assertion("/CC056C/FunctionalError/errorPointer")
        };
        assert!(matches.check(doc, None).is_ok());
    }

    #[test]
    fn json_pointers_read_answers() {
        let v = serde_json::json!({"movement": {"offices": [{"phase": "Released"}]}, "n": 3});
        let a = assertion("#/movement/offices/0/phase");
        assert!(a.check(Document::Json(&v), Some("Released")).is_ok());
        assert_eq!(select_json(&v, "#/n"), vec!["3"]);
        assert!(select_json(&v, "#/missing").is_empty());
    }

    #[test]
    fn hostile_or_broken_xml_is_an_error_not_a_panic() {
        assert!(parse("<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>").is_err());
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<a>&unknown;</a>").is_err());
    }
}
