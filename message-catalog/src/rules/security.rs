//! The safety and security conditions: what `TransitOperation/security` (CL217: 0 none, 1 ENS,
//! 2 EXS, 3 both) requires or forbids.

use super::tree::Node;
use super::{Problem, forbid, require};

fn security(root: &Node) -> Option<&str> {
    root.text_at(&["TransitOperation", "security"])
}

fn additional_declaration_type(root: &Node) -> Option<&str> {
    root.text_at(&["TransitOperation", "additionalDeclarationType"])
}

fn with_security(root: &Node) -> bool {
    matches!(security(root), Some("1" | "2" | "3"))
}

/// C0186: "IF /*/TransitOperation/security is EQUAL to '0' THEN /*/Consignment/TransportCharges
/// = "N" AND /*/Consignment/HouseConsignment/TransportCharges = "N" ELSE
/// /*/Consignment/TransportCharges = "O" AND /*/Consignment/HouseConsignment/TransportCharges =
/// "O""
pub fn c0186(root: &Node, out: &mut Vec<Problem>) {
    if security(root) != Some("0") {
        return;
    }
    let why = "no security data are declared";
    for c in root.all("Consignment") {
        forbid(out, c, "TransportCharges", "C0186", why);
        for h in c.all("HouseConsignment") {
            forbid(out, h, "TransportCharges", "C0186", why);
        }
    }
}

/// C0191: "IF /*/TransitOperation/security is in SET {1, 3} THEN /*/Consignment/PlaceOfUnloading
/// = "R" ELSE IF /*/TransitOperation/security is EQUAL to '0' THEN
/// /*/Consignment/PlaceOfUnloading = "N" ELSE /*/Consignment/PlaceOfUnloading = "O""
pub fn c0191(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    match security(root) {
        Some("1" | "3") => require(
            out,
            c,
            "PlaceOfUnloading",
            "C0191",
            "entry summary data are declared",
        ),
        Some("0") => forbid(
            out,
            c,
            "PlaceOfUnloading",
            "C0191",
            "no security data are declared",
        ),
        _ => {}
    }
}

/// C0542: "IF /*/TransitOperation/security is EQUAL to '0' AND
/// /*/TransitOperation/reducedDatasetIndicator is EQUAL to '1' THEN /*/Consignment/Consignor =
/// "N" AND /*/Consignment/HouseConsignment/Consignor = "N" ELSE IF /*/Consignment/Consignor is
/// PRESENT THEN /*/Consignment/HouseConsignment/Consignor = "N" ELSE
/// /*/Consignment/HouseConsignment/Consignor = "O""
pub fn c0542(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    let reduced = root.text_at(&["TransitOperation", "reducedDatasetIndicator"]) == Some("1");
    if security(root) == Some("0") && reduced {
        let why = "a reduced dataset without security data names no consignor";
        forbid(out, c, "Consignor", "C0542", why);
        for h in c.all("HouseConsignment") {
            forbid(out, h, "Consignor", "C0542", why);
        }
    } else if c.has("Consignor") {
        for h in c.all("HouseConsignment") {
            forbid(
                out,
                h,
                "Consignor",
                "C0542",
                "the consignor is given at consignment level",
            );
        }
    }
}

/// C0586: "IF /*/TransitOperation/bindingItinerary is EQUAL to '1' THEN
/// /*/Consignment/CountryOfRoutingOfConsignment = "R" ELSE IF /*/TransitOperation/security is in
/// SET {1, 2, 3} THEN /*/Consignment/CountryOfRoutingOfConsignment = "R" ELSE
/// /*/Consignment/CountryOfRoutingOfConsignment = "O""
pub fn c0586(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    if root.text_at(&["TransitOperation", "bindingItinerary"]) == Some("1") {
        require(
            out,
            c,
            "CountryOfRoutingOfConsignment",
            "C0586",
            "the itinerary is binding",
        );
    } else if with_security(root) {
        require(
            out,
            c,
            "CountryOfRoutingOfConsignment",
            "C0586",
            "security data are declared",
        );
    }
}

/// C0599: "IF /*/TransitOperation/security is in SET {1,2,3} AND
/// /*/TransitOperation/additionalDeclarationType is EQUAL to 'A' THEN
/// /*/Consignment/modeOfTransportAtTheBorder = "R" ELSE
/// /*/Consignment/modeOfTransportAtTheBorder = "O""
pub fn c0599(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    if with_security(root) && additional_declaration_type(root) == Some("A") {
        require(
            out,
            c,
            "modeOfTransportAtTheBorder",
            "C0599",
            "a standard declaration with security data",
        );
    }
}

/// C0806: "IF /*/Consignment/modeOfTransportAtTheBorder is EQUAL to '5' THEN
/// /*/Consignment/ActiveBorderTransportMeans = "N" ELSE IF (/*/TransitOperation/security is in SET
/// {1,2,3} AND /*/TransitOperation/additionalDeclarationType is EQUAL to 'A') THEN
/// /*/Consignment/ActiveBorderTransportMeans = "R" ELSE /*/Consignment/ActiveBorderTransportMeans
/// = "O""
pub fn c0806(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    if c.text_of("modeOfTransportAtTheBorder") == Some("5") {
        forbid(
            out,
            c,
            "ActiveBorderTransportMeans",
            "C0806",
            "the goods go by mail",
        );
    } else if with_security(root) && additional_declaration_type(root) == Some("A") {
        require(
            out,
            c,
            "ActiveBorderTransportMeans",
            "C0806",
            "a standard declaration with security data",
        );
    }
}

/// C0531: "IF /*/TransitOperation/security is in SET {1,2,3} AND
/// /*/Consignment/modeOfTransportAtTheBorder is EQUAL to '4' THEN
/// /*/Consignment/ActiveBorderTransportMeans/conveyanceReferenceNumber = "R" ELSE
/// /*/Consignment/ActiveBorderTransportMeans/conveyanceReferenceNumber = "O""
pub fn c0531(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    if with_security(root) && c.text_of("modeOfTransportAtTheBorder") == Some("4") {
        for abtm in c.all("ActiveBorderTransportMeans") {
            require(
                out,
                abtm,
                "conveyanceReferenceNumber",
                "C0531",
                "security data for goods crossing the border by air",
            );
        }
    }
}
