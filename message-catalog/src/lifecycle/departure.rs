//! The office of departure: from the declaration (CC015C) to release for transit (CC029C),
//! then from the passages and the arrival back to write-off (CC045C).
//!
//! # Transition table
//!
//! | phase | input | next phase | outputs |
//! | --- | --- | --- | --- |
//! | (none) | CC015C for another office of departure | (none) | CC056C code 14 |
//! | (none) | CC015C, additional type `A` | `Submitted` | CC928C |
//! | (none) | CC015C, additional type `D` | `PreLodged` | CC928C |
//! | any | CC015C (same [`super::DeclarationKey`]) | unchanged | CC056C code 26 |
//! | `PreLodged` | CC170C | `Submitted` | |
//! | `Submitted` | `AcceptDeclaration { mrn }` | `Accepted` | CC028C |
//! | `PreLodged`, `Submitted` | `RejectDeclaration` | `Rejected` | CC056C (code, pointer, reason given) |
//! | `Accepted` | `Selection` selected | `UnderControl` | CC060C (type 0) |
//! | `Accepted` | `Selection` not selected | `GuaranteeRequested` (or `Released` when no GRN) | CD203C per GRN (or as `Released`) |
//! | `UnderControl` | `ControlResult` satisfactory or minor | `GuaranteeRequested` (or `Released`) | as above |
//! | `UnderControl` | `ControlResult` major | `NotReleased` | CC051C (motivation `01`) |
//! | `GuaranteeRequested` | CD205C all accepted, or `GuaranteeResult` with none refused | `Released` | CC029C; CD001C to destination; CD050C per office of transit; CD160C per office of exit |
//! | `GuaranteeRequested` | CD205C or `GuaranteeResult` with refusals | `GuaranteeRefused` | CC055C; CD204C per accepted GRN |
//! | `Invalidated`, `NotReleased` | CD205C (late answer) | unchanged | CD204C per accepted GRN |
//! | `PreLodged`, `Submitted`, `Accepted`, `UnderControl`, `GuaranteeRefused` | CC013C | unchanged, but `GuaranteeRefused` → `GuaranteeRequested` (or `Released`) | CC004C (then as `Accepted` not selected, for `GuaranteeRefused`) |
//! | `GuaranteeRequested` | CC013C | rejected 92: wait for the guarantee result | CC056C 92 |
//! | before `Released` | CC014C | `Invalidated` | CC009C; CD204C per GRN when `GuaranteeRequested` |
//! | `Released` and after | CC014C | unchanged | CC056C 92 (P5: no cancellation request after release) |
//! | before `Released` | `Invalidate` | `Invalidated` | CC009C (by customs); CD204C per GRN when `GuaranteeRequested` |
//! | `Released` | `Invalidate` | `Invalidated` | CC009C; CD010C to every office en route; CD204C per reserved GRN |
//! | `Accepted`, `UnderControl`, `GuaranteeRequested`, `GuaranteeRefused` | `RefuseRelease` | `NotReleased` | CC051C; CD204C per GRN when `GuaranteeRequested` |
//! | `Released`, `Arrived`, `ControlResultsReceived`, `Discrepancies` | CD168C, CD118C | unchanged (passage recorded once per office) | |
//! | `Released` | CD006C | `Arrived` | |
//! | `Arrived` | CD018C satisfactory or minor (`A*`) | `ControlResultsReceived` | |
//! | `Arrived` | CD018C major (`B*`) | `Discrepancies` | CC019C |
//! | `ControlResultsReceived`, `Discrepancies` | `WriteOff` | `WrittenOff` | CC045C; CD209C per reserved GRN |
//!
//! The service may apply `WriteOff` as the system right after a satisfactory CD018C; after
//! major discrepancies, an officer writes off once they are resolved (recovery is out of
//! scope). Amendments and invalidation requests are accepted as soon as they fit the
//! state: their content was checked by the rules before the life cycle sees them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::generated::{Message, cats, ncts};
use crate::ids::{CustomsOfficeRef, Grn};

use super::declaration::{self, Declaration};
use super::output::{Common, ExternalReply, FunctionalError, Output, RefusedGuarantee, Rejection};
use super::{
    ControlOutcome, ControlResult, Decision, Event, Input, Movement, Role, Selection,
    out_of_sequence,
};

/// The office of departure's state for one movement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Departure {
    /// The office of departure.
    pub office: CustomsOfficeRef,
    /// Where the movement stands.
    pub phase: DeparturePhase,
    /// When it entered that phase.
    pub since: DateTime<Utc>,
    /// When the declaration was received.
    pub submitted_at: DateTime<Utc>,
    /// When it was accepted (MRN allocated).
    pub accepted_at: Option<DateTime<Utc>>,
    /// The selection for control, once decided.
    pub selection: Option<Selection>,
    /// The control result at departure, if controlled.
    pub control: Option<ControlResult>,
    /// The guarantee references reserved at the hub's ledger for this movement (to be credited
    /// at write-off or cancelled at invalidation).
    pub reserved: Vec<Grn>,
    /// Exits and frontier crossings notified (CD168C, CD118C), in order of reception.
    pub passages: Vec<Passage>,
    /// The arrival advice (CD006C), once received.
    pub arrival: Option<Arrival>,
    /// The destination control results (CD018C), once received.
    pub destination_control: Option<ControlResult>,
}

/// The phases of a movement at its office of departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeparturePhase {
    /// A pre-lodged declaration (additional declaration type `D`) waits for the goods (CC170C).
    PreLodged,
    /// Received and acknowledged (CC928C); waits for acceptance.
    Submitted,
    /// Accepted, MRN allocated (CC028C); waits for selection.
    Accepted,
    /// Selected for control (CC060C); waits for the control result.
    UnderControl,
    /// Guarantee use requested at the hub (CD203C); waits for CD205C.
    GuaranteeRequested,
    /// The guarantee was refused (CC055C); waits for an amendment or a refusal of release.
    GuaranteeRefused,
    /// Released for transit (CC029C); anticipated records sent.
    Released,
    /// The arrival advice (CD006C) came from destination.
    Arrived,
    /// Destination control results (CD018C) came, satisfactory or minor discrepancies.
    ControlResultsReceived,
    /// Destination control results with major discrepancies; holder notified (CC019C).
    Discrepancies,
    /// Written off (CC045C): the movement is closed, the guarantee credited.
    WrittenOff,
    /// The declaration was rejected (CC056C): closed.
    Rejected,
    /// Release refused (CC051C): closed.
    NotReleased,
    /// Invalidated (CC009C): closed.
    Invalidated,
}

impl DeparturePhase {
    /// The order of phases: a transition never lowers it.
    pub fn rank(self) -> u8 {
        match self {
            DeparturePhase::PreLodged => 0,
            DeparturePhase::Submitted => 1,
            DeparturePhase::Accepted => 2,
            DeparturePhase::UnderControl => 3,
            DeparturePhase::GuaranteeRequested | DeparturePhase::GuaranteeRefused => 4,
            DeparturePhase::Released => 5,
            DeparturePhase::Arrived => 6,
            DeparturePhase::ControlResultsReceived | DeparturePhase::Discrepancies => 7,
            DeparturePhase::WrittenOff => 8,
            DeparturePhase::Rejected
            | DeparturePhase::NotReleased
            | DeparturePhase::Invalidated => 9,
        }
    }

    /// Whether the movement is closed at departure.
    pub fn is_closed(self) -> bool {
        self.rank() >= 8
    }

    fn before_release(self) -> bool {
        self.rank() < 5
    }
}

/// A passage notified by an office en route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Passage {
    /// The office that notified it.
    pub office: CustomsOfficeRef,
    /// [`Role::Exit`] (CD168C) or [`Role::Transit`] (CD118C).
    pub role: Role,
    /// The passage date the office gave.
    pub date: NaiveDate,
}

/// The arrival advice received from destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Arrival {
    /// The actual office of destination.
    pub office: CustomsOfficeRef,
    /// When the goods arrived there (as that office said, taken as UTC).
    pub at: DateTime<Utc>,
}

type Applied = Result<(Movement, Vec<Output>), Rejection>;

/// Starts a movement from a CC015C.
pub(crate) fn begin(m: &ncts::CC015CType, event: &Event) -> Applied {
    let declaration = Declaration::from_cc015c(m)?;
    if declaration.departure != event.office {
        return Err(declaration::rule(
            "CC015C",
            "/CC015C/CustomsOfficeOfDeparture/referenceNumber",
            format!(
                "the declaration is for office of departure {}, not {}",
                declaration.departure, event.office
            ),
        ));
    }
    let phase = if declaration.pre_lodged {
        DeparturePhase::PreLodged
    } else {
        DeparturePhase::Submitted
    };
    let departure = Departure {
        office: declaration.departure,
        phase,
        since: event.at,
        submitted_at: event.at,
        accepted_at: None,
        selection: None,
        control: None,
        reserved: Vec::new(),
        passages: Vec::new(),
        arrival: None,
        destination_control: None,
    };
    Ok((
        Movement {
            mrn: None,
            declaration,
            departure: Some(departure),
            exits: Default::default(),
            transits: Default::default(),
            destination: None,
            applied: 0,
        },
        vec![Output::ToDeclarant(ExternalReply::PositiveAck)],
    ))
}

/// Applies an event at the office of departure.
pub(crate) fn apply(movement: &Movement, event: &Event) -> Applied {
    let Some(dep) = movement.departure.as_ref() else {
        if let Input::Message(Message::CC015C(_)) = &event.input {
            return Err(duplicate());
        }
        return Err(out_of_sequence(
            event,
            format_args!("this node is not the office of departure of this movement"),
        ));
    };
    if dep.office != event.office {
        return Err(out_of_sequence(
            event,
            format_args!(
                "the office of departure is {}, not {}",
                dep.office, event.office
            ),
        ));
    }
    let mut next = movement.clone();
    let mut d = dep.clone();
    let mut out = Vec::new();
    use DeparturePhase as P;
    let phase = d.phase;
    let oos = |why: &str| {
        Err(out_of_sequence(
            event,
            format_args!("{why} (phase {phase:?})"),
        ))
    };
    match &event.input {
        Input::Message(Message::CC015C(_)) => return Err(duplicate()),
        Input::Message(Message::CC170C(_)) => {
            if phase != P::PreLodged {
                return oos("presentation notification for a declaration that is not pre-lodged");
            }
            enter(&mut d, P::Submitted, event);
        }
        Input::Decision(Decision::AcceptDeclaration { mrn }) => {
            if phase != P::Submitted {
                return oos("acceptance of a declaration that does not wait for it");
            }
            next.mrn = Some(*mrn);
            d.accepted_at = Some(event.at);
            enter(&mut d, P::Accepted, event);
            out.push(Output::ToDeclarant(ExternalReply::MrnAllocated {
                mrn: *mrn,
            }));
        }
        Input::Decision(Decision::RejectDeclaration {
            code,
            pointer,
            reason,
        }) => {
            if !matches!(phase, P::PreLodged | P::Submitted) {
                return oos("rejection of a declaration already decided");
            }
            enter(&mut d, P::Rejected, event);
            out.push(Output::ToDeclarant(ExternalReply::Rejection(Rejection {
                rejected: "CC015C".to_owned(),
                code: *code,
                pointer: pointer.clone(),
                reason: reason.clone(),
            })));
        }
        Input::Decision(Decision::Selection(selection)) => {
            if phase != P::Accepted {
                return oos("selection for control of a movement that does not wait for it");
            }
            d.selection = Some(selection.clone());
            if selection.selected {
                enter(&mut d, P::UnderControl, event);
                out.push(Output::ToDeclarant(ExternalReply::ControlDecision {
                    notification_type: "0".to_owned(),
                    reason: selection.reason.clone(),
                }));
            } else {
                request_guarantee(&next.declaration, &mut d, event, &mut out);
            }
        }
        Input::Decision(Decision::ControlResult(result)) => {
            if phase != P::UnderControl {
                return oos("control result for a movement not under control");
            }
            d.control = Some(result.clone());
            if result.outcome == ControlOutcome::MajorDiscrepancies {
                enter(&mut d, P::NotReleased, event);
                out.push(Output::ToDeclarant(ExternalReply::NoRelease {
                    motivation: "01".to_owned(),
                    text: result
                        .remarks
                        .clone()
                        .unwrap_or_else(|| "control results not satisfactory".to_owned()),
                }));
            } else {
                request_guarantee(&next.declaration, &mut d, event, &mut out);
            }
        }
        Input::Message(Message::CD205C(m)) => {
            let (accepted, refused) = guarantee_use_result(m)?;
            match phase {
                P::GuaranteeRequested => guarantee_result(
                    &next.declaration,
                    &mut d,
                    event,
                    accepted,
                    refused,
                    &mut out,
                ),
                P::Invalidated | P::NotReleased => {
                    for grn in accepted {
                        out.push(Output::ToHub(Common::GuaranteeUseCancellation { grn }));
                    }
                }
                _ => return oos("guarantee use result that was not asked for"),
            }
        }
        Input::Decision(Decision::GuaranteeResult { refused }) => {
            if phase != P::GuaranteeRequested {
                return oos("guarantee result that was not asked for");
            }
            let accepted = next
                .declaration
                .guarantees
                .iter()
                .map(|g| g.grn.clone())
                .filter(|grn| refused.iter().all(|r| &r.grn != grn))
                .collect();
            guarantee_result(
                &next.declaration,
                &mut d,
                event,
                accepted,
                refused.clone(),
                &mut out,
            );
        }
        Input::Message(Message::CC013C(m)) => {
            match phase {
                P::PreLodged | P::Submitted | P::Accepted | P::UnderControl => {}
                P::GuaranteeRefused => {}
                P::GuaranteeRequested => {
                    return oos("amendment while the guarantee use is being reserved");
                }
                _ => return oos("amendment after release or after the movement ended"),
            }
            next.declaration = next.declaration.amended_by(m)?;
            out.push(Output::ToDeclarant(ExternalReply::AmendmentAccepted));
            if phase == P::GuaranteeRefused {
                request_guarantee(&next.declaration, &mut d, event, &mut out);
            }
        }
        Input::Message(Message::CC014C(m)) => {
            if !phase.before_release() {
                return oos("invalidation request after release or after the movement ended");
            }
            cancel_requested_guarantees(&next.declaration, &d, &mut out);
            enter(&mut d, P::Invalidated, event);
            out.push(Output::ToDeclarant(ExternalReply::InvalidationDecision {
                initiated_by_customs: false,
                justification: m.invalidation.justification.clone(),
            }));
        }
        Input::Decision(Decision::Invalidate { justification }) => {
            if phase == P::Released {
                out.push(Output::ToHub(Common::Cancellation {
                    offices: next.declaration.offices_en_route(),
                }));
                for grn in std::mem::take(&mut d.reserved) {
                    out.push(Output::ToHub(Common::GuaranteeUseCancellation { grn }));
                }
            } else if phase.before_release() {
                cancel_requested_guarantees(&next.declaration, &d, &mut out);
            } else {
                return oos("invalidation after arrival or after the movement ended");
            }
            enter(&mut d, P::Invalidated, event);
            out.push(Output::ToDeclarant(ExternalReply::InvalidationDecision {
                initiated_by_customs: true,
                justification: justification.clone(),
            }));
        }
        Input::Decision(Decision::RefuseRelease { motivation, text }) => {
            if !matches!(
                phase,
                P::Accepted | P::UnderControl | P::GuaranteeRequested | P::GuaranteeRefused
            ) {
                return oos("refusal of release for a movement that does not wait for release");
            }
            cancel_requested_guarantees(&next.declaration, &d, &mut out);
            enter(&mut d, P::NotReleased, event);
            out.push(Output::ToDeclarant(ExternalReply::NoRelease {
                motivation: motivation.clone(),
                text: text.clone(),
            }));
        }
        Input::Message(Message::CD168C(m)) => {
            let office = declaration::office(
                "/CD168C/CustomsOfficeOfExitForTransitActual/referenceNumber",
                "CD168C",
                &m.customs_office_of_exit_for_transit_actual.reference_number,
            )?;
            passage(
                &mut d,
                office,
                Role::Exit,
                m.transit_operation.passage_date,
                event,
            )?;
        }
        Input::Message(Message::CD118C(m)) => {
            let office = declaration::office(
                "/CD118C/CustomsOfficeOfTransitActual/referenceNumber",
                "CD118C",
                &m.customs_office_of_transit_actual.reference_number,
            )?;
            passage(
                &mut d,
                office,
                Role::Transit,
                m.transit_operation.passage_date,
                event,
            )?;
        }
        Input::Message(Message::CD006C(m)) => {
            if phase != P::Released {
                return oos("arrival advice for a movement not in transit");
            }
            let office = declaration::office(
                "/CD006C/CustomsOfficeOfDestinationActual/referenceNumber",
                "CD006C",
                &m.customs_office_of_destination_actual.reference_number,
            )?;
            d.arrival = Some(Arrival {
                office,
                at: m.transit_operation.arrival_date_and_time_actual.and_utc(),
            });
            enter(&mut d, P::Arrived, event);
        }
        Input::Message(Message::CD018C(m)) => {
            if phase != P::Arrived {
                return oos("destination control results before the arrival advice");
            }
            let result = destination_result(m);
            let major = result.outcome == ControlOutcome::MajorDiscrepancies;
            d.destination_control = Some(result.clone());
            if major {
                enter(&mut d, P::Discrepancies, event);
                out.push(Output::ToDeclarant(ExternalReply::Discrepancies {
                    text: result.remarks,
                }));
            } else {
                enter(&mut d, P::ControlResultsReceived, event);
            }
        }
        Input::Decision(Decision::WriteOff) => {
            if !matches!(phase, P::ControlResultsReceived | P::Discrepancies) {
                return oos("write-off before the destination control results");
            }
            enter(&mut d, P::WrittenOff, event);
            out.push(Output::ToDeclarant(ExternalReply::WriteOff));
            for grn in std::mem::take(&mut d.reserved) {
                out.push(Output::ToHub(Common::GuaranteeCredit { grn }));
            }
        }
        _ => return oos("not an input of the office of departure"),
    }
    next.departure = Some(d);
    Ok((next, out))
}

fn duplicate() -> Rejection {
    Rejection {
        rejected: "CC015C".to_owned(),
        code: FunctionalError::Duplicate,
        pointer: "/CC015C/TransitOperation/LRN".to_owned(),
        reason: "a declaration with this LRN and holder is already held".to_owned(),
    }
}

fn enter(d: &mut Departure, phase: DeparturePhase, event: &Event) {
    d.phase = phase;
    d.since = event.at;
}

/// Asks the hub to reserve every GRN of the declaration, or releases at once when there is
/// none to reserve.
fn request_guarantee(
    declaration: &Declaration,
    d: &mut Departure,
    event: &Event,
    out: &mut Vec<Output>,
) {
    if declaration.guarantees.is_empty() {
        release(declaration, d, event, out);
        return;
    }
    enter(d, DeparturePhase::GuaranteeRequested, event);
    for line in &declaration.guarantees {
        out.push(Output::ToHub(Common::GuaranteeUse {
            grn: line.grn.clone(),
            amount: line.amount,
            currency: line.currency.clone().unwrap_or_default(),
        }));
    }
}

/// When a reservation may be in flight (`GuaranteeRequested`), cancels every GRN of the
/// declaration: the ledger ignores a cancellation of what it did not reserve.
fn cancel_requested_guarantees(declaration: &Declaration, d: &Departure, out: &mut Vec<Output>) {
    if d.phase == DeparturePhase::GuaranteeRequested {
        for line in &declaration.guarantees {
            out.push(Output::ToHub(Common::GuaranteeUseCancellation {
                grn: line.grn.clone(),
            }));
        }
    }
}

fn guarantee_result(
    declaration: &Declaration,
    d: &mut Departure,
    event: &Event,
    accepted: Vec<Grn>,
    refused: Vec<RefusedGuarantee>,
    out: &mut Vec<Output>,
) {
    if refused.is_empty() {
        d.reserved = accepted;
        release(declaration, d, event, out);
    } else {
        enter(d, DeparturePhase::GuaranteeRefused, event);
        d.reserved.clear();
        out.push(Output::ToDeclarant(ExternalReply::GuaranteeNotValid {
            refused,
        }));
        for grn in accepted {
            out.push(Output::ToHub(Common::GuaranteeUseCancellation { grn }));
        }
    }
}

fn release(declaration: &Declaration, d: &mut Departure, event: &Event, out: &mut Vec<Output>) {
    enter(d, DeparturePhase::Released, event);
    out.push(Output::ToDeclarant(ExternalReply::ReleaseForTransit));
    out.push(Output::ToHub(Common::AnticipatedArrival {
        destination: declaration.destination,
    }));
    for office in &declaration.transits {
        out.push(Output::ToHub(Common::AnticipatedTransit {
            office: *office,
        }));
    }
    for office in &declaration.exits {
        out.push(Output::ToHub(Common::AnticipatedExit { office: *office }));
    }
}

fn passage(
    d: &mut Departure,
    office: CustomsOfficeRef,
    role: Role,
    date: NaiveDate,
    event: &Event,
) -> Result<(), Rejection> {
    use DeparturePhase as P;
    if !matches!(
        d.phase,
        P::Released | P::Arrived | P::ControlResultsReceived | P::Discrepancies
    ) {
        return Err(out_of_sequence(
            event,
            format_args!(
                "passage notified for a movement not in transit (phase {:?})",
                d.phase
            ),
        ));
    }
    if d.passages
        .iter()
        .any(|p| p.office == office && p.role == role)
    {
        return Err(out_of_sequence(
            event,
            format_args!("passage at {office} already notified"),
        ));
    }
    d.passages.push(Passage { office, role, date });
    Ok(())
}

/// Reads a CD205C: the accepted GRNs and the refused ones with a CL252 reason.
fn guarantee_use_result(
    m: &cats::CD205CType,
) -> Result<(Vec<Grn>, Vec<RefusedGuarantee>), Rejection> {
    use crate::reference::GuaranteeRefusal;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (g, guarantee) in m.guarantee.iter().enumerate() {
        for (r, reference) in guarantee.guarantee_reference.iter().enumerate() {
            let pointer = format!(
                "/CD205C/Guarantee[{}]/GuaranteeReference[{}]/GRN",
                g + 1,
                r + 1
            );
            let grn = Grn::parse(&reference.grn)
                .map_err(|e| declaration::rule("CD205C", &pointer, e.to_string()))?;
            if reference.accepted == cats::Flag::V1 {
                accepted.push(grn);
            } else {
                let reason = GuaranteeRefusal::cats004_of_cd205c(reference.refusal_reason);
                refused.push(RefusedGuarantee {
                    grn,
                    reason: reason.to_owned(),
                });
            }
        }
    }
    Ok((accepted, refused))
}

fn destination_result(m: &cats::CD018CType) -> ControlResult {
    ControlResult {
        outcome: ControlOutcome::from_code(&m.control_result.code),
        remarks: m
            .control_result
            .text
            .clone()
            .or_else(|| m.transit_operation.other_things_to_report.clone()),
    }
}
