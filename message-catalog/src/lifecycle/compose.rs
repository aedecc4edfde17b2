//! Composing typed messages for the [`super::Output`]s, from what the service has at hand: the
//! [`Header`] it allocates, the stored CC015C (the declaration as received, or as last amended
//! by a CC013C converted by the service) or, at destination, the stored CD001C, and the
//! [`super::Movement`].
//!
//! # What is composed
//!
//! | output | message | function |
//! | --- | --- | --- |
//! | [`ExternalReply::PositiveAck`] | CC928C | [`positive_ack`] |
//! | [`ExternalReply::MrnAllocated`] | CC028C | [`mrn_allocated`] |
//! | [`ExternalReply::Rejection`] | CC056C | [`departure_rejection`] |
//! | [`ExternalReply::ControlDecision`] | CC060C | [`control_decision`] |
//! | [`ExternalReply::ReleaseForTransit`] | CC029C | [`release_for_transit`] |
//! | [`ExternalReply::AmendmentAccepted`] | CC004C | [`amendment_accepted`] |
//! | [`ExternalReply::InvalidationDecision`] | CC009C | [`invalidation_decision`] |
//! | [`ExternalReply::NoRelease`] | CC051C | [`no_release`] |
//! | [`ExternalReply::GuaranteeNotValid`] | CC055C | [`guarantee_not_valid`] |
//! | [`ExternalReply::Discrepancies`] | CC019C | [`discrepancies`] |
//! | [`ExternalReply::WriteOff`] | CC045C | [`write_off`] |
//! | [`DestinationReply::UnloadingPermission`] | CC043C (from the stored CD001C) | [`unloading_permission`] |
//! | [`DestinationReply::GoodsRelease`] | CC025C (without the optional consignment) | [`goods_release`] |
//! | [`DestinationReply::Rejection`] | CC057C | [`destination_rejection`] |
//! | [`Common::AnticipatedArrival`] | CD001C | [`anticipated_arrival`] |
//! | [`Common::AnticipatedTransit`] | CD050C (one per office of transit) | [`anticipated_transit`] |
//! | [`Common::AnticipatedExit`] | CD160C (one per office of exit for transit) | [`anticipated_exit`] |
//! | [`Common::NotificationOfExit`] | CD168C | [`notification_of_exit`] |
//! | [`Common::NotificationCrossingFrontier`] | CD118C | [`notification_crossing_frontier`] |
//! | [`Common::ArrivalAdvice`] | CD006C | [`arrival_advice`] |
//! | [`Common::DestinationControlResults`] | CD018C (without the optional consignment) | [`destination_control_results`] |
//! | [`Common::Cancellation`] | CD010C | [`cancellation`] |
//! | [`Common::GuaranteeUse`] | CD203C (one per GRN, without the optional consignment) | [`guarantee_use`] |
//! | [`Common::GuaranteeUseCancellation`] | CD204C | [`guarantee_use_cancellation`] |
//! | [`Common::GuaranteeCredit`] | CD209C | [`guarantee_credit`] |
//!
//! [`amended_declaration`] gives the CC015C as amended by an accepted CC013C, for the service
//! to store in place of the original.
//!
//! The status request and response are not outputs of the life cycle: the service composes
//! them on demand. [`status_request`] (CD094C) carries the asking node's departure phase
//! ([`departure_code`]); [`status_response`] (CD095C) carries [`office_states`], one
//! three-letter phase code per office role ([`phase_rank`] ranks the codes), and
//! [`states_of`] reads them back.
//!
//! [`message`] does the dispatch: given an output and a [`Context`], it returns the message,
//! or `None` for what is not composed ([`Common::FunctionalNack`] is the transport's, from the
//! codec's NACK; [`super::Output::ActionRefused`] is an answer to an API call, not a message)
//! or when the context lacks what the message is made from.
//!
//! # The messages that carry the consignment
//!
//! CC029C and the anticipated records CD001C, CD050C and CD160C are the stored CC015C (as
//! received or last amended) in another shape, plus what departure adds at release
//! ([`Release`]: the MRN, the acceptance and release dates, the control result). The office
//! of destination never sees the CC015C: it composes CC043C from the CD001C it received
//! ([`Context::arrival_record`]). The generated types differ per message while the element
//! names agree, so the consignment is copied element by element by name (`Reshape`, at the
//! bottom of this file). Where the target requires what the source may leave out:
//!
//! - the container indicator, optional in CC015C, is derived from the transport equipment
//!   (`1` when one has a container identification number);
//! - a repeatable or optional element that would lack a required element is left out: a
//!   departure or active border transport means without its identification, a guarantee
//!   reference without amount and currency, a goods measure without gross mass, and in the
//!   common-domain records (which P5 fills from its trader registers) a consignor or consignee
//!   given by identification number only, without name and address;
//! - the holder of the transit procedure is required in the records with its name and address:
//!   when the CC015C gives only the identification number, [`anticipated_arrival`],
//!   [`anticipated_transit`] and [`anticipated_exit`] return `None` (CATS has no trader
//!   register to fill them from; departure should require them at acceptance).
//!
//! The movement does not record when the control at departure was done; release follows the
//! control result, and the control result carries the release date.
//!
//! # Not composed yet
//!
//! CC043C's optional `CTLControl` and `Incident`, and the records' optional risk analysis
//! (CATS keeps only the selection's reason, not CL107 codes).
//! The ledger messages name the office of guarantee, which CATS reads from the GRN (positions
//! 3 to 10, as [`Grn::generate`] lays it out): a GRN allocated elsewhere gives `None`.
//!
//! Every function is total: it copies what it is given and never panics; the rules checked the
//! inputs when they came in. Those that return `Option` say when they give `None`.

use chrono::{DateTime, NaiveDate, Utc};

use crate::generated::{Message, cats, ncts};
use crate::ids::{CustomsOfficeRef, Grn, Mrn};

use super::output::{FunctionalError, RefusedGuarantee, Rejection};
use super::{
    Common, ControlOutcome, ControlResult, Declaration, DestinationReply, ExternalReply, Movement,
    Output, Role,
};

/// The header fields the service allocates for each message it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `messageSender`.
    pub sender: String,
    /// `messageRecipient`.
    pub recipient: String,
    /// `preparationDateAndTime` (written in UTC).
    pub prepared_at: DateTime<Utc>,
    /// `messageIdentification`.
    pub message_id: String,
    /// `correlationIdentifier`: the identification of the message this one answers.
    pub correlation: Option<String>,
}

macro_rules! ncts_message {
    ($ty:ident, $code:ident, $h:expr, $phase:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        ncts::$ty {
            phase_id: $phase,
            message_sender: $h.sender.clone(),
            message_recipient: $h.recipient.clone(),
            preparation_date_and_time: $h.prepared_at.naive_utc(),
            message_identification: $h.message_id.clone(),
            message_type: ncts::MessageTypes::$code,
            correlation_identifier: $h.correlation.clone(),
            $($field: $value),*
        }
    };
}

macro_rules! cats_message {
    ($ty:ident, $code:ident, $h:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        cats::$ty {
            message_sender: $h.sender.clone(),
            message_recipient: $h.recipient.clone(),
            preparation_date_and_time: $h.prepared_at.naive_utc(),
            message_identification: $h.message_id.clone(),
            message_type: cats::CatsCommonMessageTypes::$code,
            correlation_identifier: $h.correlation.clone(),
            $($field: $value),*
        }
    };
}

macro_rules! address {
    ($a:expr, $ty:ident) => {
        $a.as_ref().map(|a| ncts::$ty {
            street_and_number: a.street_and_number.clone(),
            postcode: a.postcode.clone(),
            city: a.city.clone(),
            country: a.country.clone(),
        })
    };
}

/// The holder in the shape most replies use (`HolderOfTheTransitProcedureType20`/`08`/`15`).
macro_rules! holder {
    ($d:expr, $ty:ident, $addr:ident) => {{
        let h = &$d.holder_of_the_transit_procedure;
        ncts::$ty {
            identification_number: h.identification_number.clone(),
            tir_holder_identification_number: h.tir_holder_identification_number.clone(),
            name: h.name.clone(),
            address: address!(h.address, $addr),
        }
    }};
}

fn departure_office(d: &ncts::CC015CType) -> ncts::CustomsOfficeOfDepartureType03 {
    ncts::CustomsOfficeOfDepartureType03 {
        reference_number: d.customs_office_of_departure.reference_number.clone(),
    }
}

fn holder13(d: &ncts::CC015CType) -> ncts::HolderOfTheTransitProcedureType13 {
    let h = &d.holder_of_the_transit_procedure;
    ncts::HolderOfTheTransitProcedureType13 {
        identification_number: h.identification_number.clone(),
        tir_holder_identification_number: h.tir_holder_identification_number.clone(),
        name: h.name.clone(),
        address: address!(h.address, AddressType07),
        contact_person: h
            .contact_person
            .as_ref()
            .map(|c| ncts::ContactPersonType04 {
                name: c.name.clone(),
                phone_number: c.phone_number.clone(),
                e_mail_address: c.e_mail_address.clone(),
            }),
    }
}

fn error_code(code: FunctionalError) -> ncts::AesNctsP5FunctionalErrorCodes {
    // Every FunctionalError is in CL180; 14 is the fallback should the two ever disagree.
    ncts::AesNctsP5FunctionalErrorCodes::from_lexical(&code.code().to_string())
        .unwrap_or(ncts::AesNctsP5FunctionalErrorCodes::V14)
}

fn functional_error(r: &Rejection) -> ncts::FunctionalErrorType04 {
    ncts::FunctionalErrorType04 {
        error_pointer: if r.pointer.is_empty() {
            format!("/{}", r.rejected)
        } else {
            r.pointer.clone()
        },
        error_code: error_code(r.code),
        // errorReason is an..7 (a rule identifier in P5): CATS puts `LC` and the code there
        // ("life cycle"); the words go in TransitOperation/rejectionReason.
        error_reason: format!("LC{}", r.code.code()),
        original_attribute_value: None,
    }
}

/// The business rejection type of CC056C/CC057C: the number of the rejected message
/// (`CC015C` → `015`).
fn business_rejection_type(rejected: &str) -> String {
    rejected
        .get(2..5)
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("015")
        .to_owned()
}

/// CC928C positive acknowledgement of `declaration`.
pub fn positive_ack(h: &Header, declaration: &ncts::CC015CType) -> ncts::CC928CType {
    ncts_message!(CC928CType, CC928C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType26 {
            lrn: declaration.transit_operation.lrn.clone(),
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder!(declaration, HolderOfTheTransitProcedureType20, AddressType07),
    })
}

/// CC028C: `mrn` allocated to `declaration`, accepted on `accepted_on`.
pub fn mrn_allocated(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: &Mrn,
    accepted_on: NaiveDate,
) -> ncts::CC028CType {
    ncts_message!(CC028CType, CC028C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType11 {
            lrn: declaration.transit_operation.lrn.clone(),
            mrn: mrn.to_string(),
            declaration_acceptance_date: accepted_on,
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder!(declaration, HolderOfTheTransitProcedureType20, AddressType07),
    })
}

/// CC056C rejection from the office of departure of a message about `declaration`.
pub fn departure_rejection(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: Option<&Mrn>,
    rejection: &Rejection,
    rejected_at: DateTime<Utc>,
) -> ncts::CC056CType {
    ncts_message!(CC056CType, CC056C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType20 {
            lrn: mrn.is_none().then(|| declaration.transit_operation.lrn.clone()),
            mrn: mrn.map(Mrn::to_string),
            business_rejection_type: business_rejection_type(&rejection.rejected),
            rejection_date_and_time: rejected_at.naive_utc(),
            rejection_code: rejection.code.code().to_string(),
            rejection_reason: Some(rejection.reason.chars().take(512).collect()),
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder!(declaration, HolderOfTheTransitProcedureType08, AddressType07),
        representative: None,
        functional_error: vec![functional_error(rejection)],
    })
}

/// CC060C control decision notification (`notification_type` `0` or `2`).
pub fn control_decision(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: Option<&Mrn>,
    notification_type: &str,
    notified_at: DateTime<Utc>,
) -> ncts::CC060CType {
    ncts_message!(CC060CType, CC060C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType22 {
            lrn: mrn.is_none().then(|| declaration.transit_operation.lrn.clone()),
            mrn: mrn.map(Mrn::to_string),
            control_notification_date_and_time: notified_at.naive_utc(),
            notification_type: notification_type.to_owned(),
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder13(declaration),
        representative: None,
        type_of_controls: Vec::new(),
        requested_document: Vec::new(),
    })
}

/// CC004C amendment acceptance.
pub fn amendment_accepted(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: Option<&Mrn>,
    submitted_at: DateTime<Utc>,
    accepted_at: DateTime<Utc>,
) -> ncts::CC004CType {
    ncts_message!(CC004CType, CC004C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType01 {
            lrn: mrn.is_none().then(|| declaration.transit_operation.lrn.clone()),
            mrn: mrn.map(Mrn::to_string),
            amendment_submission_date_and_time: submitted_at.naive_utc(),
            amendment_acceptance_date_and_time: accepted_at.naive_utc(),
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder!(declaration, HolderOfTheTransitProcedureType20, AddressType07),
    })
}

/// CC009C invalidation decision (positive).
pub fn invalidation_decision(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: Option<&Mrn>,
    initiated_by_customs: bool,
    justification: Option<&str>,
    decided_at: DateTime<Utc>,
) -> ncts::CC009CType {
    ncts_message!(CC009CType, CC009C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType03 {
            lrn: mrn.is_none().then(|| declaration.transit_operation.lrn.clone()),
            mrn: mrn.map(Mrn::to_string),
        },
        invalidation: ncts::InvalidationType01 {
            request_date_and_time: None,
            decision_date_and_time: Some(decided_at.naive_utc()),
            decision: Some(ncts::Flag::V1),
            initiated_by_customs: if initiated_by_customs { ncts::Flag::V1 } else { ncts::Flag::V0 },
            justification: justification.map(str::to_owned),
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder13(declaration),
    })
}

/// CC051C no release for transit.
pub fn no_release(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: &Mrn,
    submitted_at: DateTime<Utc>,
    motivation: &str,
    text: &str,
) -> ncts::CC051CType {
    ncts_message!(CC051CType, CC051C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType18 {
            mrn: mrn.to_string(),
            declaration_submission_date_and_time: submitted_at.naive_utc(),
            no_release_motivation_code: motivation.to_owned(),
            no_release_motivation_text: text.to_owned(),
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder!(declaration, HolderOfTheTransitProcedureType15, AddressType15),
        representative: None,
    })
}

/// CC055C guarantee not valid.
pub fn guarantee_not_valid(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: &Mrn,
    accepted_on: NaiveDate,
    refused: &[RefusedGuarantee],
) -> ncts::CC055CType {
    let holder = &declaration.holder_of_the_transit_procedure;
    ncts_message!(CC055CType, CC055C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType48 {
            mrn: mrn.to_string(),
            declaration_acceptance_date: accepted_on,
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: ncts::HolderOfTheTransitProcedureType07 {
            identification_number: holder.identification_number.clone(),
            name: holder.name.clone(),
            address: address!(holder.address, AddressType03),
        },
        guarantee_reference: refused
            .iter()
            .zip(1i64..)
            .map(|(r, n)| ncts::GuaranteeReferenceType08 {
                sequence_number: n,
                grn: r.grn.to_string(),
                invalid_guarantee_reason: vec![ncts::InvalidGuaranteeReasonType01 {
                    sequence_number: 1,
                    code: r.reason.clone(),
                    text: None,
                }],
            })
            .collect(),
    })
}

/// CC019C discrepancies.
pub fn discrepancies(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: &Mrn,
    notified_on: NaiveDate,
    text: Option<&str>,
) -> ncts::CC019CType {
    ncts_message!(CC019CType, CC019C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType08 {
            mrn: mrn.to_string(),
            discrepancies_notification_date: notified_on,
            discrepancies_notification_text: text.map(str::to_owned),
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder!(declaration, HolderOfTheTransitProcedureType20, AddressType07),
        guarantor: None,
    })
}

/// CC045C write-off notification.
pub fn write_off(
    h: &Header,
    declaration: &ncts::CC015CType,
    mrn: &Mrn,
    written_off_on: NaiveDate,
) -> ncts::CC045CType {
    ncts_message!(CC045CType, CC045C, h, declaration.phase_id, {
        transit_operation: ncts::TransitOperationType16 {
            mrn: mrn.to_string(),
            write_off_date: written_off_on,
        },
        customs_office_of_departure: departure_office(declaration),
        holder_of_the_transit_procedure: holder!(declaration, HolderOfTheTransitProcedureType20, AddressType07),
        guarantor: None,
    })
}

/// CC025C goods release notification (release indicator `1`: released).
pub fn goods_release(
    h: &Header,
    mrn: &Mrn,
    destination: &CustomsOfficeRef,
    trader_at_destination: &str,
    released_on: NaiveDate,
) -> ncts::CC025CType {
    ncts_message!(CC025CType, CC025C, h, Some(ncts::phaseIDtype::NCTS5_1), {
        transit_operation: ncts::TransitOperationType10 {
            mrn: mrn.to_string(),
            release_date: released_on,
            release_indicator: "1".to_owned(),
        },
        customs_office_of_destination_actual: ncts::CustomsOfficeOfDestinationActualType03 {
            reference_number: destination.to_string(),
        },
        trader_at_destination: ncts::TraderAtDestinationType03 {
            identification_number: trader_at_destination.to_owned(),
        },
        consignment: None,
    })
}

/// CC057C rejection from the office of destination.
pub fn destination_rejection(
    h: &Header,
    mrn: &str,
    destination: &CustomsOfficeRef,
    trader_at_destination: &str,
    rejection: &Rejection,
    rejected_at: DateTime<Utc>,
) -> ncts::CC057CType {
    ncts_message!(CC057CType, CC057C, h, Some(ncts::phaseIDtype::NCTS5_1), {
        transit_operation: ncts::TransitOperationType21 {
            mrn: mrn.to_owned(),
            business_rejection_type: business_rejection_type(&rejection.rejected),
            rejection_date_and_time: rejected_at.naive_utc(),
            rejection_code: rejection.code.code().to_string(),
            rejection_reason: Some(rejection.reason.chars().take(512).collect()),
        },
        customs_office_of_destination_actual: ncts::CustomsOfficeOfDestinationActualType03 {
            reference_number: destination.to_string(),
        },
        trader_at_destination: ncts::TraderAtDestinationType03 {
            identification_number: trader_at_destination.to_owned(),
        },
        functional_error: vec![functional_error(rejection)],
    })
}

/// CD168C notification of exit.
pub fn notification_of_exit(
    h: &Header,
    mrn: &Mrn,
    departure: &CustomsOfficeRef,
    exit: &CustomsOfficeRef,
    passed_at: DateTime<Utc>,
) -> cats::CD168CType {
    cats_message!(CD168CType, CD168C, h, {
        transit_operation: cats::TransitOperationType46 {
            mrn: mrn.to_string(),
            passage_date: passed_at.date_naive(),
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: departure.to_string(),
        },
        customs_office_of_exit_for_transit_actual: cats::CustomsOfficeOfExitForTransitActualType02 {
            reference_number: exit.to_string(),
        },
    })
}

/// CD118C notification crossing frontier.
pub fn notification_crossing_frontier(
    h: &Header,
    mrn: &Mrn,
    departure: &CustomsOfficeRef,
    transit: &CustomsOfficeRef,
    passed_at: DateTime<Utc>,
) -> cats::CD118CType {
    cats_message!(CD118CType, CD118C, h, {
        transit_operation: cats::TransitOperationType46 {
            mrn: mrn.to_string(),
            passage_date: passed_at.date_naive(),
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: departure.to_string(),
        },
        customs_office_of_transit_actual: cats::CustomsOfficeOfTransitActualType03 {
            reference_number: transit.to_string(),
        },
    })
}

/// CD006C arrival advice.
pub fn arrival_advice(
    h: &Header,
    mrn: &Mrn,
    departure: &CustomsOfficeRef,
    destination: &CustomsOfficeRef,
    arrived_at: DateTime<Utc>,
) -> cats::CD006CType {
    cats_message!(CD006CType, CD006C, h, {
        transit_operation: cats::TransitOperationType45 {
            mrn: mrn.to_string(),
            arrival_date_and_time_actual: arrived_at.naive_utc(),
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: departure.to_string(),
        },
        customs_office_of_destination_actual: cats::CustomsOfficeOfDestinationActualType03 {
            reference_number: destination.to_string(),
        },
    })
}

/// CD018C destination control results (without the optional consignment).
pub fn destination_control_results(
    h: &Header,
    mrn: &Mrn,
    departure: &CustomsOfficeRef,
    destination: &CustomsOfficeRef,
    outcome: ControlOutcome,
    remarks: Option<&str>,
    controlled_on: NaiveDate,
) -> cats::CD018CType {
    cats_message!(CD018CType, CD018C, h, {
        transit_operation: cats::TransitOperationType30 {
            mrn: mrn.to_string(),
            tir_carnet_number: None,
            binding_itinerary: cats::Flag::V0,
            other_things_to_report: None,
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: departure.to_string(),
        },
        customs_office_of_destination_actual: cats::CustomsOfficeOfDestinationActualType03 {
            reference_number: destination.to_string(),
        },
        control_result: cats::ControlResultType05 {
            code: outcome.code().to_owned(),
            date: controlled_on,
            state_of_seals: None,
            text: remarks.map(|r| r.chars().take(512).collect()),
        },
        consignment: None,
    })
}

/// CD010C cancellation notification to the offices en route of `declaration`.
pub fn cancellation(
    h: &Header,
    mrn: &Mrn,
    declaration: &Declaration,
    decided_at: DateTime<Utc>,
) -> cats::CD010CType {
    cats_message!(CD010CType, CD010C, h, {
        transit_operation: cats::TransitOperationType43 { mrn: mrn.to_string() },
        invalidation: cats::InvalidationType03 {
            decision_date_and_time: decided_at.naive_utc(),
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: declaration.departure.to_string(),
        },
        customs_office_of_destination_declared: cats::CustomsOfficeOfDestinationDeclaredType01 {
            reference_number: declaration.destination.to_string(),
        },
        customs_office_of_transit_declared: declaration
            .transits
            .iter()
            .zip(1i64..)
            .map(|(o, n)| cats::CustomsOfficeOfTransitDeclaredType03 {
                sequence_number: n,
                reference_number: o.to_string(),
            })
            .collect(),
        customs_office_of_exit_for_transit_declared: declaration
            .exits
            .iter()
            .zip(1i64..)
            .map(|(o, n)| cats::CustomsOfficeOfExitForTransitDeclaredType02 {
                sequence_number: n,
                reference_number: o.to_string(),
            })
            .collect(),
    })
}

/// The office of guarantee of a GRN allocated by CATS (positions 3 to 10).
pub fn office_of_guarantee(grn: &Grn) -> Option<CustomsOfficeRef> {
    CustomsOfficeRef::parse(grn.as_str().get(2..10)?).ok()
}

/// The guarantee type of `grn` in the declaration (`0` when it is not there).
fn guarantee_type(declaration: &Declaration, grn: &Grn) -> String {
    declaration
        .guarantees
        .iter()
        .find(|g| &g.grn == grn)
        .map_or_else(|| "0".to_owned(), |g| g.guarantee_type.clone())
}

/// CD203C guarantee use of `grn` for the declaration, with its access code and amount from
/// the stored CC015C; `None` when the CC015C does not declare `grn` with an access code, or the
/// holder has no identification number.
pub fn guarantee_use(
    h: &Header,
    stored: &ncts::CC015CType,
    declaration: &Declaration,
    mrn: &Mrn,
    accepted_on: NaiveDate,
    grn: &Grn,
) -> Option<cats::CD203CType> {
    let (guarantee, reference) = stored.guarantee.iter().find_map(|g| {
        g.guarantee_reference
            .iter()
            .find(|r| r.grn.as_deref() == Some(grn.as_str()))
            .map(|r| (g, r))
    })?;
    let mut countries: Vec<String> = Vec::new();
    for office in
        std::iter::once(&declaration.departure).chain(declaration.offices_en_route().iter())
    {
        let country = office.country().to_string();
        if !countries.contains(&country) {
            countries.push(country);
        }
    }
    Some(cats_message!(CD203CType, CD203C, h, {
        transit_operation: cats::TransitOperationType48 {
            mrn: mrn.to_string(),
            declaration_acceptance_date: accepted_on,
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: declaration.departure.to_string(),
        },
        customs_office_of_destination_declared: cats::CustomsOfficeOfDestinationDeclaredType02 {
            reference_number: declaration.destination.to_string(),
        },
        country_involved: countries
            .into_iter()
            .zip(1i64..)
            .map(|(country, n)| cats::CountryInvolvedType { sequence_number: n, country })
            .collect(),
        holder_of_the_transit_procedure: cats::HolderOfTheTransitProcedureType01 {
            identification_number: declaration.holder.as_ref()?.to_string(),
        },
        guarantee: vec![cats::GuaranteeType06 {
            sequence_number: 1,
            guarantee_type: guarantee.guarantee_type.clone(),
            guarantee_reference: vec![cats::GuaranteeReferenceType04 {
                sequence_number: 1,
                grn: grn.to_string(),
                access_code: reference.access_code.clone()?,
                amount_concerned: reference.amount_to_be_covered.unwrap_or_default(),
                currency: reference.currency.clone()?,
            }],
        }],
        consignment: None,
    }))
}

fn ledger_reference(declaration: &Declaration, grn: &Grn) -> Option<Vec<cats::GuaranteeType04>> {
    Some(vec![cats::GuaranteeType04 {
        sequence_number: 1,
        guarantee_type: guarantee_type(declaration, grn),
        guarantee_reference: vec![cats::GuaranteeReferenceType15 {
            sequence_number: 1,
            grn: grn.to_string(),
            customs_office_of_guarantee: cats::CustomsOfficeOfGuaranteeType02 {
                reference_number: office_of_guarantee(grn)?.to_string(),
            },
        }],
    }])
}

/// CD204C guarantee use cancellation of `grn`.
pub fn guarantee_use_cancellation(
    h: &Header,
    declaration: &Declaration,
    mrn: &Mrn,
    cancelled_on: NaiveDate,
    grn: &Grn,
) -> Option<cats::CD204CType> {
    Some(cats_message!(CD204CType, CD204C, h, {
        transit_operation: cats::TransitOperationType42 {
            mrn: mrn.to_string(),
            release_date: None,
            usage_cancellation_date: Some(cancelled_on),
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: declaration.departure.to_string(),
        },
        guarantee: ledger_reference(declaration, grn)?,
    }))
}

/// CD209C credit of the reference amount of `grn`, the goods having arrived at `arrived_at`.
pub fn guarantee_credit(
    h: &Header,
    declaration: &Declaration,
    mrn: &Mrn,
    arrived_at: DateTime<Utc>,
    grn: &Grn,
) -> Option<cats::CD209CType> {
    let guarantee = ledger_reference(declaration, grn)?
        .into_iter()
        .map(|g| cats::GuaranteeType05 {
            sequence_number: g.sequence_number,
            guarantee_type: g.guarantee_type,
            guarantee_reference: g.guarantee_reference,
        })
        .collect();
    Some(cats_message!(CD209CType, CD209C, h, {
        transit_operation: cats::TransitOperationType45 {
            mrn: mrn.to_string(),
            arrival_date_and_time_actual: arrived_at.naive_utc(),
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType03 {
            reference_number: declaration.departure.to_string(),
        },
        guarantee: guarantee,
    }))
}

/// What the office of departure adds to the declaration when it releases the goods, for
/// CC029C and the anticipated records.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    /// The MRN.
    pub mrn: &'a Mrn,
    /// The date the declaration was accepted.
    pub accepted_on: NaiveDate,
    /// The date of release for transit.
    pub released_on: NaiveDate,
    /// The control at departure, if the goods were controlled.
    pub control: Option<&'a ControlResult>,
}

impl<'a> Release<'a> {
    /// The release of `movement` at departure, released at `released_at` (the time of the step
    /// that released it); `None` when the movement has no MRN or is not held by its office of
    /// departure.
    pub fn of(movement: &'a Movement, released_at: DateTime<Utc>) -> Option<Release<'a>> {
        let departure = movement.departure.as_ref()?;
        Some(Release {
            mrn: movement.mrn.as_ref()?,
            accepted_on: departure.accepted_at.unwrap_or(released_at).date_naive(),
            released_on: released_at.date_naive(),
            control: departure.control.as_ref(),
        })
    }

    /// The control result in the P5 shape: the movement does not record when the control was
    /// done, and release follows the control result, so its date is the release date.
    fn control_result(&self, declaration: &ncts::CC015CType) -> Option<ncts::ControlResultType02> {
        self.control.map(|c| ncts::ControlResultType02 {
            code: c.outcome.code().to_owned(),
            date: self.released_on,
            controlled_by: declaration
                .customs_office_of_departure
                .reference_number
                .clone(),
            text: c.remarks.as_ref().map(|r| r.chars().take(512).collect()),
        })
    }

    fn common_control_result(&self) -> Option<cats::ControlResultType06> {
        self.control.map(|c| cats::ControlResultType06 {
            code: c.outcome.code().to_owned(),
            date: self.released_on,
            text: c.remarks.as_ref().map(|r| r.chars().take(512).collect()),
        })
    }
}

/// The declaration as amended: what the office of departure keeps, and composes every later
/// message from, once it has accepted a CC013C (CC004C). The header and the LRN stay the
/// original's; every data group comes from the amendment, which P5 sends whole. A guarantee the
/// amendment gives without its type keeps the type of the original guarantee with the same
/// sequence number (and the original's first type when no sequence number matches).
pub fn amended_declaration(
    original: &ncts::CC015CType,
    amendment: &ncts::CC013CType,
) -> ncts::CC015CType {
    let a = &amendment.transit_operation;
    let type_of = |sequence: i64| -> String {
        original
            .guarantee
            .iter()
            .find(|g| g.sequence_number == sequence)
            .or(original.guarantee.first())
            .map(|g| g.guarantee_type.clone())
            .unwrap_or_default()
    };
    ncts::CC015CType {
        transit_operation: ncts::TransitOperationType06 {
            lrn: original.transit_operation.lrn.clone(),
            declaration_type: a.declaration_type.clone(),
            additional_declaration_type: a.additional_declaration_type.clone(),
            tir_carnet_number: a.tir_carnet_number.clone(),
            presentation_of_the_goods_date_and_time: a.presentation_of_the_goods_date_and_time,
            security: a.security.clone(),
            reduced_dataset_indicator: a.reduced_dataset_indicator,
            specific_circumstance_indicator: a.specific_circumstance_indicator.clone(),
            communication_language_at_departure: a.communication_language_at_departure.clone(),
            binding_itinerary: a.binding_itinerary,
            limit_date: a.limit_date,
        },
        authorisation: amendment.authorisation.clone(),
        customs_office_of_departure: amendment.customs_office_of_departure.clone(),
        customs_office_of_destination_declared: amendment
            .customs_office_of_destination_declared
            .clone(),
        customs_office_of_transit_declared: amendment.customs_office_of_transit_declared.clone(),
        customs_office_of_exit_for_transit_declared: amendment
            .customs_office_of_exit_for_transit_declared
            .clone(),
        holder_of_the_transit_procedure: amendment.holder_of_the_transit_procedure.clone(),
        representative: amendment.representative.clone(),
        guarantee: amendment
            .guarantee
            .iter()
            .map(|g| ncts::GuaranteeType02 {
                sequence_number: g.sequence_number,
                guarantee_type: g
                    .guarantee_type
                    .clone()
                    .unwrap_or_else(|| type_of(g.sequence_number)),
                other_guarantee_reference: g.other_guarantee_reference.clone(),
                guarantee_reference: g.guarantee_reference.clone(),
            })
            .collect(),
        consignment: amendment.consignment.clone(),
        ..original.clone()
    }
}

/// CC029C release for transit: the declaration as stored, with the MRN, the dates and the
/// control result at departure. `None` when the declaration lacks an element CC029C requires
/// (see the module documentation).
pub fn release_for_transit(
    h: &Header,
    declaration: &ncts::CC015CType,
    release: &Release<'_>,
) -> Option<ncts::CC029CType> {
    let d = declaration;
    let op = &d.transit_operation;
    Some(ncts_message!(CC029CType, CC029C, h, d.phase_id, {
        transit_operation: ncts::TransitOperationType12 {
            lrn: op.lrn.clone(),
            mrn: release.mrn.to_string(),
            declaration_type: op.declaration_type.clone(),
            additional_declaration_type: op.additional_declaration_type.clone(),
            tir_carnet_number: op.tir_carnet_number.clone(),
            declaration_acceptance_date: release.accepted_on,
            release_date: release.released_on,
            security: op.security.clone(),
            reduced_dataset_indicator: op.reduced_dataset_indicator,
            specific_circumstance_indicator: op.specific_circumstance_indicator.clone(),
            communication_language_at_departure: op.communication_language_at_departure.clone(),
            binding_itinerary: op.binding_itinerary,
        },
        authorisation: d.authorisation.reshape()?,
        customs_office_of_departure: d.customs_office_of_departure.clone(),
        customs_office_of_destination_declared: d.customs_office_of_destination_declared.clone(),
        customs_office_of_transit_declared: d.customs_office_of_transit_declared.clone(),
        customs_office_of_exit_for_transit_declared: d.customs_office_of_exit_for_transit_declared.clone(),
        holder_of_the_transit_procedure: d.holder_of_the_transit_procedure.reshape()?,
        representative: d.representative.reshape()?,
        control_result: release.control_result(d),
        guarantee: d.guarantee.reshape()?,
        consignment: d.consignment.reshape()?,
    }))
}

/// CD001C anticipated arrival record, for the declared office of destination. `None` when the
/// declaration lacks an element CD001C requires: the holder's name and address above all,
/// which P5 takes from its trader registers and CATS from the declaration (see the module documentation).
pub fn anticipated_arrival(
    h: &Header,
    declaration: &ncts::CC015CType,
    release: &Release<'_>,
) -> Option<cats::CD001CType> {
    let d = declaration;
    let op = &d.transit_operation;
    Some(cats_message!(CD001CType, CD001C, h, {
        transit_operation: cats::TransitOperationType27 {
            mrn: release.mrn.to_string(),
            declaration_type: op.declaration_type.clone(),
            tir_carnet_number: op.tir_carnet_number.clone(),
            declaration_acceptance_date: release.accepted_on,
            release_date: release.released_on,
            security: op.security.clone(),
            reduced_dataset_indicator: op.reduced_dataset_indicator.reshape()?,
            specific_circumstance_indicator: op.specific_circumstance_indicator.clone(),
            binding_itinerary: op.binding_itinerary.reshape()?,
        },
        customs_office_of_departure: d.customs_office_of_departure.reshape()?,
        customs_office_of_destination_declared: d.customs_office_of_destination_declared.reshape()?,
        customs_office_of_transit_declared: d.customs_office_of_transit_declared.reshape()?,
        customs_office_of_exit_for_transit_declared: d.customs_office_of_exit_for_transit_declared.reshape()?,
        holder_of_the_transit_procedure: d.holder_of_the_transit_procedure.reshape()?,
        control_result: release.common_control_result(),
        risk_analysis_identification: None,
        consignment: d.consignment.reshape()?,
    }))
}

/// CD050C anticipated transit record, for each declared office of transit (the record is the
/// same for all of them; the header addresses it). `None` as for [`anticipated_arrival`].
pub fn anticipated_transit(
    h: &Header,
    declaration: &ncts::CC015CType,
    release: &Release<'_>,
) -> Option<cats::CD050CType> {
    let d = declaration;
    let op = &d.transit_operation;
    Some(cats_message!(CD050CType, CD050C, h, {
        transit_operation: cats::TransitOperationType34 {
            mrn: release.mrn.to_string(),
            declaration_type: op.declaration_type.clone(),
            declaration_acceptance_date: release.accepted_on,
            release_date: release.released_on,
            security: op.security.clone(),
            reduced_dataset_indicator: op.reduced_dataset_indicator.reshape()?,
            specific_circumstance_indicator: op.specific_circumstance_indicator.clone(),
            binding_itinerary: op.binding_itinerary.reshape()?,
        },
        customs_office_of_departure: d.customs_office_of_departure.reshape()?,
        customs_office_of_destination_declared: d.customs_office_of_destination_declared.reshape()?,
        customs_office_of_transit_declared: d.customs_office_of_transit_declared.reshape()?,
        customs_office_of_exit_for_transit_declared: d.customs_office_of_exit_for_transit_declared.reshape()?,
        holder_of_the_transit_procedure: d.holder_of_the_transit_procedure.reshape()?,
        control_result: release.common_control_result(),
        risk_analysis_identification: None,
        consignment: d.consignment.reshape()?,
    }))
}

/// CD160C anticipated exit record, for each declared office of exit for transit (the record
/// is the same for all of them; the header addresses it). `None` as for
/// [`anticipated_arrival`].
pub fn anticipated_exit(
    h: &Header,
    declaration: &ncts::CC015CType,
    release: &Release<'_>,
) -> Option<cats::CD160CType> {
    let d = declaration;
    let op = &d.transit_operation;
    Some(cats_message!(CD160CType, CD160C, h, {
        transit_operation: cats::TransitOperationType40 {
            mrn: release.mrn.to_string(),
            declaration_type: op.declaration_type.clone(),
            declaration_acceptance_date: release.accepted_on,
            release_date: release.released_on,
            security: op.security.clone(),
            reduced_dataset_indicator: op.reduced_dataset_indicator.reshape()?,
            specific_circumstance_indicator: op.specific_circumstance_indicator.clone(),
            binding_itinerary: op.binding_itinerary.reshape()?,
        },
        customs_office_of_departure: d.customs_office_of_departure.reshape()?,
        customs_office_of_destination_declared: d.customs_office_of_destination_declared.reshape()?,
        customs_office_of_transit_declared: d.customs_office_of_transit_declared.reshape()?,
        customs_office_of_exit_for_transit_declared: d.customs_office_of_exit_for_transit_declared.reshape()?,
        holder_of_the_transit_procedure: d.holder_of_the_transit_procedure.reshape()?,
        control_result: release.common_control_result(),
        risk_analysis_identification: None,
        consignment: d.consignment.reshape()?,
    }))
}

/// CC043C unloading permission, from the anticipated arrival record the office of
/// destination holds (it never sees the CC015C), to `trader_at_destination` at `destination`.
/// `None` when the record lacks an element CC043C requires (see the module documentation).
pub fn unloading_permission(
    h: &Header,
    record: &cats::CD001CType,
    destination: &CustomsOfficeRef,
    trader_at_destination: &str,
) -> Option<ncts::CC043CType> {
    let op = &record.transit_operation;
    Some(
        ncts_message!(CC043CType, CC043C, h, Some(ncts::phaseIDtype::NCTS5_1), {
            transit_operation: ncts::TransitOperationType14 {
                mrn: op.mrn.clone(),
                declaration_type: Some(op.declaration_type.clone()),
                declaration_acceptance_date: Some(op.declaration_acceptance_date),
                security: op.security.clone(),
                reduced_dataset_indicator: op.reduced_dataset_indicator.reshape()?,
            },
            customs_office_of_destination_actual: ncts::CustomsOfficeOfDestinationActualType03 {
                reference_number: destination.to_string(),
            },
            holder_of_the_transit_procedure: record.holder_of_the_transit_procedure.reshape(),
            trader_at_destination: ncts::TraderAtDestinationType03 {
                identification_number: trader_at_destination.to_owned(),
            },
            ctl_control: None,
            consignment: record.consignment.reshape(),
        }),
    )
}

/// What [`message`] needs besides the output.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The header allocated for the message.
    pub header: &'a Header,
    /// The time of the step that produced the output.
    pub at: DateTime<Utc>,
    /// The movement after the step.
    pub movement: Option<&'a Movement>,
    /// The declaration as stored by the office of departure (for its replies and the
    /// anticipated records).
    pub declaration: Option<&'a ncts::CC015CType>,
    /// The anticipated arrival record (CD001C) as stored by the office of destination (for
    /// the unloading permission).
    pub arrival_record: Option<&'a cats::CD001CType>,
}

/// The message for `output`, when it is composed here and the context has what it needs.
pub fn message(output: &Output, cx: &Context<'_>) -> Option<Message> {
    let h = cx.header;
    let movement = cx.movement;
    let mrn = movement.and_then(|m| m.mrn);
    let departure = movement.and_then(|m| m.departure.as_ref());
    let destination = movement.and_then(|m| m.destination.as_ref());
    let day = cx.at.date_naive();
    Some(match output {
        Output::ToDeclarant(reply) => {
            let d = cx.declaration?;
            match reply {
                ExternalReply::PositiveAck => Message::CC928C(Box::new(positive_ack(h, d))),
                ExternalReply::MrnAllocated { mrn } => {
                    Message::CC028C(Box::new(mrn_allocated(h, d, mrn, day)))
                }
                ExternalReply::Rejection(r) => {
                    Message::CC056C(Box::new(departure_rejection(h, d, mrn.as_ref(), r, cx.at)))
                }
                ExternalReply::ControlDecision {
                    notification_type, ..
                } => Message::CC060C(Box::new(control_decision(
                    h,
                    d,
                    mrn.as_ref(),
                    notification_type,
                    cx.at,
                ))),
                ExternalReply::AmendmentAccepted => Message::CC004C(Box::new(amendment_accepted(
                    h,
                    d,
                    mrn.as_ref(),
                    cx.at,
                    cx.at,
                ))),
                ExternalReply::InvalidationDecision {
                    initiated_by_customs,
                    justification,
                } => Message::CC009C(Box::new(invalidation_decision(
                    h,
                    d,
                    mrn.as_ref(),
                    *initiated_by_customs,
                    justification.as_deref(),
                    cx.at,
                ))),
                ExternalReply::NoRelease { motivation, text } => {
                    Message::CC051C(Box::new(no_release(
                        h,
                        d,
                        mrn.as_ref()?,
                        departure.map_or(cx.at, |p| p.submitted_at),
                        motivation,
                        text,
                    )))
                }
                ExternalReply::GuaranteeNotValid { refused } => {
                    Message::CC055C(Box::new(guarantee_not_valid(
                        h,
                        d,
                        mrn.as_ref()?,
                        departure
                            .and_then(|p| p.accepted_at)
                            .unwrap_or(cx.at)
                            .date_naive(),
                        refused,
                    )))
                }
                ExternalReply::Discrepancies { text } => Message::CC019C(Box::new(discrepancies(
                    h,
                    d,
                    mrn.as_ref()?,
                    day,
                    text.as_deref(),
                ))),
                ExternalReply::WriteOff => {
                    Message::CC045C(Box::new(write_off(h, d, mrn.as_ref()?, day)))
                }
                ExternalReply::ReleaseForTransit => Message::CC029C(Box::new(release_for_transit(
                    h,
                    d,
                    &Release::of(movement?, cx.at)?,
                )?)),
            }
        }
        Output::ToTraderAtDestination(reply) => {
            let at = destination?;
            let trader = at.trader.as_deref()?;
            match reply {
                DestinationReply::GoodsRelease { .. } => Message::CC025C(Box::new(goods_release(
                    h,
                    mrn.as_ref()?,
                    &at.office,
                    trader,
                    day,
                ))),
                DestinationReply::Rejection(r) => Message::CC057C(Box::new(destination_rejection(
                    h,
                    mrn?.as_str(),
                    &at.office,
                    trader,
                    r,
                    cx.at,
                ))),
                DestinationReply::UnloadingPermission => Message::CC043C(Box::new(
                    unloading_permission(h, cx.arrival_record?, &at.office, trader)?,
                )),
            }
        }
        Output::ToHub(common) => {
            match common {
                Common::NotificationOfExit {
                    exit,
                    departure,
                    passed_at,
                } => Message::CD168C(Box::new(notification_of_exit(
                    h,
                    mrn.as_ref()?,
                    departure,
                    exit,
                    *passed_at,
                ))),
                Common::NotificationCrossingFrontier {
                    transit,
                    departure,
                    passed_at,
                } => Message::CD118C(Box::new(notification_crossing_frontier(
                    h,
                    mrn.as_ref()?,
                    departure,
                    transit,
                    *passed_at,
                ))),
                Common::ArrivalAdvice {
                    destination,
                    departure,
                    arrived_at,
                } => Message::CD006C(Box::new(arrival_advice(
                    h,
                    mrn.as_ref()?,
                    departure,
                    destination,
                    *arrived_at,
                ))),
                Common::DestinationControlResults {
                    destination,
                    departure,
                    outcome,
                    remarks,
                } => Message::CD018C(Box::new(destination_control_results(
                    h,
                    mrn.as_ref()?,
                    departure,
                    destination,
                    *outcome,
                    remarks.as_deref(),
                    day,
                ))),
                Common::Cancellation { .. } => Message::CD010C(Box::new(cancellation(
                    h,
                    mrn.as_ref()?,
                    &movement?.declaration,
                    cx.at,
                ))),
                Common::GuaranteeUse { grn, .. } => Message::CD203C(Box::new(guarantee_use(
                    h,
                    cx.declaration?,
                    &movement?.declaration,
                    mrn.as_ref()?,
                    departure
                        .and_then(|p| p.accepted_at)
                        .unwrap_or(cx.at)
                        .date_naive(),
                    grn,
                )?)),
                Common::GuaranteeUseCancellation { grn } => Message::CD204C(Box::new(
                    guarantee_use_cancellation(h, &movement?.declaration, mrn.as_ref()?, day, grn)?,
                )),
                Common::GuaranteeCredit { grn } => Message::CD209C(Box::new(guarantee_credit(
                    h,
                    &movement?.declaration,
                    mrn.as_ref()?,
                    departure
                        .and_then(|p| p.arrival.as_ref())
                        .map_or(cx.at, |a| a.at),
                    grn,
                )?)),
                Common::AnticipatedArrival { .. } => Message::CD001C(Box::new(
                    anticipated_arrival(h, cx.declaration?, &Release::of(movement?, cx.at)?)?,
                )),
                Common::AnticipatedTransit { .. } => Message::CD050C(Box::new(
                    anticipated_transit(h, cx.declaration?, &Release::of(movement?, cx.at)?)?,
                )),
                Common::AnticipatedExit { .. } => Message::CD160C(Box::new(anticipated_exit(
                    h,
                    cx.declaration?,
                    &Release::of(movement?, cx.at)?,
                )?)),
                Common::FunctionalNack(_) => return None,
            }
        }
        Output::ActionRefused(_) => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Reshaping: the generated types differ per message (`ConsignmentType20` in CC015C,
// `CUSTOM_ConsignmentType04` in CC029C, `ConsignmentType10` in CD001C ...) while the element
// names agree, so the consignment is copied element by element by name.

/// Copies an element of one message's shape into another's with the same element names.
///
/// `None` when the source lacks an element the target requires (the CC015C leaves a holder's
/// name out when it gives the identification number; the anticipated records require it):
/// an optional or repeatable target element whose content is incomplete is left out (a
/// departure transport means without its identification, a goods measure without its gross
/// mass, a consignor without name and address in a CD message), and a required one makes the
/// whole message `None`.
trait Reshape<T> {
    fn reshape(&self) -> Option<T>;
}

impl<S: Reshape<T>, T> Reshape<Option<T>> for Option<S> {
    fn reshape(&self) -> Option<Option<T>> {
        Some(self.as_ref().and_then(Reshape::reshape))
    }
}

impl<S: Reshape<T>, T> Reshape<Vec<T>> for Vec<S> {
    fn reshape(&self) -> Option<Vec<T>> {
        Some(self.iter().filter_map(Reshape::reshape).collect())
    }
}

/// Types that are the same in source and target.
macro_rules! same {
    ($($ty:ty),* $(,)?) => {
        $(impl Reshape<$ty> for $ty {
            fn reshape(&self) -> Option<$ty> {
                Some(self.clone())
            }
        })*
    };
}

/// `src => dst { fields copied by name } with |s| { fields computed from s }`.
macro_rules! reshape {
    ($sns:ident::$src:ident => $dns:ident::$dst:ident { $($field:ident),* $(,)? }
        $(with |$s:ident| { $($extra:ident: $value:expr),* $(,)? })?) => {
        impl Reshape<$dns::$dst> for $sns::$src {
            fn reshape(&self) -> Option<$dns::$dst> {
                $(let $s = self;)?
                Some($dns::$dst {
                    $($field: Reshape::reshape(&self.$field)?,)*
                    $($($extra: $value,)*)?
                })
            }
        }
    };
}

same!(
    String,
    i64,
    rust_decimal::Decimal,
    NaiveDate,
    chrono::NaiveDateTime,
    ncts::Flag,
);

impl Reshape<cats::Flag> for ncts::Flag {
    fn reshape(&self) -> Option<cats::Flag> {
        Some(match self {
            ncts::Flag::V0 => cats::Flag::V0,
            ncts::Flag::V1 => cats::Flag::V1,
        })
    }
}

impl Reshape<ncts::Flag> for cats::Flag {
    fn reshape(&self) -> Option<ncts::Flag> {
        Some(match self {
            cats::Flag::V0 => ncts::Flag::V0,
            cats::Flag::V1 => ncts::Flag::V1,
        })
    }
}

/// The container indicator, which the CC015C may leave out and the others require: `1` when
/// a transport equipment has a container identification number.
fn container_indicator(c: &ncts::ConsignmentType20) -> ncts::Flag {
    c.container_indicator.unwrap_or(
        if c.transport_equipment
            .iter()
            .any(|e| e.container_identification_number.is_some())
        {
            ncts::Flag::V1
        } else {
            ncts::Flag::V0
        },
    )
}

same!(
    ncts::CustomsOfficeOfDepartureType03,
    ncts::CustomsOfficeOfDestinationDeclaredType01,
    ncts::CustomsOfficeOfTransitDeclaredType04,
    ncts::CustomsOfficeOfExitForTransitDeclaredType02,
    ncts::AdditionalSupplyChainActorType,
    ncts::GoodsReferenceType02,
    ncts::CustomsOfficeType02,
    ncts::GNSSType,
    ncts::CountryOfRoutingOfConsignmentType01,
    ncts::TransportChargesType,
    ncts::DangerousGoodsType01,
);

// CC015C → CC029C
reshape!(ncts::AuthorisationType03 => ncts::AuthorisationType02 {
    sequence_number, type_, reference_number,
});
reshape!(ncts::AddressType17 => ncts::AddressType07 { street_and_number, postcode, city, country });
reshape!(ncts::ContactPersonType05 => ncts::ContactPersonType01 {
    name, phone_number, e_mail_address,
});
reshape!(ncts::HolderOfTheTransitProcedureType14 => ncts::HolderOfTheTransitProcedureType05 {
    identification_number, tir_holder_identification_number, name, address, contact_person,
});
reshape!(ncts::RepresentativeType05 => ncts::RepresentativeType02 {
    identification_number, status, contact_person,
});
reshape!(ncts::GuaranteeReferenceType03 => ncts::GuaranteeReferenceType01 {
    sequence_number, grn, access_code,
} with |s| {
    amount_to_be_covered: s.amount_to_be_covered.as_ref()?.reshape()?,
    currency: s.currency.as_ref()?.reshape()?,
});
reshape!(ncts::GuaranteeType02 => ncts::GuaranteeType03 {
    sequence_number, guarantee_type, other_guarantee_reference, guarantee_reference,
});
reshape!(ncts::CarrierType04 => ncts::CarrierType03 { identification_number, contact_person });
reshape!(ncts::ConsignorType07 => ncts::ConsignorType03 {
    identification_number, name, address, contact_person,
});
reshape!(ncts::ConsigneeType05 => ncts::ConsigneeType04 { identification_number, name, address });
reshape!(ncts::SealType05 => ncts::SealType04 { sequence_number, identifier });
reshape!(ncts::TransportEquipmentType06 => ncts::TransportEquipmentType05 {
    sequence_number, container_identification_number, number_of_seals, seal, goods_reference,
});
reshape!(ncts::EconomicOperatorType03 => ncts::EconomicOperatorType01 { identification_number });
reshape!(ncts::AddressType14 => ncts::AddressType02 { street_and_number, postcode, city, country });
reshape!(ncts::PostcodeAddressType02 => ncts::PostcodeAddressType01 {
    house_number, postcode, country,
});
reshape!(ncts::ContactPersonType06 => ncts::ContactPersonType02 {
    name, phone_number, e_mail_address,
});
reshape!(ncts::LocationOfGoodsType05 => ncts::LocationOfGoodsType02 {
    type_of_location, qualifier_of_identification, authorisation_number, additional_identifier,
    un_locode, customs_office, gnss, economic_operator, address, postcode_address, contact_person,
});
reshape!(ncts::DepartureTransportMeansType03 => ncts::DepartureTransportMeansType02 {
    sequence_number,
} with |s| {
    type_of_identification: s.type_of_identification.as_ref()?.reshape()?,
    identification_number: s.identification_number.as_ref()?.reshape()?,
    nationality: s.nationality.as_ref()?.reshape()?,
});
reshape!(ncts::ActiveBorderTransportMeansType02 => ncts::ActiveBorderTransportMeansType01 {
    sequence_number, conveyance_reference_number,
} with |s| {
    customs_office_at_border_reference_number: s.customs_office_at_border_reference_number.as_ref()?.reshape()?,
    type_of_identification: s.type_of_identification.as_ref()?.reshape()?,
    identification_number: s.identification_number.as_ref()?.reshape()?,
    nationality: s.nationality.as_ref()?.reshape()?,
});
reshape!(ncts::PlaceOfLoadingType03 => ncts::PlaceOfLoadingType02 { un_locode, country, location });
reshape!(ncts::PlaceOfUnloadingType01 => ncts::PlaceOfUnloadingType02 {
    un_locode, country, location,
});
reshape!(ncts::PreviousDocumentType09 => ncts::PreviousDocumentType06 {
    sequence_number, type_, reference_number, complement_of_information,
});
reshape!(ncts::SupportingDocumentType05 => ncts::SupportingDocumentType06 {
    sequence_number, type_, reference_number, document_line_item_number, complement_of_information,
});
reshape!(ncts::TransportDocumentType04 => ncts::TransportDocumentType02 {
    sequence_number, type_, reference_number,
});
reshape!(ncts::AdditionalReferenceType05 => ncts::AdditionalReferenceType03 {
    sequence_number, type_, reference_number,
});
reshape!(ncts::AdditionalInformationType03 => ncts::AdditionalInformationType02 {
    sequence_number, code, text,
});
reshape!(ncts::ConsignorType07 => ncts::ConsignorType04 {
    identification_number, name, address, contact_person,
});
reshape!(ncts::DepartureTransportMeansType05 => ncts::DepartureTransportMeansType02 {
    sequence_number, type_of_identification, identification_number, nationality,
});
reshape!(ncts::PreviousDocumentType10 => ncts::PreviousDocumentType07 {
    sequence_number, type_, reference_number, complement_of_information,
});
reshape!(ncts::AddressType12 => ncts::AddressType09 { street_and_number, postcode, city, country });
reshape!(ncts::ConsigneeType02 => ncts::ConsigneeType03 { identification_number, name, address });
reshape!(ncts::CommodityCodeType02 => ncts::CommodityCodeType05 {
    harmonized_system_sub_heading_code, combined_nomenclature_code,
});
reshape!(ncts::GoodsMeasureType02 => ncts::GoodsMeasureType03 {
    net_mass,
} with |s| {
    gross_mass: s.gross_mass.as_ref()?.reshape()?,
});
reshape!(ncts::CommodityType07 => ncts::CUSTOM_CommodityType08 {
    description_of_goods, cus_code, commodity_code, dangerous_goods, goods_measure,
});
reshape!(ncts::PackagingType03 => ncts::PackagingType02 {
    sequence_number, type_of_packages, number_of_packages, shipping_marks,
});
reshape!(ncts::PreviousDocumentType08 => ncts::PreviousDocumentType03 {
    sequence_number, type_, reference_number, goods_item_number, type_of_packages,
    number_of_packages, measurement_unit_and_qualifier, quantity, complement_of_information,
});
reshape!(ncts::AdditionalReferenceType04 => ncts::AdditionalReferenceType02 {
    sequence_number, type_, reference_number,
});
reshape!(ncts::ConsignmentItemType09 => ncts::CUSTOM_ConsignmentItemType03 {
    goods_item_number, declaration_goods_item_number, declaration_type, country_of_dispatch,
    country_of_destination, reference_number_ucr, consignee, additional_supply_chain_actor,
    commodity, packaging, previous_document, supporting_document, transport_document,
    additional_reference, additional_information, transport_charges,
});
reshape!(ncts::HouseConsignmentType10 => ncts::CUSTOM_HouseConsignmentType03 {
    sequence_number, country_of_dispatch, country_of_destination, gross_mass, reference_number_ucr,
    consignor, consignee, additional_supply_chain_actor, departure_transport_means,
    previous_document, supporting_document, transport_document, additional_reference,
    additional_information, transport_charges, consignment_item,
} with |_s| {
    security_indicator_from_export_declaration: None,
});
reshape!(ncts::ConsignmentType20 => ncts::CUSTOM_ConsignmentType04 {
    country_of_dispatch, country_of_destination, inland_mode_of_transport,
    mode_of_transport_at_the_border, gross_mass, reference_number_ucr, carrier, consignor,
    consignee, additional_supply_chain_actor, transport_equipment, location_of_goods,
    departure_transport_means, country_of_routing_of_consignment, active_border_transport_means,
    place_of_loading, place_of_unloading, previous_document, supporting_document,
    transport_document, additional_reference, additional_information, transport_charges,
    house_consignment,
} with |s| {
    container_indicator: container_indicator(s).reshape()?,
});

// CC015C → CD001C
reshape!(ncts::CustomsOfficeOfDepartureType03 => cats::CustomsOfficeOfDepartureType03 {
    reference_number,
});
reshape!(ncts::CustomsOfficeOfDestinationDeclaredType01 => cats::CustomsOfficeOfDestinationDeclaredType01 {
    reference_number,
});
reshape!(ncts::CustomsOfficeOfTransitDeclaredType04 => cats::CustomsOfficeOfTransitDeclaredType04 {
    sequence_number, reference_number, arrival_date_and_time_estimated,
});
reshape!(ncts::CustomsOfficeOfExitForTransitDeclaredType02 => cats::CustomsOfficeOfExitForTransitDeclaredType02 {
    sequence_number, reference_number,
});
reshape!(ncts::AddressType17 => cats::AddressType20 { street_and_number, postcode, city, country });
reshape!(ncts::HolderOfTheTransitProcedureType14 => cats::HolderOfTheTransitProcedureType11 {
    identification_number, tir_holder_identification_number,
} with |s| {
    name: s.name.as_ref()?.reshape()?,
    address: s.address.as_ref()?.reshape()?,
});
reshape!(ncts::CarrierType04 => cats::CarrierType02 { identification_number });
reshape!(ncts::ConsignorType07 => cats::ConsignorType08 {
    identification_number,
} with |s| {
    name: s.name.as_ref()?.reshape()?,
    address: s.address.as_ref()?.reshape()?,
});
reshape!(ncts::ConsigneeType05 => cats::ConsigneeType07 {
    identification_number,
} with |s| {
    name: s.name.as_ref()?.reshape()?,
    address: s.address.as_ref()?.reshape()?,
});
reshape!(ncts::AdditionalSupplyChainActorType => cats::AdditionalSupplyChainActorType {
    sequence_number, role, identification_number,
});
reshape!(ncts::SealType05 => cats::SealType04 { sequence_number, identifier });
reshape!(ncts::GoodsReferenceType02 => cats::GoodsReferenceType02 {
    sequence_number, declaration_goods_item_number,
});
reshape!(ncts::TransportEquipmentType06 => cats::TransportEquipmentType05 {
    sequence_number, container_identification_number, number_of_seals, seal, goods_reference,
});
reshape!(ncts::DepartureTransportMeansType03 => cats::DepartureTransportMeansType06 {
    sequence_number, type_of_identification, identification_number, nationality,
});
reshape!(ncts::CountryOfRoutingOfConsignmentType01 => cats::CountryOfRoutingOfConsignmentType01 {
    sequence_number, country,
});
reshape!(ncts::ActiveBorderTransportMeansType02 => cats::ActiveBorderTransportMeansType04 {
    sequence_number, customs_office_at_border_reference_number, type_of_identification,
    identification_number, nationality, conveyance_reference_number,
});
reshape!(ncts::PlaceOfLoadingType03 => cats::PlaceOfLoadingType04 { un_locode, country, location });
reshape!(ncts::PlaceOfUnloadingType01 => cats::PlaceOfUnloadingType02 {
    un_locode, country, location,
});
reshape!(ncts::PreviousDocumentType09 => cats::PreviousDocumentType06 {
    sequence_number, type_, reference_number, complement_of_information,
});
reshape!(ncts::SupportingDocumentType05 => cats::SupportingDocumentType06 {
    sequence_number, type_, reference_number, document_line_item_number, complement_of_information,
});
reshape!(ncts::TransportDocumentType04 => cats::TransportDocumentType02 {
    sequence_number, type_, reference_number,
});
reshape!(ncts::AdditionalReferenceType05 => cats::AdditionalReferenceType03 {
    sequence_number, type_, reference_number,
});
reshape!(ncts::AdditionalInformationType03 => cats::AdditionalInformationType02 {
    sequence_number, code, text,
});
reshape!(ncts::TransportChargesType => cats::TransportChargesType { method_of_payment });
reshape!(ncts::ConsignorType07 => cats::ConsignorType09 {
    identification_number,
} with |s| {
    name: s.name.as_ref()?.reshape()?,
    address: s.address.as_ref()?.reshape()?,
});
reshape!(ncts::DepartureTransportMeansType05 => cats::DepartureTransportMeansType02 {
    sequence_number, type_of_identification, identification_number, nationality,
});
reshape!(ncts::PreviousDocumentType10 => cats::PreviousDocumentType07 {
    sequence_number, type_, reference_number, complement_of_information,
});
reshape!(ncts::AddressType12 => cats::AddressType19 { street_and_number, postcode, city, country });
reshape!(ncts::ConsigneeType02 => cats::ConsigneeType06 {
    identification_number,
} with |s| {
    name: s.name.as_ref()?.reshape()?,
    address: s.address.as_ref()?.reshape()?,
});
reshape!(ncts::CommodityCodeType02 => cats::CommodityCodeType05 {
    harmonized_system_sub_heading_code, combined_nomenclature_code,
});
reshape!(ncts::DangerousGoodsType01 => cats::DangerousGoodsType01 { sequence_number, un_number });
reshape!(ncts::GoodsMeasureType02 => cats::GoodsMeasureType05 { gross_mass, net_mass });
reshape!(ncts::CommodityType07 => cats::CommodityType10 {
    description_of_goods, cus_code, commodity_code, dangerous_goods, goods_measure,
});
reshape!(ncts::PackagingType03 => cats::PackagingType02 {
    sequence_number, type_of_packages, number_of_packages, shipping_marks,
});
reshape!(ncts::PreviousDocumentType08 => cats::PreviousDocumentType11 {
    sequence_number, type_, reference_number, goods_item_number, complement_of_information,
});
reshape!(ncts::AdditionalReferenceType04 => cats::AdditionalReferenceType02 {
    sequence_number, type_, reference_number,
});
reshape!(ncts::ConsignmentItemType09 => cats::ConsignmentItemType11 {
    goods_item_number, declaration_goods_item_number, declaration_type, country_of_dispatch,
    country_of_destination, reference_number_ucr, consignee, additional_supply_chain_actor,
    commodity, packaging, previous_document, supporting_document, transport_document,
    additional_reference, additional_information, transport_charges,
});
reshape!(ncts::HouseConsignmentType10 => cats::HouseConsignmentType12 {
    sequence_number, country_of_dispatch, country_of_destination, gross_mass, reference_number_ucr,
    consignor, consignee, additional_supply_chain_actor, departure_transport_means,
    previous_document, supporting_document, transport_document, additional_reference,
    additional_information, transport_charges, consignment_item,
} with |_s| {
    security_indicator_from_export_declaration: None,
});
reshape!(ncts::ConsignmentType20 => cats::ConsignmentType10 {
    country_of_dispatch, country_of_destination, inland_mode_of_transport,
    mode_of_transport_at_the_border, gross_mass, reference_number_ucr, carrier, consignor,
    consignee, additional_supply_chain_actor, transport_equipment, departure_transport_means,
    country_of_routing_of_consignment, active_border_transport_means, place_of_loading,
    place_of_unloading, previous_document, supporting_document, transport_document,
    additional_reference, additional_information, transport_charges, house_consignment,
} with |s| {
    container_indicator: container_indicator(s).reshape()?,
});

// CC015C → CD050C (what CD001C did not need)
reshape!(ncts::CustomsOfficeOfTransitDeclaredType04 => cats::CustomsOfficeOfTransitDeclaredType01 {
    sequence_number, reference_number, arrival_date_and_time_estimated,
});
reshape!(ncts::HolderOfTheTransitProcedureType14 => cats::HolderOfTheTransitProcedureType17 {
    identification_number,
} with |s| {
    name: s.name.as_ref()?.reshape()?,
    address: s.address.as_ref()?.reshape()?,
});
reshape!(ncts::CommodityCodeType02 => cats::CommodityCodeType06 {
    harmonized_system_sub_heading_code, combined_nomenclature_code,
});
reshape!(ncts::CommodityType07 => cats::CommodityType11 {
    description_of_goods, cus_code, commodity_code, dangerous_goods, goods_measure,
});
reshape!(ncts::ConsignmentItemType09 => cats::ConsignmentItemType12 {
    goods_item_number, declaration_goods_item_number, declaration_type, country_of_dispatch,
    country_of_destination, reference_number_ucr, consignee, additional_supply_chain_actor,
    commodity, packaging, previous_document, supporting_document, transport_document,
    additional_reference, additional_information, transport_charges,
});
reshape!(ncts::HouseConsignmentType10 => cats::HouseConsignmentType13 {
    sequence_number, country_of_dispatch, country_of_destination, gross_mass, reference_number_ucr,
    consignor, consignee, additional_supply_chain_actor, departure_transport_means,
    previous_document, supporting_document, transport_document, additional_reference,
    additional_information, transport_charges, consignment_item,
} with |_s| {
    security_indicator_from_export_declaration: None,
});
reshape!(ncts::ConsignmentType20 => cats::ConsignmentType15 {
    country_of_dispatch, country_of_destination, inland_mode_of_transport,
    mode_of_transport_at_the_border, gross_mass, reference_number_ucr, carrier, consignor,
    consignee, additional_supply_chain_actor, transport_equipment, departure_transport_means,
    country_of_routing_of_consignment, active_border_transport_means, place_of_loading,
    place_of_unloading, previous_document, supporting_document, transport_document,
    additional_reference, additional_information, transport_charges, house_consignment,
} with |s| {
    container_indicator: container_indicator(s).reshape()?,
});

// CC015C → CD160C (what CD001C and CD050C did not need)
reshape!(ncts::CustomsOfficeOfExitForTransitDeclaredType02 => cats::CustomsOfficeOfExitForTransitDeclaredType01 {
    sequence_number, reference_number,
});
reshape!(ncts::CarrierType04 => cats::CarrierType01 { identification_number });
reshape!(ncts::ConsignmentType20 => cats::ConsignmentType18 {
    country_of_dispatch, country_of_destination, inland_mode_of_transport,
    mode_of_transport_at_the_border, gross_mass, reference_number_ucr, carrier, consignor,
    consignee, additional_supply_chain_actor, transport_equipment, departure_transport_means,
    country_of_routing_of_consignment, active_border_transport_means, place_of_loading,
    place_of_unloading, previous_document, supporting_document, transport_document,
    additional_reference, additional_information, transport_charges, house_consignment,
} with |s| {
    container_indicator: container_indicator(s).reshape()?,
});

// CD001C → CC043C
reshape!(cats::AddressType20 => ncts::AddressType10 { street_and_number, postcode, city, country });
reshape!(cats::HolderOfTheTransitProcedureType11 => ncts::HolderOfTheTransitProcedureType06 {
    identification_number, tir_holder_identification_number, name, address,
});
reshape!(cats::AddressType20 => ncts::AddressType07 { street_and_number, postcode, city, country });
reshape!(cats::ConsignorType08 => ncts::ConsignorType05 {
    identification_number,
} with |s| {
    name: s.name.reshape(),
    address: s.address.reshape(),
});
reshape!(cats::ConsigneeType07 => ncts::ConsigneeType04 {
    identification_number,
} with |s| {
    name: s.name.reshape(),
    address: s.address.reshape(),
});
reshape!(cats::SealType04 => ncts::SealType04 { sequence_number, identifier });
reshape!(cats::GoodsReferenceType02 => ncts::GoodsReferenceType02 {
    sequence_number, declaration_goods_item_number,
});
reshape!(cats::TransportEquipmentType05 => ncts::TransportEquipmentType05 {
    sequence_number, container_identification_number, number_of_seals, seal, goods_reference,
});
reshape!(cats::DepartureTransportMeansType06 => ncts::DepartureTransportMeansType02 {
    sequence_number,
} with |s| {
    type_of_identification: s.type_of_identification.as_ref()?.reshape()?,
    identification_number: s.identification_number.as_ref()?.reshape()?,
    nationality: s.nationality.as_ref()?.reshape()?,
});
reshape!(cats::PreviousDocumentType06 => ncts::PreviousDocumentType06 {
    sequence_number, type_, reference_number, complement_of_information,
});
reshape!(cats::SupportingDocumentType06 => ncts::SupportingDocumentType02 {
    sequence_number, type_, reference_number, complement_of_information,
});
reshape!(cats::TransportDocumentType02 => ncts::TransportDocumentType02 {
    sequence_number, type_, reference_number,
});
reshape!(cats::AdditionalReferenceType03 => ncts::AdditionalReferenceType03 {
    sequence_number, type_, reference_number,
});
reshape!(cats::AdditionalInformationType02 => ncts::AdditionalInformationType02 {
    sequence_number, code, text,
});
reshape!(cats::ConsignorType09 => ncts::ConsignorType06 {
    identification_number,
} with |s| {
    name: s.name.reshape(),
    address: s.address.reshape(),
});
reshape!(cats::DepartureTransportMeansType02 => ncts::DepartureTransportMeansType02 {
    sequence_number, type_of_identification, identification_number, nationality,
});
reshape!(cats::PreviousDocumentType07 => ncts::PreviousDocumentType07 {
    sequence_number, type_, reference_number, complement_of_information,
});
reshape!(cats::AddressType19 => ncts::AddressType09 { street_and_number, postcode, city, country });
reshape!(cats::ConsigneeType06 => ncts::ConsigneeType03 {
    identification_number,
} with |s| {
    name: s.name.reshape(),
    address: s.address.reshape(),
});
reshape!(cats::CommodityCodeType05 => ncts::CommodityCodeType05 {
    harmonized_system_sub_heading_code, combined_nomenclature_code,
});
reshape!(cats::DangerousGoodsType01 => ncts::DangerousGoodsType01 { sequence_number, un_number });
reshape!(cats::GoodsMeasureType05 => ncts::GoodsMeasureType03 {
    net_mass,
} with |s| {
    gross_mass: s.gross_mass.as_ref()?.reshape()?,
});
reshape!(cats::CommodityType10 => ncts::CUSTOM_CommodityType08 {
    description_of_goods, cus_code, commodity_code, dangerous_goods, goods_measure,
});
reshape!(cats::PackagingType02 => ncts::PackagingType02 {
    sequence_number, type_of_packages, number_of_packages, shipping_marks,
});
reshape!(cats::PreviousDocumentType11 => ncts::PreviousDocumentType04 {
    sequence_number, type_, reference_number, goods_item_number, complement_of_information,
});
reshape!(cats::AdditionalReferenceType02 => ncts::AdditionalReferenceType02 {
    sequence_number, type_, reference_number,
});
reshape!(cats::ConsignmentItemType11 => ncts::CUSTOM_ConsignmentItemType04 {
    goods_item_number, declaration_goods_item_number, declaration_type, country_of_destination,
    consignee, commodity, packaging, previous_document, supporting_document, transport_document,
    additional_reference, additional_information,
});
reshape!(cats::HouseConsignmentType12 => ncts::CUSTOM_HouseConsignmentType04 {
    sequence_number, country_of_destination, gross_mass, security_indicator_from_export_declaration,
    consignor, consignee, departure_transport_means, previous_document, supporting_document,
    transport_document, additional_reference, additional_information, consignment_item,
});
reshape!(cats::ConsignmentType10 => ncts::CUSTOM_ConsignmentType05 {
    country_of_destination, container_indicator, inland_mode_of_transport, consignor, consignee,
    transport_equipment, departure_transport_means, previous_document, supporting_document,
    transport_document, additional_reference, additional_information, house_consignment,
} with |s| {
    gross_mass: s.gross_mass.reshape(),
    incident: Vec::new(),
});

// ---------------------------------------------------------------------------------------------
// The status request (CD094C) and response (CD095C).
// ---------------------------------------------------------------------------------------------

/// The `status` of CD094C when the asking node holds no state at the office of departure
/// (it is not the office of departure, or it does not hold the movement).
pub const STATUS_NOT_HELD: &str = "NOH";

/// One office role's state as a CD095C carries it (`CustomsOfficeState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeState {
    /// The role the office plays.
    pub role: Role,
    /// The office.
    pub office: CustomsOfficeRef,
    /// The three-letter code of the phase ([`phase_code`]).
    pub status: String,
    /// When the office entered that phase (UTC).
    pub since: Option<DateTime<Utc>>,
}

impl OfficeState {
    /// The rank of the phase ([`super::Movement::progress`]'s order), `None` for a code
    /// that is not one of the role's ([`phase_rank`]).
    pub fn rank(&self) -> Option<u8> {
        phase_rank(self.role, &self.status)
    }
}

/// The phase codes per role, with their ranks: CATS's entries of CL258 (and, for the office
/// of departure, CL153). Each code is three letters, as `StatusContentType02` requires.
const DEPARTURE_CODES: &[(super::DeparturePhase, &str)] = {
    use super::DeparturePhase as P;
    &[
        (P::PreLodged, "PRL"),
        (P::Submitted, "SUB"),
        (P::Accepted, "ACC"),
        (P::UnderControl, "UCT"),
        (P::GuaranteeRequested, "GRQ"),
        (P::GuaranteeRefused, "GRF"),
        (P::Released, "REL"),
        (P::Arrived, "ARR"),
        (P::ControlResultsReceived, "CRR"),
        (P::Discrepancies, "DIS"),
        (P::WrittenOff, "WOF"),
        (P::Rejected, "REJ"),
        (P::NotReleased, "NRL"),
        (P::Invalidated, "INV"),
    ]
};

const BORDER_CODES: &[(super::BorderPhase, &str)] = {
    use super::BorderPhase as P;
    &[
        (P::Anticipated, "ANT"),
        (P::Presented, "PRS"),
        (P::UnderControl, "UCT"),
        (P::Cleared, "CLR"),
        (P::Proceeded, "PRO"),
        (P::Stopped, "STP"),
        (P::Cancelled, "CAN"),
    ]
};

const DESTINATION_CODES: &[(super::DestinationPhase, &str)] = {
    use super::DestinationPhase as P;
    &[
        (P::Anticipated, "ANT"),
        (P::Arrived, "ARR"),
        (P::UnloadingPermitted, "UNL"),
        (P::UnderControl, "UCT"),
        (P::ReadyForRelease, "RFR"),
        (P::GoodsReleased, "GRL"),
        (P::Cancelled, "CAN"),
    ]
};

fn code_of<P: PartialEq + Copy>(table: &[(P, &'static str)], phase: P) -> &'static str {
    table
        .iter()
        .find(|(p, _)| *p == phase)
        .map(|(_, c)| *c)
        // Every phase is in its table (the unit tests go through them all).
        .unwrap_or("???")
}

/// The three-letter code of the departure phase (the `status` of CD094C).
pub fn departure_code(phase: super::DeparturePhase) -> &'static str {
    code_of(DEPARTURE_CODES, phase)
}

/// The rank of the phase `code` names for `role`, or `None` when `code` is not one of the
/// role's codes.
pub fn phase_rank(role: Role, code: &str) -> Option<u8> {
    match role {
        Role::Departure => DEPARTURE_CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(p, _)| p.rank()),
        Role::Exit | Role::Transit => BORDER_CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(p, _)| p.rank()),
        Role::Destination => DESTINATION_CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(p, _)| p.rank()),
    }
}

/// Every office role's state in `movement`, in [`super::Movement::progress`]'s order.
pub fn office_states(movement: &Movement) -> Vec<OfficeState> {
    let mut all = Vec::new();
    if let Some(d) = &movement.departure {
        all.push(OfficeState {
            role: Role::Departure,
            office: d.office,
            status: departure_code(d.phase).to_owned(),
            since: Some(d.since),
        });
    }
    for (role, offices) in [
        (Role::Exit, &movement.exits),
        (Role::Transit, &movement.transits),
    ] {
        for (office, b) in offices {
            all.push(OfficeState {
                role,
                office: *office,
                status: code_of(BORDER_CODES, b.phase).to_owned(),
                since: Some(b.since),
            });
        }
    }
    if let Some(d) = &movement.destination {
        all.push(OfficeState {
            role: Role::Destination,
            office: d.office,
            status: code_of(DESTINATION_CODES, d.phase).to_owned(),
            since: Some(d.since),
        });
    }
    all
}

fn role_code(role: Role) -> cats::OfficeRoleCode {
    match role {
        Role::Departure => cats::OfficeRoleCode::DEP,
        Role::Exit => cats::OfficeRoleCode::EXT,
        Role::Transit => cats::OfficeRoleCode::TRA,
        Role::Destination => cats::OfficeRoleCode::DES,
    }
}

/// The role a CD095C's `role` names (`ENT`, entry, is CATS's office of transit).
pub fn role_of(code: &cats::OfficeRoleCode) -> Role {
    match code {
        cats::OfficeRoleCode::DEP => Role::Departure,
        cats::OfficeRoleCode::EXT => Role::Exit,
        cats::OfficeRoleCode::TRA | cats::OfficeRoleCode::ENT => Role::Transit,
        cats::OfficeRoleCode::DES => Role::Destination,
    }
}

/// CD094C: the asking node's request for another country's state of `mrn`. `status` is the
/// asking node's own state at the office of departure ([`departure_code`]) or
/// [`STATUS_NOT_HELD`].
pub fn status_request(
    h: &Header,
    mrn: &Mrn,
    departure: &CustomsOfficeRef,
    status: &str,
) -> cats::CD094CType {
    cats_message!(CD094CType, CD094C, h, {
        transit_operation: cats::TransitOperationType37 {
            mrn: mrn.to_string(),
            status: status.to_owned(),
        },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType01 {
            reference_number: departure.to_string(),
        },
        customs_office_of_destination: None,
        customs_office_of_transit: Vec::new(),
        customs_office_of_exit_for_transit: Vec::new(),
    })
}

/// CD095C: the asked node's state of `mrn`, one `CustomsOfficeState` per office role it
/// holds (`states` from [`office_states`]). `None` when `states` is empty (the schema requires
/// at least one; a node that does not hold the movement answers with a CD906C, code 90) or
/// longer than the schema's 99.
pub fn status_response(
    h: &Header,
    mrn: &Mrn,
    departure: &CustomsOfficeRef,
    states: &[OfficeState],
) -> Option<cats::CD095CType> {
    if states.is_empty() || states.len() > 99 {
        return None;
    }
    Some(cats_message!(CD095CType, CD095C, h, {
        transit_operation: cats::TransitOperationType43 { mrn: mrn.to_string() },
        customs_office_of_departure: cats::CustomsOfficeOfDepartureType01 {
            reference_number: departure.to_string(),
        },
        customs_office_state: states
            .iter()
            .zip(1i64..)
            .map(|(s, n)| cats::CustomsOfficeStateType {
                sequence_number: n,
                reference_number: s.office.to_string(),
                role: role_code(s.role),
                status: s.status.clone(),
                status_date_and_time: s.since.map(|t| t.naive_utc()),
            })
            .collect(),
    }))
}

/// The office states a CD095C carries; a `referenceNumber` that is not an office reference is
/// left out (the rules checked it when the message came in).
pub fn states_of(response: &cats::CD095CType) -> Vec<OfficeState> {
    response
        .customs_office_state
        .iter()
        .filter_map(|s| {
            Some(OfficeState {
                role: role_of(&s.role),
                office: CustomsOfficeRef::parse(&s.reference_number).ok()?,
                status: s.status.clone(),
                since: s.status_date_and_time.map(|t| t.and_utc()),
            })
        })
        .collect()
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn every_phase_has_a_distinct_three_letter_code_per_role() {
        for table in [
            DEPARTURE_CODES.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            BORDER_CODES.iter().map(|(_, c)| *c).collect(),
            DESTINATION_CODES.iter().map(|(_, c)| *c).collect(),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for c in &table {
                assert_eq!(c.len(), 3, "{c}");
                assert!(seen.insert(*c), "{c} twice");
            }
        }
        assert_eq!(DEPARTURE_CODES.len(), 14);
        assert_eq!(BORDER_CODES.len(), 7);
        assert_eq!(DESTINATION_CODES.len(), 7);
        assert_eq!(phase_rank(Role::Departure, "WOF"), Some(8));
        assert_eq!(phase_rank(Role::Destination, "GRL"), Some(5));
        assert_eq!(phase_rank(Role::Exit, "PRO"), Some(4));
        assert_eq!(phase_rank(Role::Exit, "WOF"), None);
    }
}
