//! Rules and conditions: the stage after the typed decode.
//!
//! [`check`] takes a decoded [`Message`] and returns the functional problems it has, each with
//! the NCTS functional error code (CL180), the XPath-style pointer and the rule or condition id:
//!
//! | code | meaning | where |
//! | --- | --- | --- |
//! | 12 | value not in its code list (rule id = the list id) | [`code_lists`], complete lists only |
//! | 13 | condition violated: a required element is missing | conditions (C-ids) |
//! | 14 | rule violated | rules (R-ids) |
//! | 15 | condition violated: an element is present where it is not allowed | conditions (C-ids) |
//! | 93 | invalid MRN (wrong check digit) | [`mrn`] |
//!
//! Only rules that need nothing but the message itself live here; rules that need reference data
//! (office lists, EORI, country groups such as CL009/CL010/CL112) or the movement's state are the
//! node's and the hub's. `message-catalog/RULES.md` sorts every rule and condition of the
//! supported messages into implemented here / needs reference data / guideline or technical.
//!
//! [`validate`] runs the whole pipeline on bytes: decode, then (at [`Level::Rules`]) [`check`],
//! and places each problem at a line and column of the original bytes with [`codec::locate`].
//!
//! The rules read the message through [`tree::Node`], an element view with the codec's pointers
//! (see its module documentation for why), one module per concern:
//!
//! - [`code_lists`]: code 12; [`mrn`]: code 93;
//! - [`numbering`]: sequence numbers, goods item numbers, uniqueness;
//! - [`transit_operation`]: declaration type, reduced dataset, authorisations, LRN/MRN, invalidation;
//! - [`security`]: the safety and security conditions;
//! - [`guarantee`]: guarantee type versus references;
//! - [`transport`]: containers, seals, transport means;
//! - [`places`]: location of goods, places of loading and unloading;
//! - [`consignment`]: consignment versus house consignment versus item, masses;
//! - [`offices`]: customs offices and their dates;
//! - [`control`]: incidents (CC007C), control decisions (CC060C), rejections (CC056C/CC057C).

pub mod code_lists;
pub mod consignment;
pub mod control;
pub mod guarantee;
pub mod mrn;
pub mod numbering;
pub mod offices;
pub mod places;
pub mod security;
pub mod transit_operation;
pub mod transport;
pub mod tree;

use crate::codec::{self, ErrorCode, Limits, Problem, Rejection, RejectionKind};
use crate::codelists::CodeLists;
use crate::generated::Message;
use tree::Node;

/// How far [`validate`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// Stop after the typed decode (schema-level checks only).
    Xml,
    /// Decode, then rules and conditions.
    #[default]
    Rules,
}

/// Whether an entry of [`IMPLEMENTED`] is a condition, a rule or a check of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TIS condition (C-id): codes 13 and 15.
    Condition,
    /// A TIS rule (R-id): code 14 (93 for the MRN check digit).
    Rule,
    /// The code-list check: code 12, for every `cm:codeList`.
    CodeList,
}

/// One implemented rule or condition.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The TIS id (`C0086`, `R0987`), or `CL` for the code-list check.
    pub id: &'static str,
    /// Condition or rule.
    pub kind: Kind,
    /// The messages it is checked on (root names).
    pub messages: &'static [&'static str],
    /// The check: appends its problems for the message tree `root`.
    pub check: fn(root: &Node, out: &mut Vec<Problem>),
}

/// The messages a declaration-level rule applies to (abbreviations for the table).
const DECL: &[&str] = &["CC013C", "CC015C"];
const DECL_REL: &[&str] = &["CC013C", "CC015C", "CC029C"];

/// Every implemented rule and condition (the code-list check and the MRN check are listed too,
/// though [`check`] runs them over every message).
pub static IMPLEMENTED: &[Rule] = &[
    Rule {
        id: "CL",
        kind: Kind::CodeList,
        messages: &[],
        check: |_, _| {},
    },
    Rule {
        id: "R0028",
        kind: Kind::Rule,
        messages: &[],
        check: mrn::r0028,
    },
    // numbering
    Rule {
        id: "R0987",
        kind: Kind::Rule,
        messages: &[
            "CC007C", "CC013C", "CC015C", "CC029C", "CC043C", "CC055C", "CC060C", "CC170C",
        ],
        check: numbering::r0987,
    },
    Rule {
        id: "R0988",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: numbering::r0988,
    },
    Rule {
        id: "R0007",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: numbering::r0007,
    },
    Rule {
        id: "R0003",
        kind: Kind::Rule,
        messages: DECL_REL,
        check: numbering::r0003,
    },
    Rule {
        id: "R0107",
        kind: Kind::Rule,
        messages: &[
            "CC007C", "CC013C", "CC015C", "CC029C", "CC043C", "CC044C", "CC170C",
        ],
        check: numbering::r0107,
    },
    Rule {
        id: "R0106",
        kind: Kind::Rule,
        messages: &["CC007C", "CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: numbering::r0106,
    },
    // transit operation
    Rule {
        id: "C0045",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: transit_operation::c0045,
    },
    Rule {
        id: "C0101",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: transit_operation::c0101,
    },
    Rule {
        id: "C0102",
        kind: Kind::Condition,
        messages: &["CC007C"],
        check: transit_operation::c0102,
    },
    Rule {
        id: "C0411",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: transit_operation::c0411,
    },
    Rule {
        id: "C0839",
        kind: Kind::Condition,
        messages: DECL,
        check: transit_operation::c0839,
    },
    Rule {
        id: "R0849",
        kind: Kind::Rule,
        messages: DECL,
        check: transit_operation::r0849,
    },
    Rule {
        id: "R0859",
        kind: Kind::Rule,
        messages: DECL,
        check: transit_operation::r0859,
    },
    Rule {
        id: "C0467",
        kind: Kind::Condition,
        messages: &["CC004C", "CC009C", "CC013C", "CC014C", "CC056C"],
        check: transit_operation::c0467,
    },
    Rule {
        id: "C0685",
        kind: Kind::Condition,
        messages: &["CC060C"],
        check: transit_operation::c0467,
    },
    Rule {
        id: "C0128",
        kind: Kind::Condition,
        messages: &["CC009C", "CC014C"],
        check: transit_operation::c0128,
    },
    Rule {
        id: "C0129",
        kind: Kind::Condition,
        messages: &["CC009C", "CC014C"],
        check: transit_operation::c0129,
    },
    Rule {
        id: "C0137",
        kind: Kind::Condition,
        messages: &["CC009C", "CC014C"],
        check: transit_operation::c0137,
    },
    Rule {
        id: "C0870",
        kind: Kind::Condition,
        messages: &["CC009C", "CC014C"],
        check: transit_operation::c0870,
    },
    // security
    Rule {
        id: "C0186",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: security::c0186,
    },
    Rule {
        id: "C0191",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: security::c0191,
    },
    Rule {
        id: "C0542",
        kind: Kind::Condition,
        messages: DECL,
        check: security::c0542,
    },
    Rule {
        id: "C0586",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: security::c0586,
    },
    Rule {
        id: "C0599",
        kind: Kind::Condition,
        messages: DECL,
        check: security::c0599,
    },
    Rule {
        id: "C0806",
        kind: Kind::Condition,
        messages: DECL,
        check: security::c0806,
    },
    // guarantee
    Rule {
        id: "C0086",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: guarantee::c0086,
    },
    Rule {
        id: "C0130",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: guarantee::c0130,
    },
    Rule {
        id: "R0318",
        kind: Kind::Rule,
        messages: DECL_REL,
        check: guarantee::r0318,
    },
    // transport
    Rule {
        id: "C0055",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::c0055,
    },
    Rule {
        id: "C0569",
        kind: Kind::Condition,
        messages: &["CC007C", "CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::c0569,
    },
    Rule {
        id: "C0670",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::c0670,
    },
    Rule {
        id: "C0822",
        kind: Kind::Condition,
        messages: DECL,
        check: transport::c0822,
    },
    Rule {
        id: "C0823",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC170C"],
        check: transport::c0823,
    },
    Rule {
        id: "C0826",
        kind: Kind::Condition,
        messages: DECL,
        check: transport::c0826,
    },
    Rule {
        id: "R0448",
        kind: Kind::Rule,
        messages: &["CC007C", "CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::r0448,
    },
    Rule {
        id: "R0474",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::r0474,
    },
    Rule {
        id: "R0789",
        kind: Kind::Rule,
        messages: DECL,
        check: transport::r0789,
    },
    Rule {
        id: "R0855",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::r0855,
    },
    // places
    Rule {
        id: "C0387",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC029C", "CC170C"],
        check: places::c0387,
    },
    Rule {
        id: "C0394",
        kind: Kind::Condition,
        messages: &["CC007C", "CC013C", "CC015C", "CC029C", "CC170C"],
        check: places::c0394,
    },
    Rule {
        id: "C0403",
        kind: Kind::Condition,
        messages: DECL,
        check: places::c0403,
    },
    // consignment
    Rule {
        id: "C0337",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: consignment::c0337,
    },
    Rule {
        id: "C0343",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: consignment::c0343,
    },
    Rule {
        id: "C0909",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: consignment::c0909,
    },
    Rule {
        id: "R0223",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC025C", "CC029C", "CC043C"],
        check: consignment::r0223,
    },
    Rule {
        id: "R0983",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: consignment::r0983,
    },
    Rule {
        id: "R0994",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: consignment::r0994,
    },
    Rule {
        id: "R3061",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: consignment::r3061,
    },
    // offices
    Rule {
        id: "R0005",
        kind: Kind::Rule,
        messages: DECL,
        check: offices::r0005,
    },
    Rule {
        id: "R0103",
        kind: Kind::Rule,
        messages: DECL_REL,
        check: offices::r0103,
    },
    // control, incidents, rejections
    Rule {
        id: "C0240",
        kind: Kind::Condition,
        messages: &["CC007C", "CC043C"],
        check: control::c0240,
    },
    Rule {
        id: "C0396",
        kind: Kind::Condition,
        messages: &["CC007C", "CC043C"],
        check: control::c0396,
    },
    Rule {
        id: "C0040",
        kind: Kind::Condition,
        messages: &["CC007C", "CC043C"],
        check: control::c0040,
    },
    Rule {
        id: "C0820",
        kind: Kind::Condition,
        messages: &["CC007C", "CC043C"],
        check: control::c0820,
    },
    Rule {
        id: "C0451",
        kind: Kind::Condition,
        messages: &["CC060C"],
        check: control::c0451,
    },
    Rule {
        id: "C0452",
        kind: Kind::Condition,
        messages: &["CC060C"],
        check: control::c0452,
    },
    Rule {
        id: "C0455",
        kind: Kind::Condition,
        messages: &["CC060C"],
        check: control::c0455,
    },
    Rule {
        id: "C0492",
        kind: Kind::Condition,
        messages: &["CC056C", "CC057C"],
        check: control::c0492,
    },
    Rule {
        id: "C0904",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: transit_operation::c0904,
    },
    Rule {
        id: "R0350",
        kind: Kind::Rule,
        messages: DECL_REL,
        check: transit_operation::r0350,
    },
    Rule {
        id: "C0531",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: security::c0531,
    },
    Rule {
        id: "C0671",
        kind: Kind::Condition,
        messages: &["CC007C", "CC013C", "CC015C", "CC029C", "CC170C"],
        check: places::c0671,
    },
    Rule {
        id: "C0460",
        kind: Kind::Condition,
        messages: &["CC007C", "CC043C"],
        check: places::c0460,
    },
    Rule {
        id: "C0153",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: consignment::c0153,
    },
    Rule {
        id: "C0837",
        kind: Kind::Condition,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: consignment::c0837,
    },
    Rule {
        id: "C0298",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: consignment::c0298,
    },
    Rule {
        id: "R0076",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC170C"],
        check: transport::r0076,
    },
    Rule {
        id: "R0473",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::r0473,
    },
    Rule {
        id: "R0472",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::r0472,
    },
    Rule {
        id: "R0476",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C", "CC170C"],
        check: transport::r0476,
    },
    Rule {
        id: "C0502",
        kind: Kind::Condition,
        messages: DECL_REL,
        check: consignment::c0502,
    },
    Rule {
        id: "R0506",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC170C"],
        check: consignment::r0506,
    },
    Rule {
        id: "R0507",
        kind: Kind::Rule,
        messages: DECL,
        check: consignment::r0507,
    },
    Rule {
        id: "R0219",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC029C", "CC043C"],
        check: consignment::r0219,
    },
    Rule {
        id: "R0221",
        kind: Kind::Rule,
        messages: &["CC013C", "CC015C", "CC025C", "CC029C", "CC043C"],
        check: consignment::r0221,
    },
    Rule {
        id: "R0906",
        kind: Kind::Rule,
        messages: DECL,
        check: offices::r0906,
    },
    Rule {
        id: "C0404",
        kind: Kind::Condition,
        messages: &["CC170C"],
        check: places::c0404,
    },
];

/// Runs every rule and condition that applies to `message` and returns the problems found, in
/// the order of [`IMPLEMENTED`] (the code-list check first). Line and column are 0: the message
/// alone does not know them (see [`validate`]).
pub fn check(message: &Message, lists: &CodeLists) -> Vec<Problem> {
    let mut out = Vec::new();
    code_lists::check(message, lists, &mut out);
    let Some(root) = tree::of(message) else {
        return out;
    };
    let name = message.message_type();
    for rule in IMPLEMENTED {
        if rule.messages.is_empty() || rule.messages.contains(&name) {
            (rule.check)(&root, &mut out);
        }
    }
    out
}

/// Decodes `bytes` and, at [`Level::Rules`], checks the rules and conditions with the embedded
/// code lists. A rules-stage rejection is [`RejectionKind::Functional`], with every problem placed
/// at the line and column of its element in `bytes` (or of its nearest present ancestor, for a
/// missing element).
pub fn validate(bytes: &[u8], limits: &Limits, level: Level) -> Result<Message, Rejection> {
    let message = codec::decode(bytes, limits)?;
    if level == Level::Xml {
        return Ok(message);
    }
    let mut problems = check(&message, CodeLists::embedded());
    if problems.is_empty() {
        return Ok(message);
    }
    for p in &mut problems {
        if let Some((line, column)) = place(bytes, &p.pointer) {
            p.line = line;
            p.column = column;
        }
    }
    Err(Rejection {
        kind: RejectionKind::Functional,
        problems,
        message_type: Some(message.message_type().to_owned()),
    })
}

/// The line and column of `pointer`, or of its nearest ancestor that is in the document.
fn place(bytes: &[u8], pointer: &str) -> Option<(u32, u32)> {
    let mut p = pointer;
    loop {
        if let Some(found) = codec::locate(bytes, p) {
            return Some(found);
        }
        p = p
            .rsplit_once('/')
            .map(|(head, _)| head)
            .filter(|h| !h.is_empty())?;
    }
}

/// A problem at `pointer` with no place yet.
fn problem(
    code: ErrorCode,
    label: &'static str,
    pointer: String,
    rule: &str,
    reason: String,
) -> Problem {
    Problem {
        line: 0,
        column: 0,
        pointer,
        code,
        label,
        rule: Some(rule.to_owned()),
        reason,
    }
}

/// Code 13: `name` is required under `parent` and missing.
pub(crate) fn missing(out: &mut Vec<Problem>, parent: &Node, name: &str, rule: &str, why: &str) {
    out.push(problem(
        ErrorCode::CONDITION,
        "rules.condition-missing",
        parent.pointer_of_missing(name),
        rule,
        format!("{name} is required: {why}"),
    ));
}

/// Code 15: `node` is present where it is not allowed.
pub(crate) fn not_allowed(out: &mut Vec<Problem>, node: &Node, rule: &str, why: &str) {
    out.push(problem(
        ErrorCode::CONDITION_15,
        "rules.condition-not-allowed",
        node.pointer.clone(),
        rule,
        format!("{} is not allowed: {why}", node.name),
    ));
}

/// Code 14: `node` breaks a rule.
pub(crate) fn broken(out: &mut Vec<Problem>, node: &Node, rule: &str, why: String) {
    out.push(problem(
        ErrorCode::RULE,
        "rules.rule",
        node.pointer.clone(),
        rule,
        why,
    ));
}

/// Applies an "R" (required) condition on `parent`'s child `name`.
pub(crate) fn require(out: &mut Vec<Problem>, parent: &Node, name: &str, rule: &str, why: &str) {
    if !parent.has(name) {
        missing(out, parent, name, rule, why);
    }
}

/// Applies an "N" (not allowed) condition on every child `name` of `parent`.
pub(crate) fn forbid(out: &mut Vec<Problem>, parent: &Node, name: &str, rule: &str, why: &str) {
    for node in parent.all(name) {
        not_allowed(out, node, rule, why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implemented_ids_are_unique_and_well_formed() {
        let mut ids: Vec<&str> = IMPLEMENTED.iter().map(|r| r.id).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate ids in IMPLEMENTED");
        for r in IMPLEMENTED {
            let ok = r.id == "CL"
                || (r.id.len() == 5
                    && (r.id.starts_with('C') || r.id.starts_with('R'))
                    && r.id.chars().skip(1).all(|c| c.is_ascii_digit()));
            assert!(ok, "{}", r.id);
            match r.kind {
                Kind::Condition => assert!(r.id.starts_with('C')),
                Kind::Rule => assert!(r.id.starts_with('R')),
                Kind::CodeList => assert_eq!(r.id, "CL"),
            }
        }
    }
}
