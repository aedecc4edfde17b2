//! Rendering a [`Rejection`] as the NACK message of its family, built from the generated structs:
//!
//! | rejection | external domain (CC…, CA…) | common domain (CD…) |
//! | --- | --- | --- |
//! | [`RejectionKind::Xml`] | CC917C | CD917C |
//! | [`RejectionKind::Functional`] | CC906C | CD906C |
//!
//! The header comes from the original message ([`OriginalHeader`], which can be sniffed from
//! bytes that did not decode) and from the sender's [`NackContext`]. The NACK is checked against
//! its own schema before it is returned (encode, then strict decode), so a NACK that would be
//! refused by its recipient is an error here, not on the wire.

use chrono::NaiveDateTime;
use quick_xml::events::Event;

use super::{Limits, Rejection, RejectionKind, decode, encode};
use crate::generated::{Message, cats, ncts};

/// Which domain a NACK is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// National system or trader ↔ node: CC906C / CC917C.
    External,
    /// Node ↔ hub: CD906C / CD917C.
    Common,
}

impl Domain {
    /// The domain of a message type: `CD…` is common, anything else external.
    pub fn of(message_type: Option<&str>) -> Domain {
        if message_type.is_some_and(|t| t.starts_with("CD")) {
            Domain::Common
        } else {
            Domain::External
        }
    }
}

/// What a NACK repeats of the message it refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalHeader {
    /// The original `messageSender` (the NACK's recipient).
    pub message_sender: Option<String>,
    /// The original `messageIdentification` (the NACK's `correlationIdentifier`).
    pub message_identification: Option<String>,
    /// The first `LRN` found.
    pub lrn: Option<String>,
    /// The first `MRN` found.
    pub mrn: Option<String>,
}

impl OriginalHeader {
    /// Best-effort scan of possibly invalid bytes for the header values (first occurrence of
    /// each element, stopping at the first well-formedness error or DOCTYPE; never panics).
    pub fn sniff(bytes: &[u8]) -> OriginalHeader {
        let mut h = OriginalHeader::default();
        if bytes.len() > Limits::default().max_bytes {
            return h;
        }
        let mut reader = quick_xml::Reader::from_reader(bytes);
        let mut current: Option<Vec<u8>> = None;
        let mut seen = 0usize;
        loop {
            seen += 1;
            if seen > 10_000 {
                break;
            }
            match reader.read_event() {
                Ok(Event::Start(e)) => current = Some(e.local_name().as_ref().to_vec()),
                Ok(Event::Text(t)) => {
                    let Some(name) = current.take() else { continue };
                    let Ok(text) = t.xml_content() else { continue };
                    let text = text.trim().to_string();
                    let slot = match name.as_slice() {
                        b"messageSender" => &mut h.message_sender,
                        b"messageIdentification" => &mut h.message_identification,
                        b"LRN" => &mut h.lrn,
                        b"MRN" => &mut h.mrn,
                        _ => continue,
                    };
                    if slot.is_none() && !text.is_empty() {
                        *slot = Some(text);
                    }
                }
                Ok(Event::Eof | Event::DocType(_)) | Err(_) => break,
                Ok(_) => current = None,
            }
        }
        h
    }

    /// The header values of a decoded message.
    pub fn of(m: &Message) -> OriginalHeader {
        let bytes = encode(m);
        let mut h = OriginalHeader::sniff(&bytes);
        h.message_sender = m.message_sender().map(str::to_string);
        h.message_identification = m.message_identification().map(str::to_string);
        h
    }
}

/// What the NACK's sender supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackContext<'a> {
    /// Our identity (`messageSender` of the NACK).
    pub sender: &'a str,
    /// The NACK's own `messageIdentification`.
    pub message_identification: &'a str,
    /// `preparationDateAndTime`.
    pub prepared_at: NaiveDateTime,
    /// Force a domain; by default it follows the refused message's type.
    pub domain: Option<Domain>,
}

/// Why a NACK could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NackError {
    /// The original sender is unknown, so there is no one to address the NACK to.
    #[error("nack.no-recipient: the refused message names no sender")]
    NoRecipient,
    /// CD906C needs an MRN and the refused message has none.
    #[error("nack.no-mrn: a CD906C needs the MRN of the refused message")]
    NoMrn,
    /// The rejection has no problems to report.
    #[error("nack.no-problem: the rejection lists no problem")]
    NoProblem,
    /// The NACK built does not satisfy its own schema (e.g. an identifier too long).
    #[error("nack.invalid: {0}")]
    Invalid(Box<Rejection>),
}

fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    let t: String = s.chars().take(max).collect();
    if t.is_empty() { "-".to_string() } else { t }
}

const MAX_ERRORS: usize = 9999;

impl Rejection {
    /// Renders this rejection as the NACK for its family (see the module documentation).
    pub fn to_nack(
        &self,
        original: &OriginalHeader,
        ctx: &NackContext<'_>,
    ) -> Result<Message, NackError> {
        if self.problems.is_empty() {
            return Err(NackError::NoProblem);
        }
        let recipient = original
            .message_sender
            .clone()
            .ok_or(NackError::NoRecipient)?;
        let domain = ctx
            .domain
            .unwrap_or_else(|| Domain::of(self.message_type.as_deref()));
        let problems = self.problems.iter().take(MAX_ERRORS);
        let correlation = original.message_identification.clone();
        let text = |p: &super::Problem| clip(&format!("{}: {}", p.label, p.reason), 512);
        let reason = |p: &super::Problem| clip(p.rule.as_deref().unwrap_or(p.label), 7);
        let m = match (self.kind, domain) {
            (RejectionKind::Xml, Domain::External) => Message::CC917C(Box::new(ncts::CC917CType {
                phase_id: Some(ncts::phaseIDtype::NCTS5_1),
                message_sender: ctx.sender.to_string(),
                message_recipient: recipient,
                preparation_date_and_time: ctx.prepared_at,
                message_identification: ctx.message_identification.to_string(),
                message_type: ncts::MessageTypes::from_lexical("CC917C")
                    .ok_or(NackError::NoProblem)?,
                correlation_identifier: correlation,
                header: (original.lrn.is_some() || original.mrn.is_some()).then(|| {
                    ncts::HeaderType02 {
                        lrn: original.lrn.clone(),
                        mrn: original.mrn.clone(),
                    }
                }),
                xml_error: problems
                    .map(|p| ncts::XMLErrorType {
                        error_line_number: i64::from(p.line),
                        error_column_number: i64::from(p.column),
                        error_pointer: Some(clip(&p.pointer, 512)),
                        error_code: ncts::XmlErrorCodes::from_lexical(&p.code.to_string())
                            .unwrap_or(ncts::XmlErrorCodes::V18),
                        error_text: text(p),
                        original_attribute_value: None,
                    })
                    .collect(),
            })),
            (RejectionKind::Functional, Domain::External) => {
                Message::CC906C(Box::new(ncts::CC906CType {
                    phase_id: Some(ncts::phaseIDtype::NCTS5_1),
                    message_sender: ctx.sender.to_string(),
                    message_recipient: recipient,
                    preparation_date_and_time: ctx.prepared_at,
                    message_identification: ctx.message_identification.to_string(),
                    message_type: ncts::MessageTypes::from_lexical("CC906C")
                        .ok_or(NackError::NoProblem)?,
                    correlation_identifier: correlation,
                    header: ncts::HeaderType01 {
                        lrn: original.lrn.clone(),
                        mrn: original.mrn.clone(),
                    },
                    functional_error: problems
                        .map(|p| ncts::FunctionalErrorType02 {
                            error_pointer: clip(&p.pointer, 512),
                            error_code: ncts::AesNctsP5FunctionalErrorCodes::from_lexical(
                                &p.code.to_string(),
                            )
                            .unwrap_or(ncts::AesNctsP5FunctionalErrorCodes::V14),
                            error_reason: reason(p),
                            original_attribute_value: None,
                        })
                        .collect(),
                }))
            }
            (RejectionKind::Xml, Domain::Common) => Message::CD917C(Box::new(cats::CD917CType {
                message_sender: ctx.sender.to_string(),
                message_recipient: recipient,
                preparation_date_and_time: ctx.prepared_at,
                message_identification: ctx.message_identification.to_string(),
                message_type: cats::CatsCommonMessageTypes::from_lexical("CD917C")
                    .ok_or(NackError::NoProblem)?,
                correlation_identifier: correlation,
                header: original.mrn.clone().map(|mrn| cats::HeaderType04 { mrn }),
                xml_error: problems
                    .map(|p| cats::XMLErrorType {
                        error_line_number: i64::from(p.line),
                        error_column_number: i64::from(p.column),
                        error_pointer: Some(clip(&p.pointer, 512)),
                        error_code: cats::XmlErrorCodes::from_lexical(&p.code.to_string())
                            .unwrap_or(cats::XmlErrorCodes::V18),
                        error_text: text(p),
                        original_attribute_value: None,
                    })
                    .collect(),
            })),
            (RejectionKind::Functional, Domain::Common) => {
                Message::CD906C(Box::new(cats::CD906CType {
                    message_sender: ctx.sender.to_string(),
                    message_recipient: recipient,
                    preparation_date_and_time: ctx.prepared_at,
                    message_identification: ctx.message_identification.to_string(),
                    message_type: cats::CatsCommonMessageTypes::from_lexical("CD906C")
                        .ok_or(NackError::NoProblem)?,
                    correlation_identifier: correlation,
                    header: cats::HeaderType03 {
                        mrn: original.mrn.clone().ok_or(NackError::NoMrn)?,
                    },
                    functional_error: problems
                        .map(|p| cats::FunctionalErrorType03 {
                            error_pointer: clip(&p.pointer, 512),
                            error_code: cats::AesNctsP5FunctionalErrorCodes::from_lexical(
                                &p.code.to_string(),
                            )
                            .unwrap_or(cats::AesNctsP5FunctionalErrorCodes::V14),
                            error_reason: Some(reason(p)),
                            original_attribute_value: None,
                        })
                        .collect(),
                }))
            }
        };
        // The NACK must satisfy its own schema.
        decode(&encode(&m), &Limits::default()).map_err(|r| NackError::Invalid(Box::new(r)))?;
        Ok(m)
    }
}
