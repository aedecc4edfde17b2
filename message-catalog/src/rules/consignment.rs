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

/// C0502: "IF /*/Consignment/referenceNumberUCR is PRESENT THEN
/// /*/Consignment/HouseConsignment/referenceNumberUCR = "N" AND
/// /*/Consignment/HouseConsignment/ConsignmentItem/referenceNumberUCR = "N" ELSE IF
/// /*/Consignment/HouseConsignment/referenceNumberUCR is PRESENT THEN
/// .../ConsignmentItem/referenceNumberUCR = "N" ELSE IF (/*/Consignment/TransportDocument is
/// PRESENT OR /*/Consignment/HouseConsignment/TransportDocument is PRESENT) THEN
/// .../ConsignmentItem/referenceNumberUCR = "O" ELSE .../ConsignmentItem/referenceNumberUCR = "R""
pub fn c0502(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else {
        return;
    };
    let field = "referenceNumberUCR";
    let at_consignment = c.has(field);
    let transport_document = c.has("TransportDocument")
        || c.all("HouseConsignment")
            .any(|h| h.has("TransportDocument"));
    for h in c.all("HouseConsignment") {
        if at_consignment {
            let why = "the UCR is given at consignment level";
            forbid(out, h, field, "C0502", why);
            for item in h.all("ConsignmentItem") {
                forbid(out, item, field, "C0502", why);
            }
        } else if h.has(field) {
            for item in h.all("ConsignmentItem") {
                forbid(
                    out,
                    item,
                    field,
                    "C0502",
                    "the UCR is given at house consignment level",
                );
            }
        } else if !transport_document {
            for item in h.all("ConsignmentItem") {
                require(
                    out,
                    item,
                    field,
                    "C0502",
                    "neither a UCR nor a transport document is given above the item",
                );
            }
        }
    }
}

/// Reports the last of `nodes` when there are two or more and all carry the same data.
fn all_alike(out: &mut Vec<Problem>, nodes: &[Option<&Node>], rule: &str, level: &str) {
    let present: Vec<&Node> = nodes.iter().flatten().copied().collect();
    if present.len() < 2 || present.len() != nodes.len() {
        return;
    }
    let (Some(first), Some(last)) = (present.first(), present.last()) else {
        return;
    };
    if present.iter().all(|n| n.same_content(first)) {
        broken(
            out,
            last,
            rule,
            format!(
                "{} is the same in every {level}: declare it once, one level up",
                last.name
            ),
        );
    }
}

/// R0506: "IF /*/Consignment/HouseConsignment/Consignor is PRESENT for all
/// /*/Consignment/HouseConsignment/ THEN at least one occurrence of
/// /*/Consignment/HouseConsignment/Consignor must be different from the others; (the same for
/// Consignee, DepartureTransportMeans, TransportCharges, referenceNumberUCR, countryOfDestination,
/// countryOfDispatch)"
///
/// Checked when there are two house consignments or more (the first occurrence of a repeated
/// group is compared).
pub fn r0506(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else {
        return;
    };
    let houses: Vec<&Node> = c.all("HouseConsignment").collect();
    for field in [
        "Consignor",
        "Consignee",
        "DepartureTransportMeans",
        "TransportCharges",
        "referenceNumberUCR",
        "countryOfDestination",
        "countryOfDispatch",
    ] {
        let values: Vec<Option<&Node>> = houses.iter().map(|h| h.child(field)).collect();
        all_alike(out, &values, "R0506", "house consignment");
    }
}

/// R0507: "IF /*/Consignment/HouseConsignment/ConsignmentItem/countryOfDispatch is PRESENT for all
/// /*/Consignment/HouseConsignment/ConsignmentItem THEN at least one occurrence ... must be
/// different from the others; (the same for countryOfDestination, referenceNumberUCR,
/// declarationType)"
///
/// Checked when the declaration has two consignment items or more.
pub fn r0507(root: &Node, out: &mut Vec<Problem>) {
    let items = root.every(&["Consignment", "HouseConsignment", "ConsignmentItem"]);
    for field in [
        "countryOfDispatch",
        "countryOfDestination",
        "referenceNumberUCR",
        "declarationType",
    ] {
        let values: Vec<Option<&Node>> = items.iter().map(|i| i.child(field)).collect();
        all_alike(out, &values, "R0507", "consignment item");
    }
}

/// An item's gross mass node and its value, when given.
fn item_gross_mass(item: &Node) -> Option<(&Node, Option<Decimal>)> {
    item.first(&["Commodity", "GoodsMeasure", "grossMass"])
        .map(|g| (g, g.text.trim().parse::<Decimal>().ok()))
}

fn packages(p: &Node) -> Option<u64> {
    p.number_of::<u64>("numberOfPackages")
}

/// R0219: "IF /*/Consignment/HouseConsignment/ConsignmentItem/Packaging/numberOfPackages is EQUAL
/// to '0' (zero) THEN no further data group /*/Consignment/HouseConsignment/ConsignmentItem/Packaging
/// with a value not equal to '0' (zero) in the data item .../Packaging/numberOfPackages is
/// specified for this data group /*/HouseConsignment/ConsignmentItem."
pub fn r0219(root: &Node, out: &mut Vec<Problem>) {
    for item in root.every(&["Consignment", "HouseConsignment", "ConsignmentItem"]) {
        if !item.all("Packaging").any(|p| packages(p) == Some(0)) {
            continue;
        }
        for p in item.all("Packaging") {
            if let Some(n) = p
                .child("numberOfPackages")
                .filter(|_| packages(p).is_some_and(|n| n > 0))
            {
                broken(
                    out,
                    n,
                    "R0219",
                    "another packaging of this item declares zero packages".to_owned(),
                );
            }
        }
    }
}

/// R0221: "IF .../ConsignmentItem/Packaging/numberOfPackages is EQUAL to '0' (zero) THEN for THIS
/// CONSIGNMENT ITEM .../Commodity/GoodsMeasure/grossMass is EQUAL to '0' (zero) AND for THIS HOUSE
/// CONSIGNMENT at least one other CONSIGNMENT ITEM must exist with .../GoodsMeasure/grossMass
/// having a value different from '0' (zero) ELSE for THIS CONSIGNMENT ITEM
/// .../GoodsMeasure/grossMass must be different from '0' (zero)."
///
/// Checked on the gross masses that are given (the data item is optional).
pub fn r0221(root: &Node, out: &mut Vec<Problem>) {
    for house in root.every(&["Consignment", "HouseConsignment"]) {
        let items: Vec<&Node> = house.all("ConsignmentItem").collect();

        for (i, item) in items.iter().enumerate() {
            let zero_packages = item.all("Packaging").any(|p| packages(p) == Some(0));
            let Some((node, Some(mass))) = item_gross_mass(item) else {
                continue;
            };
            if zero_packages {
                let other_has_mass = items.iter().enumerate().any(|(j, other)| {
                    j != i && matches!(item_gross_mass(other), Some((_, Some(m))) if m != Decimal::ZERO)
                });
                if mass != Decimal::ZERO {
                    broken(
                        out,
                        node,
                        "R0221",
                        "an item with zero packages has a gross mass of 0".to_owned(),
                    );
                } else if !other_has_mass {
                    broken(
                        out,
                        node,
                        "R0221",
                        "another item of the house consignment must carry the gross mass"
                            .to_owned(),
                    );
                }
            } else if mass == Decimal::ZERO {
                broken(
                    out,
                    node,
                    "R0221",
                    "an item with packages has a gross mass above 0".to_owned(),
                );
            }
        }
    }
}
