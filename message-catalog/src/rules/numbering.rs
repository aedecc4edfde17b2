//! Numbering and uniqueness: sequence numbers, goods item numbers, offices of transit, seals.

use std::collections::HashSet;

use super::tree::Node;
use super::{Problem, broken};

/// Checks that the `field` of `items` runs 1, 2, 3, ... in order.
fn consecutive(out: &mut Vec<Problem>, items: &[&Node], field: &str, rule: &str) {
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(node) = item.child(field) else {
            continue;
        };
        let expected = i as u64 + 1;
        match node.text.trim().parse::<u64>() {
            Ok(n) if !seen.insert(n) => {
                broken(
                    out,
                    node,
                    rule,
                    format!("{field} {n} is not unique in its data group"),
                );
            }
            Ok(n) if n != expected => broken(
                out,
                node,
                rule,
                format!(
                    "{field} is {n}: the iterations must be numbered from 1 by 1, this one {expected}"
                ),
            ),
            Ok(_) => {}
            Err(_) => broken(
                out,
                node,
                rule,
                format!("{field} {:?} is not a number", node.text),
            ),
        }
    }
}

/// R0987: "Each \<Sequence number\> is unique for the Data Group it belongs to. The sequence numbers
/// shall be sequential, starting from '1' for the first iteration of the Data Group and
/// increasing by '1' for each iteration."
///
/// Applied to every repeated data group of the message that has a `sequenceNumber`.
pub fn r0987(root: &Node, out: &mut Vec<Problem>) {
    for parent in root.descendants() {
        let mut names: Vec<&str> = Vec::new();
        for c in &parent.children {
            if c.has("sequenceNumber") && !names.contains(&c.name.as_str()) {
                names.push(&c.name);
            }
        }
        for name in names {
            let group: Vec<&Node> = parent.all(name).collect();
            consecutive(out, &group, "sequenceNumber", "R0987");
        }
    }
}

/// R0988: "Each \<Goods item number\> is unique for the Data Group it belongs to. The Goods item
/// number shall be sequential, starting from '1' for the first iteration of the Data Group and
/// increasing by '1' for each iteration."
pub fn r0988(root: &Node, out: &mut Vec<Problem>) {
    for house in root.every(&["Consignment", "HouseConsignment"]) {
        let items: Vec<&Node> = house.all("ConsignmentItem").collect();
        consecutive(out, &items, "goodsItemNumber", "R0988");
    }
}

/// R0007: "Each /*/Consignment/HouseConsignment/ConsignmentItem/declarationGoodsItemNumber is
/// unique throughout the declaration. The items shall be numbered in a sequential fashion,
/// starting from '1' for the first item and increment the numbering by '1' for each following
/// item."
pub fn r0007(root: &Node, out: &mut Vec<Problem>) {
    let items = root.every(&["Consignment", "HouseConsignment", "ConsignmentItem"]);
    consecutive(out, &items, "declarationGoodsItemNumber", "R0007");
}

/// R0003: "Each /*/CustomsOfficeOfTransitDeclared/referenceNumber is unique throughout the
/// declaration."
pub fn r0003(root: &Node, out: &mut Vec<Problem>) {
    let mut seen = HashSet::new();
    for office in root.all("CustomsOfficeOfTransitDeclared") {
        if let Some(r) = office.child("referenceNumber")
            && !seen.insert(r.text.as_str())
        {
            broken(
                out,
                r,
                "R0003",
                format!("office of transit {} is declared twice", r.text),
            );
        }
    }
}

/// R0107: "/*/TransportEquipment/Seal/identifier is unique in the whole declaration."
///
/// Applied to the seals of the consignment's transport equipment and of incidents.
pub fn r0107(root: &Node, out: &mut Vec<Problem>) {
    let mut seen = HashSet::new();
    for seal in root.descendants().into_iter().filter(|n| n.name == "Seal") {
        if let Some(id) = seal.child("identifier")
            && !seen.insert(id.text.as_str())
        {
            broken(
                out,
                id,
                "R0107",
                format!("seal {} appears more than once", id.text),
            );
        }
    }
}

/// R0106: "/*/TransportEquipment/numberOfSeals is EQUAL to the 'maximum value of
/// /*/TransportEquipment/Seal/sequenceNumber' for THIS instance of Transport Equipment."
///
/// Checked where seals are listed (without seals, C0569 decides).
pub fn r0106(root: &Node, out: &mut Vec<Problem>) {
    for te in root
        .descendants()
        .into_iter()
        .filter(|n| n.name == "TransportEquipment")
    {
        let Some(number) = te.child("numberOfSeals") else {
            continue;
        };
        let max = te
            .all("Seal")
            .filter_map(|s| s.number_of::<u64>("sequenceNumber"))
            .max();
        if let (Some(max), Ok(n)) = (max, number.text.trim().parse::<u64>())
            && n != max
        {
            broken(
                out,
                number,
                "R0106",
                format!("numberOfSeals is {n} but the highest seal sequence number is {max}"),
            );
        }
    }
}
