//! The movement life cycle (`message_catalog::lifecycle`): the pilot journey KZ → AZ → GE
//! across three nodes, the other journeys of issue 5 (rejection, control with major
//! discrepancies at destination, invalidation, amendment, guarantee refused, out of sequence,
//! unknown and invalid MRN, duplicate declaration), pinned error codes, the digest, and property
//! tests (no panic, deterministic replay, phases only move forward).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chrono::{DateTime, TimeZone, Utc};
use message_catalog::generated::{cats, ncts};
use message_catalog::ids::{CustomsOfficeRef, Grn, Mrn, ProcedureLetter};
use message_catalog::lifecycle::{
    self, Actor, BorderPhase, Common, ControlOutcome, ControlResult, Decision, DeparturePhase,
    DestinationPhase, DestinationReply, Event, ExternalReply, FunctionalError, Input, Movement,
    Output, Reference, RefusedGuarantee, Role, Selection, Step,
};
use message_catalog::{Limits, Message, decode};
use rust_decimal::Decimal;

// ---------------------------------------------------------------------------------------------
// Fixtures: the valid-minimal message of each type, adjusted to the pilot journey.

fn office(s: &str) -> CustomsOfficeRef {
    CustomsOfficeRef::parse(s).unwrap()
}

const KZ_DEPARTURE: &str = "KZ000101";
const AZ_ENTRY: &str = "AZ000101";
const AZ_EXIT: &str = "AZ000201";
const GE_ENTRY: &str = "GE000101";
const GE_DESTINATION: &str = "GE000201";
const GE_TBILISI: &str = "GE000301";

fn mrn() -> Mrn {
    Mrn::generate(26, &office(KZ_DEPARTURE), 1, ProcedureLetter::J).unwrap()
}

fn grn() -> Grn {
    Grn::generate(26, &office(KZ_DEPARTURE), 1).unwrap()
}

fn load(kind: &str) -> Message {
    let path = format!(
        "{}/tests/data/{kind}/valid-minimal.xml",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    decode(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 16, 6, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn transit_offices() -> Vec<ncts::CustomsOfficeOfTransitDeclaredType04> {
    [AZ_ENTRY, GE_ENTRY]
        .iter()
        .enumerate()
        .map(|(i, o)| ncts::CustomsOfficeOfTransitDeclaredType04 {
            sequence_number: i as i64 + 1,
            reference_number: (*o).to_owned(),
            arrival_date_and_time_estimated: None,
        })
        .collect()
}

fn exit_offices() -> Vec<ncts::CustomsOfficeOfExitForTransitDeclaredType02> {
    [KZ_DEPARTURE, AZ_EXIT]
        .iter()
        .enumerate()
        .map(|(i, o)| ncts::CustomsOfficeOfExitForTransitDeclaredType02 {
            sequence_number: i as i64 + 1,
            reference_number: (*o).to_owned(),
        })
        .collect()
}

fn guarantee_reference() -> ncts::GuaranteeReferenceType03 {
    ncts::GuaranteeReferenceType03 {
        sequence_number: 1,
        grn: Some(grn().to_string()),
        access_code: Some("1234".to_owned()),
        amount_to_be_covered: Some(Decimal::new(1500000, 2)),
        currency: Some("USD".to_owned()),
    }
}

fn cc015c(lrn: &str) -> Message {
    let Message::CC015C(mut m) = load("cc015c") else {
        unreachable!()
    };
    m.transit_operation.lrn = lrn.to_owned();
    m.customs_office_of_departure.reference_number = KZ_DEPARTURE.to_owned();
    m.customs_office_of_destination_declared.reference_number = GE_DESTINATION.to_owned();
    m.customs_office_of_transit_declared = transit_offices();
    m.customs_office_of_exit_for_transit_declared = exit_offices();
    m.holder_of_the_transit_procedure.identification_number = Some("KZ123456789012".to_owned());
    for g in &mut m.guarantee {
        g.guarantee_reference = vec![guarantee_reference()];
    }
    Message::CC015C(m)
}

fn cc013c(destination: &str) -> Message {
    let Message::CC013C(mut m) = load("cc013c") else {
        unreachable!()
    };
    m.transit_operation.mrn = Some(mrn().to_string());
    m.transit_operation.lrn = None;
    m.customs_office_of_departure.reference_number = KZ_DEPARTURE.to_owned();
    m.customs_office_of_destination_declared.reference_number = destination.to_owned();
    m.customs_office_of_transit_declared = transit_offices();
    m.customs_office_of_exit_for_transit_declared = exit_offices();
    for g in &mut m.guarantee {
        g.guarantee_reference = vec![guarantee_reference()];
    }
    Message::CC013C(m)
}

fn cc014c() -> Message {
    let Message::CC014C(mut m) = load("cc014c") else {
        unreachable!()
    };
    m.transit_operation.mrn = Some(mrn().to_string());
    m.customs_office_of_departure.reference_number = KZ_DEPARTURE.to_owned();
    Message::CC014C(m)
}

fn cc170c(lrn: &str) -> Message {
    let Message::CC170C(mut m) = load("cc170c") else {
        unreachable!()
    };
    m.transit_operation.lrn = lrn.to_owned();
    m.customs_office_of_departure.reference_number = KZ_DEPARTURE.to_owned();
    Message::CC170C(m)
}

fn cd205c(accepted: bool) -> Message {
    let Message::CD205C(mut m) = load("cd205c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    for g in &mut m.guarantee {
        for r in &mut g.guarantee_reference {
            r.grn = grn().to_string();
            r.accepted = if accepted {
                cats::Flag::V1
            } else {
                cats::Flag::V0
            };
            r.refusal_reason =
                (!accepted).then_some(cats::GuaranteeRefusalReasonCode::InsufficientBalance);
        }
    }
    Message::CD205C(m)
}

macro_rules! anticipated_record {
    ($name:ident, $kind:literal, $variant:ident) => {
        fn $name() -> Message {
            let Message::$variant(mut m) = load($kind) else {
                unreachable!()
            };
            m.transit_operation.mrn = mrn().to_string();
            m.customs_office_of_departure.reference_number = KZ_DEPARTURE.to_owned();
            m.customs_office_of_destination_declared.reference_number = GE_DESTINATION.to_owned();
            Message::$variant(m)
        }
    };
}
anticipated_record!(cd001c, "cd001c", CD001C);
anticipated_record!(cd050c, "cd050c", CD050C);
anticipated_record!(cd160c, "cd160c", CD160C);

fn cd168c(exit: &str) -> Message {
    let Message::CD168C(mut m) = load("cd168c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    m.customs_office_of_exit_for_transit_actual.reference_number = exit.to_owned();
    Message::CD168C(m)
}

fn cd118c(transit: &str) -> Message {
    let Message::CD118C(mut m) = load("cd118c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    m.customs_office_of_transit_actual.reference_number = transit.to_owned();
    Message::CD118C(m)
}

fn cd006c() -> Message {
    let Message::CD006C(mut m) = load("cd006c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    m.customs_office_of_destination_actual.reference_number = GE_DESTINATION.to_owned();
    Message::CD006C(m)
}

fn cd018c(code: &str) -> Message {
    let Message::CD018C(mut m) = load("cd018c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    m.control_result.code = code.to_owned();
    Message::CD018C(m)
}

fn cd010c() -> Message {
    let Message::CD010C(mut m) = load("cd010c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    Message::CD010C(m)
}

fn cc007c(simplified: bool) -> Message {
    let Message::CC007C(mut m) = load("cc007c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    m.transit_operation.simplified_procedure = if simplified {
        ncts::Flag::V1
    } else {
        ncts::Flag::V0
    };
    Message::CC007C(m)
}

fn cc044c(conform: bool) -> Message {
    let Message::CC044C(mut m) = load("cc044c") else {
        unreachable!()
    };
    m.transit_operation.mrn = mrn().to_string();
    let flag = if conform {
        ncts::Flag::V1
    } else {
        ncts::Flag::V0
    };
    m.unloading_remark.conform = flag;
    m.unloading_remark.unloading_completion = ncts::Flag::V1;
    Message::CC044C(m)
}

// ---------------------------------------------------------------------------------------------
// Events.

fn message(minute: i64, at: &str, role: Role, m: Message) -> Event {
    Event {
        at: t(minute),
        by: Actor::System,
        office: office(at),
        role,
        input: Input::Message(m),
    }
}

fn decision(minute: i64, at: &str, role: Role, d: Decision) -> Event {
    Event {
        at: t(minute),
        by: Actor::Officer {
            id: "officer-1".to_owned(),
        },
        office: office(at),
        role,
        input: Input::Decision(d),
    }
}

fn not_selected() -> Decision {
    Decision::Selection(Selection {
        selected: false,
        reason: "random sampling: not drawn".to_owned(),
    })
}

fn selected() -> Decision {
    Decision::Selection(Selection {
        selected: true,
        reason: "restricted goods HS 7304".to_owned(),
    })
}

fn control(outcome: ControlOutcome) -> Decision {
    Decision::ControlResult(ControlResult {
        outcome,
        remarks: Some(format!("{outcome:?}")),
    })
}

/// Applies `event` to `state` in place and returns the outputs.
fn run(state: &mut Option<Movement>, event: Event) -> Vec<Output> {
    let Step { movement, outputs } = lifecycle::apply(state.take(), &event);
    *state = movement;
    outputs
}

fn departure_phase(state: &Option<Movement>) -> DeparturePhase {
    state.as_ref().unwrap().departure.as_ref().unwrap().phase
}

fn rejection_code(output: &Output) -> Option<u16> {
    match output {
        Output::ToDeclarant(ExternalReply::Rejection(r))
        | Output::ToTraderAtDestination(DestinationReply::Rejection(r))
        | Output::ToHub(Common::FunctionalNack(r))
        | Output::ActionRefused(r) => Some(r.code.code()),
        _ => None,
    }
}

/// Departure at KZ000101 up to release (not selected, guarantee accepted).
fn released(kz: &mut Option<Movement>) -> Vec<Output> {
    run(
        kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    run(
        kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    run(
        kz,
        decision(2, KZ_DEPARTURE, Role::Departure, not_selected()),
    );
    run(kz, message(3, KZ_DEPARTURE, Role::Departure, cd205c(true)))
}

// ---------------------------------------------------------------------------------------------
// Journeys.

#[test]
fn full_journey_kz_az_ge() {
    let mut kz = None;
    let mut az = None;
    let mut ge = None;

    // Departure, KZ000101.
    let out = run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    assert_eq!(out, vec![Output::ToDeclarant(ExternalReply::PositiveAck)]);
    assert_eq!(departure_phase(&kz), DeparturePhase::Submitted);
    let out = run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    assert_eq!(
        out,
        vec![Output::ToDeclarant(ExternalReply::MrnAllocated {
            mrn: mrn()
        })]
    );
    let out = run(
        &mut kz,
        decision(2, KZ_DEPARTURE, Role::Departure, not_selected()),
    );
    assert_eq!(
        out,
        vec![Output::ToHub(Common::GuaranteeUse {
            grn: grn(),
            amount: Decimal::new(15000, 0),
            currency: "USD".to_owned()
        })]
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::GuaranteeRequested);
    let out = run(
        &mut kz,
        message(3, KZ_DEPARTURE, Role::Departure, cd205c(true)),
    );
    assert_eq!(
        out,
        vec![
            Output::ToDeclarant(ExternalReply::ReleaseForTransit),
            Output::ToHub(Common::AnticipatedArrival {
                destination: office(GE_DESTINATION)
            }),
            Output::ToHub(Common::AnticipatedTransit {
                office: office(AZ_ENTRY)
            }),
            Output::ToHub(Common::AnticipatedTransit {
                office: office(GE_ENTRY)
            }),
            Output::ToHub(Common::AnticipatedExit {
                office: office(KZ_DEPARTURE)
            }),
            Output::ToHub(Common::AnticipatedExit {
                office: office(AZ_EXIT)
            }),
        ]
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::Released);

    // The hub delivers the records: AXR back to KZ, ATR and AXR to AZ, ATR and AAR to GE.
    assert!(run(&mut kz, message(4, KZ_DEPARTURE, Role::Exit, cd160c())).is_empty());
    assert!(run(&mut az, message(4, AZ_ENTRY, Role::Transit, cd050c())).is_empty());
    assert!(run(&mut az, message(4, AZ_EXIT, Role::Exit, cd160c())).is_empty());
    assert!(run(&mut ge, message(4, GE_ENTRY, Role::Transit, cd050c())).is_empty());
    assert!(
        run(
            &mut ge,
            message(4, GE_DESTINATION, Role::Destination, cd001c())
        )
        .is_empty()
    );
    assert_eq!(az.as_ref().unwrap().mrn, Some(mrn()));

    // Exit at Aktau port (KZ000101).
    run(
        &mut kz,
        decision(10, KZ_DEPARTURE, Role::Exit, Decision::RecordPresentation),
    );
    run(
        &mut kz,
        decision(11, KZ_DEPARTURE, Role::Exit, not_selected()),
    );
    let out = run(
        &mut kz,
        decision(12, KZ_DEPARTURE, Role::Exit, Decision::RecordExit),
    );
    assert_eq!(
        out,
        vec![Output::ToHub(Common::NotificationOfExit {
            exit: office(KZ_DEPARTURE),
            departure: office(KZ_DEPARTURE),
            passed_at: t(12)
        })]
    );
    assert!(
        run(
            &mut kz,
            message(13, KZ_DEPARTURE, Role::Departure, cd168c(KZ_DEPARTURE))
        )
        .is_empty()
    );

    // Entry at Alat port (AZ000101).
    run(
        &mut az,
        decision(60, AZ_ENTRY, Role::Transit, Decision::RecordPresentation),
    );
    let out = run(
        &mut az,
        decision(61, AZ_ENTRY, Role::Transit, Decision::RecordEntry),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToHub(Common::NotificationCrossingFrontier { transit, .. })] if *transit == office(AZ_ENTRY)
    ));
    run(
        &mut kz,
        message(62, KZ_DEPARTURE, Role::Departure, cd118c(AZ_ENTRY)),
    );

    // Exit at Red Bridge (AZ000201), selected and controlled.
    run(
        &mut az,
        decision(100, AZ_EXIT, Role::Exit, Decision::RecordPresentation),
    );
    run(&mut az, decision(101, AZ_EXIT, Role::Exit, selected()));
    assert_eq!(
        az.as_ref().unwrap().exits[&office(AZ_EXIT)].phase,
        BorderPhase::UnderControl
    );
    run(
        &mut az,
        decision(
            102,
            AZ_EXIT,
            Role::Exit,
            control(ControlOutcome::Satisfactory),
        ),
    );
    let out = run(
        &mut az,
        decision(103, AZ_EXIT, Role::Exit, Decision::RecordExit),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToHub(Common::NotificationOfExit { .. })]
    ));
    run(
        &mut kz,
        message(104, KZ_DEPARTURE, Role::Departure, cd168c(AZ_EXIT)),
    );

    // Entry at Red Bridge (GE000101).
    run(
        &mut ge,
        decision(110, GE_ENTRY, Role::Transit, Decision::RecordPresentation),
    );
    run(
        &mut ge,
        decision(111, GE_ENTRY, Role::Transit, not_selected()),
    );
    let out = run(
        &mut ge,
        decision(112, GE_ENTRY, Role::Transit, Decision::RecordEntry),
    );
    assert_eq!(out.len(), 1);
    run(
        &mut kz,
        message(113, KZ_DEPARTURE, Role::Departure, cd118c(GE_ENTRY)),
    );

    // Destination, Poti (GE000201).
    let out = run(
        &mut ge,
        message(200, GE_DESTINATION, Role::Destination, cc007c(false)),
    );
    assert_eq!(
        out,
        vec![Output::ToHub(Common::ArrivalAdvice {
            destination: office(GE_DESTINATION),
            departure: office(KZ_DEPARTURE),
            arrived_at: t(200)
        })]
    );
    run(
        &mut kz,
        message(201, KZ_DEPARTURE, Role::Departure, cd006c()),
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::Arrived);
    run(
        &mut ge,
        decision(202, GE_DESTINATION, Role::Destination, not_selected()),
    );
    let out = run(
        &mut ge,
        decision(
            203,
            GE_DESTINATION,
            Role::Destination,
            Decision::ReleaseGoods,
        ),
    );
    assert_eq!(
        out,
        vec![
            Output::ToTraderAtDestination(DestinationReply::GoodsRelease {
                outcome: ControlOutcome::Satisfactory
            }),
            Output::ToHub(Common::DestinationControlResults {
                destination: office(GE_DESTINATION),
                departure: office(KZ_DEPARTURE),
                outcome: ControlOutcome::Satisfactory,
                remarks: None
            }),
        ]
    );

    // Back at departure: control results, write-off.
    assert!(
        run(
            &mut kz,
            message(204, KZ_DEPARTURE, Role::Departure, cd018c("A1"))
        )
        .is_empty()
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::ControlResultsReceived);
    let out = run(
        &mut kz,
        decision(205, KZ_DEPARTURE, Role::Departure, Decision::WriteOff),
    );
    assert_eq!(
        out,
        vec![
            Output::ToDeclarant(ExternalReply::WriteOff),
            Output::ToHub(Common::GuaranteeCredit { grn: grn() }),
        ]
    );

    let kz = kz.unwrap();
    let departure = kz.departure.as_ref().unwrap();
    assert_eq!(departure.phase, DeparturePhase::WrittenOff);
    assert_eq!(departure.passages.len(), 4);
    assert!(departure.reserved.is_empty());
    assert_eq!(
        kz.exits[&office(KZ_DEPARTURE)].phase,
        BorderPhase::Proceeded
    );
    let az = az.unwrap();
    assert_eq!(az.transits[&office(AZ_ENTRY)].phase, BorderPhase::Proceeded);
    assert_eq!(az.exits[&office(AZ_EXIT)].phase, BorderPhase::Proceeded);
    let ge = ge.unwrap();
    assert_eq!(ge.transits[&office(GE_ENTRY)].phase, BorderPhase::Proceeded);
    assert_eq!(
        ge.destination.as_ref().unwrap().phase,
        DestinationPhase::GoodsReleased
    );
}

#[test]
fn rejected_declaration() {
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    let out = run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::RejectDeclaration {
                code: FunctionalError::Rule,
                pointer: "/CC015C/HolderOfTheTransitProcedure/identificationNumber".to_owned(),
                reason: "holder is not an authorised trader".to_owned(),
            },
        ),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::Rejection(r))] if r.code == FunctionalError::Rule && r.rejected == "CC015C"
    ));
    assert_eq!(departure_phase(&kz), DeparturePhase::Rejected);
    let out = run(
        &mut kz,
        decision(
            2,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    assert_eq!(
        out.iter().map(rejection_code).collect::<Vec<_>>(),
        vec![Some(92)]
    );
    assert!(matches!(out[0], Output::ActionRefused(_)));
}

#[test]
fn major_discrepancy_at_destination() {
    let mut kz = None;
    let mut ge = None;
    released(&mut kz);
    run(
        &mut ge,
        message(4, GE_DESTINATION, Role::Destination, cd001c()),
    );
    run(
        &mut ge,
        message(200, GE_DESTINATION, Role::Destination, cc007c(false)),
    );
    run(
        &mut kz,
        message(201, KZ_DEPARTURE, Role::Departure, cd006c()),
    );
    run(
        &mut ge,
        decision(202, GE_DESTINATION, Role::Destination, selected()),
    );
    assert_eq!(
        ge.as_ref().unwrap().destination.as_ref().unwrap().phase,
        DestinationPhase::UnderControl
    );
    // Release before the control result is out of sequence.
    let out = run(
        &mut ge,
        decision(
            203,
            GE_DESTINATION,
            Role::Destination,
            Decision::ReleaseGoods,
        ),
    );
    assert_eq!(rejection_code(&out[0]), Some(92));
    run(
        &mut ge,
        decision(
            204,
            GE_DESTINATION,
            Role::Destination,
            control(ControlOutcome::MajorDiscrepancies),
        ),
    );
    let out = run(
        &mut ge,
        decision(
            205,
            GE_DESTINATION,
            Role::Destination,
            Decision::ReleaseGoods,
        ),
    );
    assert!(
        out.contains(&Output::ToHub(Common::DestinationControlResults {
            destination: office(GE_DESTINATION),
            departure: office(KZ_DEPARTURE),
            outcome: ControlOutcome::MajorDiscrepancies,
            remarks: Some("MajorDiscrepancies".to_owned()),
        }))
    );
    let Message::CD018C(mut m) = cd018c("B1") else {
        unreachable!()
    };
    m.control_result.text = Some("two pallets missing".to_owned());
    let out = run(
        &mut kz,
        message(206, KZ_DEPARTURE, Role::Departure, Message::CD018C(m)),
    );
    assert_eq!(
        out,
        vec![Output::ToDeclarant(ExternalReply::Discrepancies {
            text: Some("two pallets missing".to_owned())
        })]
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::Discrepancies);
    run(
        &mut kz,
        decision(300, KZ_DEPARTURE, Role::Departure, Decision::WriteOff),
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::WrittenOff);
}

#[test]
fn simplified_procedure_at_destination() {
    let mut ge = None;
    run(
        &mut ge,
        message(4, GE_DESTINATION, Role::Destination, cd001c()),
    );
    run(
        &mut ge,
        message(200, GE_DESTINATION, Role::Destination, cc007c(true)),
    );
    let out = run(
        &mut ge,
        decision(201, GE_DESTINATION, Role::Destination, not_selected()),
    );
    assert_eq!(
        out,
        vec![Output::ToTraderAtDestination(
            DestinationReply::UnloadingPermission
        )]
    );
    assert!(
        run(
            &mut ge,
            message(202, GE_DESTINATION, Role::Destination, cc044c(true))
        )
        .is_empty()
    );
    let out = run(
        &mut ge,
        decision(
            203,
            GE_DESTINATION,
            Role::Destination,
            Decision::ReleaseGoods,
        ),
    );
    assert_eq!(out.len(), 2);
    // A second CC044C after release: CC057C with 92.
    let out = run(
        &mut ge,
        message(204, GE_DESTINATION, Role::Destination, cc044c(true)),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToTraderAtDestination(DestinationReply::Rejection(r))] if r.code.code() == 92
    ));
}

#[test]
fn invalidation_before_release() {
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    let out = run(&mut kz, message(2, KZ_DEPARTURE, Role::Departure, cc014c()));
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::InvalidationDecision {
            initiated_by_customs: false,
            ..
        })]
    ));
    assert_eq!(departure_phase(&kz), DeparturePhase::Invalidated);
    let out = run(
        &mut kz,
        decision(3, KZ_DEPARTURE, Role::Departure, not_selected()),
    );
    assert_eq!(rejection_code(&out[0]), Some(92));
}

#[test]
fn invalidation_request_after_release_is_out_of_sequence() {
    let mut kz = None;
    released(&mut kz);
    let before = kz.clone();
    let out = run(&mut kz, message(5, KZ_DEPARTURE, Role::Departure, cc014c()));
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::Rejection(r))]
            if r.code == FunctionalError::OutOfSequence && r.pointer == "/CC014C"
    ));
    assert_eq!(kz, before);
}

#[test]
fn invalidation_by_customs_after_release_cancels_everywhere() {
    let mut kz = None;
    released(&mut kz);
    let out = run(
        &mut kz,
        decision(
            5,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::Invalidate {
                justification: Some("declared in error".to_owned()),
            },
        ),
    );
    assert_eq!(
        out,
        vec![
            Output::ToHub(Common::Cancellation {
                offices: vec![
                    office(KZ_DEPARTURE),
                    office(AZ_EXIT),
                    office(AZ_ENTRY),
                    office(GE_ENTRY),
                    office(GE_DESTINATION)
                ]
            }),
            Output::ToHub(Common::GuaranteeUseCancellation { grn: grn() }),
            Output::ToDeclarant(ExternalReply::InvalidationDecision {
                initiated_by_customs: true,
                justification: Some("declared in error".to_owned())
            }),
        ]
    );
    // At destination, the AAR is cancelled.
    let mut ge = None;
    run(
        &mut ge,
        message(4, GE_DESTINATION, Role::Destination, cd001c()),
    );
    run(
        &mut ge,
        message(6, GE_DESTINATION, Role::Destination, cd010c()),
    );
    assert_eq!(
        ge.as_ref().unwrap().destination.as_ref().unwrap().phase,
        DestinationPhase::Cancelled
    );
}

#[test]
fn amendment_before_release() {
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    let out = run(
        &mut kz,
        message(2, KZ_DEPARTURE, Role::Departure, cc013c(GE_TBILISI)),
    );
    assert_eq!(
        out,
        vec![Output::ToDeclarant(ExternalReply::AmendmentAccepted)]
    );
    let movement = kz.as_ref().unwrap();
    assert_eq!(movement.declaration.destination, office(GE_TBILISI));
    assert_eq!(movement.declaration.lrn.as_ref().unwrap().as_str(), "LRN-1");
    assert_eq!(departure_phase(&kz), DeparturePhase::Accepted);
    run(
        &mut kz,
        decision(3, KZ_DEPARTURE, Role::Departure, not_selected()),
    );
    let out = run(
        &mut kz,
        message(4, KZ_DEPARTURE, Role::Departure, cd205c(true)),
    );
    assert!(out.contains(&Output::ToHub(Common::AnticipatedArrival {
        destination: office(GE_TBILISI)
    })));
    // After release an amendment is out of sequence.
    let out = run(
        &mut kz,
        message(5, KZ_DEPARTURE, Role::Departure, cc013c(GE_DESTINATION)),
    );
    assert_eq!(rejection_code(&out[0]), Some(92));
}

#[test]
fn guarantee_refused_then_no_release() {
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    run(
        &mut kz,
        decision(2, KZ_DEPARTURE, Role::Departure, not_selected()),
    );
    let out = run(
        &mut kz,
        message(3, KZ_DEPARTURE, Role::Departure, cd205c(false)),
    );
    assert_eq!(
        out,
        vec![Output::ToDeclarant(ExternalReply::GuaranteeNotValid {
            refused: vec![RefusedGuarantee {
                grn: grn(),
                reason: "G09".to_owned()
            }]
        })]
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::GuaranteeRefused);
    let out = run(
        &mut kz,
        decision(
            4,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::RefuseRelease {
                motivation: "02".to_owned(),
                text: "guarantee not valid within the time limit".to_owned(),
            },
        ),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::NoRelease { .. })]
    ));
    assert_eq!(departure_phase(&kz), DeparturePhase::NotReleased);
}

#[test]
fn guarantee_refused_then_amended_and_released() {
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    run(
        &mut kz,
        decision(2, KZ_DEPARTURE, Role::Departure, not_selected()),
    );
    run(
        &mut kz,
        message(3, KZ_DEPARTURE, Role::Departure, cd205c(false)),
    );
    let out = run(
        &mut kz,
        message(4, KZ_DEPARTURE, Role::Departure, cc013c(GE_DESTINATION)),
    );
    assert_eq!(out.len(), 2);
    assert!(matches!(out[1], Output::ToHub(Common::GuaranteeUse { .. })));
    assert_eq!(departure_phase(&kz), DeparturePhase::GuaranteeRequested);
    run(
        &mut kz,
        message(5, KZ_DEPARTURE, Role::Departure, cd205c(true)),
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::Released);
}

#[test]
fn control_at_departure_with_major_discrepancy_refuses_release() {
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    let out = run(
        &mut kz,
        decision(2, KZ_DEPARTURE, Role::Departure, selected()),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::ControlDecision { notification_type, .. })] if notification_type == "0"
    ));
    let out = run(
        &mut kz,
        decision(
            3,
            KZ_DEPARTURE,
            Role::Departure,
            control(ControlOutcome::MajorDiscrepancies),
        ),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::NoRelease { motivation, .. })] if motivation == "01"
    ));
}

#[test]
fn pre_lodged_declaration_waits_for_presentation() {
    let Message::CC015C(mut m) = cc015c("LRN-PRE") else {
        unreachable!()
    };
    m.transit_operation.additional_declaration_type = "D".to_owned();
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, Message::CC015C(m)),
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::PreLodged);
    let out = run(
        &mut kz,
        decision(
            1,
            KZ_DEPARTURE,
            Role::Departure,
            Decision::AcceptDeclaration { mrn: mrn() },
        ),
    );
    assert_eq!(rejection_code(&out[0]), Some(92));
    run(
        &mut kz,
        message(2, KZ_DEPARTURE, Role::Departure, cc170c("LRN-PRE")),
    );
    assert_eq!(departure_phase(&kz), DeparturePhase::Submitted);
}

#[test]
fn out_of_sequence_messages_get_92_where_they_came_from() {
    let mut kz = None;
    run(
        &mut kz,
        message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
    );
    let before = kz.clone();
    // A CD message before release: CD906C to the sender.
    let out = run(&mut kz, message(1, KZ_DEPARTURE, Role::Departure, cd006c()));
    assert!(matches!(
        out.as_slice(),
        [Output::ToHub(Common::FunctionalNack(r))] if r.code.code() == 92 && r.rejected == "CD006C"
    ));
    // A declarant message: CC056C.
    let out = run(
        &mut kz,
        message(2, KZ_DEPARTURE, Role::Departure, cc170c("LRN-1")),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::Rejection(r))] if r.code.code() == 92
    ));
    // Neither changed anything, not even the count of applied events.
    assert_eq!(kz, before);
    // An event addressed to a role this node does not hold.
    let out = run(
        &mut kz,
        decision(3, GE_DESTINATION, Role::Destination, Decision::ReleaseGoods),
    );
    assert_eq!(rejection_code(&out[0]), Some(92));
}

#[test]
fn unknown_mrn_is_90() {
    let step = lifecycle::apply(
        None,
        &message(0, KZ_DEPARTURE, Role::Departure, cd168c(AZ_EXIT)),
    );
    assert_eq!(step.movement, None);
    assert!(matches!(
        step.outputs.as_slice(),
        [Output::ToHub(Common::FunctionalNack(r))]
            if r.code == FunctionalError::UnknownMrn && r.pointer == "/CD168C/TransitOperation/MRN"
    ));
    let event = message(0, GE_DESTINATION, Role::Destination, cc007c(false));
    let step = lifecycle::apply(None, &event);
    assert_eq!(step.outputs, vec![lifecycle::unknown_mrn(&event)]);
    assert!(matches!(
        step.outputs.as_slice(),
        [Output::ToTraderAtDestination(DestinationReply::Rejection(r))] if r.code.code() == 90
    ));
}

#[test]
fn invalid_mrn_is_93() {
    let Message::CC007C(mut m) = cc007c(false) else {
        unreachable!()
    };
    let good = mrn().to_string();
    let last = good.chars().last().unwrap().to_digit(10).unwrap();
    m.transit_operation.mrn = format!("{}{}", &good[..17], (last + 1) % 10);
    let Reference::Invalid(r) = lifecycle::reference(&Message::CC007C(m)) else {
        panic!("expected an invalid reference")
    };
    assert_eq!(r.code.code(), 93);
    assert_eq!(r.pointer, "/CC007C/TransitOperation/MRN");
    assert_eq!(lifecycle::reference(&cd006c()), Reference::Mrn(mrn()));
}

#[test]
fn duplicate_declaration_is_one_movement() {
    let first = cc015c("LRN-1");
    let again = cc015c("LRN-1");
    let (Reference::Declaration(k1), Reference::Declaration(k2)) =
        (lifecycle::reference(&first), lifecycle::reference(&again))
    else {
        panic!("CC015C is referenced by its declaration key")
    };
    assert_eq!(k1, k2);
    let mut kz = None;
    run(&mut kz, message(0, KZ_DEPARTURE, Role::Departure, first));
    assert_eq!(kz.as_ref().unwrap().declaration.key(), Some(k1));
    let before = kz.clone();
    let out = run(&mut kz, message(1, KZ_DEPARTURE, Role::Departure, again));
    assert!(matches!(
        out.as_slice(),
        [Output::ToDeclarant(ExternalReply::Rejection(r))] if r.code.code() == 26
    ));
    assert_eq!(kz, before);
}

#[test]
fn functional_error_codes_are_pinned() {
    let pinned = [
        (FunctionalError::CodeList, 12),
        (FunctionalError::Rule, 14),
        (FunctionalError::Duplicate, 26),
        (FunctionalError::UnknownMrn, 90),
        (FunctionalError::OutOfSequence, 92),
        (FunctionalError::InvalidMrn, 93),
    ];
    for (error, code) in pinned {
        assert_eq!(error.code(), code, "{error:?}");
    }
    assert_eq!(
        ControlOutcome::from_code("A1"),
        ControlOutcome::Satisfactory
    );
    assert_eq!(
        ControlOutcome::from_code("A4"),
        ControlOutcome::MinorDiscrepancies
    );
    assert_eq!(
        ControlOutcome::from_code("B1"),
        ControlOutcome::MajorDiscrepancies
    );
}

#[test]
fn digest_is_stable_and_state_round_trips() {
    let mut kz = None;
    released(&mut kz);
    let movement = kz.unwrap();
    let json = serde_json::to_string(&movement).unwrap();
    let back: Movement = serde_json::from_str(&json).unwrap();
    assert_eq!(back, movement);
    assert_eq!(back.digest(), movement.digest());
    assert_eq!(movement.digest_hex().len(), 64);
    let mut other = movement.clone();
    other.applied += 1;
    assert_ne!(other.digest(), movement.digest());
}

// ---------------------------------------------------------------------------------------------
// Properties.

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Every kind of event the life cycle knows, at the pilot offices, in fit and unfit places.
    fn pool() -> Vec<(i64, Event)> {
        let d = Role::Departure;
        let cases: Vec<Event> = vec![
            message(0, KZ_DEPARTURE, d, cc015c("LRN-1")),
            message(0, KZ_DEPARTURE, d, cc170c("LRN-1")),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                Decision::AcceptDeclaration { mrn: mrn() },
            ),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                Decision::RejectDeclaration {
                    code: FunctionalError::Rule,
                    pointer: String::new(),
                    reason: "no".to_owned(),
                },
            ),
            decision(0, KZ_DEPARTURE, d, not_selected()),
            decision(0, KZ_DEPARTURE, d, selected()),
            decision(0, KZ_DEPARTURE, d, control(ControlOutcome::Satisfactory)),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                control(ControlOutcome::MajorDiscrepancies),
            ),
            message(0, KZ_DEPARTURE, d, cd205c(true)),
            message(0, KZ_DEPARTURE, d, cd205c(false)),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                Decision::GuaranteeResult { refused: vec![] },
            ),
            message(0, KZ_DEPARTURE, d, cc013c(GE_TBILISI)),
            message(0, KZ_DEPARTURE, d, cc014c()),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                Decision::Invalidate {
                    justification: None,
                },
            ),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                Decision::RefuseRelease {
                    motivation: "03".to_owned(),
                    text: "risk".to_owned(),
                },
            ),
            message(0, KZ_DEPARTURE, d, cd168c(KZ_DEPARTURE)),
            message(0, KZ_DEPARTURE, d, cd118c(AZ_ENTRY)),
            message(0, KZ_DEPARTURE, d, cd006c()),
            message(0, KZ_DEPARTURE, d, cd018c("A1")),
            message(0, KZ_DEPARTURE, d, cd018c("B1")),
            decision(0, KZ_DEPARTURE, d, Decision::WriteOff),
            message(0, KZ_DEPARTURE, Role::Exit, cd160c()),
            decision(0, KZ_DEPARTURE, Role::Exit, Decision::RecordPresentation),
            decision(0, KZ_DEPARTURE, Role::Exit, selected()),
            decision(
                0,
                KZ_DEPARTURE,
                Role::Exit,
                control(ControlOutcome::MinorDiscrepancies),
            ),
            decision(0, KZ_DEPARTURE, Role::Exit, Decision::RecordExit),
            decision(0, KZ_DEPARTURE, Role::Exit, Decision::RecordEntry),
            message(0, AZ_ENTRY, Role::Transit, cd050c()),
            decision(0, AZ_ENTRY, Role::Transit, Decision::RecordPresentation),
            decision(0, AZ_ENTRY, Role::Transit, not_selected()),
            decision(0, AZ_ENTRY, Role::Transit, Decision::RecordEntry),
            message(0, AZ_ENTRY, Role::Transit, cd010c()),
            message(0, GE_DESTINATION, Role::Destination, cd001c()),
            message(0, GE_DESTINATION, Role::Destination, cc007c(false)),
            message(0, GE_DESTINATION, Role::Destination, cc007c(true)),
            decision(
                0,
                GE_DESTINATION,
                Role::Destination,
                Decision::RecordArrival { simplified: false },
            ),
            decision(0, GE_DESTINATION, Role::Destination, selected()),
            decision(0, GE_DESTINATION, Role::Destination, not_selected()),
            message(0, GE_DESTINATION, Role::Destination, cc044c(true)),
            message(0, GE_DESTINATION, Role::Destination, cc044c(false)),
            decision(
                0,
                GE_DESTINATION,
                Role::Destination,
                control(ControlOutcome::MajorDiscrepancies),
            ),
            decision(0, GE_DESTINATION, Role::Destination, Decision::ReleaseGoods),
            message(0, GE_DESTINATION, Role::Destination, cd010c()),
            message(0, GE_TBILISI, Role::Destination, cc007c(false)),
        ];
        cases
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i as i64, e))
            .collect()
    }

    fn events(picks: &[usize]) -> Vec<Event> {
        let pool = pool();
        picks
            .iter()
            .enumerate()
            .map(|(n, pick)| {
                let (_, mut e) = pool[pick % pool.len()].clone();
                e.at = t(n as i64);
                e
            })
            .collect()
    }

    fn fold(events: &[Event]) -> (Vec<Option<Movement>>, Vec<Vec<Output>>) {
        let mut states = Vec::new();
        let mut outputs = Vec::new();
        let mut state = None;
        for e in events {
            let step = lifecycle::apply(state, e);
            states.push(step.movement.clone());
            outputs.push(step.outputs);
            state = step.movement;
        }
        (states, outputs)
    }

    /// The whole journey as seen by one node holding every office, in order: a prefix of it
    /// followed by random events reaches the deep phases that random events alone rarely do.
    pub(super) fn journey() -> Vec<Event> {
        let d = Role::Departure;
        vec![
            message(0, KZ_DEPARTURE, d, cc015c("LRN-1")),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                Decision::AcceptDeclaration { mrn: mrn() },
            ),
            decision(0, KZ_DEPARTURE, d, selected()),
            decision(
                0,
                KZ_DEPARTURE,
                d,
                control(ControlOutcome::MinorDiscrepancies),
            ),
            message(0, KZ_DEPARTURE, d, cd205c(true)),
            message(0, KZ_DEPARTURE, Role::Exit, cd160c()),
            message(0, AZ_ENTRY, Role::Transit, cd050c()),
            message(0, GE_DESTINATION, Role::Destination, cd001c()),
            decision(0, KZ_DEPARTURE, Role::Exit, Decision::RecordPresentation),
            decision(0, KZ_DEPARTURE, Role::Exit, Decision::RecordExit),
            message(0, KZ_DEPARTURE, d, cd168c(KZ_DEPARTURE)),
            decision(0, AZ_ENTRY, Role::Transit, Decision::RecordPresentation),
            decision(0, AZ_ENTRY, Role::Transit, Decision::RecordEntry),
            message(0, KZ_DEPARTURE, d, cd118c(AZ_ENTRY)),
            message(0, GE_DESTINATION, Role::Destination, cc007c(true)),
            message(0, KZ_DEPARTURE, d, cd006c()),
            decision(0, GE_DESTINATION, Role::Destination, not_selected()),
            message(0, GE_DESTINATION, Role::Destination, cc044c(false)),
            decision(
                0,
                GE_DESTINATION,
                Role::Destination,
                control(ControlOutcome::MajorDiscrepancies),
            ),
            decision(0, GE_DESTINATION, Role::Destination, Decision::ReleaseGoods),
            message(0, KZ_DEPARTURE, d, cd018c("B1")),
            decision(0, KZ_DEPARTURE, d, Decision::WriteOff),
        ]
    }

    fn guided(prefix: usize, picks: &[usize]) -> Vec<Event> {
        let mut all: Vec<Event> = journey().into_iter().take(prefix).collect();
        all.extend(events(picks));
        for (n, e) in all.iter_mut().enumerate() {
            e.at = t(n as i64);
        }
        all
    }

    /// Checks the three properties on one sequence of events.
    fn check(events: &[Event]) -> Result<(), TestCaseError> {
        let (s1, o1) = fold(events);
        let (s2, o2) = fold(events);
        prop_assert_eq!(&s1, &s2);
        prop_assert_eq!(&o1, &o2);
        let mut state: Option<Movement> = None;
        for (e, next) in events.iter().zip(&s1) {
            if let Some(b) = &state {
                let after = next.as_ref().expect("a held movement is never dropped");
                for (role, office, rank) in b.progress() {
                    let later = after
                        .progress()
                        .into_iter()
                        .find(|(r, o, _)| *r == role && *o == office);
                    prop_assert!(
                        later.is_some_and(|(_, _, l)| l >= rank),
                        "{:?} at {} went back on {:?}",
                        role,
                        office,
                        e
                    );
                }
            }
            state = next.clone();
        }
        Ok(())
    }

    #[test]
    fn the_journey_alone_ends_written_off() {
        let (states, outputs) = fold(&guided(usize::MAX, &[]));
        for (n, out) in outputs.iter().enumerate() {
            assert!(
                out.iter().all(|o| rejection_code(o).is_none()),
                "step {n}: {out:?}"
            );
        }
        let last = states.last().unwrap().as_ref().unwrap();
        assert_eq!(
            last.departure.as_ref().unwrap().phase,
            DeparturePhase::WrittenOff
        );
        assert_eq!(
            last.destination.as_ref().unwrap().phase,
            DestinationPhase::GoodsReleased
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn journey_then_noise(prefix in 0usize..23, picks in proptest::collection::vec(0usize..64, 0..32)) {
            check(&guided(prefix, &picks))?;
        }

        #[test]
        fn replay_is_deterministic(picks in proptest::collection::vec(0usize..64, 0..48)) {
            let events = events(&picks);
            let (s1, o1) = fold(&events);
            let (s2, o2) = fold(&events);
            prop_assert_eq!(&s1, &s2);
            prop_assert_eq!(&o1, &o2);
            let d1: Vec<_> = s1.iter().map(|s| s.as_ref().map(Movement::digest)).collect();
            let d2: Vec<_> = s2.iter().map(|s| s.as_ref().map(Movement::digest)).collect();
            prop_assert_eq!(d1, d2);
            let replayed = lifecycle::replay(None, &events);
            prop_assert_eq!(replayed.movement, s1.last().cloned().flatten());
            prop_assert_eq!(replayed.outputs, o1.concat());
        }

        #[test]
        fn phases_only_move_forward(picks in proptest::collection::vec(0usize..64, 0..48)) {
            let events = events(&picks);
            let mut state: Option<Movement> = None;
            for e in &events {
                let before = state.clone();
                let step = lifecycle::apply(state, e);
                if let Some(b) = &before {
                    let after = step.movement.as_ref().expect("a held movement is never dropped");
                    let rejected = after.applied == b.applied;
                    if rejected {
                        prop_assert_eq!(b, after);
                        prop_assert_eq!(step.outputs.len(), 1);
                        prop_assert!(rejection_code(&step.outputs[0]).is_some());
                    } else {
                        prop_assert_eq!(after.applied, b.applied + 1);
                    }
                    let now = after.progress();
                    for (role, office, rank) in b.progress() {
                        let later = now.iter().find(|(r, o, _)| *r == role && *o == office);
                        prop_assert!(later.is_some(), "{role:?} at {office} disappeared");
                        let (_, _, later_rank) = later.unwrap();
                        prop_assert!(*later_rank >= rank, "{role:?} at {office} went back: {rank} -> {later_rank} on {e:?}");
                    }
                }
                state = step.movement;
            }
        }

        #[test]
        fn state_round_trips_through_serde(picks in proptest::collection::vec(0usize..64, 0..32)) {
            let events = events(&picks);
            if let Some(m) = lifecycle::replay(None, &events).movement {
                let back: Movement = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
                prop_assert_eq!(back.digest(), m.digest());
                prop_assert_eq!(back, m);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Composed messages: each one encodes, and decodes strictly back to itself.

mod composed {
    use super::*;
    use message_catalog::encode;
    use message_catalog::lifecycle::compose::{self, Header};

    fn header() -> Header {
        Header {
            sender: "NTA.KZ".to_owned(),
            recipient: "NTA.GE".to_owned(),
            prepared_at: t(30),
            message_id: "CATS-KZ-000001".to_owned(),
            correlation: Some("CC015C-MESS-0001".to_owned()),
        }
    }

    fn round_trip(message: Message) {
        let bytes = encode(&message);
        let back = decode(&bytes, &Limits::default()).unwrap_or_else(|e| {
            panic!(
                "{} does not decode: {e:?}\n{}",
                message.message_type(),
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(back, message, "{}", message.message_type());
    }

    fn declaration() -> Box<ncts::CC015CType> {
        let Message::CC015C(m) = cc015c("LRN-1") else {
            unreachable!()
        };
        m
    }

    #[test]
    fn departure_replies() {
        let h = header();
        let d = declaration();
        let mrn = mrn();
        let day = t(30).date_naive();
        let rejection = lifecycle::Rejection {
            rejected: "CC014C".to_owned(),
            code: FunctionalError::OutOfSequence,
            pointer: "/CC014C".to_owned(),
            reason: "invalidation request after release".to_owned(),
        };
        round_trip(Message::CC928C(Box::new(compose::positive_ack(&h, &d))));
        round_trip(Message::CC028C(Box::new(compose::mrn_allocated(
            &h, &d, &mrn, day,
        ))));
        let cc056c = compose::departure_rejection(&h, &d, Some(&mrn), &rejection, t(31));
        assert_eq!(cc056c.transit_operation.business_rejection_type, "014");
        assert_eq!(cc056c.transit_operation.rejection_code, "92");
        round_trip(Message::CC056C(Box::new(cc056c)));
        round_trip(Message::CC056C(Box::new(compose::departure_rejection(
            &h,
            &d,
            None,
            &rejection,
            t(31),
        ))));
        round_trip(Message::CC060C(Box::new(compose::control_decision(
            &h,
            &d,
            Some(&mrn),
            "0",
            t(32),
        ))));
        round_trip(Message::CC004C(Box::new(compose::amendment_accepted(
            &h,
            &d,
            Some(&mrn),
            t(33),
            t(34),
        ))));
        round_trip(Message::CC009C(Box::new(compose::invalidation_decision(
            &h,
            &d,
            Some(&mrn),
            true,
            Some("declared in error"),
            t(35),
        ))));
        round_trip(Message::CC051C(Box::new(compose::no_release(
            &h,
            &d,
            &mrn,
            t(0),
            "01",
            "control results not satisfactory",
        ))));
        round_trip(Message::CC055C(Box::new(compose::guarantee_not_valid(
            &h,
            &d,
            &mrn,
            day,
            &[RefusedGuarantee {
                grn: grn(),
                reason: "G09".to_owned(),
            }],
        ))));
        round_trip(Message::CC019C(Box::new(compose::discrepancies(
            &h,
            &d,
            &mrn,
            day,
            Some("two pallets missing"),
        ))));
        round_trip(Message::CC045C(Box::new(compose::write_off(
            &h, &d, &mrn, day,
        ))));
    }

    #[test]
    fn destination_replies() {
        let h = header();
        let day = t(30).date_naive();
        let poti = office(GE_DESTINATION);
        round_trip(Message::CC025C(Box::new(compose::goods_release(
            &h,
            &mrn(),
            &poti,
            "GE123456789",
            day,
        ))));
        let rejection = lifecycle::Rejection {
            rejected: "CC044C".to_owned(),
            code: FunctionalError::OutOfSequence,
            pointer: "/CC044C".to_owned(),
            reason: "unloading remarks without unloading permission".to_owned(),
        };
        let cc057c = compose::destination_rejection(
            &h,
            mrn().as_str(),
            &poti,
            "GE123456789",
            &rejection,
            t(31),
        );
        assert_eq!(cc057c.transit_operation.business_rejection_type, "044");
        round_trip(Message::CC057C(Box::new(cc057c)));
    }

    #[test]
    fn common_domain_messages() {
        let h = header();
        let mrn = mrn();
        let kz = office(KZ_DEPARTURE);
        round_trip(Message::CD168C(Box::new(compose::notification_of_exit(
            &h,
            &mrn,
            &kz,
            &office(AZ_EXIT),
            t(40),
        ))));
        round_trip(Message::CD118C(Box::new(
            compose::notification_crossing_frontier(&h, &mrn, &kz, &office(AZ_ENTRY), t(41)),
        )));
        round_trip(Message::CD006C(Box::new(compose::arrival_advice(
            &h,
            &mrn,
            &kz,
            &office(GE_DESTINATION),
            t(42),
        ))));
        round_trip(Message::CD018C(Box::new(
            compose::destination_control_results(
                &h,
                &mrn,
                &kz,
                &office(GE_DESTINATION),
                ControlOutcome::MajorDiscrepancies,
                Some("two pallets missing"),
                t(43).date_naive(),
            ),
        )));
        let mut state = None;
        run(
            &mut state,
            message(0, KZ_DEPARTURE, Role::Departure, cc015c("LRN-1")),
        );
        let declaration = &state.as_ref().unwrap().declaration;
        let cd010c = compose::cancellation(&h, &mrn, declaration, t(44));
        assert_eq!(cd010c.customs_office_of_transit_declared.len(), 2);
        round_trip(Message::CD010C(Box::new(cd010c)));
        assert_eq!(compose::office_of_guarantee(&grn()), Some(kz));
        let cd204c =
            compose::guarantee_use_cancellation(&h, declaration, &mrn, t(45).date_naive(), &grn())
                .unwrap();
        round_trip(Message::CD204C(Box::new(cd204c)));
    }

    /// Every output of the whole journey (one node holding every office) that [`compose::message`]
    /// composes round-trips through the strict codec; the others are the ones documented as not
    /// composed.
    #[test]
    fn every_composed_output_of_the_journey_round_trips() {
        let Message::CC015C(declaration) = cc015c("LRN-1") else {
            unreachable!()
        };
        let h = header();
        let mut state = None;
        let mut composed = Vec::new();
        let mut not_composed = Vec::new();
        for event in super::properties::journey() {
            let outputs = run(&mut state, event.clone());
            for output in outputs {
                let cx = compose::Context {
                    header: &h,
                    at: event.at,
                    movement: state.as_ref(),
                    declaration: Some(&declaration),
                    arrival_record: None,
                };
                match compose::message(&output, &cx) {
                    Some(m) => {
                        composed.push(m.message_type());
                        round_trip(m);
                    }
                    None => not_composed.push(output),
                }
            }
        }
        assert_eq!(
            composed,
            [
                "CC928C", "CC028C", "CC060C", "CD203C", "CC029C", "CD168C", "CD118C", "CD006C",
                "CC025C", "CD018C", "CC019C", "CC045C", "CD209C"
            ]
        );
        assert!(not_composed.iter().all(|o| matches!(
            o,
            Output::ToDeclarant(ExternalReply::ReleaseForTransit)
                | Output::ToTraderAtDestination(DestinationReply::UnloadingPermission)
                | Output::ToHub(
                    Common::AnticipatedArrival { .. }
                        | Common::AnticipatedTransit { .. }
                        | Common::AnticipatedExit { .. }
                )
        )));
    }

    /// What the life cycle says and what the composed message carries agree: the composed
    /// CD168C, applied at departure, records the passage the exit office notified.
    #[test]
    fn composed_notification_is_accepted_at_departure() {
        let mut kz = None;
        released(&mut kz);
        let cd168c = compose::notification_of_exit(
            &header(),
            &mrn(),
            &office(KZ_DEPARTURE),
            &office(AZ_EXIT),
            t(40),
        );
        let out = run(
            &mut kz,
            message(
                41,
                KZ_DEPARTURE,
                Role::Departure,
                Message::CD168C(Box::new(cd168c)),
            ),
        );
        assert!(out.is_empty());
        let passages = &kz.as_ref().unwrap().departure.as_ref().unwrap().passages;
        assert_eq!(passages.len(), 1);
        assert_eq!(passages[0].office, office(AZ_EXIT));
    }
}
