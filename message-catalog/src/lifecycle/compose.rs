//! Composing typed messages for the [`super::Output`]s, from what the service has at hand: the
//! [`Header`] it allocates, the stored CC015C (the declaration as received, or as last amended
//! by a CC013C converted by the service), and the [`super::Movement`].
//!
//! # What is composed
//!
//! | output | message | function |
//! | --- | --- | --- |
//! | [`ExternalReply::PositiveAck`] | CC928C | [`positive_ack`] |
//! | [`ExternalReply::MrnAllocated`] | CC028C | [`mrn_allocated`] |
//! | [`ExternalReply::Rejection`] | CC056C | [`departure_rejection`] |
//! | [`ExternalReply::ControlDecision`] | CC060C | [`control_decision`] |
//! | [`ExternalReply::AmendmentAccepted`] | CC004C | [`amendment_accepted`] |
//! | [`ExternalReply::InvalidationDecision`] | CC009C | [`invalidation_decision`] |
//! | [`ExternalReply::NoRelease`] | CC051C | [`no_release`] |
//! | [`ExternalReply::GuaranteeNotValid`] | CC055C | [`guarantee_not_valid`] |
//! | [`ExternalReply::Discrepancies`] | CC019C | [`discrepancies`] |
//! | [`ExternalReply::WriteOff`] | CC045C | [`write_off`] |
//! | [`DestinationReply::GoodsRelease`] | CC025C (without the optional consignment) | [`goods_release`] |
//! | [`DestinationReply::Rejection`] | CC057C | [`destination_rejection`] |
//! | [`Common::NotificationOfExit`] | CD168C | [`notification_of_exit`] |
//! | [`Common::NotificationCrossingFrontier`] | CD118C | [`notification_crossing_frontier`] |
//! | [`Common::ArrivalAdvice`] | CD006C | [`arrival_advice`] |
//! | [`Common::DestinationControlResults`] | CD018C (without the optional consignment) | [`destination_control_results`] |
//! | [`Common::Cancellation`] | CD010C | [`cancellation`] |
//! | [`Common::GuaranteeUse`] | CD203C (one per GRN, without the optional consignment) | [`guarantee_use`] |
//! | [`Common::GuaranteeUseCancellation`] | CD204C | [`guarantee_use_cancellation`] |
//! | [`Common::GuaranteeCredit`] | CD209C | [`guarantee_credit`] |
//!
//! [`message`] does the dispatch: given an output and a [`Context`], it returns the message,
//! or `None` for what is not composed (yet, or at all: [`super::Output::ActionRefused`] is an
//! answer to an API call, not a message).
//! # Not composed yet
//!
//! The messages that carry the full consignment in a different shape from the CC015C's: CC029C
//! release for transit, the anticipated records CD001C, CD050C and CD160C, and CC043C unloading
//! permission. The services build those from the stored CC015C until they are added here.
//! The ledger messages name the office of guarantee, which CATS reads from the GRN (positions
//! 3 to 10, as [`Grn::generate`] lays it out): a GRN allocated elsewhere gives `None`.
//!
//! Every function is total: it copies what it is given and never fails; the rules checked the
//! inputs when they came in.

use chrono::{DateTime, NaiveDate, Utc};

use crate::generated::{Message, cats, ncts};
use crate::ids::{CustomsOfficeRef, Grn, Mrn};

use super::output::{FunctionalError, RefusedGuarantee, Rejection};
use super::{
    Common, ControlOutcome, Declaration, DestinationReply, ExternalReply, Movement, Output,
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

/// What [`message`] needs besides the output.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The header allocated for the message.
    pub header: &'a Header,
    /// The time of the step that produced the output.
    pub at: DateTime<Utc>,
    /// The movement after the step.
    pub movement: Option<&'a Movement>,
    /// The declaration as stored by the office of departure (for its replies).
    pub declaration: Option<&'a ncts::CC015CType>,
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
                ExternalReply::ReleaseForTransit => return None,
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
                DestinationReply::UnloadingPermission => return None,
            }
        }
        Output::ToHub(common) => match common {
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
            Common::AnticipatedArrival { .. }
            | Common::AnticipatedTransit { .. }
            | Common::AnticipatedExit { .. }
            | Common::FunctionalNack(_) => return None,
        },
        Output::ActionRefused(_) => return None,
    })
}
