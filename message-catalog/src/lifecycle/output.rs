//! What a transition asks the services to send: replies to the holder of the transit procedure
//! (external domain, P5 `CC` messages), replies to the trader at destination, common-domain
//! messages to the hub (`CD` messages), and refusals of an officer's or the system's action.
//!
//! Outputs are descriptions, not messages: the service fills in the header (sender, recipient,
//! message identification, preparation time) and, for the messages that carry declaration data,
//! uses [`super::compose`] with the declaration it stored.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{CustomsOfficeRef, Grn, Mrn};

use super::ControlOutcome;

/// One thing to send, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Output {
    /// To the holder of the transit procedure, from the office of departure.
    ToDeclarant(ExternalReply),
    /// To the trader at destination, from the office of destination.
    ToTraderAtDestination(DestinationReply),
    /// To the hub, which routes it to the office (and country) named inside.
    ToHub(Common),
    /// To whoever asked for an officer's or the system's action ([`super::Decision`]): the
    /// action does not fit the movement's state and was not recorded.
    ActionRefused(Rejection),
}

/// A reply to the holder of the transit procedure (P5 external domain, office of departure).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExternalReply {
    /// CC928C: the declaration was received and is being processed (LRN only).
    PositiveAck,
    /// CC028C: the declaration was accepted and this MRN allocated.
    MrnAllocated {
        /// The MRN allocated.
        mrn: Mrn,
    },
    /// CC060C: the goods are selected for control (notification type 0) or, for a pre-lodged
    /// declaration of an AEO, customs intend to control them (type 2).
    ControlDecision {
        /// `0` decision to control, `2` intention to control (pre-lodged).
        notification_type: String,
        /// Why the goods were selected, as recorded by the selection.
        reason: String,
    },
    /// CC055C: the guarantee use was refused for these references.
    GuaranteeNotValid {
        /// Each refused reference and why.
        refused: Vec<RefusedGuarantee>,
    },
    /// CC029C: released for transit (the service composes it from the stored CC015C).
    ReleaseForTransit,
    /// CC051C: release refused; the movement ends.
    NoRelease {
        /// No-release motivation code (CL211, two characters; CATS uses `01` unsatisfactory
        /// control, `02` guarantee not valid, `03` safety and security, `99` other).
        motivation: String,
        /// Free text.
        text: String,
    },
    /// CC009C: the declaration is invalidated.
    InvalidationDecision {
        /// Whether customs initiated it (rather than a CC014C of the holder).
        initiated_by_customs: bool,
        /// The justification recorded.
        justification: Option<String>,
    },
    /// CC004C: the amendment (CC013C) was accepted.
    AmendmentAccepted,
    /// CC056C: the message named in the rejection was rejected.
    Rejection(Rejection),
    /// CC019C: major discrepancies reported by the office of destination.
    Discrepancies {
        /// The destination's remarks.
        text: Option<String>,
    },
    /// CC045C: the movement is written off and the guarantee released.
    WriteOff,
}

/// A reply to the trader at destination (P5 external domain, office of destination).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DestinationReply {
    /// CC043C: unloading may start (simplified procedure).
    UnloadingPermission,
    /// CC025C: the goods are released at destination.
    GoodsRelease {
        /// The destination control outcome the release is given with.
        outcome: ControlOutcome,
    },
    /// CC057C: the arrival notification or the unloading remarks were rejected.
    Rejection(Rejection),
}

/// A common-domain message for the hub to route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Common {
    /// CD001C anticipated arrival record, to the declared office of destination.
    AnticipatedArrival {
        /// The declared office of destination.
        destination: CustomsOfficeRef,
    },
    /// CD050C anticipated transit record, to one declared office of transit (entry).
    AnticipatedTransit {
        /// The declared office of transit.
        office: CustomsOfficeRef,
    },
    /// CD160C anticipated exit record, to one declared office of exit for transit.
    AnticipatedExit {
        /// The declared office of exit for transit.
        office: CustomsOfficeRef,
    },
    /// CD168C notification of exit, from the office of exit to the office of departure.
    NotificationOfExit {
        /// The office of exit for transit (actual).
        exit: CustomsOfficeRef,
        /// The office of departure it is addressed to.
        departure: CustomsOfficeRef,
        /// When the goods left.
        passed_at: DateTime<Utc>,
    },
    /// CD118C notification crossing frontier, from the office of transit to departure.
    NotificationCrossingFrontier {
        /// The office of transit (actual).
        transit: CustomsOfficeRef,
        /// The office of departure it is addressed to.
        departure: CustomsOfficeRef,
        /// When the goods passed.
        passed_at: DateTime<Utc>,
    },
    /// CD006C arrival advice, from the office of destination to the office of departure.
    ArrivalAdvice {
        /// The office of destination (actual).
        destination: CustomsOfficeRef,
        /// The office of departure it is addressed to.
        departure: CustomsOfficeRef,
        /// When the goods arrived.
        arrived_at: DateTime<Utc>,
    },
    /// CD018C destination control results, from destination to departure.
    DestinationControlResults {
        /// The office of destination (actual).
        destination: CustomsOfficeRef,
        /// The office of departure it is addressed to.
        departure: CustomsOfficeRef,
        /// The outcome of the control at destination.
        outcome: ControlOutcome,
        /// Remarks (unloading remarks, control remarks).
        remarks: Option<String>,
    },
    /// CD010C cancellation, from departure to every office that got an AAR, ATR or AXR.
    Cancellation {
        /// The offices to notify: destination, transit and exit offices.
        offices: Vec<CustomsOfficeRef>,
    },
    /// CD203C guarantee use, to the hub's guarantee ledger.
    GuaranteeUse {
        /// The guarantee reference.
        grn: Grn,
        /// The amount to reserve.
        amount: Decimal,
        /// Its currency (CL048).
        currency: String,
    },
    /// CD204C guarantee use cancellation: release an amount reserved for this movement.
    GuaranteeUseCancellation {
        /// The guarantee reference.
        grn: Grn,
    },
    /// CD209C credit of the reference amount after write-off.
    GuaranteeCredit {
        /// The guarantee reference.
        grn: Grn,
    },
    /// CD906C functional NACK to the node that sent a common-domain message that does not fit.
    FunctionalNack(Rejection),
}

/// A refused guarantee reference (for CC055C).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefusedGuarantee {
    /// The guarantee reference.
    pub grn: Grn,
    /// The invalid-guarantee reason code (CL252, e.g. `G09` amounts not sufficient).
    pub reason: String,
}

/// A rejected message or action: NCTS functional error code, pointer and reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rejection {
    /// The type of what was rejected: a message type (`CC014C`) or a decision name.
    pub rejected: String,
    /// The NCTS functional error code.
    pub code: FunctionalError,
    /// Where: an XPath-like pointer into the rejected message (`/CC014C`).
    pub pointer: String,
    /// Why, in words.
    pub reason: String,
}

/// The NCTS functional error codes the life cycle produces (CL180).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FunctionalError {
    /// 12: code list violation.
    CodeList,
    /// 14: rule violation (a value that cannot be what it says, e.g. a malformed office).
    Rule,
    /// 26: duplicate (the same declaration, LRN and holder, submitted again).
    Duplicate,
    /// 90: unknown MRN.
    UnknownMrn,
    /// 92: message out of sequence.
    OutOfSequence,
    /// 93: invalid MRN (wrong check digit).
    InvalidMrn,
}

impl FunctionalError {
    /// The numeric code, as it goes on the wire.
    pub fn code(self) -> u16 {
        match self {
            FunctionalError::CodeList => 12,
            FunctionalError::Rule => 14,
            FunctionalError::Duplicate => 26,
            FunctionalError::UnknownMrn => 90,
            FunctionalError::OutOfSequence => 92,
            FunctionalError::InvalidMrn => 93,
        }
    }
}
