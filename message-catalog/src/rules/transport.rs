//! Transport: containers, transport equipment and seals, departure and border transport means.

use super::tree::Node;
use super::{Problem, broken, forbid, missing, require};

fn consignment(root: &Node) -> Option<&Node> {
    root.child("Consignment")
}

/// C0055: "IF /*/Consignment/containerIndicator is EQUAL to '0' THEN
/// /*/Consignment/TransportEquipment/containerIdentificationNumber = "N" ELSE at least one
/// iteration of /*/Consignment/TransportEquipment/containerIdentificationNumber = "R" (for the rest
/// of iterations is optional)"
pub fn c0055(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    let equipment: Vec<&Node> = c.all("TransportEquipment").collect();
    match c.text_of("containerIndicator") {
        Some("0") => {
            for te in &equipment {
                forbid(
                    out,
                    te,
                    "containerIdentificationNumber",
                    "C0055",
                    "the goods are not in containers",
                );
            }
        }
        Some("1") => {
            if let Some(first) = equipment.first()
                && !equipment
                    .iter()
                    .any(|te| te.has("containerIdentificationNumber"))
            {
                missing(
                    out,
                    first,
                    "containerIdentificationNumber",
                    "C0055",
                    "the goods are in containers",
                );
            }
        }
        _ => {}
    }
}

/// C0569: "IF /*/Consignment/Incident/TransportEquipment/numberOfSeals is GREATER than '0' THEN
/// /*/Consignment/Incident/TransportEquipment/Seal = "R" ELSE
/// /*/Consignment/Incident/TransportEquipment/Seal = "N"; IF
/// /*/Consignment/TransportEquipment/numberOfSeals is GREATER than '0' THEN
/// /*/Consignment/TransportEquipment/Seal = "R" ELSE /*/Consignment/TransportEquipment/Seal = "N""
pub fn c0569(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    let mut equipment = c.every(&["TransportEquipment"]);
    equipment.extend(c.every(&["Incident", "TransportEquipment"]));
    for te in equipment {
        match te.number_of::<u64>("numberOfSeals") {
            Some(n) if n > 0 => require(out, te, "Seal", "C0569", "the number of seals is above 0"),
            Some(_) => forbid(out, te, "Seal", "C0569", "the number of seals is 0"),
            None => {}
        }
    }
}

/// C0670: "IF /*/Consignment/TransportEquipment is PRESENT only once AND
/// /*/Consignment/TransportEquipment/containerIdentificationNumber is PRESENT THEN
/// /*/Consignment/TransportEquipment/GoodsReference = "O" ELSE
/// /*/Consignment/TransportEquipment/GoodsReference = "R""
pub fn c0670(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    let equipment: Vec<&Node> = c.all("TransportEquipment").collect();
    let single_container =
        matches!(equipment.as_slice(), [te] if te.has("containerIdentificationNumber"));
    if !single_container {
        for te in equipment {
            require(
                out,
                te,
                "GoodsReference",
                "C0670",
                "the goods must be referred to their transport equipment",
            );
        }
    }
}

/// C0822: "IF /*/TransitOperation/additionalDeclarationType is EQUAL to 'D' THEN
/// /*/Consignment/containerIndicator = "O" ELSE /*/Consignment/containerIndicator = "R""
pub fn c0822(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    match root.text_at(&["TransitOperation", "additionalDeclarationType"]) {
        Some("D") | None => {}
        Some(_) => require(
            out,
            c,
            "containerIndicator",
            "C0822",
            "the declaration is not pre-lodged",
        ),
    }
}

/// C0823: "IF /*/Consignment/containerIndicator is PRESENT THEN IF
/// /*/Consignment/containerIndicator is EQUAL to '1' THEN /*/Consignment/TransportEquipment = "R"
/// ELSE /*/Consignment/TransportEquipment = "O" ELSE /*/Consignment/TransportEquipment = "N""
pub fn c0823(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    match c.text_of("containerIndicator") {
        Some("1") => require(
            out,
            c,
            "TransportEquipment",
            "C0823",
            "the goods are in containers",
        ),
        Some(_) => {}
        None => forbid(
            out,
            c,
            "TransportEquipment",
            "C0823",
            "no container indicator is given",
        ),
    }
}

/// C0826: "IF /*/Consignment/inlandModeOfTransport is EQUAL to '5' THEN
/// /*/Consignment/DepartureTransportMeans = "N" AND
/// /*/Consignment/HouseConsignment/DepartureTransportMeans = "N" ELSE IF
/// /*/Consignment/DepartureTransportMeans is PRESENT THEN
/// /*/Consignment/HouseConsignment/DepartureTransportMeans = "N" ELSE
/// /*/Consignment/HouseConsignment/DepartureTransportMeans = "O""
pub fn c0826(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    if c.text_of("inlandModeOfTransport") == Some("5") {
        let why = "the inland mode of transport is mail";
        forbid(out, c, "DepartureTransportMeans", "C0826", why);
        for h in c.all("HouseConsignment") {
            forbid(out, h, "DepartureTransportMeans", "C0826", why);
        }
    } else if c.has("DepartureTransportMeans") {
        for h in c.all("HouseConsignment") {
            forbid(
                out,
                h,
                "DepartureTransportMeans",
                "C0826",
                "the departure transport means are given at consignment level",
            );
        }
    }
}

/// R0448: "IF /*/Consignment/TransportEquipment/containerIdentificationNumber is NOT PRESENT THEN
/// the value '0' (zero) is not valid for /*/Consignment/TransportEquipment/numberOfSeals; IF
/// /*/Consignment/Incident/TransportEquipment/containerIdentificationNumber is NOT PRESENT THEN
/// the value '0' (zero) is not valid for /*/Consignment/Incident/TransportEquipment/numberOfSeals"
pub fn r0448(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    let mut equipment = c.every(&["TransportEquipment"]);
    equipment.extend(c.every(&["Incident", "TransportEquipment"]));
    for te in equipment {
        if te.has("containerIdentificationNumber") {
            continue;
        }
        if let Some(n) = te
            .child("numberOfSeals")
            .filter(|n| n.text.trim().parse::<u64>() == Ok(0))
        {
            broken(
                out,
                n,
                "R0448",
                "equipment that is not a container must be sealed (numberOfSeals above 0)"
                    .to_owned(),
            );
        }
    }
}

/// R0474: "IF /*/Consignment/inlandModeOfTransport is EQUAL to '3' THEN the first data group
/// iteration /*/Consignment/DepartureTransportMeans/typeOfIdentification must be EQUAL to '30';
/// IF /*/Consignment/inlandModeOfTransport is EQUAL to '3' AND /*/Consignment/House
/// Consignment/DepartureTransportMeans is PRESENT THEN for THIS House Consignment, the first data
/// group iteration /*/Consignment/HouseConsignment/DepartureTransportMeans/typeOfIdentification
/// must be EQUAL to '30'"
pub fn r0474(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    if c.text_of("inlandModeOfTransport") != Some("3") {
        return;
    }
    let mut holders = vec![c];
    holders.extend(c.all("HouseConsignment"));
    for holder in holders {
        if let Some(t) = holder
            .child("DepartureTransportMeans")
            .and_then(|d| d.child("typeOfIdentification"))
            && t.text != "30"
        {
            broken(
                out,
                t,
                "R0474",
                "by road, the first departure transport means is the road vehicle (type 30)"
                    .to_owned(),
            );
        }
    }
}

/// R0789: "IF /*/CustomsOfficeOfTransitDeclared is PRESENT THEN the multiplicity of
/// /*/Consignment/ActiveBorderTransportMeans is up to 9x ELSE the multiplicity of
/// /*/Consignment/ActiveBorderTransportMeans is 1x"
pub fn r0789(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    if root.has("CustomsOfficeOfTransitDeclared") {
        return;
    }
    for extra in c.all("ActiveBorderTransportMeans").skip(1) {
        broken(
            out,
            extra,
            "R0789",
            "without an office of transit, one active border transport means at most".to_owned(),
        );
    }
}

/// R0855: "IF /*/Consignment/inlandModeOfTransport is EQUAL to '3' THEN the multiplicity of
/// /*/Consignment/DepartureTransportMeans AND /*/Consignment/HouseConsignment/DepartureTransportMeans
/// can be up to '3x' ELSE IF /*/Consignment/inlandModeOfTransport is EQUAL to '2' THEN the
/// multiplicity ... can be more than '1x' ELSE the multiplicity ... is '1x'"
///
/// Checked when the inland mode of transport is given.
pub fn r0855(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else { return };
    let limit = match c.text_of("inlandModeOfTransport") {
        Some("3") => 3,
        Some("2") | None => return,
        Some(_) => 1,
    };
    let mut holders = vec![c];
    holders.extend(c.all("HouseConsignment"));
    for holder in holders {
        for extra in holder.all("DepartureTransportMeans").skip(limit) {
            broken(
                out,
                extra,
                "R0855",
                format!(
                    "at most {limit} departure transport means for this inland mode of transport"
                ),
            );
        }
    }
}

fn lowercase_in(out: &mut Vec<Problem>, means: &Node, types: &[&str], rule: &str) {
    let Some(t) = means.text_of("typeOfIdentification") else {
        return;
    };
    if !types.contains(&t) {
        return;
    }
    if let Some(id) = means
        .child("identificationNumber")
        .filter(|id| id.text.chars().any(char::is_lowercase))
    {
        broken(
            out,
            id,
            rule,
            format!("an identification of type {t} is written without lowercase letters"),
        );
    }
}

/// Departure transport means at consignment level, else those of the house consignments.
fn departure_means(c: &Node) -> Vec<Vec<&Node>> {
    if c.has("DepartureTransportMeans") {
        vec![c.all("DepartureTransportMeans").collect()]
    } else {
        c.all("HouseConsignment")
            .map(|h| h.all("DepartureTransportMeans").collect())
            .collect()
    }
}

/// R0076: "IF /*/Consignment/ActiveBorderTransportMeans/typeOfIdentification is in SET
/// {10,21,30,40,41,80} THEN /*/Consignment/ActiveBorderTransportMeans/identificationNumber shall
/// not contain lowercase letters."
pub fn r0076(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else {
        return;
    };
    for abtm in c.all("ActiveBorderTransportMeans") {
        lowercase_in(out, abtm, &["10", "21", "30", "40", "41", "80"], "R0076");
    }
}

/// R0473: "IF /*/Consignment/DepartureTransportMeans is PRESENT AND
/// .../typeofIdentification is in SET {10,20,21,30,31,40,41,80} THEN .../IdentificationNumber shall
/// not contain lowercase letters ELSE IF /*/Consignment/HouseConsignment/DepartureTransportMeans
/// is PRESENT AND ... (the same for the house consignments)"
pub fn r0473(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else {
        return;
    };
    for group in departure_means(c) {
        for dtm in group {
            lowercase_in(
                out,
                dtm,
                &["10", "20", "21", "30", "31", "40", "41", "80"],
                "R0473",
            );
        }
    }
}

/// R0472: "IF /*/Consignment/inlandModeOfTransport is in SET {1,2,3,4,8} THEN IF
/// /*/Consignment/DepartureTransportMeans is PRESENT THEN the first digit of
/// /*/Consignment/DepartureTransportMeans/typeOfIdentification shall be EQUAL to
/// /*/Consignment/inlandModeOfTransport ELSE IF /*/Consignment/HouseConsignment/DepartureTransportMeans
/// is PRESENT THEN (the same for the house consignments)"
pub fn r0472(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else {
        return;
    };
    let Some(mode) = c
        .text_of("inlandModeOfTransport")
        .filter(|m| matches!(*m, "1" | "2" | "3" | "4" | "8"))
    else {
        return;
    };
    for group in departure_means(c) {
        for dtm in group {
            if let Some(t) = dtm
                .child("typeOfIdentification")
                .filter(|t| !t.text.starts_with(mode))
            {
                broken(
                    out,
                    t,
                    "R0472",
                    format!(
                        "identification type {} does not belong to inland mode of transport {mode}",
                        t.text
                    ),
                );
            }
        }
    }
}

/// R0476: "IF /*/Consignment/inlandModeOfTransport is EQUAL to '3' THEN IF the multiplicity of
/// the data group /*/Consignment/DepartureTransportMeans is more than 1x THEN the iteration 2 and
/// the iteration 3 (if present) ... must include typeOfIdentification that is EQUAL to '31' ELSE IF
/// (the same for /*/Consignment/HouseConsignment/DepartureTransportMeans)"
pub fn r0476(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = consignment(root) else {
        return;
    };
    if c.text_of("inlandModeOfTransport") != Some("3") {
        return;
    }
    for group in departure_means(c) {
        for dtm in group.iter().skip(1).take(2) {
            if let Some(t) = dtm.child("typeOfIdentification").filter(|t| t.text != "31") {
                broken(out, t, "R0476", "by road, the second and third departure transport means are trailers (type 31)".to_owned());
            }
        }
    }
}
