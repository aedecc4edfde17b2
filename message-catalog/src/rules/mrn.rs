//! Code 93: an MRN whose check digit is wrong.

use super::tree::Node;
use crate::codec::{ErrorCode, Problem};
use crate::ids::{Mrn, MrnError};

/// R0028 (and NCTS error 93 "invalid MRN"): "The structure of this Data Item is validated as
/// specified in DDCOM. The check digit must follow the ISO 6346 standard."
///
/// Applied to every element called `MRN` in every message. The schema has already checked the
/// structure, so only the check digit is judged here.
pub fn r0028(root: &Node, out: &mut Vec<Problem>) {
    for node in root.descendants().into_iter().filter(|n| n.name == "MRN") {
        if let Err(MrnError::CheckDigit { expected, .. }) = Mrn::parse(&node.text) {
            out.push(Problem {
                line: 0,
                column: 0,
                pointer: node.pointer.clone(),
                code: ErrorCode::INVALID_MRN,
                label: "rules.invalid-mrn",
                rule: Some("R0028".to_owned()),
                reason: format!(
                    "MRN {} has a wrong check digit: it should be {expected}",
                    node.text
                ),
            });
        }
    }
}
