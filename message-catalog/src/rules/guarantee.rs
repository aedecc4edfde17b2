//! The guarantee: what the guarantee type requires of the references.

use super::tree::Node;
use super::{Problem, broken, forbid, require};
use crate::codelists::CodeLists;

/// C0086: "IF /*/Guarantee/guaranteeType is in SET CL286 THEN
/// /*/Guarantee/GuaranteeReference/GRN = "R" AND /*/Guarantee/GuaranteeReference/accessCode = "R"
/// ELSE /*/Guarantee/GuaranteeReference/GRN = "N" AND
/// /*/Guarantee/GuaranteeReference/accessCode = "N""
///
/// CL286 (GuaranteeTypeWithGRN) comes from the embedded code lists.
pub fn c0086(root: &Node, out: &mut Vec<Problem>) {
    let lists = CodeLists::embedded();
    for g in root.all("Guarantee") {
        let Some(t) = g.text_of("guaranteeType") else {
            continue;
        };
        for r in g.all("GuaranteeReference") {
            if lists.contains("CL286", t) {
                let why = "the guarantee type has a GRN (CL286)";
                require(out, r, "GRN", "C0086", why);
                require(out, r, "accessCode", "C0086", why);
            } else {
                let why = "the guarantee type has no GRN (not in CL286)";
                forbid(out, r, "GRN", "C0086", why);
                forbid(out, r, "accessCode", "C0086", why);
            }
        }
    }
}

/// C0130: "IF /*/Guarantee/guaranteeType is EQUAL to '8' THEN
/// /*/Guarantee/otherGuaranteeReference = "R" ELSE IF /*/Guarantee/guaranteeType is EQUAL to '3'
/// THEN /*/Guarantee/otherGuaranteeReference = "O" ELSE /*/Guarantee/otherGuaranteeReference =
/// "N""
pub fn c0130(root: &Node, out: &mut Vec<Problem>) {
    for g in root.all("Guarantee") {
        match g.text_of("guaranteeType") {
            Some("8") => require(
                out,
                g,
                "otherGuaranteeReference",
                "C0130",
                "the guarantee type is 8",
            ),
            Some("3") | None => {}
            Some(_) => forbid(
                out,
                g,
                "otherGuaranteeReference",
                "C0130",
                "only guarantee types 8 and 3 have another reference",
            ),
        }
    }
}

/// R0318: "IF /*/Guarantee/guaranteeType is EQUAL to '4' THEN the format of
/// /*/Guarantee/GuaranteeReference/GRN is 'an24' ELSE the format of
/// /*/Guarantee/GuaranteeReference/GRN is 'an17'"
pub fn r0318(root: &Node, out: &mut Vec<Problem>) {
    for g in root.all("Guarantee") {
        let Some(t) = g.text_of("guaranteeType") else {
            continue;
        };
        let want = if t == "4" { 24 } else { 17 };
        for grn in g.every(&["GuaranteeReference", "GRN"]) {
            let len = grn.text.chars().count();
            if len != want {
                broken(
                    out,
                    grn,
                    "R0318",
                    format!("a GRN for guarantee type {t} has {want} characters, not {len}"),
                );
            }
        }
    }
}
