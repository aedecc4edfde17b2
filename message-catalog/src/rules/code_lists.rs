//! Code 12: a value outside its code list.
//!
//! Every element with a `cm:codeList` in the schemas is visited through the generated
//! `visit_code_lists`; a value that a complete list does not hold is an error 12 whose rule id is
//! the list id (`CL231`). Lists that are not complete in the catalogue (the big EU lists, and
//! the office lists, which are reference data in CATS) are left to the node and the hub.

use crate::codec::{ErrorCode, Problem};
use crate::codelists::CodeLists;
use crate::generated::Message;

/// Appends an error 12 for every code-list value of `message` that `lists` does not admit.
pub fn check(message: &Message, lists: &CodeLists, out: &mut Vec<Problem>) {
    message.visit_code_lists(&mut |pointer, list, value| {
        if !lists.admits(list, value) {
            out.push(Problem {
                line: 0,
                column: 0,
                pointer: pointer.to_string(),
                code: ErrorCode::CODE_LIST,
                label: "rules.code-list",
                rule: Some(list.to_owned()),
                reason: format!("{value:?} is not in code list {list}"),
            });
        }
    });
}
