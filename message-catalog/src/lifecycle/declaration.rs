//! The part of a declaration that the life cycle needs, kept in the movement's state: who, from
//! where, to where, through which offices, under which guarantees. The full declaration (goods,
//! parties, transport) stays in the message the service stored; [`super::compose`] reads it from
//! there.
//!
//! Every identifier is parsed here, once: a declaration whose offices, LRN, TIN or GRNs do not
//! parse is rejected with code 14 (rule) and a pointer, before it can reach a state.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::generated::{cats, ncts};
use crate::ids::{CustomsOfficeRef, Grn, Lrn, Mrn, MrnError, Tin};

use super::output::{FunctionalError, Rejection};

/// What the life cycle keeps of a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Declaration {
    /// The LRN, known at departure only (the anticipated records carry the MRN instead).
    pub lrn: Option<Lrn>,
    /// The holder of the transit procedure's identification number, when declared.
    pub holder: Option<Tin>,
    /// Declaration type (CL231: `T1`, `T2`, `TIR` ...).
    pub declaration_type: String,
    /// Additional declaration type `D`: lodged before the goods are presented (CC170C follows).
    pub pre_lodged: bool,
    /// Safety and security (CL217: `0` .. `3`).
    pub security: String,
    /// The office of departure.
    pub departure: CustomsOfficeRef,
    /// The declared office of destination.
    pub destination: CustomsOfficeRef,
    /// The declared offices of transit (entry), in sequence-number order.
    pub transits: Vec<CustomsOfficeRef>,
    /// The declared offices of exit for transit, in sequence-number order.
    pub exits: Vec<CustomsOfficeRef>,
    /// The guarantee references with a GRN: what is reserved at the hub's ledger.
    pub guarantees: Vec<GuaranteeLine>,
}

/// One guarantee reference of the declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GuaranteeLine {
    /// The guarantee type (CL251).
    pub guarantee_type: String,
    /// The guarantee reference number.
    pub grn: Grn,
    /// The amount to be covered (normalised, so that `1.0` and `1.00` hash alike); zero when
    /// the declaration leaves it out.
    pub amount: Decimal,
    /// The currency (CL048), when declared.
    pub currency: Option<String>,
}

/// What makes two declarations "the same declaration": the LRN, the holder and the office of
/// departure. The service keeps an index on it and, when a CC015C arrives whose key is already
/// held, applies the CC015C to the movement it has, which answers CC056C with code 26
/// (duplicate) and leaves that movement as it is: one movement, never two.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeclarationKey {
    /// The LRN.
    pub lrn: Lrn,
    /// The holder's identification number, if any.
    pub holder: Option<Tin>,
    /// The office of departure.
    pub departure: CustomsOfficeRef,
}

impl Declaration {
    /// Extracts the declaration from a CC015C.
    pub fn from_cc015c(m: &ncts::CC015CType) -> Result<Declaration, Rejection> {
        let root = "/CC015C";
        let op = &m.transit_operation;
        Ok(Declaration {
            lrn: Some(lrn(
                &format!("{root}/TransitOperation/LRN"),
                "CC015C",
                &op.lrn,
            )?),
            holder: holder(
                root,
                "CC015C",
                m.holder_of_the_transit_procedure
                    .identification_number
                    .as_deref(),
            )?,
            declaration_type: op.declaration_type.clone(),
            pre_lodged: op.additional_declaration_type == "D",
            security: op.security.clone(),
            departure: office(
                &format!("{root}/CustomsOfficeOfDeparture/referenceNumber"),
                "CC015C",
                &m.customs_office_of_departure.reference_number,
            )?,
            destination: office(
                &format!("{root}/CustomsOfficeOfDestinationDeclared/referenceNumber"),
                "CC015C",
                &m.customs_office_of_destination_declared.reference_number,
            )?,
            transits: offices(
                root,
                "CC015C",
                "CustomsOfficeOfTransitDeclared",
                m.customs_office_of_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str())),
            )?,
            exits: offices(
                root,
                "CC015C",
                "CustomsOfficeOfExitForTransitDeclared",
                m.customs_office_of_exit_for_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str())),
            )?,
            guarantees: guarantees(
                root,
                "CC015C",
                m.guarantee
                    .iter()
                    .map(|g| (g.guarantee_type.as_str(), &g.guarantee_reference)),
            )?,
        })
    }

    /// The declaration as amended by a CC013C: everything is taken from the amendment except
    /// the LRN and the office of departure, which an amendment cannot change (nor the holder
    /// when the amendment leaves it out).
    pub fn amended_by(&self, m: &ncts::CC013CType) -> Result<Declaration, Rejection> {
        let root = "/CC013C";
        let op = &m.transit_operation;
        let previous_types: Vec<&str> = self
            .guarantees
            .iter()
            .map(|g| g.guarantee_type.as_str())
            .collect();
        Ok(Declaration {
            lrn: self.lrn.clone(),
            holder: holder(
                root,
                "CC013C",
                m.holder_of_the_transit_procedure
                    .identification_number
                    .as_deref(),
            )?
            .or_else(|| self.holder.clone()),
            declaration_type: op.declaration_type.clone(),
            pre_lodged: op.additional_declaration_type == "D",
            security: op.security.clone(),
            departure: self.departure,
            destination: office(
                &format!("{root}/CustomsOfficeOfDestinationDeclared/referenceNumber"),
                "CC013C",
                &m.customs_office_of_destination_declared.reference_number,
            )?,
            transits: offices(
                root,
                "CC013C",
                "CustomsOfficeOfTransitDeclared",
                m.customs_office_of_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str())),
            )?,
            exits: offices(
                root,
                "CC013C",
                "CustomsOfficeOfExitForTransitDeclared",
                m.customs_office_of_exit_for_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str())),
            )?,
            guarantees: guarantees(
                root,
                "CC013C",
                m.guarantee.iter().enumerate().map(|(i, g)| {
                    (
                        g.guarantee_type
                            .as_deref()
                            .or_else(|| previous_types.get(i).copied())
                            .unwrap_or_default(),
                        &g.guarantee_reference,
                    )
                }),
            )?,
        })
    }

    /// Extracts the declaration from a CD001C anticipated arrival record.
    pub fn from_cd001c(m: &cats::CD001CType) -> Result<Declaration, Rejection> {
        anticipated(
            "CD001C",
            Anticipated {
                declaration_type: &m.transit_operation.declaration_type,
                security: &m.transit_operation.security,
                holder: m
                    .holder_of_the_transit_procedure
                    .identification_number
                    .as_deref(),
                departure: &m.customs_office_of_departure.reference_number,
                destination: &m.customs_office_of_destination_declared.reference_number,
                transits: m
                    .customs_office_of_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str()))
                    .collect(),
                exits: m
                    .customs_office_of_exit_for_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str()))
                    .collect(),
            },
        )
    }

    /// Extracts the declaration from a CD050C anticipated transit record.
    pub fn from_cd050c(m: &cats::CD050CType) -> Result<Declaration, Rejection> {
        anticipated(
            "CD050C",
            Anticipated {
                declaration_type: &m.transit_operation.declaration_type,
                security: &m.transit_operation.security,
                holder: m
                    .holder_of_the_transit_procedure
                    .identification_number
                    .as_deref(),
                departure: &m.customs_office_of_departure.reference_number,
                destination: &m.customs_office_of_destination_declared.reference_number,
                transits: m
                    .customs_office_of_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str()))
                    .collect(),
                exits: m
                    .customs_office_of_exit_for_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str()))
                    .collect(),
            },
        )
    }

    /// Extracts the declaration from a CD160C anticipated exit record.
    pub fn from_cd160c(m: &cats::CD160CType) -> Result<Declaration, Rejection> {
        anticipated(
            "CD160C",
            Anticipated {
                declaration_type: &m.transit_operation.declaration_type,
                security: &m.transit_operation.security,
                holder: m
                    .holder_of_the_transit_procedure
                    .identification_number
                    .as_deref(),
                departure: &m.customs_office_of_departure.reference_number,
                destination: &m.customs_office_of_destination_declared.reference_number,
                transits: m
                    .customs_office_of_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str()))
                    .collect(),
                exits: m
                    .customs_office_of_exit_for_transit_declared
                    .iter()
                    .map(|o| (o.sequence_number, o.reference_number.as_str()))
                    .collect(),
            },
        )
    }

    /// The key that identifies a declaration for duplicate detection, when it has an LRN.
    pub fn key(&self) -> Option<DeclarationKey> {
        Some(DeclarationKey {
            lrn: self.lrn.clone()?,
            holder: self.holder.clone(),
            departure: self.departure,
        })
    }

    /// Every office after departure that gets an anticipated record: exits, transits,
    /// destination, in that order and without repeats.
    pub fn offices_en_route(&self) -> Vec<CustomsOfficeRef> {
        let mut all: Vec<CustomsOfficeRef> = Vec::new();
        for o in self
            .exits
            .iter()
            .chain(self.transits.iter())
            .chain(std::iter::once(&self.destination))
        {
            if !all.contains(o) {
                all.push(*o);
            }
        }
        all
    }
}

/// The fields every anticipated record (CD001C, CD050C, CD160C) has.
struct Anticipated<'a> {
    declaration_type: &'a str,
    security: &'a str,
    holder: Option<&'a str>,
    departure: &'a str,
    destination: &'a str,
    transits: Vec<(i64, &'a str)>,
    exits: Vec<(i64, &'a str)>,
}

fn anticipated(kind: &str, a: Anticipated<'_>) -> Result<Declaration, Rejection> {
    let root = format!("/{kind}");
    Ok(Declaration {
        lrn: None,
        holder: holder(&root, kind, a.holder)?,
        declaration_type: a.declaration_type.to_owned(),
        pre_lodged: false,
        security: a.security.to_owned(),
        departure: office(
            &format!("{root}/CustomsOfficeOfDeparture/referenceNumber"),
            kind,
            a.departure,
        )?,
        destination: office(
            &format!("{root}/CustomsOfficeOfDestinationDeclared/referenceNumber"),
            kind,
            a.destination,
        )?,
        transits: offices(
            &root,
            kind,
            "CustomsOfficeOfTransitDeclared",
            a.transits.into_iter(),
        )?,
        exits: offices(
            &root,
            kind,
            "CustomsOfficeOfExitForTransitDeclared",
            a.exits.into_iter(),
        )?,
        guarantees: Vec::new(),
    })
}

/// A rule rejection (code 14) of `rejected` at `pointer`.
pub(crate) fn rule(rejected: &str, pointer: &str, reason: String) -> Rejection {
    Rejection {
        rejected: rejected.to_owned(),
        code: FunctionalError::Rule,
        pointer: pointer.to_owned(),
        reason,
    }
}

/// Parses an MRN found at `pointer` of a `rejected` message: 93 for a wrong check digit, 14 for
/// a wrong structure.
pub(crate) fn mrn(pointer: &str, rejected: &str, text: &str) -> Result<Mrn, Rejection> {
    Mrn::parse(text).map_err(|e| Rejection {
        rejected: rejected.to_owned(),
        code: match e {
            MrnError::CheckDigit { .. } => FunctionalError::InvalidMrn,
            _ => FunctionalError::Rule,
        },
        pointer: pointer.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses an office reference found at `pointer`.
pub(crate) fn office(
    pointer: &str,
    rejected: &str,
    text: &str,
) -> Result<CustomsOfficeRef, Rejection> {
    CustomsOfficeRef::parse(text).map_err(|e| rule(rejected, pointer, e.to_string()))
}

fn lrn(pointer: &str, rejected: &str, text: &str) -> Result<Lrn, Rejection> {
    Lrn::parse(text).map_err(|e| rule(rejected, pointer, e.to_string()))
}

fn holder(root: &str, rejected: &str, text: Option<&str>) -> Result<Option<Tin>, Rejection> {
    text.map(|t| {
        Tin::parse(t).map_err(|e| {
            rule(
                rejected,
                &format!("{root}/HolderOfTheTransitProcedure/identificationNumber"),
                e.to_string(),
            )
        })
    })
    .transpose()
}

/// Parses a list of `(sequence number, office)` in sequence-number order.
fn offices<'a>(
    root: &str,
    rejected: &str,
    group: &str,
    list: impl Iterator<Item = (i64, &'a str)>,
) -> Result<Vec<CustomsOfficeRef>, Rejection> {
    let mut numbered: Vec<(i64, usize, &str)> = list
        .enumerate()
        .map(|(position, (sequence, text))| (sequence, position, text))
        .collect();
    numbered.sort();
    numbered
        .into_iter()
        .map(|(_, position, text)| {
            office(
                &format!("{root}/{group}[{}]/referenceNumber", position + 1),
                rejected,
                text,
            )
        })
        .collect()
}

fn guarantees<'a>(
    root: &str,
    rejected: &str,
    list: impl Iterator<Item = (&'a str, &'a Vec<ncts::GuaranteeReferenceType03>)>,
) -> Result<Vec<GuaranteeLine>, Rejection> {
    let mut lines = Vec::new();
    for (g, (guarantee_type, references)) in list.enumerate() {
        for (r, reference) in references.iter().enumerate() {
            let Some(text) = reference.grn.as_deref() else {
                continue;
            };
            let pointer = format!(
                "{root}/Guarantee[{}]/GuaranteeReference[{}]/GRN",
                g + 1,
                r + 1
            );
            let grn = Grn::parse(text).map_err(|e| rule(rejected, &pointer, e.to_string()))?;
            lines.push(GuaranteeLine {
                guarantee_type: guarantee_type.to_owned(),
                grn,
                amount: reference
                    .amount_to_be_covered
                    .unwrap_or_default()
                    .normalize(),
                currency: reference.currency.clone(),
            });
        }
    }
    Ok(lines)
}
