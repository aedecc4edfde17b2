//! Customs offices of the declaration, and their dates.

use super::tree::Node;
use super::{Problem, broken};

/// R0005: "The value of /*/CustomsOfficeOfTransitDeclared/arrivalDateAndTimeEstimated field is
/// considered valid only if it is not LESS than or EQUAL to /*/Message/Preparation date and time"
///
/// Both are `xs:dateTime` in the same (local) form, so they compare as parsed date-times.
pub fn r0005(root: &Node, out: &mut Vec<Problem>) {
    let Some(prepared) = root
        .text_of("preparationDateAndTime")
        .and_then(parse_date_time)
    else {
        return;
    };
    for office in root.all("CustomsOfficeOfTransitDeclared") {
        let Some(arrival) = office.child("arrivalDateAndTimeEstimated") else {
            continue;
        };
        if parse_date_time(&arrival.text).is_some_and(|a| a <= prepared) {
            broken(
                out,
                arrival,
                "R0005",
                format!(
                    "the estimated arrival {} is not after the preparation of the message",
                    arrival.text
                ),
            );
        }
    }
}

fn parse_date_time(text: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S").ok()
}

/// R0103: "IF /*/CustomsOfficeOfExitForTransitDeclared is PRESENT THEN
/// /*/CustomsOfficeOfExitForTransitDeclared/referenceNumber is NOT EQUAL to
/// /*/CustomsOfficeOfTransitDeclared/referenceNumber AND is NOT EQUAL to
/// /*/CustomsOfficeOfDestinationDeclared/referenceNumber"
pub fn r0103(root: &Node, out: &mut Vec<Problem>) {
    let transit: Vec<&str> = root
        .all("CustomsOfficeOfTransitDeclared")
        .filter_map(|o| o.text_of("referenceNumber"))
        .collect();
    let destination = root.text_at(&["CustomsOfficeOfDestinationDeclared", "referenceNumber"]);
    for exit in root.all("CustomsOfficeOfExitForTransitDeclared") {
        let Some(r) = exit.child("referenceNumber") else {
            continue;
        };
        if transit.contains(&r.text.as_str()) || destination == Some(r.text.as_str()) {
            broken(
                out,
                r,
                "R0103",
                format!(
                    "{} cannot be the office of exit and an office of transit or destination",
                    r.text
                ),
            );
        }
    }
}

/// R0906: "IF the first two characters of /*/CustomsOfficeOfDestinationDeclared/referenceNumber
/// is EQUAL to 'AD' THEN the first two characters of
/// /*/CustomsOfficeOfTransitDeclared/referenceNumber is EQUAL to 'AD'; (the same for
/// /*/CustomsOfficeOfTransitActual)"
pub fn r0906(root: &Node, out: &mut Vec<Problem>) {
    let destination = root.text_at(&["CustomsOfficeOfDestinationDeclared", "referenceNumber"]);
    if !destination.is_some_and(|d| d.starts_with("AD")) {
        return;
    }
    for office in root
        .all("CustomsOfficeOfTransitDeclared")
        .chain(root.all("CustomsOfficeOfTransitActual"))
    {
        if let Some(r) = office
            .child("referenceNumber")
            .filter(|r| !r.text.starts_with("AD"))
        {
            broken(
                out,
                r,
                "R0906",
                "goods for Andorra pass an Andorran office of transit".to_owned(),
            );
        }
    }
}
