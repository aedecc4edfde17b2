//! Places: location of goods, places of loading and unloading.

use super::tree::Node;
use super::{Problem, forbid, require};

/// C0387: "IF /*/Consignment/PlaceOfLoading/UNLocode is PRESENT THEN
/// /*/Consignment/PlaceOfLoading/country = "O" AND /*/Consignment/PlaceOfLoading/location = "O"
/// ELSE /*/Consignment/PlaceOfLoading/country = "R" AND /*/Consignment/PlaceOfLoading/location =
/// "R"; (the same for /*/Consignment/PlaceOfUnloading)"
pub fn c0387(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    for place in c.all("PlaceOfLoading").chain(c.all("PlaceOfUnloading")) {
        if !place.has("UNLocode") {
            let why = "no UN/LOCODE is given";
            require(out, place, "country", "C0387", why);
            require(out, place, "location", "C0387", why);
        }
    }
}

/// What each qualifier of identification requires ("R"), allows ("O") and forbids (the rest).
const C0394: &[(&str, &str, &[&str])] = &[
    ("Z", "Address", &["ContactPerson"]),
    ("X", "EconomicOperator", &["ContactPerson"]),
    ("Y", "authorisationNumber", &["ContactPerson"]),
    ("W", "GNSS", &["ContactPerson"]),
    ("V", "CustomsOffice", &[]),
    ("U", "UNLocode", &["ContactPerson"]),
    ("T", "PostcodeAddress", &["ContactPerson"]),
];
const C0394_GOVERNED: &[&str] = &[
    "Address",
    "authorisationNumber",
    "UNLocode",
    "CustomsOffice",
    "GNSS",
    "EconomicOperator",
    "ContactPerson",
    "PostcodeAddress",
];

/// C0394: "IF /*/Consignment/LocationOfGoods/qualifierOfIdentification is EQUAL to 'Z' THEN
/// Address = "R" AND authorisationNumber, UNLocode, CustomsOffice, GNSS, EconomicOperator,
/// PostcodeAddress = "N" AND ContactPerson = "O"; 'X': EconomicOperator = "R" ...; 'Y':
/// authorisationNumber = "R" ...; 'W': GNSS = "R" ...; 'V': CustomsOffice = "R" and ContactPerson
/// = "N" ...; 'U': UNLocode = "R" ...; 'T': PostcodeAddress = "R" ..." (each time the other
/// identifications "N").
pub fn c0394(root: &Node, out: &mut Vec<Problem>) {
    let Some(loc) = root.first(&["Consignment", "LocationOfGoods"]) else {
        return;
    };
    let Some(q) = loc.text_of("qualifierOfIdentification") else {
        return;
    };
    let Some((_, required, optional)) = C0394.iter().find(|(code, _, _)| *code == q) else {
        return;
    };
    let why = format!("the qualifier of identification is {q}");
    require(out, loc, required, "C0394", &why);
    for name in C0394_GOVERNED {
        if name != required && !optional.contains(name) {
            forbid(out, loc, name, "C0394", &why);
        }
    }
}

/// C0403: "IF /*/TransitOperation/additionalDeclarationType is EQUAL to "D" THEN
/// /*/Consignment/PlaceOfLoading = "O" ELSE /*/Consignment/PlaceOfLoading = "R""
pub fn c0403(root: &Node, out: &mut Vec<Problem>) {
    let Some(c) = root.child("Consignment") else {
        return;
    };
    match root.text_at(&["TransitOperation", "additionalDeclarationType"]) {
        Some("D") | None => {}
        Some(_) => require(
            out,
            c,
            "PlaceOfLoading",
            "C0403",
            "the declaration is not pre-lodged",
        ),
    }
}

/// C0671: "IF /*/Consignment/LocationOfGoods/EconomicOperator/identificationNumber is PRESENT OR
/// /*/Consignment/LocationOfGoods/authorisationNumber is PRESENT THEN
/// /*/Consignment/LocationOfGoods/additionalIdentifier = "O" ELSE
/// /*/Consignment/LocationOfGoods/additionalIdentifier = "N""
pub fn c0671(root: &Node, out: &mut Vec<Problem>) {
    let Some(loc) = root.first(&["Consignment", "LocationOfGoods"]) else {
        return;
    };
    let identified = loc
        .first(&["EconomicOperator", "identificationNumber"])
        .is_some()
        || loc.has("authorisationNumber");
    if !identified {
        forbid(
            out,
            loc,
            "additionalIdentifier",
            "C0671",
            "neither an economic operator nor an authorisation number identifies the location",
        );
    }
}

/// C0460: "IF /*/Consignment/Incident/Location/qualifierOfIdentification is EQUAL to 'W' THEN
/// GNSS = "R" AND UNLocode = "N" AND Address = "N" ELSE IF ... 'U' THEN UNLocode = "R" AND GNSS =
/// "N" AND Address = "N" ELSE IF ... 'Z' THEN Address = "R" AND UNLocode = "N" AND GNSS = "N""
pub fn c0460(root: &Node, out: &mut Vec<Problem>) {
    for loc in root.every(&["Consignment", "Incident", "Location"]) {
        let required = match loc.text_of("qualifierOfIdentification") {
            Some("W") => "GNSS",
            Some("U") => "UNLocode",
            Some("Z") => "Address",
            _ => continue,
        };
        let why = format!("the incident location is identified by {required}");
        require(out, loc, required, "C0460", &why);
        for other in ["GNSS", "UNLocode", "Address"] {
            if other != required {
                forbid(out, loc, other, "C0460", &why);
            }
        }
    }
}

/// C0404: "/CC170C/Consignment/PlaceOfLoading = "R""
pub fn c0404(root: &Node, out: &mut Vec<Problem>) {
    if let Some(c) = root.child("Consignment") {
        require(
            out,
            c,
            "PlaceOfLoading",
            "C0404",
            "the presentation notification names the place of loading",
        );
    }
}
