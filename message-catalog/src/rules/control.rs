//! Incidents en route (CC007C, CC043C), control decisions (CC060C) and rejections
//! (CC056C/CC057C).

use super::tree::Node;
use super::{Problem, forbid, require};

fn incidents(root: &Node) -> Vec<&Node> {
    root.every(&["Consignment", "Incident"])
}

/// C0240: "IF /*/Consignment/Incident/code is in SET {2, 4} THEN
/// /*/Consignment/Incident/TransportEquipment = "R" AND /*/Consignment/Incident/Transhipment = "N"
/// ELSE IF /*/Consignment/Incident/code is in SET {3, 6} THEN
/// /*/Consignment/Incident/TransportEquipment = "O" AND /*/Consignment/Incident/Transhipment = "R"
/// ELSE /*/Consignment/Incident/TransportEquipment = "N" AND
/// /*/Consignment/Incident/Transhipment = "N""
pub fn c0240(root: &Node, out: &mut Vec<Problem>) {
    for incident in incidents(root) {
        let Some(code) = incident.text_of("code") else {
            continue;
        };
        let why = format!("the incident code is {code}");
        match code {
            "2" | "4" => {
                require(out, incident, "TransportEquipment", "C0240", &why);
                forbid(out, incident, "Transhipment", "C0240", &why);
            }
            "3" | "6" => require(out, incident, "Transhipment", "C0240", &why),
            _ => {
                forbid(out, incident, "TransportEquipment", "C0240", &why);
                forbid(out, incident, "Transhipment", "C0240", &why);
            }
        }
    }
}

/// C0396: "IF /*/Consignment/Incident/code is EQUAL to '2' THEN
/// /*/Consignment/Incident/TransportEquipment/numberOfSeals = "R" ELSE
/// /*/Consignment/Incident/TransportEquipment/numberOfSeals = "O""
pub fn c0396(root: &Node, out: &mut Vec<Problem>) {
    for incident in incidents(root)
        .into_iter()
        .filter(|i| i.text_of("code") == Some("2"))
    {
        for te in incident.all("TransportEquipment") {
            require(
                out,
                te,
                "numberOfSeals",
                "C0396",
                "the seals were broken or tampered with (incident code 2)",
            );
        }
    }
}

fn transhipped_in_container(incident: &Node) -> bool {
    incident.text_at(&["Transhipment", "containerIndicator"]) == Some("1")
}

/// C0040: "IF /*/Consignment/Incident/Transhipment/containerIndicator is EQUAL to '1' THEN
/// /*/Consignment/Incident/TransportEquipment = "R" ELSE
/// /*/Consignment/Incident/TransportEquipment = "O""
pub fn c0040(root: &Node, out: &mut Vec<Problem>) {
    for incident in incidents(root)
        .into_iter()
        .filter(|i| transhipped_in_container(i))
    {
        require(
            out,
            incident,
            "TransportEquipment",
            "C0040",
            "the goods were transhipped into containers",
        );
    }
}

/// C0820: "IF /*/Consignment/Incident/Transhipment/containerIndicator is EQUAL to '1' THEN
/// /*/Consignment/Incident/TransportEquipment/containerIdentificationNumber = "R" ELSE
/// /*/Consignment/Incident/TransportEquipment/containerIdentificationNumber = "O""
pub fn c0820(root: &Node, out: &mut Vec<Problem>) {
    for incident in incidents(root)
        .into_iter()
        .filter(|i| transhipped_in_container(i))
    {
        for te in incident.all("TransportEquipment") {
            require(
                out,
                te,
                "containerIdentificationNumber",
                "C0820",
                "the goods were transhipped into containers",
            );
        }
    }
}

fn notification_type(root: &Node) -> Option<&str> {
    root.text_at(&["TransitOperation", "notificationType"])
}

/// C0451: "IF /CC060C/TypeOfControls/type is EQUAL to '50' THEN /CC060C/TypeOfControls/text =
/// "R" ELSE /CC060C/TypeOfControls/text = "O""
pub fn c0451(root: &Node, out: &mut Vec<Problem>) {
    for control in root
        .all("TypeOfControls")
        .filter(|c| c.text_of("type") == Some("50"))
    {
        require(
            out,
            control,
            "text",
            "C0451",
            "control type 50 must be described",
        );
    }
}

/// C0452: "IF /CC060C/TransitOperation/notificationType is in SET {1, 2} THEN
/// /CC060C/TypeOfControls = "N" ELSE /CC060C/TypeOfControls = "R""
pub fn c0452(root: &Node, out: &mut Vec<Problem>) {
    match notification_type(root) {
        Some("1" | "2") => forbid(
            out,
            root,
            "TypeOfControls",
            "C0452",
            "the notification type is 1 or 2",
        ),
        Some(_) => require(
            out,
            root,
            "TypeOfControls",
            "C0452",
            "the notification type announces controls",
        ),
        None => {}
    }
}

/// C0455: "IF /CC060C/TransitOperation/notificationType is EQUAL to '1' THEN
/// /CC060C/RequestedDocument = "R" ELSE IF /CC060C/TransitOperation/notificationType is EQUAL to
/// '0' THEN /CC060C/RequestedDocument = "O" ELSE /CC060C/RequestedDocument = "N""
pub fn c0455(root: &Node, out: &mut Vec<Problem>) {
    match notification_type(root) {
        Some("1") => require(
            out,
            root,
            "RequestedDocument",
            "C0455",
            "the notification type is 1 (documents requested)",
        ),
        Some("0") | None => {}
        Some(t) => forbid(
            out,
            root,
            "RequestedDocument",
            "C0455",
            &format!("the notification type is {t}"),
        ),
    }
}

/// C0492: "IF /*/TransitOperation/rejectionCode is EQUAL to '4' THEN
/// /*/TransitOperation/rejectionReason = "R" ELSE /*/TransitOperation/rejectionReason = "O""
pub fn c0492(root: &Node, out: &mut Vec<Problem>) {
    if let Some(to) = root
        .child("TransitOperation")
        .filter(|t| t.text_of("rejectionCode") == Some("4"))
    {
        require(
            out,
            to,
            "rejectionReason",
            "C0492",
            "rejection code 4 must be explained",
        );
    }
}
