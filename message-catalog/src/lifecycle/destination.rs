//! The office of destination: from the anticipated arrival record (CD001C) to the release of
//! the goods (CC025C) and the control results sent back to departure (CD018C).
//!
//! # Transition table
//!
//! | phase | input | next phase | outputs |
//! | --- | --- | --- | --- |
//! | (none) | CD001C | `Anticipated` | |
//! | any | CD001C again | unchanged | CD906C 92 |
//! | `Anticipated` | CC007C, or `RecordArrival` | `Arrived` | CD006C to the office of departure |
//! | `Arrived` | `Selection`, simplified procedure | `UnloadingPermitted` | CC043C |
//! | `Arrived` | `Selection` selected, normal procedure | `UnderControl` | |
//! | `Arrived` | `Selection` not selected, normal procedure | `ReadyForRelease` | |
//! | `UnloadingPermitted` | CC044C conform and complete, not selected | `ReadyForRelease` | |
//! | `UnloadingPermitted` | CC044C otherwise (selected, not conform, incomplete) | `UnderControl` | |
//! | `UnderControl` | `ControlResult` | `ReadyForRelease` | |
//! | `ReadyForRelease` | `ReleaseGoods` | `GoodsReleased` | CC025C; CD018C to the office of departure |
//! | `Anticipated` | CD010C | `Cancelled` | |
//!
//! Goods are released at destination even with major discrepancies (P5): the office of
//! departure takes it from there (CC019C). The outcome sent in CD018C is the control result if
//! there was a control, satisfactory otherwise; its remarks are the control remarks, or else the
//! unloading remarks. CD018C goes in the same step as CC025C.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::generated::{Message, ncts};
use crate::ids::CustomsOfficeRef;

use super::declaration::{self, Declaration};
use super::output::{Common, DestinationReply, Output, Rejection};
use super::{
    ControlOutcome, ControlResult, Decision, Event, Input, Movement, Selection, out_of_sequence,
};

/// The office of destination's state for one movement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    /// The office of destination (this node's office the AAR was addressed to).
    pub office: CustomsOfficeRef,
    /// Where the movement stands.
    pub phase: DestinationPhase,
    /// When it entered that phase.
    pub since: DateTime<Utc>,
    /// When the goods arrived (the time of the CC007C event, or of `RecordArrival`).
    pub arrived_at: Option<DateTime<Utc>>,
    /// Whether the simplified procedure applies (authorised consignee, CC043C/CC044C).
    pub simplified: bool,
    /// The trader at destination's identification number, from the CC007C.
    pub trader: Option<String>,
    /// The selection for control, once decided.
    pub selection: Option<Selection>,
    /// The unloading remarks (CC044C), if any.
    pub unloading: Option<UnloadingRemarks>,
    /// The control result, if controlled.
    pub control: Option<ControlResult>,
}

/// The phases of a movement at its office of destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DestinationPhase {
    /// The anticipated arrival record (AAR) arrived; the goods have not.
    Anticipated,
    /// The goods arrived (CC007C); arrival advice sent to departure.
    Arrived,
    /// Unloading permitted (CC043C); waits for the unloading remarks.
    UnloadingPermitted,
    /// Under control (selected, or unloading remarks that call for it).
    UnderControl,
    /// Control done or not needed: the goods can be released.
    ReadyForRelease,
    /// Goods released (CC025C) and control results sent to departure (CD018C).
    GoodsReleased,
    /// The movement was cancelled at departure (CD010C) before the goods arrived.
    Cancelled,
}

impl DestinationPhase {
    /// The order of phases: a transition never lowers it.
    pub fn rank(self) -> u8 {
        match self {
            DestinationPhase::Anticipated => 0,
            DestinationPhase::Arrived => 1,
            DestinationPhase::UnloadingPermitted => 2,
            DestinationPhase::UnderControl => 3,
            DestinationPhase::ReadyForRelease => 4,
            DestinationPhase::GoodsReleased | DestinationPhase::Cancelled => 5,
        }
    }
}

/// The unloading remarks of the authorised consignee (CC044C).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnloadingRemarks {
    /// Whether the goods conform to the declaration.
    pub conform: bool,
    /// Whether unloading is complete.
    pub complete: bool,
    /// When the goods were unloaded.
    pub date: NaiveDate,
    /// The remarks.
    pub remarks: Option<String>,
}

type Applied = Result<(Movement, Vec<Output>), Rejection>;

fn anticipated(event: &Event) -> Destination {
    Destination {
        office: event.office,
        phase: DestinationPhase::Anticipated,
        since: event.at,
        arrived_at: None,
        simplified: false,
        trader: None,
        selection: None,
        unloading: None,
        control: None,
    }
}

/// Starts a movement from a CD001C.
pub(crate) fn begin(m: &crate::generated::cats::CD001CType, event: &Event) -> Applied {
    let declaration = Declaration::from_cd001c(m)?;
    let mrn = declaration::mrn(
        "/CD001C/TransitOperation/MRN",
        "CD001C",
        &m.transit_operation.mrn,
    )?;
    Ok((
        Movement {
            mrn: Some(mrn),
            declaration,
            departure: None,
            exits: Default::default(),
            transits: Default::default(),
            destination: Some(anticipated(event)),
            applied: 0,
        },
        Vec::new(),
    ))
}

/// Applies an event at the office of destination.
pub(crate) fn apply(movement: &Movement, event: &Event) -> Applied {
    let mut next = movement.clone();
    if let Input::Message(Message::CD001C(m)) = &event.input {
        if movement.destination.is_some() {
            return Err(out_of_sequence(
                event,
                format_args!("anticipated arrival record already received"),
            ));
        }
        let mrn = declaration::mrn(
            "/CD001C/TransitOperation/MRN",
            "CD001C",
            &m.transit_operation.mrn,
        )?;
        next.mrn = next.mrn.or(Some(mrn));
        next.destination = Some(anticipated(event));
        return Ok((next, Vec::new()));
    }
    let Some(mut d) = movement.destination.clone() else {
        return Err(out_of_sequence(
            event,
            format_args!("no anticipated arrival record for this movement"),
        ));
    };
    if d.office != event.office {
        return Err(out_of_sequence(
            event,
            format_args!(
                "the anticipated arrival record is for {}, not {} (diversion is not supported)",
                d.office, event.office
            ),
        ));
    }
    use DestinationPhase as P;
    let phase = d.phase;
    let oos = |why: &str| {
        Err(out_of_sequence(
            event,
            format_args!("{why} (phase {phase:?})"),
        ))
    };
    let mut out = Vec::new();
    let new_phase = match &event.input {
        Input::Message(Message::CC007C(m)) => {
            if phase != P::Anticipated {
                return oos("arrival notification for goods already arrived or cancelled");
            }
            d.trader = Some(m.trader_at_destination.identification_number.clone());
            arrive(
                &mut d,
                &next,
                m.transit_operation.simplified_procedure == ncts::Flag::V1,
                event,
                &mut out,
            )
        }
        Input::Decision(Decision::RecordArrival { simplified }) => {
            if phase != P::Anticipated {
                return oos("arrival of goods already arrived or cancelled");
            }
            arrive(&mut d, &next, *simplified, event, &mut out)
        }
        Input::Decision(Decision::Selection(selection)) => {
            if phase != P::Arrived {
                return oos("selection for goods not arrived or already decided");
            }
            d.selection = Some(selection.clone());
            if d.simplified {
                out.push(Output::ToTraderAtDestination(
                    DestinationReply::UnloadingPermission,
                ));
                P::UnloadingPermitted
            } else if selection.selected {
                P::UnderControl
            } else {
                P::ReadyForRelease
            }
        }
        Input::Message(Message::CC044C(m)) => {
            if phase != P::UnloadingPermitted {
                return oos("unloading remarks without unloading permission");
            }
            let remarks = UnloadingRemarks {
                conform: m.unloading_remark.conform == ncts::Flag::V1,
                complete: m.unloading_remark.unloading_completion == ncts::Flag::V1,
                date: m.unloading_remark.unloading_date,
                remarks: m.unloading_remark.unloading_remark.clone(),
            };
            let selected = d.selection.as_ref().is_some_and(|s| s.selected);
            let clean = remarks.conform && remarks.complete;
            d.unloading = Some(remarks);
            if clean && !selected {
                P::ReadyForRelease
            } else {
                P::UnderControl
            }
        }
        Input::Decision(Decision::ControlResult(result)) => {
            if phase != P::UnderControl {
                return oos("control result for goods not under control");
            }
            d.control = Some(result.clone());
            P::ReadyForRelease
        }
        Input::Decision(Decision::ReleaseGoods) => {
            if phase != P::ReadyForRelease {
                return oos("release of goods not ready for release");
            }
            let outcome = d
                .control
                .as_ref()
                .map_or(ControlOutcome::Satisfactory, |c| c.outcome);
            let remarks = d
                .control
                .as_ref()
                .and_then(|c| c.remarks.clone())
                .or_else(|| d.unloading.as_ref().and_then(|u| u.remarks.clone()));
            out.push(Output::ToTraderAtDestination(
                DestinationReply::GoodsRelease { outcome },
            ));
            out.push(Output::ToHub(Common::DestinationControlResults {
                destination: d.office,
                departure: next.declaration.departure,
                outcome,
                remarks,
            }));
            P::GoodsReleased
        }
        Input::Message(Message::CD010C(_)) => {
            if phase != P::Anticipated {
                return oos("cancellation after the goods arrived");
            }
            P::Cancelled
        }
        _ => return oos("not an input of the office of destination"),
    };
    if new_phase != phase {
        d.phase = new_phase;
        d.since = event.at;
    }
    next.destination = Some(d);
    Ok((next, out))
}

fn arrive(
    d: &mut Destination,
    movement: &Movement,
    simplified: bool,
    event: &Event,
    out: &mut Vec<Output>,
) -> DestinationPhase {
    d.simplified = simplified;
    d.arrived_at = Some(event.at);
    out.push(Output::ToHub(Common::ArrivalAdvice {
        destination: d.office,
        departure: movement.declaration.departure,
        arrived_at: event.at,
    }));
    DestinationPhase::Arrived
}
