//! The consignment, its house consignments and their items: where data are given once, and
//! masses.

use rust_decimal::Decimal;

use super::tree::Node;
use super::{Problem, broken, forbid, missing, require};

fn consignment(root: &Node) -> Option<&Node> {
    root.child("Consignment")
}

fn decimal(node: &Node, name: &str) -> Option<Decimal> {
    node.text_of(name).and_then(|t| t.trim().parse().ok())
}

/// Data given at one level only: consignment, else house consignment, else every item.
fn one_level(root: &Node, out: &mut Vec<Problem>, field: &str, rule: &str) {
    let Some(c) = consignment(root) else { return };
    let at_consignment = c.has(field);
    for h in c.all("HouseConsignment") {
        if at_consignment {
            let why = format!("{field} is given at consignment level");
            forbid(out, h, field, rule, &why);
            for item in h.all("ConsignmentItem") {
                forbid(out, item, field, rule, &why);
            }
        } else if h.has(field) {
            for item in h.all("ConsignmentItem") {
                forbid(
                    out,
                    item,
                    field,
                    rule,
                    &format!("{field} is given at house consignment level"),
                );
            }
        } else {
            for item in h.all("ConsignmentItem") {
                require(
                    out,
                    item,
                    field,
                    rule,
                    &format!(
                        "{field} is given neither for the consignment nor for the house consignment"
                    ),
                );
            }
        }
    }
}

/// C0343: "IF /*/Consignment/countryOfDestination is PRESENT THEN
/// /*/Consignment/HouseConsignment/countryOfDestination = "N" AND
/// /*/Consignment/HouseConsignment/ConsignmentItem/countryOfDestination = "N" ELSE IF
/// /*/Consignment/HouseConsignment/countryOfDestination is PRESENT THEN
/// /*/Consignment/HouseConsignment/ConsignmentItem/countryOfDestination = "N" ELSE
/// /*/Consignment/HouseConsignment/ConsignmentItem/countryOfDestination = "R""
pub fn c0343(root: &Node, out: &mut Vec<Problem>) {
    one_level(root, out, "countryOfDestination", "C0343");
}

/// C0909: "IF /*/Consignment/countryOfDispatch is PRESENT THEN
/// /*/Consignment/HouseConsignment/countryOfDispatch = "N" AND
/// /*/Consignment/HouseConsignment/ConsignmentItem/countryOfDispatch = "N" ELSE IF
/// /*/Consignment/HouseConsignment/countryOfDispatch is PRESENT THEN
/// /*/Consignment/HouseConsignment/ConsignmentItem/countryOfDispatch = "N" ELSE
/// /*/Consignment/HouseConsignment/ConsignmentItem/countryOfDispatch = "R""
pub fn c0909(root: &Node, out: &mut Vec<Problem>) {
    one_level(root, out, "countryOfDispatch", "C0909");
}

/// C0337: "IF /*/Consignment/TransportCharges is PRESENT THEN
/// /*/Consignment/HouseConsignment/TransportCharges = "N" ELSE
/// /*/Consignment/HouseConsignment/TransportCharges = "O""
pub fn c0337(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root).filter(|c| c.has("TransportCharges")) else {
        return;
    };
    for h in c.all("HouseConsignment") {
        forbid(
            out,
            h,
            "TransportCharges",
            "C0337",
            "the transport charges are given at consignment level",
        );
    }
}

/// R0223: "IF /*/Consignment/HouseConsignment/ConsignmentItem/Commodity/GoodsMeasure/grossMass is
/// GREATER THAN '0' (zero) THEN
/// /*/Consignment/HouseConsignment/ConsignmentItem/Commodity/GoodsMeasure/netMass must be LESS
/// THAN OR EQUAL to /*/Consignment/HouseConsignment/ConsignmentItem/Commodity/GoodsMeasure/grossMass."
pub fn r0223(root: &Node, out: &mut Vec<Problem>) {
    for m in root.every(&[
        "Consignment",
        "HouseConsignment",
        "ConsignmentItem",
        "Commodity",
        "GoodsMeasure",
    ]) {
        let (Some(gross), Some(net)) = (decimal(m, "grossMass"), decimal(m, "netMass")) else {
            continue;
        };
        if gross > Decimal::ZERO
            && net > gross
            && let Some(n) = m.child("netMass")
        {
            broken(
                out,
                n,
                "R0223",
                format!("net mass {net} exceeds gross mass {gross}"),
            );
        }
    }
}

/// R0983: "/*/Consignment/HouseConsignment/grossMass must be GREATER than OR EQUAL to the sum of
/// /*/Consignment/HouseConsignment/ConsignmentItem/Commodity/GoodsMeasure/grossMass available
/// for all Consignment Items included in that House Consignment"
pub fn r0983(root: &Node, out: &mut Vec<Problem>) {
    for h in root.every(&["Consignment", "HouseConsignment"]) {
        let Some(gross) = decimal(h, "grossMass") else {
            continue;
        };
        let sum: Decimal = h
            .every(&["ConsignmentItem", "Commodity", "GoodsMeasure"])
            .into_iter()
            .filter_map(|m| decimal(m, "grossMass"))
            .fold(Decimal::ZERO, |a, b| a.saturating_add(b));
        if gross < sum
            && let Some(g) = h.child("grossMass")
        {
            broken(
                out,
                g,
                "R0983",
                format!("gross mass {gross} is less than the sum of its items, {sum}"),
            );
        }
    }
}

/// R0994: "The value of /*/Consignment/grossMass must be GREATER than or EQUAL to the sum of
/// /*/Consignment/HouseConsignment/grossMass for all house consignments."
pub fn r0994(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    let Some(gross) = decimal(c, "grossMass") else {
        return;
    };
    let sum: Decimal = c
        .all("HouseConsignment")
        .filter_map(|h| decimal(h, "grossMass"))
        .fold(Decimal::ZERO, |a, b| a.saturating_add(b));
    if gross < sum
        && let Some(g) = c.child("grossMass")
    {
        broken(
            out,
            g,
            "R0994",
            format!("gross mass {gross} is less than the sum of the house consignments, {sum}"),
        );
    }
}

/// R3061: "The Data Item
/// /*/Consignment/HouseConsignment/ConsignmentItem/AdditionalInformation/code shall not be EQUAL to
/// '30600'"
pub fn r3061(root: &Node, out: &mut Vec<Problem>) {
    for code in root.every(&[
        "Consignment",
        "HouseConsignment",
        "ConsignmentItem",
        "AdditionalInformation",
        "code",
    ]) {
        if code.text == "30600" {
            broken(
                out,
                code,
                "R3061",
                "additional information 30600 is not allowed at item level".to_owned(),
            );
        }
    }
}

fn has_export_declaration(house: &Node) -> bool {
    house
        .all("PreviousDocument")
        .any(|d| d.text_of("type") == Some("N830"))
}

/// C0153: "IF /*/TransitOperation/declarationType is EQUAL to 'TIR' AND
/// /*/Consignment/HouseConsignment/PreviousDocument/type IS NOT EQUAL to 'N830' (Goods declaration
/// for exportation) THEN /*/Consignment/HouseConsignment/ConsignmentItem/Commodity/CommodityCode =
/// "O" ELSE /*/Consignment/HouseConsignment/ConsignmentItem/Commodity/CommodityCode = "R""
pub fn c0153(root: &Node, out: &mut Vec<Problem>) {
    let tir = root.text_at(&["TransitOperation", "declarationType"]) == Some("TIR");
    for house in root.every(&["Consignment", "HouseConsignment"]) {
        if tir && !has_export_declaration(house) {
            continue;
        }
        for commodity in house.every(&["ConsignmentItem", "Commodity"]) {
            require(
                out,
                commodity,
                "CommodityCode",
                "C0153",
                "the commodity code is required unless TIR goods without export declaration",
            );
        }
    }
}

/// C0837: "IF /*/Consignment/HouseConsignment/PreviousDocument/type is EQUAL to 'N830' THEN
/// /*/Consignment/HouseConsignment/ConsignmentItem/Commodity/GoodsMeasure/netMass = "R" ELSE IF
/// /*/TransitOperation/reducedDatasetIndicator is EQUAL to '1' THEN ...netMass = "N" ELSE
/// ...netMass = "O""
pub fn c0837(root: &Node, out: &mut Vec<Problem>) {
    let reduced = root.text_at(&["TransitOperation", "reducedDatasetIndicator"]) == Some("1");
    for house in root.every(&["Consignment", "HouseConsignment"]) {
        let export = has_export_declaration(house);
        for item in house.all("ConsignmentItem") {
            let Some(commodity) = item.child("Commodity") else {
                continue;
            };
            if export {
                match commodity.child("GoodsMeasure") {
                    Some(m) => require(
                        out,
                        m,
                        "netMass",
                        "C0837",
                        "the goods were declared for export (N830)",
                    ),
                    None => missing(
                        out,
                        commodity,
                        "GoodsMeasure",
                        "C0837",
                        "the net mass is required: the goods were declared for export (N830)",
                    ),
                }
            } else if reduced {
                for m in commodity.all("GoodsMeasure") {
                    forbid(
                        out,
                        m,
                        "netMass",
                        "C0837",
                        "a reduced dataset carries no net mass",
                    );
                }
            }
        }
    }
}

/// C0298: "IF /*/Consignment/HouseConsignment/ConsignmentItem/PreviousDocument/quantity is
/// PRESENT THEN .../PreviousDocument/measurementUnitAndQualifier = "R" ELSE
/// .../PreviousDocument/measurementUnitAndQualifier = "N""
pub fn c0298(root: &Node, out: &mut Vec<Problem>) {
    for doc in root.every(&[
        "Consignment",
        "HouseConsignment",
        "ConsignmentItem",
        "PreviousDocument",
    ]) {
        if doc.has("quantity") {
            require(
                out,
                doc,
                "measurementUnitAndQualifier",
                "C0298",
                "a quantity is given",
            );
        } else {
            forbid(
                out,
                doc,
                "measurementUnitAndQualifier",
                "C0298",
                "no quantity is given",
            );
        }
    }
}
