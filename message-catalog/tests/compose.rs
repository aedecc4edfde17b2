//! The composers of the messages that carry the declaration (`lifecycle::compose`): CC029C
//! release for transit, the anticipated records CD001C, CD050C and CD160C, and CC043C unloading
//! permission. Each composed message is encoded and must pass `rules::validate` at
//! `Level::Rules` (strict decode, then the TIS rules and conditions), for the pilot journey
//! KZ000101 → exit KZ000101 → transit AZ000101 → exit AZ000201 → transit GE000101 →
//! destination GE000201, driven through the pure life cycle, and for declarations with several
//! houses, goods items and transport documents. The anticipated records start the movement at
//! the offices they are addressed to, and the CD001C composed at departure is what the office
//! of destination composes its CC043C from.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use message_catalog::generated::{cats, ncts};
use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};
use message_catalog::lifecycle::compose::{self, Context, Header, Release};
use message_catalog::lifecycle::{
    self, Actor, Common, ControlOutcome, ControlResult, Decision, DestinationReply, Event,
    ExternalReply, Input, Movement, Output, Role, Selection, Step,
};
use message_catalog::rules::{self, Level};
use message_catalog::{Limits, Message, decode, encode};
use rust_decimal::Decimal;

const KZ_DEPARTURE: &str = "KZ000101";
const AZ_ENTRY: &str = "AZ000101";
const AZ_EXIT: &str = "AZ000201";
const GE_ENTRY: &str = "GE000101";
const GE_DESTINATION: &str = "GE000201";
const TRADER_AT_DESTINATION: &str = "GE000000000002";

fn office(s: &str) -> CustomsOfficeRef {
    CustomsOfficeRef::parse(s).unwrap()
}

fn mrn() -> Mrn {
    Mrn::generate(26, &office(KZ_DEPARTURE), 17, ProcedureLetter::J).unwrap()
}

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 16, 6, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn header(recipient: &str) -> Header {
    Header {
        sender: "NTA.KZ".to_owned(),
        recipient: recipient.to_owned(),
        prepared_at: t(30),
        message_id: "CATS-KZ-000017".to_owned(),
        correlation: None,
    }
}

fn read(path: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A CC015C sample that itself passes the rules (so that what the composed message says is
/// the composer's doing).
fn declaration(path: &str) -> Box<ncts::CC015CType> {
    let bytes = read(path);
    match rules::validate(&bytes, &Limits::default(), Level::Rules) {
        Ok(Message::CC015C(m)) => m,
        Ok(other) => panic!("{path} is a {}", other.message_type()),
        Err(r) => panic!("{path} does not pass the rules: {:?}", r.problems),
    }
}

/// The rules' two-house sample, routed as the pilot journey (exit at the office of departure
/// as well as at AZ000201).
fn pilot_declaration() -> Box<ncts::CC015CType> {
    let mut d = declaration("rules/cc015c/valid-two-houses.xml");
    d.customs_office_of_exit_for_transit_declared = [KZ_DEPARTURE, AZ_EXIT]
        .iter()
        .zip(1i64..)
        .map(|(o, n)| ncts::CustomsOfficeOfExitForTransitDeclaredType02 {
            sequence_number: n,
            reference_number: (*o).to_owned(),
        })
        .collect();
    let bytes = encode(&Message::CC015C(d.clone()));
    if let Err(r) = rules::validate(&bytes, &Limits::default(), Level::Rules) {
        panic!(
            "the pilot declaration does not pass the rules: {:?}",
            r.problems
        );
    }
    d
}

/// The pilot declaration with a third goods item (the second of the first house) and a second
/// transport document, numbers and masses adjusted.
fn several_items_declaration() -> Box<ncts::CC015CType> {
    let mut d = pilot_declaration();
    let house = &mut d.consignment.house_consignment[0];
    let mut item = house.consignment_item[0].clone();
    item.goods_item_number = 2;
    item.declaration_goods_item_number = 2;
    item.commodity.description_of_goods = "Steel flanges".to_owned();
    house.consignment_item.push(item);
    house.gross_mass = Decimal::new(25010, 1);
    d.consignment.house_consignment[1].consignment_item[0].declaration_goods_item_number = 3;
    d.consignment.gross_mass = Decimal::new(37515, 1);
    let mut document = d.consignment.transport_document[0].clone();
    document.sequence_number = 2;
    document.reference_number = "CMR-2026-0002".to_owned();
    d.consignment.transport_document.push(document);
    let bytes = encode(&Message::CC015C(d.clone()));
    if let Err(r) = rules::validate(&bytes, &Limits::default(), Level::Rules) {
        panic!(
            "the declaration with several items does not pass the rules: {:?}",
            r.problems
        );
    }
    d
}

/// Encodes `message` and runs the whole validation pipeline on the bytes.
fn passes_the_rules(message: &Message) -> Message {
    let bytes = encode(message);
    match rules::validate(&bytes, &Limits::default(), Level::Rules) {
        Ok(back) => {
            assert_eq!(
                &back,
                message,
                "{} does not round-trip",
                message.message_type()
            );
            back
        }
        Err(r) => panic!(
            "{} does not pass the rules: {:?}\n{}",
            message.message_type(),
            r.problems,
            String::from_utf8_lossy(&bytes)
        ),
    }
}

fn event(minute: i64, at: &str, role: Role, input: Input) -> Event {
    Event {
        at: t(minute),
        by: Actor::System,
        office: office(at),
        role,
        input,
    }
}

fn run(state: &mut Option<Movement>, e: Event) -> Vec<Output> {
    let Step { movement, outputs } = lifecycle::apply(state.take(), &e);
    *state = movement;
    outputs
}

fn cd205c_accepting(d: &ncts::CC015CType) -> Message {
    let bytes = read("cd205c/valid-minimal.xml");
    let Message::CD205C(mut m) = decode(&bytes, &Limits::default()).unwrap() else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    let grn = d.guarantee[0].guarantee_reference[0].grn.clone().unwrap();
    for g in &mut m.guarantee {
        for r in &mut g.guarantee_reference {
            r.grn = grn.clone();
            r.accepted = cats::Flag::V1;
            r.refusal_reason = None;
        }
    }
    Message::CD205C(m)
}

/// Departure at KZ000101 from the CC015C to release (minute 10), controlled with `control`
/// when given; returns the movement and the outputs of the release step.
fn release(d: &ncts::CC015CType, control: Option<ControlResult>) -> (Movement, Vec<Output>) {
    let mut kz = None;
    let departure = |minute, input| event(minute, KZ_DEPARTURE, Role::Departure, input);
    run(
        &mut kz,
        departure(0, Input::Message(Message::CC015C(Box::new(d.clone())))),
    );
    run(
        &mut kz,
        departure(
            1,
            Input::Decision(Decision::AcceptDeclaration { mrn: mrn() }),
        ),
    );
    run(
        &mut kz,
        departure(
            2,
            Input::Decision(Decision::Selection(Selection {
                selected: control.is_some(),
                reason: "pilot".to_owned(),
            })),
        ),
    );
    if let Some(c) = control {
        run(
            &mut kz,
            departure(3, Input::Decision(Decision::ControlResult(c))),
        );
    }
    let outputs = run(&mut kz, departure(10, Input::Message(cd205c_accepting(d))));
    (kz.unwrap(), outputs)
}

/// Composes every output of the release step through [`compose::message`].
fn compose_release(
    d: &ncts::CC015CType,
    movement: &Movement,
    outputs: &[Output],
) -> Vec<(Output, Message)> {
    let h = header("NTA.GE");
    outputs
        .iter()
        .map(|o| {
            let cx = Context {
                header: &h,
                at: t(10),
                movement: Some(movement),
                declaration: Some(d),
                arrival_record: None,
            };
            let m = compose::message(o, &cx).unwrap_or_else(|| panic!("{o:?} is not composed"));
            (o.clone(), m)
        })
        .collect()
}

fn items(c: &ncts::ConsignmentType20) -> Vec<(i64, String)> {
    c.house_consignment
        .iter()
        .flat_map(|h| &h.consignment_item)
        .map(|i| {
            (
                i.declaration_goods_item_number,
                i.commodity.description_of_goods.clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pilot_journey_release_composes_cc029c_and_every_anticipated_record() {
    let d = pilot_declaration();
    let (movement, outputs) = release(&d, None);
    let composed = compose_release(&d, &movement, &outputs);
    let mut kinds: Vec<(&str, Option<String>)> = Vec::new();
    for (output, message) in &composed {
        passes_the_rules(message);
        let to = match output {
            Output::ToHub(Common::AnticipatedArrival { destination }) => {
                Some(destination.to_string())
            }
            Output::ToHub(Common::AnticipatedTransit { office })
            | Output::ToHub(Common::AnticipatedExit { office }) => Some(office.to_string()),
            _ => None,
        };
        kinds.push((message.message_type(), to));
    }
    assert_eq!(
        kinds,
        [
            ("CC029C", None),
            ("CD001C", Some(GE_DESTINATION.to_owned())),
            ("CD050C", Some(AZ_ENTRY.to_owned())),
            ("CD050C", Some(GE_ENTRY.to_owned())),
            ("CD160C", Some(KZ_DEPARTURE.to_owned())),
            ("CD160C", Some(AZ_EXIT.to_owned())),
        ]
    );

    let released_on = NaiveDate::from_ymd_opt(2026, 3, 16).unwrap();
    let Message::CC029C(cc029c) = &composed[0].1 else {
        unreachable!()
    };
    assert_eq!(cc029c.transit_operation.mrn, mrn().to_string());
    assert_eq!(cc029c.transit_operation.lrn, d.transit_operation.lrn);
    assert_eq!(cc029c.transit_operation.release_date, released_on);
    assert_eq!(
        cc029c.transit_operation.declaration_acceptance_date,
        released_on
    );
    assert_eq!(cc029c.control_result, None);
    assert_eq!(cc029c.consignment.container_indicator, ncts::Flag::V1);
    assert_eq!(cc029c.consignment.house_consignment.len(), 2);
    assert_eq!(
        cc029c.guarantee[0].guarantee_reference[0].grn,
        d.guarantee[0].guarantee_reference[0].grn
    );

    let Message::CD001C(cd001c) = &composed[1].1 else {
        unreachable!()
    };
    assert_eq!(cd001c.transit_operation.mrn, mrn().to_string());
    assert_eq!(
        cd001c.holder_of_the_transit_procedure.name,
        "Caspian Pipes LLP"
    );
    assert_eq!(cd001c.customs_office_of_transit_declared.len(), 2);
    assert_eq!(cd001c.customs_office_of_exit_for_transit_declared.len(), 2);
    // The consignor and the consignee of the sample have an identification number only: the
    // common domain requires name and address, so they are left out.
    assert_eq!(cd001c.consignment.consignor, None);
    assert_eq!(cd001c.consignment.house_consignment[1].consignee, None);
}

#[test]
fn anticipated_records_start_the_movement_where_they_are_addressed() {
    let d = pilot_declaration();
    let (movement, outputs) = release(&d, None);
    for (output, message) in compose_release(&d, &movement, &outputs) {
        let (at, role) = match output {
            Output::ToHub(Common::AnticipatedArrival { destination }) => {
                (destination, Role::Destination)
            }
            Output::ToHub(Common::AnticipatedTransit { office }) => (office, Role::Transit),
            Output::ToHub(Common::AnticipatedExit { office }) => (office, Role::Exit),
            _ => continue,
        };
        // What the receiving node decodes, not what departure built.
        let received = passes_the_rules(&message);
        let mut state = None;
        let out = run(
            &mut state,
            event(20, &at.to_string(), role, Input::Message(received)),
        );
        assert!(out.is_empty(), "{at} {role:?}: {out:?}");
        let started = state.unwrap();
        assert_eq!(started.mrn, Some(mrn()));
        assert_eq!(started.declaration.destination, office(GE_DESTINATION));
        assert_eq!(
            started.declaration.transits,
            [office(AZ_ENTRY), office(GE_ENTRY)]
        );
        assert_eq!(
            started.declaration.exits,
            [office(KZ_DEPARTURE), office(AZ_EXIT)]
        );
    }
}

#[test]
fn destination_composes_cc043c_from_the_composed_cd001c() {
    let d = pilot_declaration();
    let (movement, outputs) = release(&d, None);
    let composed = compose_release(&d, &movement, &outputs);
    let Some((_, Message::CD001C(record))) = composed
        .iter()
        .find(|(_, m)| matches!(m, Message::CD001C(_)))
    else {
        panic!("no CD001C")
    };
    let Message::CD001C(record) = passes_the_rules(&Message::CD001C(record.clone())) else {
        unreachable!()
    };

    let mut ge = None;
    let at = |minute, input| event(minute, GE_DESTINATION, Role::Destination, input);
    assert!(
        run(
            &mut ge,
            at(20, Input::Message(Message::CD001C(record.clone())))
        )
        .is_empty()
    );
    let bytes = read("cc007c/valid-minimal.xml");
    let Message::CC007C(mut cc007c) = decode(&bytes, &Limits::default()).unwrap() else {
        unreachable!()
    };
    cc007c.transit_operation.mrn = mrn().to_string();
    cc007c.transit_operation.simplified_procedure = ncts::Flag::V1;
    cc007c.customs_office_of_destination_actual.reference_number = GE_DESTINATION.to_owned();
    cc007c.trader_at_destination.identification_number = TRADER_AT_DESTINATION.to_owned();
    run(&mut ge, at(21, Input::Message(Message::CC007C(cc007c))));
    let outputs = run(
        &mut ge,
        at(
            22,
            Input::Decision(Decision::Selection(Selection {
                selected: false,
                reason: "pilot".to_owned(),
            })),
        ),
    );
    assert_eq!(
        outputs,
        [Output::ToTraderAtDestination(
            DestinationReply::UnloadingPermission
        )]
    );
    let h = header("GE000000000002");
    let cx = Context {
        header: &h,
        at: t(22),
        movement: ge.as_ref(),
        declaration: None,
        arrival_record: Some(&record),
    };
    let message = compose::message(&outputs[0], &cx).expect("CC043C");
    let Message::CC043C(cc043c) = passes_the_rules(&message) else {
        panic!("{} instead of CC043C", message.message_type())
    };
    assert_eq!(cc043c.transit_operation.mrn, mrn().to_string());
    assert_eq!(
        cc043c.customs_office_of_destination_actual.reference_number,
        GE_DESTINATION
    );
    assert_eq!(
        cc043c.trader_at_destination.identification_number,
        TRADER_AT_DESTINATION
    );
    let consignment = cc043c.consignment.as_ref().unwrap();
    assert_eq!(consignment.house_consignment.len(), 2);
    assert_eq!(
        cc043c
            .holder_of_the_transit_procedure
            .as_ref()
            .map(|h| h.name.as_str()),
        Some("Caspian Pipes LLP")
    );

    // Without the record the destination holds, there is nothing to compose from.
    let cx = Context {
        arrival_record: None,
        ..cx
    };
    assert_eq!(compose::message(&outputs[0], &cx), None);
}

#[test]
fn several_goods_items_and_transport_documents_are_carried_whole() {
    let d = several_items_declaration();
    let expected = items(&d.consignment);
    assert_eq!(expected.len(), 3);
    let (movement, _) = release(&d, None);
    let r = Release::of(&movement, t(10)).unwrap();
    let h = header("NTA.GE");

    let cc029c = compose::release_for_transit(&h, &d, &r).unwrap();
    passes_the_rules(&Message::CC029C(Box::new(cc029c.clone())));
    let got: Vec<(i64, String)> = cc029c
        .consignment
        .house_consignment
        .iter()
        .flat_map(|h| &h.consignment_item)
        .map(|i| {
            (
                i.declaration_goods_item_number,
                i.commodity.description_of_goods.clone(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(cc029c.consignment.transport_document.len(), 2);

    let cd001c = compose::anticipated_arrival(&h, &d, &r).unwrap();
    passes_the_rules(&Message::CD001C(Box::new(cd001c.clone())));
    let cd050c = compose::anticipated_transit(&h, &d, &r).unwrap();
    passes_the_rules(&Message::CD050C(Box::new(cd050c.clone())));
    let cd160c = compose::anticipated_exit(&h, &d, &r).unwrap();
    passes_the_rules(&Message::CD160C(Box::new(cd160c.clone())));
    for (kind, houses, documents) in [
        (
            "CD001C",
            cd001c
                .consignment
                .house_consignment
                .iter()
                .map(|h| h.consignment_item.len())
                .collect::<Vec<_>>(),
            cd001c.consignment.transport_document.len(),
        ),
        (
            "CD050C",
            cd050c
                .consignment
                .house_consignment
                .iter()
                .map(|h| h.consignment_item.len())
                .collect(),
            cd050c.consignment.transport_document.len(),
        ),
        (
            "CD160C",
            cd160c
                .consignment
                .house_consignment
                .iter()
                .map(|h| h.consignment_item.len())
                .collect(),
            cd160c.consignment.transport_document.len(),
        ),
    ] {
        assert_eq!(houses, [2, 1], "{kind}");
        assert_eq!(documents, 2, "{kind}");
    }
    // The goods measures of the first house come through; the second house's item has none.
    assert!(
        cd001c.consignment.house_consignment[0].consignment_item[1]
            .commodity
            .goods_measure
            .is_some()
    );

    let cc043c = compose::unloading_permission(
        &header("GE000000000002"),
        &cd001c,
        &office(GE_DESTINATION),
        TRADER_AT_DESTINATION,
    )
    .unwrap();
    passes_the_rules(&Message::CC043C(Box::new(cc043c.clone())));
    let consignment = cc043c.consignment.unwrap();
    assert_eq!(
        consignment
            .house_consignment
            .iter()
            .map(|h| h.consignment_item.len())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(consignment.transport_document.len(), 2);
}

#[test]
fn every_rule_valid_declaration_sample_composes_valid_messages() {
    for path in [
        "rules/cc015c/valid.xml",
        "rules/cc015c/valid-no-security.xml",
        "rules/cc015c/valid-two-houses.xml",
    ] {
        let d = declaration(path);
        let (movement, outputs) = release(&d, None);
        let composed = compose_release(&d, &movement, &outputs);
        assert!(
            composed.len() >= 2 + d.customs_office_of_transit_declared.len(),
            "{path}: {composed:?}"
        );
        for (_, message) in &composed {
            passes_the_rules(message);
        }
    }
}

#[test]
fn control_at_departure_goes_into_cc029c_and_the_records() {
    let d = pilot_declaration();
    let control = ControlResult {
        outcome: ControlOutcome::MinorDiscrepancies,
        remarks: Some("two cartons relabelled".to_owned()),
    };
    let (movement, outputs) = release(&d, Some(control));
    let composed = compose_release(&d, &movement, &outputs);
    let released_on = NaiveDate::from_ymd_opt(2026, 3, 16).unwrap();
    for (_, message) in &composed {
        match passes_the_rules(message) {
            Message::CC029C(m) => {
                let c = m.control_result.unwrap();
                assert_eq!((c.code.as_str(), c.date), ("A4", released_on));
                assert_eq!(c.controlled_by, KZ_DEPARTURE);
                assert_eq!(c.text.as_deref(), Some("two cartons relabelled"));
            }
            Message::CD001C(m) => {
                assert_eq!(m.control_result.unwrap().code, "A4");
            }
            Message::CD050C(m) => {
                assert_eq!(m.control_result.unwrap().code, "A4");
            }
            Message::CD160C(m) => {
                assert_eq!(m.control_result.unwrap().code, "A4");
            }
            other => panic!("unexpected {}", other.message_type()),
        }
    }
}

#[test]
fn a_holder_without_name_and_address_gives_no_anticipated_record() {
    let mut d = pilot_declaration();
    d.holder_of_the_transit_procedure.name = None;
    d.holder_of_the_transit_procedure.address = None;
    let (movement, _) = release(&d, None);
    let r = Release::of(&movement, t(10)).unwrap();
    let h = header("NTA.GE");
    // CC029C does not require them ...
    let cc029c = compose::release_for_transit(&h, &d, &r).unwrap();
    passes_the_rules(&Message::CC029C(Box::new(cc029c)));
    // ... the common domain does, and CATS has no trader register to fill them from.
    assert_eq!(compose::anticipated_arrival(&h, &d, &r), None);
    assert_eq!(compose::anticipated_transit(&h, &d, &r), None);
    assert_eq!(compose::anticipated_exit(&h, &d, &r), None);
}

#[test]
fn release_needs_an_mrn_and_the_office_of_departure() {
    let d = pilot_declaration();
    let (mut movement, outputs) = release(&d, None);
    assert!(outputs.contains(&Output::ToDeclarant(ExternalReply::ReleaseForTransit)));
    let r = Release::of(&movement, t(10)).unwrap();
    assert_eq!(r.mrn, &mrn());
    assert_eq!(r.accepted_on, t(1).date_naive());
    assert_eq!(r.released_on, t(10).date_naive());
    movement.departure = None;
    assert!(Release::of(&movement, t(10)).is_none());
}

/// The declaration as amended by an accepted CC013C: the original's header and LRN, the
/// amendment's data (here a new gross mass and a guarantee given without its type), and it
/// still passes the rules as a CC015C.
#[test]
fn the_amended_declaration_keeps_header_and_lrn_and_takes_the_amendments_data() {
    let original = pilot_declaration();
    let o = &original.transit_operation;
    let mut consignment = original.consignment.clone();
    consignment.gross_mass += Decimal::new(125, 1);
    let amendment = ncts::CC013CType {
        phase_id: original.phase_id,
        message_sender: original.message_sender.clone(),
        message_recipient: original.message_recipient.clone(),
        preparation_date_and_time: original.preparation_date_and_time,
        message_identification: "AMEND-0001".to_owned(),
        message_type: ncts::MessageTypes::CC013C,
        correlation_identifier: None,
        transit_operation: ncts::TransitOperationType04 {
            lrn: None,
            mrn: Some(mrn().to_string()),
            declaration_type: o.declaration_type.clone(),
            additional_declaration_type: o.additional_declaration_type.clone(),
            tir_carnet_number: o.tir_carnet_number.clone(),
            presentation_of_the_goods_date_and_time: o.presentation_of_the_goods_date_and_time,
            security: o.security.clone(),
            reduced_dataset_indicator: o.reduced_dataset_indicator,
            specific_circumstance_indicator: o.specific_circumstance_indicator.clone(),
            communication_language_at_departure: o.communication_language_at_departure.clone(),
            binding_itinerary: o.binding_itinerary,
            amendment_type_flag: ncts::Flag::V0,
            limit_date: o.limit_date,
        },
        authorisation: original.authorisation.clone(),
        customs_office_of_departure: original.customs_office_of_departure.clone(),
        customs_office_of_destination_declared: original
            .customs_office_of_destination_declared
            .clone(),
        customs_office_of_transit_declared: original.customs_office_of_transit_declared.clone(),
        customs_office_of_exit_for_transit_declared: original
            .customs_office_of_exit_for_transit_declared
            .clone(),
        holder_of_the_transit_procedure: original.holder_of_the_transit_procedure.clone(),
        representative: original.representative.clone(),
        guarantee: original
            .guarantee
            .iter()
            .map(|g| ncts::GuaranteeType01 {
                sequence_number: g.sequence_number,
                guarantee_type: None,
                other_guarantee_reference: g.other_guarantee_reference.clone(),
                guarantee_reference: g.guarantee_reference.clone(),
            })
            .collect(),
        consignment: consignment.clone(),
    };
    let amended = compose::amended_declaration(&original, &amendment);
    assert_eq!(
        amended.message_identification,
        original.message_identification
    );
    assert_eq!(
        amended.transit_operation.lrn,
        original.transit_operation.lrn
    );
    assert_eq!(amended.consignment, consignment);
    assert_ne!(amended.consignment, original.consignment);
    assert_eq!(amended.guarantee, original.guarantee);
    passes_the_rules(&Message::CC015C(Box::new(amended)));
}

#[test]
fn status_request_and_response_pass_the_rules_and_round_trip() {
    let d = pilot_declaration();
    let (movement, _) = release(&d, None);
    let mrn = movement.mrn.expect("released with an MRN");
    let departure = office(KZ_DEPARTURE);
    let dep = movement.departure.as_ref().expect("departure state");

    let request = compose::status_request(
        &header("NTA.GE"),
        &mrn,
        &departure,
        compose::departure_code(dep.phase),
    );
    let back = passes_the_rules(&Message::CD094C(Box::new(request)));
    let Message::CD094C(back) = back else {
        panic!("not a CD094C")
    };
    assert_eq!(back.transit_operation.status, "REL");
    assert_eq!(back.transit_operation.mrn, mrn.to_string());

    let states = compose::office_states(&movement);
    assert!(!states.is_empty());
    let response = compose::status_response(&header("NTA.GE"), &mrn, &departure, &states)
        .expect("states to carry");
    let back = passes_the_rules(&Message::CD095C(Box::new(response)));
    let Message::CD095C(back) = back else {
        panic!("not a CD095C")
    };
    let read = compose::states_of(&back);
    assert_eq!(read, states, "the states read back are the states sent");
    assert_eq!(read.first().and_then(|s| s.rank()), Some(5), "released");

    // Nothing to say: no CD095C (the node answers CD906C, code 90).
    assert!(compose::status_response(&header("NTA.GE"), &mrn, &departure, &[]).is_none());
}
