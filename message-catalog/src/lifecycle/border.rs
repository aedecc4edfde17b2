//! Offices on the border: the office of exit for transit ([`Role::Exit`], announced by a CD160C
//! anticipated exit record) and the office of transit where the goods enter a country
//! ([`Role::Transit`], announced by a CD050C anticipated transit record). Both follow the same
//! phases; they differ in the record that announces them and the notification they send.
//!
//! # Transition table
//!
//! | phase | input | next phase | outputs |
//! | --- | --- | --- | --- |
//! | (none) | CD160C (exit) or CD050C (transit) | `Anticipated` | |
//! | any | the same record again for the same office | unchanged | CD906C 92 |
//! | `Anticipated` | `RecordPresentation` | `Presented` | |
//! | `Presented` | `Selection` selected | `UnderControl` | |
//! | `Presented` | `Selection` not selected | `Cleared` | |
//! | `UnderControl` | `ControlResult` satisfactory or minor | `Cleared` | |
//! | `UnderControl` | `ControlResult` major | `Stopped` | |
//! | `Presented`, `Cleared` | `RecordExit` (exit) | `Proceeded` | CD168C to the office of departure |
//! | `Presented`, `Cleared` | `RecordEntry` (transit) | `Proceeded` | CD118C to the office of departure |
//! | `Anticipated` .. `Proceeded` | CD010C | `Cancelled` | |
//!
//! `RecordExit`/`RecordEntry` from `Presented` means the office did not run a selection; goods
//! that are `Stopped` do not proceed (what follows, an incident or recovery, is out of scope).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::generated::Message;

use super::declaration::{self, Declaration};
use super::output::{Common, Output, Rejection};
use super::{
    ControlOutcome, ControlResult, Decision, Event, Input, Movement, Role, Selection,
    out_of_sequence,
};

/// The state of one office of exit for transit or office of transit for one movement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BorderOffice {
    /// Where the movement stands at this office.
    pub phase: BorderPhase,
    /// When it entered that phase.
    pub since: DateTime<Utc>,
    /// The selection for control, once decided.
    pub selection: Option<Selection>,
    /// The control result, if controlled.
    pub control: Option<ControlResult>,
}

/// The phases of a movement at an office of exit or of transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BorderPhase {
    /// The anticipated record (AXR or ATR) arrived; the goods have not been presented.
    Anticipated,
    /// The goods are presented at the office.
    Presented,
    /// Selected for control.
    UnderControl,
    /// Not selected, or controlled with a satisfactory result: the goods may proceed.
    Cleared,
    /// The goods left (exit, CD168C sent) or entered and proceed (transit, CD118C sent).
    Proceeded,
    /// Control found major discrepancies: the goods do not proceed.
    Stopped,
    /// The movement was cancelled at departure (CD010C).
    Cancelled,
}

impl BorderPhase {
    /// The order of phases: a transition never lowers it.
    pub fn rank(self) -> u8 {
        match self {
            BorderPhase::Anticipated => 0,
            BorderPhase::Presented => 1,
            BorderPhase::UnderControl => 2,
            BorderPhase::Cleared => 3,
            BorderPhase::Proceeded | BorderPhase::Stopped => 4,
            BorderPhase::Cancelled => 5,
        }
    }
}

type Applied = Result<(Movement, Vec<Output>), Rejection>;

/// Starts a movement from its anticipated record at a border office.
pub(crate) fn begin(
    declaration: Declaration,
    mrn_text: &str,
    kind: &str,
    event: &Event,
) -> Applied {
    let mrn = declaration::mrn(&format!("/{kind}/TransitOperation/MRN"), kind, mrn_text)?;
    let mut movement = Movement {
        mrn: Some(mrn),
        declaration,
        departure: None,
        exits: Default::default(),
        transits: Default::default(),
        destination: None,
        applied: 0,
    };
    slots(&mut movement, event.role).insert(event.office, anticipated(event));
    Ok((movement, Vec::new()))
}

fn anticipated(event: &Event) -> BorderOffice {
    BorderOffice {
        phase: BorderPhase::Anticipated,
        since: event.at,
        selection: None,
        control: None,
    }
}

fn slots(
    movement: &mut Movement,
    role: Role,
) -> &mut std::collections::BTreeMap<crate::ids::CustomsOfficeRef, BorderOffice> {
    if role == Role::Exit {
        &mut movement.exits
    } else {
        &mut movement.transits
    }
}

/// Applies an event at an office of exit or of transit (`event.role`).
pub(crate) fn apply(movement: &Movement, event: &Event) -> Applied {
    let role = event.role;
    let mut next = movement.clone();
    let record = match (&event.input, role) {
        (Input::Message(Message::CD160C(m)), Role::Exit) => {
            Some((m.transit_operation.mrn.as_str(), "CD160C"))
        }
        (Input::Message(Message::CD050C(m)), Role::Transit) => {
            Some((m.transit_operation.mrn.as_str(), "CD050C"))
        }
        _ => None,
    };
    let slot = slots(&mut next, role);
    if let Some((mrn_text, kind)) = record {
        if slot.contains_key(&event.office) {
            return Err(out_of_sequence(
                event,
                format_args!("anticipated record for {} already received", event.office),
            ));
        }
        let mrn = declaration::mrn(&format!("/{kind}/TransitOperation/MRN"), kind, mrn_text)?;
        slot.insert(event.office, anticipated(event));
        if next.mrn.is_none() {
            next.mrn = Some(mrn);
        }
        return Ok((next, Vec::new()));
    }
    let Some(state) = slot.get_mut(&event.office) else {
        return Err(out_of_sequence(
            event,
            format_args!(
                "no anticipated record for this movement at {} as {role:?}",
                event.office
            ),
        ));
    };
    use BorderPhase as P;
    let phase = state.phase;
    let oos = |why: &str| {
        Err(out_of_sequence(
            event,
            format_args!("{why} (phase {phase:?})"),
        ))
    };
    let mut out = Vec::new();
    let new_phase = match &event.input {
        Input::Decision(Decision::RecordPresentation) => {
            if phase != P::Anticipated {
                return oos("goods already presented");
            }
            P::Presented
        }
        Input::Decision(Decision::Selection(selection)) => {
            if phase != P::Presented {
                return oos("selection for goods not presented or already decided");
            }
            state.selection = Some(selection.clone());
            if selection.selected {
                P::UnderControl
            } else {
                P::Cleared
            }
        }
        Input::Decision(Decision::ControlResult(result)) => {
            if phase != P::UnderControl {
                return oos("control result for goods not under control");
            }
            state.control = Some(result.clone());
            if result.outcome == ControlOutcome::MajorDiscrepancies {
                P::Stopped
            } else {
                P::Cleared
            }
        }
        Input::Decision(Decision::RecordExit) if role == Role::Exit => {
            if !matches!(phase, P::Presented | P::Cleared) {
                return oos("exit of goods not presented, under control or stopped");
            }
            out.push(Output::ToHub(Common::NotificationOfExit {
                exit: event.office,
                departure: movement.declaration.departure,
                passed_at: event.at,
            }));
            P::Proceeded
        }
        Input::Decision(Decision::RecordEntry) if role == Role::Transit => {
            if !matches!(phase, P::Presented | P::Cleared) {
                return oos("entry of goods not presented, under control or stopped");
            }
            out.push(Output::ToHub(Common::NotificationCrossingFrontier {
                transit: event.office,
                departure: movement.declaration.departure,
                passed_at: event.at,
            }));
            P::Proceeded
        }
        Input::Message(Message::CD010C(_)) => {
            if matches!(phase, P::Stopped | P::Cancelled) {
                return oos("cancellation of a movement already ended here");
            }
            P::Cancelled
        }
        _ => return oos("not an input of this office"),
    };
    if new_phase != phase {
        state.phase = new_phase;
        state.since = event.at;
    }
    Ok((next, out))
}
