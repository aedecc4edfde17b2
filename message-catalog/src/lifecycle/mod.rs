//! The movement life cycle as pure code: `(state, event) → (state, outputs)`.
//!
//! No I/O, no clock, no randomness: the time, the actor and every decision (acceptance, the MRN
//! allocated, selection for control, control results, guarantee results) come in the
//! [`Event`]; the same events in the same order always give the same [`Movement`] and the same
//! [`Output`]s. Nodes apply it to the movements in which their offices take part; the hub folds
//! it over its journal to know what each node should hold, and reconciliation compares
//! [`Movement::digest`]s.
//!
//! # Shape
//!
//! - A [`Movement`] is what one node holds for one movement: the MRN, the [`Declaration`]
//!   summary, and one state per office role this node plays in it: [`Departure`], any number of
//!   [`BorderOffice`]s as office of exit for transit and as office of transit (entry), and
//!   [`Destination`]. A node can play several roles (KZ000101 is office of departure and office
//!   of exit in the pilot journey); each is driven separately.
//! - An [`Event`] says when, who, at which office and in which [`Role`], and what: a typed
//!   [`Message`] or a [`Decision`] of an officer or of the system.
//! - [`apply`] takes the state by value (`None` for a movement the node does not hold yet) and
//!   returns a [`Step`]: the next state and the [`Output`]s to send. An event that does not fit
//!   leaves the state as it was and gives exactly one output, the rejection (see below).
//!
//! # Starting and finding a movement
//!
//! [`reference()`] tells the service which movement a message addresses: an MRN, or for a
//! declaration (CC015C, and CC013C/CC014C/CC170C before an MRN exists) a [`DeclarationKey`]
//! (LRN, holder, office of departure), or an invalid MRN (93: answer with [`reject`]).
//! When the node holds no movement under that reference the service calls [`apply`] with `None`:
//! a CC015C (departure), CD160C (exit), CD050C (transit) or CD001C (destination) starts one;
//! anything else is answered with code 90 ([`unknown_mrn`]). A CC015C whose key the node
//! already holds is applied to that movement and rejected with code 26 (duplicate): the same
//! declaration submitted twice is one movement. Re-delivery of the very same message (same
//! message identification) is filtered by the service's inbox before the life cycle sees it.
//!
//! # Rejections
//!
//! An event that does not fit the state of its office role is rejected with code 92 (out of
//! sequence); an identifier that does not parse with 14 (or 93 for an MRN's check digit). The
//! rejection goes where the event came from ([`reject`]):
//!
//! | event | output |
//! | --- | --- |
//! | CC015C, CC013C, CC014C, CC170C | [`Output::ToDeclarant`] ([`ExternalReply::Rejection`], CC056C) |
//! | CC007C, CC044C | [`Output::ToTraderAtDestination`] ([`DestinationReply::Rejection`], CC057C) |
//! | any CD message | [`Output::ToHub`] ([`Common::FunctionalNack`], CD906C to its sender) |
//! | a [`Decision`] (or any other message) | [`Output::ActionRefused`] |
//!
//! # Transition tables
//!
//! Each role's module documents its table: [`departure`], [`border`] (exit and transit),
//! [`destination`]. In every table, a pair (phase, input) that is not listed is rejected with
//! code 92 and changes nothing.
//!
//! Phases only move forward ([`Movement::progress`] ranks them); the one documented return is
//! at departure, where an accepted amendment after a refused guarantee
//! (`GuaranteeRefused` + CC013C) requests the guarantee again (`GuaranteeRequested`, same rank).
//!
//! # Digest
//!
//! [`Movement::digest`] is the SHA-256 of [`Movement::canonical_bytes`]: a version line then
//! the JSON encoding of the state (fields in declaration order, maps ordered by key, decimals
//! normalised, times in RFC 3339 UTC). Changing the state's shape changes the version line.
//!
//! What the digest covers is the node's whole state for the movement, officers' decisions
//! included: the hub reproduces it by folding [`apply`] over the same [`Event`]s, so the events a
//! node applies (its decisions as well as the messages it receives) are what it journals. A
//! digest over what the common domain alone shows is not provided here.
//!
//! # Composing messages
//!
//! Outputs are descriptions; [`compose`] turns them into typed messages where the data is at
//! hand (see its documentation for what is composed and what is not yet).

pub mod border;
pub mod compose;
pub mod declaration;
pub mod departure;
pub mod destination;
mod digest;
pub mod output;
pub mod reconcile;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::generated::Message;
use crate::ids::{CustomsOfficeRef, Mrn};

pub use border::{BorderOffice, BorderPhase};
pub use declaration::{Declaration, DeclarationKey, GuaranteeLine};
pub use departure::{Arrival, Departure, DeparturePhase, Passage};
pub use destination::{Destination, DestinationPhase, UnloadingRemarks};
pub use output::{
    Common, DestinationReply, ExternalReply, FunctionalError, Output, RefusedGuarantee, Rejection,
};

/// The role an office plays in a movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Office of departure.
    Departure,
    /// Office of exit for transit.
    Exit,
    /// Office of transit (entry into a country on the route).
    Transit,
    /// Office of destination.
    Destination,
}

/// Who caused an event. Recorded by the service next to the event; the state does not keep it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// The holder of the transit procedure (or its representative), through a national system
    /// or the web form.
    Declarant,
    /// The trader at destination (or authorised consignee).
    TraderAtDestination,
    /// A customs officer, by user id.
    Officer {
        /// The officer's user id.
        id: String,
    },
    /// The system itself: automatic acceptance, risk rules, time limits.
    System,
    /// Another country's node, through the hub (common-domain messages).
    Node {
        /// The sending country (ISO 3166-1 alpha-2).
        country: String,
    },
}

/// One thing that happened to a movement at one office.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When (UTC): the reception of the message or the time of the decision.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: Actor,
    /// At which office of this node.
    pub office: CustomsOfficeRef,
    /// In which role of that office.
    pub role: Role,
    /// What.
    pub input: Input,
}

/// What happened: a message received, or a decision taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A message received, already decoded and checked against its rules.
    Message(Message),
    /// A decision of an officer or of the system.
    Decision(Decision),
}

/// A decision of an officer or of the system, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Departure: accept the declaration and allocate this MRN (the service allocates it with
    /// [`Mrn::generate`], since the sequence lives in its storage).
    AcceptDeclaration {
        /// The MRN allocated.
        mrn: Mrn,
    },
    /// Departure: reject the declaration (reference checks failed).
    RejectDeclaration {
        /// The functional error code.
        code: FunctionalError,
        /// Where in the CC015C.
        pointer: String,
        /// Why.
        reason: String,
    },
    /// Any office: the outcome of selection for control.
    Selection(Selection),
    /// Any office: the result of a control.
    ControlResult(ControlResult),
    /// Departure: the result of a guarantee check done without the hub's ledger; an empty list
    /// means every reference was accepted. (The ledger's answer comes as CD205C.)
    GuaranteeResult {
        /// The refused references.
        refused: Vec<RefusedGuarantee>,
    },
    /// Departure: refuse release (control, safety and security, guarantee time limit).
    RefuseRelease {
        /// No-release motivation code.
        motivation: String,
        /// Free text.
        text: String,
    },
    /// Departure: customs invalidate the declaration (before arrival).
    Invalidate {
        /// Why.
        justification: Option<String>,
    },
    /// Exit or transit: the goods are presented at the office.
    RecordPresentation,
    /// Exit: the goods leave (CD168C follows).
    RecordExit,
    /// Transit: the goods enter and may proceed (CD118C follows).
    RecordEntry,
    /// Destination: the goods arrived and were presented without a CC007C from the trader.
    RecordArrival {
        /// Whether the simplified procedure applies (authorised consignee).
        simplified: bool,
    },
    /// Destination: release the goods (CC025C and CD018C follow).
    ReleaseGoods,
    /// Departure: write the movement off (CC045C and the guarantee credit follow).
    WriteOff,
}

/// The outcome of selection for control.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Selection {
    /// Whether the goods are selected for control.
    pub selected: bool,
    /// Why (the rule or profile, or random sampling), kept for the national API.
    pub reason: String,
}

/// The result of a control.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControlResult {
    /// The outcome.
    pub outcome: ControlOutcome,
    /// The officer's remarks.
    pub remarks: Option<String>,
}

/// The outcome of a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ControlOutcome {
    /// Satisfactory (control result code `A1`).
    Satisfactory,
    /// Minor discrepancies, settled on the spot (`A4`).
    MinorDiscrepancies,
    /// Major discrepancies (`B1`): at departure or a border the goods are stopped; at
    /// destination the goods are released and departure notifies the holder (CC019C).
    MajorDiscrepancies,
}

impl ControlOutcome {
    /// The control result code CATS uses for it (CL196/CL197 style).
    pub fn code(self) -> &'static str {
        match self {
            ControlOutcome::Satisfactory => "A1",
            ControlOutcome::MinorDiscrepancies => "A4",
            ControlOutcome::MajorDiscrepancies => "B1",
        }
    }

    /// Reads a control result code: `A1`/`A2` satisfactory, other `A` codes minor
    /// discrepancies, anything else major discrepancies (the cautious reading).
    pub fn from_code(code: &str) -> ControlOutcome {
        match code {
            "A1" | "A2" => ControlOutcome::Satisfactory,
            c if c.starts_with('A') => ControlOutcome::MinorDiscrepancies,
            _ => ControlOutcome::MajorDiscrepancies,
        }
    }
}

/// What one node holds for one movement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Movement {
    /// The MRN: allocated at departure ([`Decision::AcceptDeclaration`]), or taken from the
    /// anticipated record at the other offices. `None` before acceptance.
    pub mrn: Option<Mrn>,
    /// The declaration summary (the latest amendment at departure).
    pub declaration: Declaration,
    /// The office of departure's state, if this node is the office of departure.
    pub departure: Option<Departure>,
    /// This node's offices of exit for transit in this movement.
    pub exits: BTreeMap<CustomsOfficeRef, BorderOffice>,
    /// This node's offices of transit (entry) in this movement.
    pub transits: BTreeMap<CustomsOfficeRef, BorderOffice>,
    /// The office of destination's state, if this node is the office of destination.
    pub destination: Option<Destination>,
    /// How many events were applied (rejected ones do not count).
    pub applied: u64,
}

/// The result of [`apply`]: the next state and what to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The movement after the event; `None` when there was none and the event did not start
    /// one.
    pub movement: Option<Movement>,
    /// What to send, in order.
    pub outputs: Vec<Output>,
}

/// Applies one event to a movement (or to no movement yet).
pub fn apply(movement: Option<Movement>, event: &Event) -> Step {
    match movement {
        None => begin(event),
        Some(movement) => {
            let result = match event.role {
                Role::Departure => departure::apply(&movement, event),
                Role::Exit | Role::Transit => border::apply(&movement, event),
                Role::Destination => destination::apply(&movement, event),
            };
            match result {
                Ok((mut next, outputs)) => {
                    next.applied = next.applied.saturating_add(1);
                    Step {
                        movement: Some(next),
                        outputs,
                    }
                }
                Err(rejection) => Step {
                    movement: Some(movement),
                    outputs: vec![reject(event, rejection)],
                },
            }
        }
    }
}

/// Folds [`apply`] over events, collecting every output: what the hub does with its journal.
pub fn replay<'a>(movement: Option<Movement>, events: impl IntoIterator<Item = &'a Event>) -> Step {
    let mut state = movement;
    let mut outputs = Vec::new();
    for event in events {
        let step = apply(state, event);
        state = step.movement;
        outputs.extend(step.outputs);
    }
    Step {
        movement: state,
        outputs,
    }
}

fn begin(event: &Event) -> Step {
    let started = match (&event.input, event.role) {
        (Input::Message(Message::CC015C(m)), Role::Departure) => departure::begin(m, event),
        (Input::Message(Message::CD160C(m)), Role::Exit) => Declaration::from_cd160c(m)
            .and_then(|d| border::begin(d, &m.transit_operation.mrn, "CD160C", event)),
        (Input::Message(Message::CD050C(m)), Role::Transit) => Declaration::from_cd050c(m)
            .and_then(|d| border::begin(d, &m.transit_operation.mrn, "CD050C", event)),
        (Input::Message(Message::CD001C(m)), Role::Destination) => destination::begin(m, event),
        _ => {
            return Step {
                movement: None,
                outputs: vec![unknown_mrn(event)],
            };
        }
    };
    match started {
        Ok((movement, outputs)) => Step {
            movement: Some(Movement {
                applied: 1,
                ..movement
            }),
            outputs,
        },
        Err(rejection) => Step {
            movement: None,
            outputs: vec![reject(event, rejection)],
        },
    }
}

/// The answer to an event for a movement the node does not hold: code 90 (unknown MRN), sent
/// where the event came from.
pub fn unknown_mrn(event: &Event) -> Output {
    let (rejected, pointer) = match &event.input {
        Input::Message(m) => (
            m.message_type().to_owned(),
            format!("/{}/TransitOperation/MRN", m.message_type()),
        ),
        Input::Decision(d) => (decision_name(d).to_owned(), String::new()),
    };
    reject(
        event,
        Rejection {
            rejected,
            code: FunctionalError::UnknownMrn,
            pointer,
            reason: "no movement with this reference at this office".to_owned(),
        },
    )
}

/// Sends `rejection` back where `event` came from (see the table in the module documentation).
pub fn reject(event: &Event, rejection: Rejection) -> Output {
    match &event.input {
        Input::Message(
            Message::CC015C(_) | Message::CC013C(_) | Message::CC014C(_) | Message::CC170C(_),
        ) => Output::ToDeclarant(ExternalReply::Rejection(rejection)),
        Input::Message(Message::CC007C(_) | Message::CC044C(_)) => {
            Output::ToTraderAtDestination(DestinationReply::Rejection(rejection))
        }
        Input::Message(m) if m.message_type().starts_with("CD") => {
            Output::ToHub(Common::FunctionalNack(rejection))
        }
        _ => Output::ActionRefused(rejection),
    }
}

/// Which movement a message addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A movement by MRN.
    Mrn(Mrn),
    /// A declaration not (necessarily) accepted yet, by LRN, holder and office of departure.
    Declaration(DeclarationKey),
    /// The message names its movement with an identifier that does not parse: answer with
    /// [`reject`] (code 93 for a wrong MRN check digit, 14 otherwise).
    Invalid(Rejection),
    /// The message is not part of the movement life cycle (queries, NACKs, administration).
    None,
}

/// Tells which movement `message` addresses (see the module documentation).
pub fn reference(message: &Message) -> Reference {
    use declaration::{mrn, office};
    let by_mrn =
        |kind: &str, text: &str| match mrn(&format!("/{kind}/TransitOperation/MRN"), kind, text) {
            Ok(m) => Reference::Mrn(m),
            Err(r) => Reference::Invalid(r),
        };
    let by_key = |kind: &str, lrn: &str, holder: Option<&str>, departure: &str| -> Reference {
        let key = (|| {
            Ok::<_, Rejection>(DeclarationKey {
                lrn: crate::ids::Lrn::parse(lrn).map_err(|e| {
                    declaration::rule(
                        kind,
                        &format!("/{kind}/TransitOperation/LRN"),
                        e.to_string(),
                    )
                })?,
                holder: holder
                    .map(|h| {
                        crate::ids::Tin::parse(h).map_err(|e| {
                            declaration::rule(
                                kind,
                                &format!(
                                    "/{kind}/HolderOfTheTransitProcedure/identificationNumber"
                                ),
                                e.to_string(),
                            )
                        })
                    })
                    .transpose()?,
                departure: office(
                    &format!("/{kind}/CustomsOfficeOfDeparture/referenceNumber"),
                    kind,
                    departure,
                )?,
            })
        })();
        match key {
            Ok(k) => Reference::Declaration(k),
            Err(r) => Reference::Invalid(r),
        }
    };
    match message {
        Message::CC015C(m) => by_key(
            "CC015C",
            &m.transit_operation.lrn,
            m.holder_of_the_transit_procedure
                .identification_number
                .as_deref(),
            &m.customs_office_of_departure.reference_number,
        ),
        Message::CC170C(m) => by_key(
            "CC170C",
            &m.transit_operation.lrn,
            m.holder_of_the_transit_procedure
                .identification_number
                .as_deref(),
            &m.customs_office_of_departure.reference_number,
        ),
        Message::CC013C(m) => match (&m.transit_operation.mrn, &m.transit_operation.lrn) {
            (Some(text), _) => by_mrn("CC013C", text),
            (None, Some(lrn)) => by_key(
                "CC013C",
                lrn,
                m.holder_of_the_transit_procedure
                    .identification_number
                    .as_deref(),
                &m.customs_office_of_departure.reference_number,
            ),
            (None, None) => Reference::None,
        },
        Message::CC014C(m) => match (&m.transit_operation.mrn, &m.transit_operation.lrn) {
            (Some(text), _) => by_mrn("CC014C", text),
            (None, Some(lrn)) => by_key(
                "CC014C",
                lrn,
                m.holder_of_the_transit_procedure
                    .identification_number
                    .as_deref(),
                &m.customs_office_of_departure.reference_number,
            ),
            (None, None) => Reference::None,
        },
        Message::CC007C(m) => by_mrn("CC007C", &m.transit_operation.mrn),
        Message::CC044C(m) => by_mrn("CC044C", &m.transit_operation.mrn),
        Message::CD001C(m) => by_mrn("CD001C", &m.transit_operation.mrn),
        Message::CD050C(m) => by_mrn("CD050C", &m.transit_operation.mrn),
        Message::CD160C(m) => by_mrn("CD160C", &m.transit_operation.mrn),
        Message::CD168C(m) => by_mrn("CD168C", &m.transit_operation.mrn),
        Message::CD118C(m) => by_mrn("CD118C", &m.transit_operation.mrn),
        Message::CD006C(m) => by_mrn("CD006C", &m.transit_operation.mrn),
        Message::CD018C(m) => by_mrn("CD018C", &m.transit_operation.mrn),
        Message::CD010C(m) => by_mrn("CD010C", &m.transit_operation.mrn),
        Message::CD205C(m) => by_mrn("CD205C", &m.transit_operation.mrn),
        _ => Reference::None,
    }
}

/// The name of a decision, as it appears in [`Rejection::rejected`].
pub fn decision_name(decision: &Decision) -> &'static str {
    match decision {
        Decision::AcceptDeclaration { .. } => "AcceptDeclaration",
        Decision::RejectDeclaration { .. } => "RejectDeclaration",
        Decision::Selection(_) => "Selection",
        Decision::ControlResult(_) => "ControlResult",
        Decision::GuaranteeResult { .. } => "GuaranteeResult",
        Decision::RefuseRelease { .. } => "RefuseRelease",
        Decision::Invalidate { .. } => "Invalidate",
        Decision::RecordPresentation => "RecordPresentation",
        Decision::RecordExit => "RecordExit",
        Decision::RecordEntry => "RecordEntry",
        Decision::RecordArrival { .. } => "RecordArrival",
        Decision::ReleaseGoods => "ReleaseGoods",
        Decision::WriteOff => "WriteOff",
    }
}

/// The rejection of `event` with code 92, because of `why`.
pub(crate) fn out_of_sequence(event: &Event, why: impl std::fmt::Display) -> Rejection {
    let (rejected, pointer) = match &event.input {
        Input::Message(m) => (
            m.message_type().to_owned(),
            format!("/{}", m.message_type()),
        ),
        Input::Decision(d) => (decision_name(d).to_owned(), String::new()),
    };
    Rejection {
        rejected,
        code: FunctionalError::OutOfSequence,
        pointer,
        reason: why.to_string(),
    }
}

impl Movement {
    /// The rank of every office role's phase, for checking that phases only move forward:
    /// `(role, office, rank)`, in a stable order.
    pub fn progress(&self) -> Vec<(Role, CustomsOfficeRef, u8)> {
        let mut all = Vec::new();
        if let Some(d) = &self.departure {
            all.push((Role::Departure, d.office, d.phase.rank()));
        }
        for (office, b) in &self.exits {
            all.push((Role::Exit, *office, b.phase.rank()));
        }
        for (office, b) in &self.transits {
            all.push((Role::Transit, *office, b.phase.rank()));
        }
        if let Some(d) = &self.destination {
            all.push((Role::Destination, d.office, d.phase.rank()));
        }
        all
    }
}
