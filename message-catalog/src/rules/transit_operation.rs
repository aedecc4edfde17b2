//! The transit operation: declaration type, reduced dataset, authorisations, LRN/MRN, and the
//! invalidation data of CC014C/CC009C.

use super::tree::Node;
use super::{Problem, broken, forbid, missing, require};

fn transit_operation(root: &Node) -> Option<&Node> {
    root.child("TransitOperation")
}

fn authorisation_types(root: &Node) -> impl Iterator<Item = &str> {
    root.all("Authorisation").filter_map(|a| a.text_of("type"))
}

/// C0045: "IF /*/TransitOperation/declarationType is EQUAL to 'T' THEN
/// /*/Consignment/HouseConsignment/ConsignmentItem/declarationType = "R" ELSE
/// /*/Consignment/HouseConsignment/ConsignmentItem/declarationType = "N""
pub fn c0045(root: &Node, out: &mut Vec<Problem>) {
    let Some(dt) = root.text_at(&["TransitOperation", "declarationType"]) else {
        return;
    };
    for item in root.every(&["Consignment", "HouseConsignment", "ConsignmentItem"]) {
        if dt == "T" {
            require(
                out,
                item,
                "declarationType",
                "C0045",
                "the declaration type is T",
            );
        } else {
            forbid(
                out,
                item,
                "declarationType",
                "C0045",
                "the declaration type is not T",
            );
        }
    }
}

/// C0101: "IF /*/TransitOperation/reducedDatasetIndicator is EQUAL to '1' THEN /*/Authorisation
/// = "R" ELSE /*/Authorisation = "O""
pub fn c0101(root: &Node, out: &mut Vec<Problem>) {
    if root.text_at(&["TransitOperation", "reducedDatasetIndicator"]) == Some("1") {
        require(
            out,
            root,
            "Authorisation",
            "C0101",
            "the reduced dataset indicator is 1",
        );
    }
}

/// C0102: "IF /*/TransitOperation/simplifiedProcedure is EQUAL to '1' THEN /CC007C/Authorisation
/// = "R" ELSE /CC007C/Authorisation = "N""
pub fn c0102(root: &Node, out: &mut Vec<Problem>) {
    if root.text_at(&["TransitOperation", "simplifiedProcedure"]) == Some("1") {
        require(
            out,
            root,
            "Authorisation",
            "C0102",
            "the simplified procedure indicator is 1",
        );
    } else {
        forbid(
            out,
            root,
            "Authorisation",
            "C0102",
            "the simplified procedure indicator is not 1",
        );
    }
}

/// C0411: "IF /*/TransitOperation/declarationType is EQUAL to 'TIR' THEN
/// /*/TransitOperation/TIRCarnetNumber = "R" ELSE /*/TransitOperation/TIRCarnetNumber = "N""
pub fn c0411(root: &Node, out: &mut Vec<Problem>) {
    let Some(to) = transit_operation(root) else {
        return;
    };
    match to.text_of("declarationType") {
        Some("TIR") => require(
            out,
            to,
            "TIRCarnetNumber",
            "C0411",
            "the declaration type is TIR",
        ),
        Some(_) => forbid(
            out,
            to,
            "TIRCarnetNumber",
            "C0411",
            "the declaration type is not TIR",
        ),
        None => {}
    }
}

/// C0839: "IF /*/Authorisation/type is NOT EQUAL to 'C521' THEN /*/TransitOperation/limitDate =
/// "N" ELSE IF /*/TransitOperation/additionalDeclarationType is EQUAL to 'D' THEN
/// /*/TransitOperation/limitDate = "O" ELSE /*/TransitOperation/limitDate = "R""
///
/// "Authorisation/type is NOT EQUAL to 'C521'" is read as: no authorisation of type C521
/// (authorised consignor) is declared.
pub fn c0839(root: &Node, out: &mut Vec<Problem>) {
    let Some(to) = transit_operation(root) else {
        return;
    };
    if !authorisation_types(root).any(|t| t == "C521") {
        forbid(
            out,
            to,
            "limitDate",
            "C0839",
            "no authorised consignor authorisation (C521) is declared",
        );
    } else if to.text_of("additionalDeclarationType") != Some("D") {
        require(
            out,
            to,
            "limitDate",
            "C0839",
            "an authorised consignor (C521) declares a standard declaration",
        );
    }
}

/// R0849: "IF /*/TransitOperation/declarationType is EQUAL to 'TIR' THEN
/// /*/TransitOperation/reducedDatasetIndicator = "0""
pub fn r0849(root: &Node, out: &mut Vec<Problem>) {
    let Some(to) = transit_operation(root) else {
        return;
    };
    if to.text_of("declarationType") == Some("TIR")
        && let Some(r) = to
            .child("reducedDatasetIndicator")
            .filter(|r| r.text != "0")
    {
        broken(
            out,
            r,
            "R0849",
            "a TIR declaration cannot use the reduced dataset".to_owned(),
        );
    }
}

/// R0859: "IF /*/TransitOperation/reducedDatasetIndicator = "1" THEN at least one
/// /*/Authorisation/type is EQUAL to 'C524' ELSE /*/Authorisation/type shall not be EQUAL to
/// 'C524'"
pub fn r0859(root: &Node, out: &mut Vec<Problem>) {
    let Some(to) = transit_operation(root) else {
        return;
    };
    let Some(indicator) = to.child("reducedDatasetIndicator") else {
        return;
    };
    if indicator.text == "1" {
        if !authorisation_types(root).any(|t| t == "C524") {
            broken(
                out,
                indicator,
                "R0859",
                "a reduced dataset needs an authorisation of type C524".to_owned(),
            );
        }
    } else {
        for a in root.all("Authorisation") {
            if let Some(t) = a.child("type").filter(|t| t.text == "C524") {
                broken(
                    out,
                    t,
                    "R0859",
                    "authorisation C524 is for reduced datasets only".to_owned(),
                );
            }
        }
    }
}

/// C0467: "IF /CC028C/TransitOperation/declarationAcceptanceDate is PRESENT THEN
/// /*/TransitOperation/MRN = "R" AND /*/TransitOperation/LRN = "N" ELSE /*/TransitOperation/MRN
/// = "N" AND /*/TransitOperation/LRN = "R"" (and C0685, the same for CC060C).
///
/// Whether the MRN was allocated is the movement's state (the node checks it); the message alone
/// must carry exactly one of MRN and LRN.
pub fn c0467(root: &Node, out: &mut Vec<Problem>) {
    let Some(to) = transit_operation(root) else {
        return;
    };
    let id = if root.name == "CC060C" {
        "C0685"
    } else {
        "C0467"
    };
    match (to.child("MRN"), to.child("LRN")) {
        (Some(_), Some(lrn)) => not_both(out, lrn, id),
        (None, None) => missing(
            out,
            to,
            "MRN",
            id,
            "either the MRN or, before its allocation, the LRN is required",
        ),
        _ => {}
    }
}

fn not_both(out: &mut Vec<Problem>, lrn: &Node, id: &str) {
    super::not_allowed(out, lrn, id, "the MRN is given, so the LRN must not be");
}

fn to_national_system(root: &Node) -> bool {
    root.text_of("messageRecipient")
        .is_some_and(|r| r.starts_with("NTA"))
}

/// C0128: "IF the first three characters of /*/messageRecipient is EQUAL to 'NTA' THEN
/// /*/Invalidation/decision = "N" ELSE /*/Invalidation/decision = "R""
pub fn c0128(root: &Node, out: &mut Vec<Problem>) {
    let Some(inv) = root.child("Invalidation") else {
        return;
    };
    if to_national_system(root) {
        forbid(
            out,
            inv,
            "decision",
            "C0128",
            "a request to customs carries no decision",
        );
    } else {
        require(
            out,
            inv,
            "decision",
            "C0128",
            "the message goes to a trader",
        );
    }
}

/// C0129: "IF /*/Invalidation/initiatedByCustoms is EQUAL to '1' THEN
/// /*/Invalidation/requestDateAndTime = "N" ELSE /*/Invalidation/requestDateAndTime = "R""
pub fn c0129(root: &Node, out: &mut Vec<Problem>) {
    let Some(inv) = root.child("Invalidation") else {
        return;
    };
    if inv.text_of("initiatedByCustoms") == Some("1") {
        forbid(
            out,
            inv,
            "requestDateAndTime",
            "C0129",
            "the invalidation was initiated by customs",
        );
    } else {
        require(
            out,
            inv,
            "requestDateAndTime",
            "C0129",
            "the invalidation was requested by the trader",
        );
    }
}

/// C0137: "IF the first three characters of /*/messageRecipient is EQUAL to 'NTA' THEN
/// /*/Invalidation/justification = "R" ELSE /*/Invalidation/justification = "O""
pub fn c0137(root: &Node, out: &mut Vec<Problem>) {
    let Some(inv) = root.child("Invalidation") else {
        return;
    };
    if to_national_system(root) {
        require(
            out,
            inv,
            "justification",
            "C0137",
            "a request to customs must be justified",
        );
    }
}

/// C0870: "IF the first three characters of /*/messageRecipient is EQUAL to 'NTA' THEN
/// /*/Invalidation/decisionDateAndTime = "N" ELSE /*/Invalidation/decisionDateAndTime = "R""
pub fn c0870(root: &Node, out: &mut Vec<Problem>) {
    let Some(inv) = root.child("Invalidation") else {
        return;
    };
    if to_national_system(root) {
        forbid(
            out,
            inv,
            "decisionDateAndTime",
            "C0870",
            "a request to customs carries no decision",
        );
    } else {
        require(
            out,
            inv,
            "decisionDateAndTime",
            "C0870",
            "the message goes to a trader",
        );
    }
}

/// C0904: "IF /*/TransitOperation/declarationType is PRESENT THEN IF
/// /*/TransitOperation/declarationType is EQUAL to 'TIR' THEN
/// /*/HolderOfTheTransitProcedure/TIRHolderIdentificationNumber = "R" ELSE
/// /*/HolderOfTheTransitProcedure/TIRHolderIdentificationNumber = "N" ELSE IF
/// /CC015C/TransitOperation/declarationType is EQUAL to 'TIR' OR ... (the declaration)"
///
/// The first branch: messages that carry the declaration type themselves. The second needs the
/// declaration of the movement and is the node's.
pub fn c0904(root: &Node, out: &mut Vec<Problem>) {
    let Some(holder) = root.child("HolderOfTheTransitProcedure") else {
        return;
    };
    match root.text_at(&["TransitOperation", "declarationType"]) {
        Some("TIR") => require(
            out,
            holder,
            "TIRHolderIdentificationNumber",
            "C0904",
            "the declaration type is TIR",
        ),
        Some(_) => forbid(
            out,
            holder,
            "TIRHolderIdentificationNumber",
            "C0904",
            "the declaration type is not TIR",
        ),
        None => {}
    }
}

/// R0350: "IF /*/TransitOperation/reducedDatasetIndicator is EQUAL to '1' AND
/// /*/Consignment/inlandModeOfTransport is in SET {1, 2, 4} THEN at least one
/// /*/Authorisation/type is EQUAL to 'C524'"
pub fn r0350(root: &Node, out: &mut Vec<Problem>) {
    let Some(indicator) = root.first(&["TransitOperation", "reducedDatasetIndicator"]) else {
        return;
    };
    let mode = root.text_at(&["Consignment", "inlandModeOfTransport"]);
    if indicator.text == "1"
        && matches!(mode, Some("1" | "2" | "4"))
        && !authorisation_types(root).any(|t| t == "C524")
    {
        broken(
            out,
            indicator,
            "R0350",
            "a reduced dataset by sea, rail or air needs an authorisation of type C524".to_owned(),
        );
    }
}
