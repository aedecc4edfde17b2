//! Routing and reference checks, as pure functions of a decoded CD message and the reference
//! data.
//!
//! [`facts`] reads what the hub needs from a message (MRN, the offices it names and their
//! roles, which office sends it, who it is addressed to); [`check`] makes the reference checks
//! the hub can make; [`recipients`] decides where it goes:
//!
//! | message | recipients |
//! | --- | --- |
//! | CD001C anticipated arrival record (AAR) | the country of the office of destination |
//! | CD050C anticipated transit record (ATR) | the country of each office of transit (entry) |
//! | CD160C anticipated exit record (AXR) | the country of each office of exit |
//! | CD168C notification of exit | the departure country |
//! | CD118C notification crossing frontier (entry) | the departure country |
//! | CD006C arrival advice, CD018C control results | the departure country |
//! | CD010C cancellation | every country with an office of exit, transit or destination on the route, the sender's own included (its own exit office had a CD160C through the hub too) |
//! | CD203C, CD204C, CD209C guarantee use, cancellation, credit | the hub (guarantee ledger) |
//! | CD094C status request, CD095C status response, CD906C, CD917C | the country in `messageRecipient` |
//!
//! These are the recipients the route *allows*. Each envelope names its one final recipient in
//! its signed header (a node sends one envelope per recipient country, e.g. one ATR per
//! transit country); the pipeline checks that it is one of these and forwards it there only.
//!
//! The departure country is the MRN's (positions 3–4). A country on a route that the hub does
//! not know is still a recipient: its messages wait in that country's queue.
//!
//! Sender addresses are `NTA.<country>` (the national transit authority), the hub's is
//! [`HUB_ADDRESS`].

use std::collections::BTreeSet;
use std::fmt;

use message_catalog::Message;
use message_catalog::codec::{ErrorCode, Problem};
use message_catalog::ids::{CountryCode, CustomsOfficeRef, Mrn};
use message_catalog::reference::{ReferenceData, Role};

/// The `messageSender` of messages the hub authors.
pub const HUB_ADDRESS: &str = "CATS.HUB";

/// Where a routed message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Recipient {
    /// A country's node (its queue at the hub when it is not connected).
    Node(CountryCode),
    /// The hub itself (the guarantee ledger).
    Hub,
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Node(c) => write!(f, "node:{c}"),
            Recipient::Hub => f.write_str("hub"),
        }
    }
}

impl Recipient {
    /// Parses the [`Display`](fmt::Display) form (`node:GE`, `hub`).
    pub fn parse(s: &str) -> Option<Recipient> {
        if s == "hub" {
            return Some(Recipient::Hub);
        }
        s.strip_prefix("node:")
            .and_then(|c| CountryCode::parse(c).ok())
            .map(Recipient::Node)
    }
}

/// An office a message names, with the role it names it in and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedOffice {
    /// The reference number as written.
    pub reference: String,
    /// The role.
    pub role: Role,
    /// Pointer to its `referenceNumber`.
    pub pointer: String,
}

/// What the hub reads from a CD message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `CD001C`, …
    pub message_type: &'static str,
    /// `messageIdentification`.
    pub message_id: String,
    /// `messageSender`.
    pub sender: String,
    /// `messageRecipient`.
    pub recipient: String,
    /// The MRN as written, when the message has one.
    pub mrn: Option<String>,
    /// Every office named, in document order.
    pub offices: Vec<NamedOffice>,
    /// Index into `offices` of the office that sends this message (departure for messages
    /// from departure, the actual office of exit / transit / destination for theirs).
    pub sending_office: Option<usize>,
}

macro_rules! office {
    ($out:expr, $root:expr, $name:expr, $role:expr, $value:expr) => {
        $out.push(NamedOffice {
            reference: $value.reference_number.clone(),
            role: $role,
            pointer: format!("/{}/{}/referenceNumber", $root, $name),
        })
    };
}

macro_rules! offices {
    ($out:expr, $root:expr, $name:expr, $role:expr, $list:expr) => {
        for (i, o) in $list.iter().enumerate() {
            $out.push(NamedOffice {
                reference: o.reference_number.clone(),
                role: $role,
                pointer: format!("/{}/{}[{}]/referenceNumber", $root, $name, i + 1),
            });
        }
    };
}

/// Reads the routing facts of a CD message; `None` for messages that are not common-domain
/// messages a node may send to the hub (external-domain and admin messages, CD205C).
pub fn facts(message: &Message) -> Option<Facts> {
    let t = message.message_type();
    let mut offices = Vec::new();
    let (mrn, sending) = match message {
        Message::CD001C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfDestinationDeclared",
                Role::Destination,
                m.customs_office_of_destination_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfTransitDeclared",
                Role::Transit,
                m.customs_office_of_transit_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfExitForTransitDeclared",
                Role::Exit,
                m.customs_office_of_exit_for_transit_declared
            );
            (Some(m.transit_operation.mrn.clone()), Some(0))
        }
        Message::CD050C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfDestinationDeclared",
                Role::Destination,
                m.customs_office_of_destination_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfTransitDeclared",
                Role::Transit,
                m.customs_office_of_transit_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfExitForTransitDeclared",
                Role::Exit,
                m.customs_office_of_exit_for_transit_declared
            );
            (Some(m.transit_operation.mrn.clone()), Some(0))
        }
        Message::CD160C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfDestinationDeclared",
                Role::Destination,
                m.customs_office_of_destination_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfTransitDeclared",
                Role::Transit,
                m.customs_office_of_transit_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfExitForTransitDeclared",
                Role::Exit,
                m.customs_office_of_exit_for_transit_declared
            );
            (Some(m.transit_operation.mrn.clone()), Some(0))
        }
        Message::CD010C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfDestinationDeclared",
                Role::Destination,
                m.customs_office_of_destination_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfTransitDeclared",
                Role::Transit,
                m.customs_office_of_transit_declared
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfExitForTransitDeclared",
                Role::Exit,
                m.customs_office_of_exit_for_transit_declared
            );
            (Some(m.transit_operation.mrn.clone()), Some(0))
        }
        Message::CD168C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfExitForTransitActual",
                Role::Exit,
                m.customs_office_of_exit_for_transit_actual
            );
            (Some(m.transit_operation.mrn.clone()), Some(1))
        }
        Message::CD118C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfTransitActual",
                Role::Transit,
                m.customs_office_of_transit_actual
            );
            (Some(m.transit_operation.mrn.clone()), Some(1))
        }
        Message::CD006C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfDestinationActual",
                Role::Destination,
                m.customs_office_of_destination_actual
            );
            (Some(m.transit_operation.mrn.clone()), Some(1))
        }
        Message::CD018C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfDestinationActual",
                Role::Destination,
                m.customs_office_of_destination_actual
            );
            (Some(m.transit_operation.mrn.clone()), Some(1))
        }
        Message::CD203C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            office!(
                offices,
                t,
                "CustomsOfficeOfDestinationDeclared",
                Role::Destination,
                m.customs_office_of_destination_declared
            );
            (Some(m.transit_operation.mrn.clone()), Some(0))
        }
        Message::CD204C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            (Some(m.transit_operation.mrn.clone()), Some(0))
        }
        Message::CD209C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            (Some(m.transit_operation.mrn.clone()), Some(0))
        }
        Message::CD094C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            if let Some(d) = &m.customs_office_of_destination {
                office!(
                    offices,
                    t,
                    "CustomsOfficeOfDestination",
                    Role::Destination,
                    d
                );
            }
            offices!(
                offices,
                t,
                "CustomsOfficeOfTransit",
                Role::Transit,
                m.customs_office_of_transit
            );
            offices!(
                offices,
                t,
                "CustomsOfficeOfExitForTransit",
                Role::Exit,
                m.customs_office_of_exit_for_transit
            );
            (Some(m.transit_operation.mrn.clone()), None)
        }
        Message::CD095C(m) => {
            office!(
                offices,
                t,
                "CustomsOfficeOfDeparture",
                Role::Departure,
                m.customs_office_of_departure
            );
            (Some(m.transit_operation.mrn.clone()), None)
        }
        Message::CD906C(m) => (Some(m.header.mrn.clone()), None),
        Message::CD917C(m) => (m.header.as_ref().map(|h| h.mrn.clone()), None),
        // An insurance contract submitted through a node: for the hub (crate::insurer).
        Message::CA001C(_) => (None, None),
        // A guarantee balance query forwarded by a node: answered by the ledger (CC037C).
        Message::CC034C(_) => (None, None),
        _ => return None,
    };
    Some(Facts {
        message_type: t,
        message_id: message
            .message_identification()
            .unwrap_or_default()
            .to_owned(),
        sender: message.message_sender().unwrap_or_default().to_owned(),
        recipient: recipient_of(message).unwrap_or_default(),
        mrn,
        offices,
        sending_office: sending,
    })
}

fn recipient_of(message: &Message) -> Option<String> {
    macro_rules! r {
        ($($v:ident),*) => {
            match message {
                $(Message::$v(m) => Some(m.message_recipient.clone()),)*
                _ => None,
            }
        };
    }
    r!(
        CD001C, CD006C, CD010C, CD018C, CD050C, CD094C, CD095C, CD118C, CD160C, CD168C, CD203C,
        CD204C, CD209C, CD906C, CD917C, CA001C, CC034C
    )
}

/// The country of an `NTA.<country>` address.
pub fn address_country(address: &str) -> Option<CountryCode> {
    address
        .strip_prefix("NTA.")
        .and_then(|c| CountryCode::parse(c).ok())
}

fn problem(pointer: &str, code: ErrorCode, label: &'static str, reason: String) -> Problem {
    Problem {
        line: 0,
        column: 0,
        pointer: pointer.to_owned(),
        code,
        label,
        rule: None,
        reason,
    }
}

/// The reference checks the hub can make on a message that `sender` (the country proved by
/// the envelope) sends. Each problem has a pointer and an NCTS code:
///
/// - `messageSender` is `NTA.<sender>` (14, `hub.sender-address`);
/// - every office named exists (12, `hub.unknown-office`), may play the role it is named in
///   (14, `hub.office-role`);
/// - the MRN parses (93, `hub.mrn`) and its country is the departure office's (14,
///   `hub.mrn-country`);
/// - the office that sends the message belongs to the sender's country (14,
///   `hub.office-not-sender`).
pub fn check(facts: &Facts, sender: CountryCode, reference: &ReferenceData) -> Vec<Problem> {
    let root = facts.message_type;
    let mut out = Vec::new();
    if address_country(&facts.sender) != Some(sender) {
        out.push(problem(
            &format!("/{root}/messageSender"),
            ErrorCode::RULE,
            "hub.sender-address",
            format!(
                "messageSender {:?} but the message is signed and delivered by {sender}",
                facts.sender
            ),
        ));
    }
    for o in &facts.offices {
        match CustomsOfficeRef::parse(&o.reference) {
            Ok(r) if reference.office(&r).is_none() => out.push(problem(
                &o.pointer,
                ErrorCode::CODE_LIST,
                "hub.unknown-office",
                format!(
                    "customs office {} is not in the reference data",
                    o.reference
                ),
            )),
            Ok(r) if !reference.has_role(&r, o.role) => out.push(problem(
                &o.pointer,
                ErrorCode::RULE,
                "hub.office-role",
                format!(
                    "customs office {} cannot act as office of {:?}",
                    o.reference, o.role
                ),
            )),
            Ok(_) => {}
            Err(_) => out.push(problem(
                &o.pointer,
                ErrorCode::CODE_LIST,
                "hub.unknown-office",
                format!("{:?} is not a customs office reference number", o.reference),
            )),
        }
    }
    if let Some(mrn) = &facts.mrn {
        match Mrn::parse(mrn) {
            Err(e) => out.push(problem(
                &format!("/{root}/TransitOperation/MRN"),
                ErrorCode::INVALID_MRN,
                "hub.mrn",
                e.to_string(),
            )),
            Ok(m) => {
                let departure = facts
                    .offices
                    .iter()
                    .find(|o| o.role == Role::Departure)
                    .and_then(|o| CustomsOfficeRef::parse(&o.reference).ok());
                if let Some(d) = departure
                    && d.country() != m.country()
                {
                    out.push(problem(
                        &format!("/{root}/TransitOperation/MRN"),
                        ErrorCode::RULE,
                        "hub.mrn-country",
                        format!(
                            "MRN {mrn} is from {} but the office of departure {d} is in {}",
                            m.country(),
                            d.country()
                        ),
                    ));
                }
            }
        }
    }
    if let Some(o) = facts.sending_office.and_then(|i| facts.offices.get(i))
        && let Ok(r) = CustomsOfficeRef::parse(&o.reference)
        && r.country() != sender
    {
        out.push(problem(
            &o.pointer,
            ErrorCode::RULE,
            "hub.office-not-sender",
            format!(
                "the sending office {} is in {}, but the sender is {sender}",
                o.reference,
                r.country()
            ),
        ));
    }
    out
}

/// The recipients of a checked message (see the module documentation). Empty only when the
/// message names nobody to send to (a CD010C for a movement that never left its country).
pub fn recipients(facts: &Facts) -> BTreeSet<Recipient> {
    let countries_in = |role: Role| -> Vec<CountryCode> {
        facts
            .offices
            .iter()
            .filter(|o| o.role == role)
            .filter_map(|o| CustomsOfficeRef::parse(&o.reference).ok())
            .map(|r| r.country())
            .collect()
    };
    let departure = facts
        .mrn
        .as_deref()
        .and_then(|m| Mrn::parse(m).ok())
        .map(|m| m.country())
        .or_else(|| countries_in(Role::Departure).first().copied());
    let nodes = |cs: Vec<CountryCode>| cs.into_iter().map(Recipient::Node).collect();
    match facts.message_type {
        "CD001C" => nodes(countries_in(Role::Destination)),
        "CD050C" => nodes(countries_in(Role::Transit)),
        "CD160C" => nodes(countries_in(Role::Exit)),
        "CD168C" | "CD118C" | "CD006C" | "CD018C" => nodes(departure.into_iter().collect()),
        "CD010C" => {
            let mut all = countries_in(Role::Destination);
            all.extend(countries_in(Role::Transit));
            all.extend(countries_in(Role::Exit));
            nodes(all)
        }
        "CD203C" | "CD204C" | "CD209C" | "CA001C" | "CC034C" => BTreeSet::from([Recipient::Hub]),
        _ => nodes(address_country(&facts.recipient).into_iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use message_catalog::codec::{Limits, decode};

    fn cd001c(sender: &str, departure: &str, destination: &str, mrn: &str) -> Message {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<cats:CD001C xmlns:cats="urn:carec:cats:common:1">
  <messageSender>{sender}</messageSender>
  <messageRecipient>NTA.GE</messageRecipient>
  <preparationDateAndTime>2026-03-16T09:30:00</preparationDateAndTime>
  <messageIdentification>CD001C-MESS-0001</messageIdentification>
  <messageType>CD001C</messageType>
  <TransitOperation>
    <MRN>{mrn}</MRN>
    <declarationType>T1</declarationType>
    <declarationAcceptanceDate>2026-03-16</declarationAcceptanceDate>
    <releaseDate>2026-03-16</releaseDate>
    <security>0</security>
    <reducedDatasetIndicator>0</reducedDatasetIndicator>
    <bindingItinerary>0</bindingItinerary>
  </TransitOperation>
  <CustomsOfficeOfDeparture><referenceNumber>{departure}</referenceNumber></CustomsOfficeOfDeparture>
  <CustomsOfficeOfDestinationDeclared><referenceNumber>{destination}</referenceNumber></CustomsOfficeOfDestinationDeclared>
  <HolderOfTheTransitProcedure><name>Caspian Freight LLP</name><Address><streetAndNumber>Dostyk 12</streetAndNumber><city>Aktau</city><country>KZ</country></Address></HolderOfTheTransitProcedure>
  <Consignment><containerIndicator>1</containerIndicator><grossMass>1250.5</grossMass>
    <HouseConsignment><sequenceNumber>1</sequenceNumber><grossMass>1250.5</grossMass>
      <ConsignmentItem><goodsItemNumber>1</goodsItemNumber><declarationGoodsItemNumber>1</declarationGoodsItemNumber>
        <Commodity><descriptionOfGoods>Seamless steel pipes</descriptionOfGoods></Commodity>
        <Packaging><sequenceNumber>1</sequenceNumber><typeOfPackages>CT</typeOfPackages></Packaging>
      </ConsignmentItem></HouseConsignment></Consignment>
</cats:CD001C>"#
        );
        decode(xml.as_bytes(), &Limits::default()).expect("test CD001C decodes")
    }

    const MRN: &str = "26KZ000101000001J0";

    #[test]
    fn aar_goes_to_the_destination_country() {
        let r = ReferenceData::pilot();
        let m = cd001c("NTA.KZ", "KZ000101", "GE000201", MRN);
        let f = facts(&m).expect("facts");
        assert_eq!(check(&f, CountryCode::KZ, &r), vec![]);
        assert_eq!(
            recipients(&f),
            BTreeSet::from([Recipient::Node(CountryCode::GE)])
        );
    }

    #[test]
    fn reference_problems_have_pointers_and_codes() {
        let r = ReferenceData::pilot();
        let m = cd001c("NTA.GE", "KZ000101", "GE999999", MRN);
        let f = facts(&m).expect("facts");
        let p = check(&f, CountryCode::AZ, &r);
        let got: Vec<(&str, u8, &str)> = p
            .iter()
            .map(|p| (p.pointer.as_str(), p.code.0, p.label))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/CD001C/messageSender", 14, "hub.sender-address"),
                (
                    "/CD001C/CustomsOfficeOfDestinationDeclared/referenceNumber",
                    12,
                    "hub.unknown-office"
                ),
                (
                    "/CD001C/CustomsOfficeOfDeparture/referenceNumber",
                    14,
                    "hub.office-not-sender"
                ),
            ]
        );
        // AZ000201 is an exit office only: not a destination.
        let m = cd001c("NTA.KZ", "KZ000101", "AZ000201", MRN);
        let p = check(&facts(&m).expect("facts"), CountryCode::KZ, &r);
        assert_eq!(p.first().map(|p| p.label), Some("hub.office-role"));
    }

    #[test]
    fn recipients_per_message_type() {
        let mut f = facts(&cd001c("NTA.KZ", "KZ000101", "GE000201", MRN)).expect("facts");
        f.offices.push(NamedOffice {
            reference: "AZ000101".into(),
            role: Role::Transit,
            pointer: String::new(),
        });
        f.offices.push(NamedOffice {
            reference: "GE000101".into(),
            role: Role::Transit,
            pointer: String::new(),
        });
        f.offices.push(NamedOffice {
            reference: "KZ000101".into(),
            role: Role::Exit,
            pointer: String::new(),
        });
        let kz = CountryCode::KZ;
        let node = Recipient::Node;
        let cases: [(&'static str, Vec<Recipient>); 7] = [
            ("CD050C", vec![node(CountryCode::AZ), node(CountryCode::GE)]),
            ("CD160C", vec![node(kz)]),
            ("CD118C", vec![node(kz)]),
            ("CD006C", vec![node(kz)]),
            (
                "CD010C",
                vec![node(CountryCode::AZ), node(CountryCode::GE), node(kz)],
            ),
            ("CD203C", vec![Recipient::Hub]),
            ("CD094C", vec![node(CountryCode::GE)]),
        ];
        for (t, want) in cases {
            f.message_type = t;
            assert_eq!(
                recipients(&f),
                want.into_iter().collect::<BTreeSet<_>>(),
                "{t}"
            );
        }
    }

    #[test]
    fn recipient_text_round_trips() {
        for r in [Recipient::Hub, Recipient::Node(CountryCode::AZ)] {
            assert_eq!(Recipient::parse(&r.to_string()), Some(r));
        }
        assert_eq!(Recipient::parse("node:xx"), None);
    }
}
