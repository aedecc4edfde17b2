//! The engine: what the node does with a national message, an officer's action, or a delivery
//! from the hub, around the pure life cycle (`message_catalog::lifecycle`).
//!
//! Every input is applied in **one transaction** of the transport's store: (inbox accept for
//! hub deliveries) + the message stored with its bytes + [`lifecycle::apply`] + the movement's
//! new state + the history + the outputs: CD messages signed and put in the [`Outbox`], P5
//! replies appended to the outbound stream. Then the system decisions the new state calls for
//! (acceptance and MRN, selection, write-off; see [`Engine::next_system_decision`]) are applied
//! in the same transaction. A crash before the commit leaves nothing; after it, the hub's
//! redelivery is a duplicate for the inbox. One engine lock serialises applications, so a
//! movement is never applied concurrently (and a declaration key is never created twice).

use std::sync::Arc;

use cats_transport::contract::{Delivery, Destination, Outbound};
use cats_transport::store::{Accepted, Outbox, Store, Tx};
use cats_trust::{EnvelopeHeaderFields, PeerIdentity, Signer, Verifier};
use chrono::{DateTime, Datelike, Timelike, Utc};
use message_catalog::Message;
use message_catalog::codec::nack::{Domain, NackContext, OriginalHeader};
use message_catalog::codec::{self, ErrorCode, Limits, Problem, RejectionKind};
use message_catalog::generated::ncts;
use message_catalog::ids::{CountryCode, CustomsOfficeRef, Mrn, ProcedureLetter};
use message_catalog::lifecycle::compose::{self, Header};
use message_catalog::lifecycle::{
    self, Actor, Common, ControlOutcome, ControlResult, Decision, DestinationReply, Event,
    ExternalReply, FunctionalError, Input, Movement, Output, Reference, Rejection, Role, Selection,
};
use message_catalog::reference::{self, ReferenceData};
use message_catalog::rules::{self, Level};
use rust_decimal::Decimal;
use serde_json::json;

use crate::metrics::Metrics;

#[path = "guarantee_query.rs"]
mod guarantee_query;
use crate::selection::{Facts, Selector, element_texts};
use crate::store::{
    self, HistoryRow, Lookup, MessageRow, SelectionRow, StoreError, StoredMovement, now_millis,
    role_name,
};
use crate::time::{rfc3339_local, rfc3339_utc};

/// The engine failed to apply something; nothing was committed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing a CD message failed.
    #[error("engine.seal: {0}")]
    Seal(String),
    /// Settling a hub delivery failed (it comes again).
    #[error("engine.transport: {0}")]
    Transport(#[from] cats_transport::contract::TransportError),
}

impl From<cats_transport::store::StoreError> for EngineError {
    fn from(e: cats_transport::store::StoreError) -> Self {
        EngineError::Store(StoreError::Transport(e))
    }
}

impl EngineError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Store(e) => e.code(),
            EngineError::Seal(_) => "engine.seal",
            EngineError::Transport(e) => e.code(),
        }
    }
}

/// Departure policy.
#[derive(Debug, Clone, Default)]
pub struct DeparturePolicy {
    /// An officer accepts declarations (`accept-declaration`) instead of the system.
    pub manual_acceptance: bool,
    /// HS code prefixes of goods that may not move under transit: the declaration is rejected.
    pub prohibited_hs_prefixes: Vec<String>,
}

/// Everything the engine needs.
#[derive(Debug)]
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) outbox: Outbox,
    pub(crate) country: CountryCode,
    pub(crate) signer: Signer,
    verifier: Verifier,
    /// The reference data in force ([`crate::refdata`]).
    pub refdata: crate::refdata::Live,
    pub(crate) limits: Limits,
    selector: Selector,
    policy: DeparturePolicy,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) lock: tokio::sync::Mutex<()>,
    stream: tokio::sync::watch::Sender<i64>,
}

/// The answer to a national message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The immediate reply (CC928C, CC004C, CC009C ...).
    Reply {
        /// Its type.
        message_type: String,
        /// The XML.
        xml: String,
    },
    /// Accepted, no immediate reply.
    Accepted,
    /// Refused by the life cycle or the rules: CC056C, CC057C or CC906C.
    Rejected {
        /// Its type.
        message_type: String,
        /// The XML.
        xml: String,
        /// The NCTS code.
        code: String,
    },
    /// Not well formed or not valid against the schema: CC917C.
    Invalid {
        /// The XML of the CC917C.
        xml: String,
        /// The label of the first problem.
        code: String,
    },
}

/// A national message's answer and the identifiers known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The answer.
    pub answer: Answer,
    /// The MRN, when known.
    pub mrn: Option<String>,
    /// The LRN, when known.
    pub lrn: Option<String>,
}

/// An officer's action, as the API receives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// The action name (`record-exit` ...).
    pub action: String,
    /// The office.
    pub office: String,
    /// The role of the office.
    pub role: String,
    /// The movement.
    pub mrn: Option<String>,
    /// The declaration, before it has an MRN.
    pub lrn: Option<String>,
    /// `reject-declaration`: NCTS code.
    pub code: Option<String>,
    /// `reject-declaration`: pointer.
    pub pointer: Option<String>,
    /// `reject-declaration`: reason.
    pub reason: Option<String>,
    /// `record-control-result`: outcome.
    pub outcome: Option<String>,
    /// `record-control-result`: remarks.
    pub remarks: Option<String>,
    /// `refuse-release`: motivation code.
    pub motivation: Option<String>,
    /// `refuse-release`: text.
    pub text: Option<String>,
    /// `invalidate`: justification.
    pub justification: Option<String>,
    /// `record-arrival`: simplified procedure.
    pub simplified: Option<bool>,
}

/// Why an action was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The request is wrong (unknown action, missing field, office of another country).
    #[error("{0}")]
    BadRequest(String),
    /// No movement with that MRN or LRN.
    #[error("no movement {0} at this node")]
    UnknownMovement(String),
    /// The action does not fit the movement's state (nothing recorded).
    #[error("{}: {}", .0.code.code(), .0.reason)]
    Refused(Rejection),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The result of an applied action.
#[derive(Debug, Clone)]
pub struct ActionDone {
    /// The movement after the action.
    pub movement: StoredMovement,
    /// The messages sent because of it, in order.
    pub sent: Vec<String>,
}

/// What one application produced.
#[derive(Debug, Default)]
struct Outcome {
    movement: Option<StoredMovement>,
    applied: bool,
    replies: Vec<(String, String)>,
    refused: Option<Rejection>,
    sent: Vec<String>,
}

/// The decoded record of a movement, for the composers.
#[derive(Debug, Default)]
struct Records {
    declaration: Option<Box<ncts::CC015CType>>,
    arrival: Option<Box<message_catalog::generated::cats::CD001CType>>,
}

/// Where an input came from, for the history and the replies.
#[derive(Debug, Clone, Default)]
struct Origin {
    kind: &'static str,
    message_type: Option<String>,
    action: Option<String>,
    by: String,
    from: String,
    message_row: Option<i64>,
    record: Option<Vec<u8>>,
    national_party: Option<String>,
    correlation: Option<String>,
    /// For CD inputs: who gets the CD906C, and the original header.
    nack_to: Option<(PeerIdentity, OriginalHeader)>,
}

fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    hex::encode_upper(b)
}

/// NCTS times have whole seconds.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

fn decision_json(event: &Event, message_row: Option<i64>) -> Option<String> {
    let input = match &event.input {
        Input::Decision(d) => json!({ "decision": d }),
        Input::Message(_) => json!({ "message": message_row }),
    };
    Some(
        json!({
            "at": event.at,
            "by": event.by,
            "office": event.office.to_string(),
            "role": event.role,
            "input": input,
        })
        .to_string(),
    )
}

fn phase_of(movement: &Movement, office: &CustomsOfficeRef, role: Role) -> Option<String> {
    store::office_phases(movement)
        .into_iter()
        .find(|(o, r, _, _)| *o == office.as_str() && *r == role)
        .map(|(_, _, p, _)| p)
}

fn functional_problem(r: &Rejection) -> Problem {
    Problem {
        line: 0,
        column: 0,
        pointer: if r.pointer.is_empty() {
            format!("/{}", r.rejected)
        } else {
            r.pointer.clone()
        },
        code: ErrorCode(u8::try_from(r.code.code()).unwrap_or(14)),
        label: "lifecycle",
        rule: Some(format!("LC{}", r.code.code())),
        reason: r.reason.clone(),
    }
}

fn rejection_code(r: &Rejection) -> String {
    r.code.code().to_string()
}

/// The NCTS code of a reject-declaration request.
fn functional_error(code: &str) -> Option<FunctionalError> {
    Some(match code {
        "12" => FunctionalError::CodeList,
        "14" => FunctionalError::Rule,
        "26" => FunctionalError::Duplicate,
        "90" => FunctionalError::UnknownMrn,
        "92" => FunctionalError::OutOfSequence,
        "93" => FunctionalError::InvalidMrn,
        _ => return None,
    })
}

impl Engine {
    /// An engine over `store` (the node's tables must be migrated).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        outbox: Outbox,
        country: CountryCode,
        signer: Signer,
        verifier: Verifier,
        reference: ReferenceData,
        limits: Limits,
        selector: Selector,
        policy: DeparturePolicy,
        metrics: Arc<Metrics>,
    ) -> Engine {
        Engine {
            store,
            outbox,
            country,
            signer,
            verifier,
            refdata: crate::refdata::Live::new(reference),
            limits,
            selector,
            policy,
            metrics,
            lock: tokio::sync::Mutex::new(()),
            stream: tokio::sync::watch::channel(0).0,
        }
    }

    /// This node's country.
    pub fn country(&self) -> CountryCode {
        self.country
    }

    /// The transport store (shared with the outbox and inbox).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Watches the head of the outbound stream (for SSE and the webhook).
    pub fn subscribe_stream(&self) -> tokio::sync::watch::Receiver<i64> {
        self.stream.subscribe()
    }

    fn address(&self) -> String {
        format!("NTA.{}", self.country)
    }

    fn new_message_id(&self) -> String {
        format!("{}{}", self.country, random_hex(10))
    }

    /// The identification of an output. For a hub delivery it is derived from the delivered
    /// message's identification, the office, the role and the output's position, so that
    /// re-applying the same delivery (a database restored from a backup, reconciliation)
    /// emits the same identifications: the national system and the hub see a repetition, not
    /// a new message. Otherwise random.
    fn output_id(&self, origin: &Origin, event: &Event, index: usize) -> String {
        match (origin.kind, &origin.correlation) {
            ("in", Some(input)) => {
                let seed = format!(
                    "{input}\n{}\n{}\n{index}",
                    event.office,
                    role_name(event.role)
                );
                let d = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
                format!(
                    "{}{}",
                    self.country,
                    hex::encode_upper(d.as_ref().get(..10).unwrap_or_default())
                )
            }
            _ => self.new_message_id(),
        }
    }

    async fn committed(&self, mut tx: Tx<'static>, wake_outbox: bool) -> Result<(), EngineError> {
        let head = store::stream_head(&mut tx).await?;
        tx.commit().await?;
        if wake_outbox {
            self.outbox.wake();
        }
        self.stream.send_replace(head);
        Ok(())
    }

    /// Announces the current head of the stream (after a start).
    pub async fn announce_stream(&self) -> Result<(), EngineError> {
        let mut tx = self.store.begin().await?;
        let head = store::stream_head(&mut tx).await?;
        tx.commit().await?;
        self.stream.send_replace(head);
        Ok(())
    }

    fn nack_xml(
        &self,
        rejection: &codec::Rejection,
        original: &OriginalHeader,
        domain: Domain,
    ) -> Option<(String, String)> {
        let id = self.new_message_id();
        let ctx = NackContext {
            sender: &self.address(),
            message_identification: &id,
            prepared_at: whole_seconds(Utc::now()).naive_utc(),
            domain: Some(domain),
        };
        let mut original = original.clone();
        if original.message_sender.is_none() {
            original.message_sender = Some(format!("NTS.{}", self.country));
        }
        let m = rejection.to_nack(&original, &ctx).ok()?;
        Some((
            m.message_type().to_owned(),
            String::from_utf8_lossy(&codec::encode(&m)).into_owned(),
        ))
    }

    /// A national message (`POST /api/v1/messages`).
    pub async fn submit(&self, bytes: &[u8]) -> Result<Submission, EngineError> {
        let original = OriginalHeader::sniff(bytes);
        let message = match rules::validate(bytes, &self.limits, Level::Rules) {
            Ok(m) => m,
            Err(r) => {
                self.metrics
                    .message_in(r.message_type.as_deref().unwrap_or("unknown"));
                let code = match (r.kind, r.problems.first()) {
                    (RejectionKind::Functional, Some(p)) => p.code.to_string(),
                    (_, Some(p)) => p.label.to_owned(),
                    (_, None) => "rejected".to_owned(),
                };
                self.metrics.rejected(&code);
                let (message_type, xml) = self
                    .nack_xml(&r, &original, Domain::External)
                    .unwrap_or_else(|| ("CC917C".to_owned(), String::new()));
                let answer = match r.kind {
                    RejectionKind::Xml => Answer::Invalid { xml, code },
                    RejectionKind::Functional => Answer::Rejected {
                        message_type,
                        xml,
                        code,
                    },
                };
                return Ok(Submission {
                    answer,
                    mrn: original.mrn,
                    lrn: original.lrn,
                });
            }
        };
        let ty = message.message_type().to_owned();
        self.metrics.message_in(&ty);
        if let Message::CC034C(q) = &message {
            return self.forward_balance_query(q).await;
        }
        let sender = message.message_sender().map(str::to_owned);
        if let Message::CA003C(_) = &message {
            // A registration application: the hub's to decide.
            let _guard = self.lock.lock().await;
            let mut tx = self.store.begin().await?;
            store::insert_message(
                &mut tx,
                &MessageRow {
                    movement_id: None,
                    direction: "in",
                    message_type: &ty,
                    message_id: message.message_identification().unwrap_or(""),
                    party: sender.as_deref().unwrap_or("national-system"),
                    body: bytes,
                    envelope: None,
                    at: Utc::now().timestamp_millis(),
                },
            )
            .await?;
            crate::refdata::forward_application(
                &mut tx,
                &self.outbox,
                &self.signer,
                self.country,
                &message,
                bytes,
            )
            .await?;
            self.committed(tx, true).await?;
            self.metrics.message_out(&ty);
            return Ok(Submission {
                answer: Answer::Accepted,
                mrn: None,
                lrn: None,
            });
        }
        let (office_text, role, actor) = match &message {
            Message::CC015C(m) => (
                m.customs_office_of_departure.reference_number.clone(),
                Role::Departure,
                Actor::Declarant,
            ),
            Message::CC013C(m) => (
                m.customs_office_of_departure.reference_number.clone(),
                Role::Departure,
                Actor::Declarant,
            ),
            Message::CC014C(m) => (
                m.customs_office_of_departure.reference_number.clone(),
                Role::Departure,
                Actor::Declarant,
            ),
            Message::CC170C(m) => (
                m.customs_office_of_departure.reference_number.clone(),
                Role::Departure,
                Actor::Declarant,
            ),
            Message::CC007C(m) => (
                m.customs_office_of_destination_actual
                    .reference_number
                    .clone(),
                Role::Destination,
                Actor::TraderAtDestination,
            ),
            Message::CC044C(m) => (
                m.customs_office_of_destination_actual
                    .reference_number
                    .clone(),
                Role::Destination,
                Actor::TraderAtDestination,
            ),
            _ => {
                return Ok(self.refuse_plain(
                    &original,
                    &ty,
                    FunctionalError::Rule,
                    &format!("/{ty}"),
                    &format!("{ty} is not a message the national API accepts"),
                ));
            }
        };
        if matches!(message, Message::CC015C(_))
            && let Some(v) = self.refdata.behind()
        {
            return Ok(self.refuse_behind(&original, v));
        }
        let office = match CustomsOfficeRef::parse(&office_text) {
            Ok(o) if o.country() == self.country => o,
            _ => {
                return Ok(self.refuse_plain(
                    &original,
                    &ty,
                    FunctionalError::Rule,
                    &format!("/{ty}"),
                    &format!(
                        "office {office_text} is not an office of this node ({})",
                        self.country
                    ),
                ));
            }
        };
        let now = whole_seconds(Utc::now());
        let event = Event {
            at: now,
            by: actor,
            office,
            role,
            input: Input::Message(message.clone()),
        };
        let _guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        let row = store::insert_message(
            &mut tx,
            &MessageRow {
                movement_id: None,
                direction: "in",
                message_type: &ty,
                message_id: message.message_identification().unwrap_or(""),
                party: sender.as_deref().unwrap_or("national-system"),
                body: bytes,
                envelope: None,
                at: now.timestamp_millis(),
            },
        )
        .await?;
        let origin = Origin {
            kind: "in",
            message_type: Some(ty.clone()),
            by: "national-system".to_owned(),
            from: "national-system".to_owned(),
            message_row: Some(row),
            record: Some(bytes.to_vec()),
            national_party: sender.clone(),
            correlation: message.message_identification().map(str::to_owned),
            ..Origin::default()
        };
        let current = match lifecycle::reference(&message) {
            Reference::Mrn(m) => store::movement(&mut tx, Lookup::Mrn(m.as_str())).await?,
            Reference::Declaration(k) => {
                store::movement(&mut tx, Lookup::Key(&store::key_text(&k))).await?
            }
            Reference::Invalid(r) => {
                let mut outcome = Outcome::default();
                let output = lifecycle::reject(&event, r);
                let records = self.records(None, &event);
                self.emit(
                    &mut tx,
                    None,
                    &records,
                    &event,
                    &output,
                    &origin,
                    &mut outcome,
                )
                .await?;
                self.committed(tx, false).await?;
                return Ok(self.answer(outcome, &original));
            }
            Reference::None => {
                drop(tx);
                return Ok(self.refuse_plain(
                    &original,
                    &ty,
                    FunctionalError::Rule,
                    &format!("/{ty}/TransitOperation"),
                    "the message names neither an MRN nor an LRN",
                ));
            }
        };
        // NCTS code 26: a message identification the national system already used for this
        // movement (a resend) is refused, not applied a second time.
        if let (Some(stored), Some(id)) = (&current, message.message_identification())
            && store::national_message_seen(&mut tx, stored.id, id).await?
        {
            drop(tx);
            return Ok(self.refuse_plain(
                &original,
                &ty,
                FunctionalError::Duplicate,
                &format!("/{ty}/messageIdentification"),
                &format!("message identification {id} was already received for this movement"),
            ));
        }
        let mut outcome = self.run_event(&mut tx, current, &event, &origin).await?;
        let follow = self.follow_up(&mut tx, outcome.movement.take()).await?;
        outcome.movement = follow.movement;
        let wake = !outcome.sent.is_empty() || !follow.sent.is_empty();
        self.committed(tx, wake).await?;
        Ok(self.answer(outcome, &original))
    }

    fn refuse_plain(
        &self,
        original: &OriginalHeader,
        ty: &str,
        code: FunctionalError,
        pointer: &str,
        reason: &str,
    ) -> Submission {
        let r = Rejection {
            rejected: ty.to_owned(),
            code,
            pointer: pointer.to_owned(),
            reason: reason.to_owned(),
        };
        self.metrics.rejected(&rejection_code(&r));
        let rejection = codec::Rejection {
            kind: RejectionKind::Functional,
            problems: vec![functional_problem(&r)],
            message_type: Some(ty.to_owned()),
        };
        let (message_type, xml) = self
            .nack_xml(&rejection, original, Domain::External)
            .unwrap_or_else(|| ("CC906C".to_owned(), String::new()));
        Submission {
            answer: Answer::Rejected {
                message_type,
                xml,
                code: rejection_code(&r),
            },
            mrn: original.mrn.clone(),
            lrn: original.lrn.clone(),
        }
    }

    /// The refusal of a declaration while the node knows its reference data is behind the
    /// hub's: a CC906C (code 14, errorReason `REFDATA`, the versions in the text) and the
    /// answer code `refdata.behind` (the national API answers 503 with `Retry-After`).
    fn refuse_behind(&self, original: &OriginalHeader, v: crate::refdata::Versions) -> Submission {
        self.metrics.rejected("refdata.behind");
        let rejection = codec::Rejection {
            kind: RejectionKind::Functional,
            problems: vec![Problem {
                line: 0,
                column: 0,
                pointer: "/CC015C".to_owned(),
                code: codec::ErrorCode::RULE,
                label: "refdata.behind",
                rule: Some("REFDATA".to_owned()),
                reason: format!(
                    "this node holds reference data version {}, the hub has version {}: \
                     declarations are refused until the node has caught up (it has asked the \
                     hub); submit again shortly",
                    v.held, v.known
                ),
            }],
            message_type: Some("CC015C".to_owned()),
        };
        let (message_type, xml) = self
            .nack_xml(&rejection, original, Domain::External)
            .unwrap_or_else(|| ("CC906C".to_owned(), String::new()));
        tracing::warn!(
            held = v.held,
            known = v.known,
            "declaration refused: reference data behind"
        );
        Submission {
            answer: Answer::Rejected {
                message_type,
                xml,
                code: "refdata.behind".to_owned(),
            },
            mrn: original.mrn.clone(),
            lrn: original.lrn.clone(),
        }
    }

    fn answer(&self, outcome: Outcome, original: &OriginalHeader) -> Submission {
        let mrn = outcome
            .movement
            .as_ref()
            .and_then(|s| s.movement.mrn.map(|m| m.to_string()))
            .or_else(|| original.mrn.clone());
        let lrn = outcome
            .movement
            .as_ref()
            .and_then(|s| {
                s.movement
                    .declaration
                    .lrn
                    .as_ref()
                    .map(|l| l.as_str().to_owned())
            })
            .or_else(|| original.lrn.clone());
        let answer = match (outcome.refused, outcome.replies.into_iter().next()) {
            (Some(r), Some((message_type, xml))) => Answer::Rejected {
                message_type,
                xml,
                code: rejection_code(&r),
            },
            (Some(r), None) => {
                let rejection = codec::Rejection {
                    kind: RejectionKind::Functional,
                    problems: vec![functional_problem(&r)],
                    message_type: Some(r.rejected.clone()),
                };
                let (message_type, xml) = self
                    .nack_xml(&rejection, original, Domain::External)
                    .unwrap_or_else(|| ("CC906C".to_owned(), String::new()));
                Answer::Rejected {
                    message_type,
                    xml,
                    code: rejection_code(&r),
                }
            }
            (None, Some((message_type, xml))) => Answer::Reply { message_type, xml },
            (None, None) => Answer::Accepted,
        };
        Submission { answer, mrn, lrn }
    }

    /// Applies `event` to `current` and emits its outputs, inside `tx`.
    async fn run_event(
        &self,
        tx: &mut Tx<'static>,
        current: Option<StoredMovement>,
        event: &Event,
        origin: &Origin,
    ) -> Result<Outcome, EngineError> {
        let before = current.as_ref().map(|s| s.movement.applied);
        let step = lifecycle::apply(current.as_ref().map(|s| s.movement.clone()), event);
        let applied = match (before, &step.movement) {
            (None, Some(_)) => true,
            (Some(b), Some(m)) => m.applied > b,
            (_, None) => false,
        };
        let stored = match (current, step.movement) {
            (None, Some(m)) => {
                let record = origin.record.clone().unwrap_or_default();
                let id = store::insert_movement(tx, &m, &record, origin.national_party.as_deref())
                    .await?;
                if let Some(row) = origin.message_row {
                    store::attach_message(tx, row, id).await?;
                }
                Some(StoredMovement {
                    id,
                    movement: m,
                    record,
                    national_party: origin.national_party.clone(),
                    updated_at: now_millis(),
                })
            }
            (Some(mut s), Some(m)) => {
                if let Some(row) = origin.message_row {
                    store::attach_message(tx, row, s.id).await?;
                }
                if applied {
                    if let Some(record) = self.amended_record(&s, event, &step.outputs) {
                        store::update_record(tx, s.id, &record).await?;
                        s.record = record;
                    }
                    store::update_movement(tx, s.id, &m, origin.national_party.as_deref()).await?;
                    if origin.national_party.is_some() {
                        s.national_party = origin.national_party.clone();
                    }
                }
                s.movement = m;
                Some(s)
            }
            (s, None) => s,
        };
        if let Some(s) = &stored {
            store::insert_history(
                tx,
                s.id,
                &HistoryRow {
                    seq: 0,
                    at: now_millis(),
                    office: event.office.to_string(),
                    role: role_name(event.role).to_owned(),
                    kind: origin.kind.to_owned(),
                    message_type: origin.message_type.clone(),
                    action: origin.action.clone(),
                    by: origin.by.clone(),
                    from: origin.from.clone(),
                    to: self.country.to_string(),
                    phase_after: phase_of(&s.movement, &event.office, event.role),
                    event: if applied {
                        decision_json(event, origin.message_row)
                    } else {
                        None
                    },
                },
            )
            .await?;
        }
        let mut outcome = Outcome {
            applied,
            ..Outcome::default()
        };
        let records = if step
            .outputs
            .iter()
            .any(|o| !matches!(o, Output::ActionRefused(_)))
        {
            self.records(stored.as_ref(), event)
        } else {
            Records::default()
        };
        for output in &step.outputs {
            self.emit(
                tx,
                stored.as_ref(),
                &records,
                event,
                output,
                origin,
                &mut outcome,
            )
            .await?;
        }
        outcome.movement = stored;
        Ok(outcome)
    }

    /// After an accepted amendment (CC013C answered with CC004C), the declaration as amended,
    /// encoded: what every later message of the movement is composed from.
    fn amended_record(
        &self,
        stored: &StoredMovement,
        event: &Event,
        outputs: &[Output],
    ) -> Option<Vec<u8>> {
        let Input::Message(Message::CC013C(amendment)) = &event.input else {
            return None;
        };
        if !outputs
            .iter()
            .any(|o| matches!(o, Output::ToDeclarant(ExternalReply::AmendmentAccepted)))
        {
            return None;
        }
        match codec::decode(&stored.record, &self.limits) {
            Ok(Message::CC015C(original)) => Some(codec::encode(&Message::CC015C(Box::new(
                compose::amended_declaration(&original, amendment),
            )))),
            _ => {
                tracing::error!(
                    movement = stored.id,
                    "the stored declaration does not decode as a CC015C: amendment not stored"
                );
                None
            }
        }
    }

    /// The stored record the composers read, decoded once per step: the CC015C at departure
    /// (or the one being submitted), the CD001C at destination.
    fn records(&self, stored: Option<&StoredMovement>, event: &Event) -> Records {
        let decoded = match stored {
            Some(s) => codec::decode(&s.record, &self.limits).ok(),
            None => match &event.input {
                Input::Message(m @ Message::CC015C(_)) => Some(m.clone()),
                _ => None,
            },
        };
        match decoded {
            Some(Message::CC015C(m)) => Records {
                declaration: Some(m),
                arrival: None,
            },
            Some(Message::CD001C(m)) => Records {
                declaration: None,
                arrival: Some(m),
            },
            _ => Records::default(),
        }
    }

    /// Emits one output of a step.
    #[allow(clippy::too_many_arguments)]
    async fn emit(
        &self,
        tx: &mut Tx<'static>,
        stored: Option<&StoredMovement>,
        records: &Records,
        event: &Event,
        output: &Output,
        origin: &Origin,
        outcome: &mut Outcome,
    ) -> Result<(), EngineError> {
        let now = whole_seconds(Utc::now());
        let movement = stored.map(|s| &s.movement);
        let mrn = movement.and_then(|m| m.mrn);
        match output {
            Output::ActionRefused(r) => {
                self.metrics.rejected(&rejection_code(r));
                outcome.refused = Some(r.clone());
            }
            Output::ToDeclarant(_) | Output::ToTraderAtDestination(_) => {
                let rejection = match output {
                    Output::ToDeclarant(ExternalReply::Rejection(r))
                    | Output::ToTraderAtDestination(DestinationReply::Rejection(r)) => {
                        Some(r.clone())
                    }
                    _ => None,
                };
                let declaration = records.declaration.as_deref();
                let arrival = records.arrival.as_deref();
                let header = Header {
                    sender: self.address(),
                    recipient: origin
                        .national_party
                        .clone()
                        .or_else(|| stored.and_then(|s| s.national_party.clone()))
                        .unwrap_or_else(|| format!("NTS.{}", self.country)),
                    prepared_at: now,
                    message_id: self.output_id(origin, event, outcome.sent.len()),
                    correlation: origin.correlation.clone(),
                };
                let cx = compose::Context {
                    header: &header,
                    at: event.at,
                    movement,
                    declaration,
                    arrival_record: arrival,
                };
                if let Some(r) = &rejection {
                    self.metrics.rejected(&rejection_code(r));
                    outcome.refused = Some(r.clone());
                }
                let Some(message) = compose::message(output, &cx) else {
                    tracing::warn!(?output, "no message composed for this output");
                    return Ok(());
                };
                let ty = message.message_type().to_owned();
                let xml = String::from_utf8_lossy(&codec::encode(&message)).into_owned();
                self.national_out(tx, stored, event, &header.message_id, &ty, &xml, now)
                    .await?;
                outcome.replies.push((ty.clone(), xml));
                outcome.sent.push(ty);
            }
            Output::ToHub(common) => {
                let sends: Vec<(PeerIdentity, Message)> = match common {
                    Common::FunctionalNack(r) => {
                        let Some((to, original)) = &origin.nack_to else {
                            tracing::warn!(?r, "a CD rejection without a sender to NACK");
                            return Ok(());
                        };
                        self.metrics.rejected(&rejection_code(r));
                        let Some(message) = self.cd906c(r, original, *to) else {
                            tracing::warn!(?r, "no CD906C could be built");
                            return Ok(());
                        };
                        vec![(*to, message)]
                    }
                    _ => {
                        let mut out = Vec::new();
                        for to in self.recipients(common) {
                            let header = Header {
                                sender: self.address(),
                                recipient: match to {
                                    PeerIdentity::Hub => "CATS.HUB".to_owned(),
                                    PeerIdentity::Node(c) => format!("NTA.{c}"),
                                },
                                prepared_at: now,
                                message_id: self.output_id(
                                    origin,
                                    event,
                                    outcome.sent.len() + out.len(),
                                ),
                                correlation: origin.correlation.clone(),
                            };
                            let cx = compose::Context {
                                header: &header,
                                at: event.at,
                                movement,
                                declaration: records.declaration.as_deref(),
                                arrival_record: records.arrival.as_deref(),
                            };
                            match compose::message(output, &cx) {
                                Some(m) => out.push((to, m)),
                                None => {
                                    tracing::warn!(?output, "no message composed for this output")
                                }
                            }
                        }
                        out
                    }
                };
                for (to, message) in sends {
                    let ty = message.message_type().to_owned();
                    let id = message
                        .message_identification()
                        .unwrap_or_default()
                        .to_owned();
                    let body = codec::encode(&message);
                    let fields = EnvelopeHeaderFields {
                        message_id: id.clone(),
                        message_type: ty.clone(),
                        sender: PeerIdentity::Node(self.country),
                        recipient: to,
                        correlation_id: origin.correlation.clone(),
                        mrn: mrn.map(|m| m.to_string()),
                        prepared_at: Utc::now(),
                    };
                    let sealed = self
                        .signer
                        .seal(&fields, &body)
                        .map_err(|e| EngineError::Seal(e.to_string()))?;
                    self.outbox
                        .enqueue(
                            tx,
                            &Outbound {
                                message_id: id.clone(),
                                destination: Destination::Hub,
                                partition_key: mrn.map(|m| m.to_string()),
                                bytes: bytes::Bytes::from(sealed.clone()),
                            },
                        )
                        .await?;
                    let party = match to {
                        PeerIdentity::Hub => "hub".to_owned(),
                        PeerIdentity::Node(c) => c.to_string(),
                    };
                    store::insert_message(
                        tx,
                        &MessageRow {
                            movement_id: stored.map(|s| s.id),
                            direction: "out",
                            message_type: &ty,
                            message_id: &id,
                            party: &party,
                            body: &body,
                            envelope: Some(&sealed),
                            at: now.timestamp_millis(),
                        },
                    )
                    .await?;
                    if let Some(s) = stored {
                        store::insert_history(
                            tx,
                            s.id,
                            &HistoryRow {
                                seq: 0,
                                at: now_millis(),
                                office: event.office.to_string(),
                                role: role_name(event.role).to_owned(),
                                kind: "out".to_owned(),
                                message_type: Some(ty.clone()),
                                action: None,
                                by: "system".to_owned(),
                                from: self.country.to_string(),
                                to: party,
                                phase_after: phase_of(&s.movement, &event.office, event.role),
                                event: None,
                            },
                        )
                        .await?;
                    }
                    self.metrics.message_out(&ty);
                    outcome.sent.push(ty);
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn national_out(
        &self,
        tx: &mut Tx<'static>,
        stored: Option<&StoredMovement>,
        event: &Event,
        message_id: &str,
        ty: &str,
        xml: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let movement = stored.map(|s| &s.movement);
        let mrn = movement.and_then(|m| m.mrn.map(|m| m.to_string()));
        let lrn = movement
            .and_then(|m| m.declaration.lrn.as_ref().map(|l| l.as_str().to_owned()))
            .or_else(|| match &event.input {
                Input::Message(Message::CC015C(m)) => Some(m.transit_operation.lrn.clone()),
                _ => None,
            });
        store::insert_message(
            tx,
            &MessageRow {
                movement_id: stored.map(|s| s.id),
                direction: "out",
                message_type: ty,
                message_id,
                party: "national-system",
                body: xml.as_bytes(),
                envelope: None,
                at: now.timestamp_millis(),
            },
        )
        .await?;
        store::append_stream(
            tx,
            stored.map(|s| s.id),
            ty,
            mrn.as_deref(),
            lrn.as_deref(),
            message_id,
            event.office.as_str(),
            now.timestamp_millis(),
            xml,
        )
        .await?;
        if let Some(s) = stored {
            store::insert_history(
                tx,
                s.id,
                &HistoryRow {
                    seq: 0,
                    at: now_millis(),
                    office: event.office.to_string(),
                    role: role_name(event.role).to_owned(),
                    kind: "out".to_owned(),
                    message_type: Some(ty.to_owned()),
                    action: None,
                    by: "system".to_owned(),
                    from: self.country.to_string(),
                    to: "national-system".to_owned(),
                    phase_after: phase_of(&s.movement, &event.office, event.role),
                    event: None,
                },
            )
            .await?;
        }
        self.metrics.message_out(ty);
        Ok(())
    }

    /// Where a common-domain output goes: one envelope per recipient country (the hub routes).
    fn recipients(&self, common: &Common) -> Vec<PeerIdentity> {
        let node = |o: &CustomsOfficeRef| PeerIdentity::Node(o.country());
        match common {
            Common::AnticipatedArrival { destination } => vec![node(destination)],
            Common::AnticipatedTransit { office } | Common::AnticipatedExit { office } => {
                vec![node(office)]
            }
            Common::NotificationOfExit { departure, .. }
            | Common::NotificationCrossingFrontier { departure, .. }
            | Common::ArrivalAdvice { departure, .. }
            | Common::DestinationControlResults { departure, .. } => vec![node(departure)],
            Common::Cancellation { offices } => {
                // One CD010C per country with an office on the route, this node's own included
                // (its office of exit had its CD160C through the hub as well).
                let mut countries: Vec<CountryCode> = Vec::new();
                for o in offices {
                    let c = o.country();
                    if !countries.contains(&c) {
                        countries.push(c);
                    }
                }
                countries.into_iter().map(PeerIdentity::Node).collect()
            }
            Common::GuaranteeUse { .. }
            | Common::GuaranteeUseCancellation { .. }
            | Common::GuaranteeCredit { .. } => vec![PeerIdentity::Hub],
            Common::FunctionalNack(_) => Vec::new(),
        }
    }

    pub(crate) fn cd906c(
        &self,
        r: &Rejection,
        original: &OriginalHeader,
        to: PeerIdentity,
    ) -> Option<Message> {
        let PeerIdentity::Node(country) = to else {
            return None;
        };
        let rejection = codec::Rejection {
            kind: RejectionKind::Functional,
            problems: vec![functional_problem(r)],
            message_type: Some(r.rejected.clone()),
        };
        let mut original = original.clone();
        original.message_sender = Some(format!("NTA.{country}"));
        let id = self.new_message_id();
        let ctx = NackContext {
            sender: &self.address(),
            message_identification: &id,
            prepared_at: whole_seconds(Utc::now()).naive_utc(),
            domain: Some(Domain::Common),
        };
        rejection.to_nack(&original, &ctx).ok()
    }

    /// Applies the system decisions the movement's state calls for, one after the other.
    async fn follow_up(
        &self,
        tx: &mut Tx<'static>,
        mut current: Option<StoredMovement>,
    ) -> Result<Outcome, EngineError> {
        let mut all = Outcome::default();
        for _ in 0..16 {
            let Some(stored) = current.take() else { break };
            let Some((office, role, decision)) = self.next_system_decision(tx, &stored).await?
            else {
                current = Some(stored);
                break;
            };
            let event = Event {
                at: whole_seconds(Utc::now()),
                by: Actor::System,
                office,
                role,
                input: Input::Decision(decision.clone()),
            };
            let origin = Origin {
                kind: "action",
                action: Some(lifecycle::decision_name(&decision).to_owned()),
                by: "system".to_owned(),
                from: "system".to_owned(),
                ..Origin::default()
            };
            let outcome = self.run_event(tx, Some(stored), &event, &origin).await?;
            all.sent.extend(outcome.sent);
            current = outcome.movement;
            if !outcome.applied {
                break;
            }
        }
        all.movement = current;
        Ok(all)
    }

    /// The decision the system takes next for `stored`, if any: acceptance (or rejection by the
    /// reference checks) of a submitted declaration, selection at any office, write-off after
    /// satisfactory destination control results.
    async fn next_system_decision(
        &self,
        tx: &mut Tx<'static>,
        stored: &StoredMovement,
    ) -> Result<Option<(CustomsOfficeRef, Role, Decision)>, EngineError> {
        use lifecycle::{BorderPhase, DeparturePhase, DestinationPhase};
        let m = &stored.movement;
        if let Some(d) = &m.departure {
            match d.phase {
                DeparturePhase::Submitted if !self.policy.manual_acceptance => {
                    let decision = match self.reference_check(stored) {
                        Some(rejection) => Decision::RejectDeclaration {
                            code: rejection.code,
                            pointer: rejection.pointer,
                            reason: rejection.reason,
                        },
                        None => Decision::AcceptDeclaration {
                            mrn: self
                                .allocate_mrn(tx, &d.office, &m.declaration.security)
                                .await?,
                        },
                    };
                    return Ok(Some((d.office, Role::Departure, decision)));
                }
                DeparturePhase::Accepted => {
                    let s = self.select(tx, stored, d.office, Role::Departure).await?;
                    return Ok(Some((d.office, Role::Departure, Decision::Selection(s))));
                }
                DeparturePhase::ControlResultsReceived => {
                    return Ok(Some((d.office, Role::Departure, Decision::WriteOff)));
                }
                _ => {}
            }
        }
        for (role, offices) in [(Role::Exit, &m.exits), (Role::Transit, &m.transits)] {
            for (office, b) in offices {
                if b.phase == BorderPhase::Presented && b.selection.is_none() {
                    let s = self.select(tx, stored, *office, role).await?;
                    return Ok(Some((*office, role, Decision::Selection(s))));
                }
            }
        }
        if let Some(d) = &m.destination
            && d.phase == DestinationPhase::Arrived
        {
            let s = self.select(tx, stored, d.office, Role::Destination).await?;
            return Ok(Some((d.office, Role::Destination, Decision::Selection(s))));
        }
        Ok(None)
    }

    /// The departure's reference checks: offices known with their roles, goods allowed.
    fn reference_check(&self, stored: &StoredMovement) -> Option<Rejection> {
        let reference = self.refdata.current();
        let d = &stored.movement.declaration;
        let refuse = |code, pointer: &str, reason: String| {
            Some(Rejection {
                rejected: "CC015C".to_owned(),
                code,
                pointer: pointer.to_owned(),
                reason,
            })
        };
        let checks: Vec<(CustomsOfficeRef, reference::Role, String)> = std::iter::once((
            d.departure,
            reference::Role::Departure,
            "/CC015C/CustomsOfficeOfDeparture/referenceNumber".to_owned(),
        ))
        .chain(std::iter::once((
            d.destination,
            reference::Role::Destination,
            "/CC015C/CustomsOfficeOfDestinationDeclared/referenceNumber".to_owned(),
        )))
        .chain(d.transits.iter().enumerate().map(|(i, o)| {
            (
                *o,
                reference::Role::Transit,
                format!(
                    "/CC015C/CustomsOfficeOfTransitDeclared[{}]/referenceNumber",
                    i + 1
                ),
            )
        }))
        .chain(d.exits.iter().enumerate().map(|(i, o)| {
            (
                *o,
                reference::Role::Exit,
                format!(
                    "/CC015C/CustomsOfficeOfExitForTransitDeclared[{}]/referenceNumber",
                    i + 1
                ),
            )
        }))
        .collect();
        for (office, role, pointer) in checks {
            if reference.office(&office).is_none() {
                return refuse(
                    FunctionalError::CodeList,
                    &pointer,
                    format!("office {office} is not in the reference data"),
                );
            }
            if !reference.has_role(&office, role) {
                return refuse(
                    FunctionalError::CodeList,
                    &pointer,
                    format!("office {office} cannot act as office of {role:?}"),
                );
            }
        }
        let codes = element_texts(&stored.record, "harmonizedSystemSubHeadingCode");
        for code in &codes {
            if let Some(g) = reference.restriction(code)
                && g.condition == reference::Restriction::Prohibited
            {
                return refuse(
                    FunctionalError::Rule,
                    "/CC015C/Consignment/HouseConsignment/ConsignmentItem/Commodity/CommodityCode/harmonizedSystemSubHeadingCode",
                    format!(
                        "goods with HS code {code} are prohibited in CATS transit (restricted goods list, prefix {}, reference data version {})",
                        g.hs_prefix,
                        reference.version()
                    ),
                );
            }
        }
        for prefix in &self.policy.prohibited_hs_prefixes {
            if let Some(code) = codes.iter().find(|c| c.starts_with(prefix.as_str())) {
                return refuse(
                    FunctionalError::Rule,
                    "/CC015C/Consignment/HouseConsignment/ConsignmentItem/Commodity/CommodityCode/harmonizedSystemSubHeadingCode",
                    format!(
                        "goods with HS code {code} may not move under transit (prefix {prefix})"
                    ),
                );
            }
        }
        None
    }

    async fn allocate_mrn(
        &self,
        tx: &mut Tx<'static>,
        office: &CustomsOfficeRef,
        security: &str,
    ) -> Result<Mrn, EngineError> {
        let year = u8::try_from(Utc::now().year().rem_euclid(100)).unwrap_or(26);
        let seq = store::next_counter(tx, &format!("mrn:{office}:{year}")).await?;
        let letter = ProcedureLetter::from_security(security).unwrap_or(ProcedureLetter::J);
        Mrn::generate(year, office, u64::try_from(seq).unwrap_or(0), letter).map_err(|e| {
            EngineError::Store(StoreError::Corrupt(format!("MRN sequence {seq}: {e}")))
        })
    }

    async fn select(
        &self,
        tx: &mut Tx<'static>,
        stored: &StoredMovement,
        office: CustomsOfficeRef,
        role: Role,
    ) -> Result<Selection, EngineError> {
        let m = &stored.movement;
        let d = &m.declaration;
        let mut route = vec![d.departure.to_string()];
        route.extend(d.offices_en_route().iter().map(ToString::to_string));
        let facts = Facts {
            movement: m
                .mrn
                .map(|x| x.to_string())
                .or_else(|| d.key().map(|k| store::key_text(&k)))
                .unwrap_or_default(),
            office: office.to_string(),
            role: role_name(role).to_owned(),
            holder: d.holder.as_ref().map(|h| h.as_str().to_owned()),
            route,
            hs_codes: element_texts(&stored.record, "harmonizedSystemSubHeadingCode"),
            gross_mass: element_texts(&stored.record, "grossMass")
                .first()
                .and_then(|g| g.parse::<Decimal>().ok()),
            value: d.guarantees.iter().map(|g| g.amount).sum(),
            ..Facts::default()
        };
        let reference = self.refdata.current();
        let facts = Facts {
            aeo: facts.holder.as_deref().and_then(|h| {
                if reference.withdrawn_registration(h).is_some() {
                    Some(false)
                } else if reference.is_aeo(h, Utc::now().date_naive()) {
                    Some(true)
                } else {
                    None
                }
            }),
            restricted: facts.hs_codes.iter().find_map(|c| {
                reference.restriction(c).and_then(|g| match g.condition {
                    reference::Restriction::Prohibited => None,
                    other => Some(format!(
                        "restricted goods: HS code {c} ({}, prefix {})",
                        other.as_str(),
                        g.hs_prefix
                    )),
                })
            }),
            ..facts
        };
        let verdict = self.selector.select(&facts);
        store::insert_selection(
            tx,
            stored.id,
            &SelectionRow {
                office: office.to_string(),
                role: role_name(role).to_owned(),
                selected: verdict.selected,
                reason: verdict.reason.clone(),
                at: now_millis(),
            },
        )
        .await?;
        Ok(Selection {
            selected: verdict.selected,
            reason: verdict.reason,
        })
    }

    /// An officer's action (`POST /api/v1/actions`), by the token named `who`.
    pub async fn act(&self, req: &ActionRequest, who: &str) -> Result<ActionDone, ActionError> {
        let bad = |s: String| Err(ActionError::BadRequest(s));
        let office = match CustomsOfficeRef::parse(&req.office) {
            Ok(o) if o.country() == self.country => o,
            Ok(o) => return bad(format!("office {o} is not an office of this node")),
            Err(e) => return bad(format!("office: {e}")),
        };
        let Some(role) = store::parse_role(&req.role) else {
            return bad(format!(
                "role {:?}: expected departure, exit, transit or destination",
                req.role
            ));
        };
        let need = |field: &Option<String>, name: &str| -> Result<String, ActionError> {
            field
                .clone()
                .ok_or_else(|| ActionError::BadRequest(format!("{} needs {name}", req.action)))
        };
        let decision = match req.action.as_str() {
            "accept-declaration" => None,
            "reject-declaration" => {
                let code = need(&req.code, "code")?;
                let Some(code) = functional_error(&code) else {
                    return bad(format!("code {code:?}: expected 12, 14, 26, 90, 92 or 93"));
                };
                Some(Decision::RejectDeclaration {
                    code,
                    pointer: req.pointer.clone().unwrap_or_default(),
                    reason: need(&req.reason, "reason")?,
                })
            }
            "record-control-result" => {
                let outcome = match need(&req.outcome, "outcome")?.as_str() {
                    "satisfactory" => ControlOutcome::Satisfactory,
                    "minor-discrepancies" => ControlOutcome::MinorDiscrepancies,
                    "major-discrepancies" => ControlOutcome::MajorDiscrepancies,
                    other => {
                        return bad(format!(
                            "outcome {other:?}: expected satisfactory, minor-discrepancies or major-discrepancies"
                        ));
                    }
                };
                Some(Decision::ControlResult(ControlResult {
                    outcome,
                    remarks: req.remarks.clone(),
                }))
            }
            "refuse-release" => Some(Decision::RefuseRelease {
                motivation: need(&req.motivation, "motivation")?,
                text: need(&req.text, "text")?,
            }),
            "invalidate" => Some(Decision::Invalidate {
                justification: req.justification.clone(),
            }),
            "record-presentation" => Some(Decision::RecordPresentation),
            "record-exit" => Some(Decision::RecordExit),
            "record-entry" => Some(Decision::RecordEntry),
            "record-arrival" => Some(Decision::RecordArrival {
                simplified: req.simplified.unwrap_or(false),
            }),
            "release-goods" => Some(Decision::ReleaseGoods),
            "write-off" => Some(Decision::WriteOff),
            other => return bad(format!("unknown action {other:?}")),
        };
        let reference = match (&req.mrn, &req.lrn) {
            (Some(m), _) => m.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => return bad("an action needs mrn (or lrn before acceptance)".into()),
        };
        let _guard = self.lock.lock().await;
        let mut tx = self.store.begin().await.map_err(EngineError::from)?;
        let current = match (&req.mrn, &req.lrn) {
            (Some(m), _) => store::movement(&mut tx, Lookup::Mrn(m)).await,
            (None, Some(l)) => store::movement(&mut tx, Lookup::Lrn(l)).await,
            (None, None) => Ok(None),
        }
        .map_err(EngineError::from)?;
        let Some(current) = current else {
            self.metrics.rejected("90");
            return Err(ActionError::UnknownMovement(reference));
        };
        let decision = match decision {
            Some(d) => d,
            None => Decision::AcceptDeclaration {
                mrn: self
                    .allocate_mrn(&mut tx, &office, &current.movement.declaration.security)
                    .await?,
            },
        };
        let event = Event {
            at: whole_seconds(Utc::now()),
            by: Actor::Officer { id: who.to_owned() },
            office,
            role,
            input: Input::Decision(decision.clone()),
        };
        let origin = Origin {
            kind: "action",
            action: Some(req.action.clone()),
            by: who.to_owned(),
            from: "officer".to_owned(),
            ..Origin::default()
        };
        let mut outcome = self
            .run_event(&mut tx, Some(current), &event, &origin)
            .await?;
        if let Some(r) = outcome.refused.take().filter(|_| !outcome.applied) {
            // Not recorded: the transaction is dropped (rolled back).
            return Err(ActionError::Refused(r));
        }
        let follow = self.follow_up(&mut tx, outcome.movement.take()).await?;
        let mut sent = outcome.sent;
        sent.extend(follow.sent);
        let Some(movement) = follow.movement else {
            return Err(ActionError::UnknownMovement(reference));
        };
        self.committed(tx, true).await?;
        Ok(ActionDone { movement, sent })
    }

    /// Asks the hub for the whole reference data set although no version gap shows
    /// ([`crate::refdata::Live::resync`]): the CA006C's identification and the version held.
    pub async fn resync_refdata(&self) -> Result<(String, u64), EngineError> {
        let _guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        let held = self.refdata.versions().held;
        let id = self
            .refdata
            .resync(&mut tx, &self.outbox, &self.signer, self.country)
            .await?;
        self.committed(tx, true).await?;
        Ok((id, held))
    }

    /// Receives deliveries from the hub until `shutdown` fires or the transport closes.
    pub async fn run_inbound<T: cats_transport::contract::Transport>(
        &self,
        transport: &T,
        mut shutdown: cats_transport::shutdown::Shutdown,
    ) {
        loop {
            let delivery = tokio::select! {
                _ = shutdown.wait() => return,
                d = transport.receive() => d,
            };
            match delivery {
                Ok(d) => {
                    if let Err(e) = self.deliver(d).await {
                        tracing::warn!(code = e.code(), error = %e, "delivery left owed");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
                Err(cats_transport::contract::TransportError::Closed) => return,
                Err(e) => {
                    tracing::warn!(code = e.code(), error = %e, "receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// One delivery from the hub: verify, decode, apply (inbox + movement + outputs in one
    /// transaction), then acknowledge.
    pub async fn deliver(&self, d: Delivery) -> Result<(), EngineError> {
        use tracing::Instrument;
        let span = tracing::info_span!("delivery", id = %d.message_id, from = %d.from);
        self.deliver_inner(d).instrument(span).await
    }

    async fn deliver_inner(&self, d: Delivery) -> Result<(), EngineError> {
        let wire = d.bytes.clone();
        let opened = match self.verifier.open_redelivered(&wire, &d.from) {
            Ok(o) => o,
            Err(e) => {
                self.metrics.rejected(e.code());
                tracing::warn!(code = e.code(), error = %e, "envelope refused: dead-lettered");
                d.reject(&format!("{}: {e}", e.code())).await?;
                return Ok(());
            }
        };
        let fields = opened.header.fields.clone();
        self.metrics.message_in(&fields.message_type);
        if message_catalog::lifecycle::reconcile::is_control(&fields.message_type) {
            return self.reconciliation_answer(d, &fields, opened.body).await;
        }
        let message = match rules::validate(opened.body, &self.limits, Level::Rules) {
            Ok(m) => m,
            Err(r) => {
                self.metrics.rejected(r.label().unwrap_or("rejected"));
                tracing::warn!(rejection = %r, "undecodable delivery: dead-lettered");
                d.reject(&format!("decode: {r}")).await?;
                return Ok(());
            }
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, &wire);
        let guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        match self
            .store
            .inbox()
            .accept(&mut tx, &fields.sender, &fields.message_id, digest.as_ref())
            .await?
        {
            Accepted::New => {
                // An office of this country the message makes the node act at, missing from
                // its reference data: refused before anything is written (the inbox entry
                // rolls back with `tx`), so that a replay once the gap is fixed is new.
                let data = self.refdata.current();
                if let Some(office) = crate::refdata::missing_office(&data, self.country, &message)
                {
                    drop(tx);
                    drop(guard);
                    let reason = crate::refdata::gap_reason(&office, data.version());
                    self.metrics.rejected("refdata_gap");
                    tracing::warn!(%office, version = data.version(), "reference-data gap: dead-lettered");
                    d.reject(&reason).await?;
                    return Ok(());
                }
                crate::reconcile::record_received(&mut tx, self.country, &fields).await?
            }
            Accepted::Duplicate => {
                tx.commit().await?;
                d.ack().await?;
                return Ok(());
            }
            Accepted::Conflict => {
                drop(tx);
                self.metrics.rejected("26");
                d.reject("same message identification, another body")
                    .await?;
                return Ok(());
            }
        }
        let from = match fields.sender {
            PeerIdentity::Hub => "hub".to_owned(),
            PeerIdentity::Node(c) => c.to_string(),
        };
        let now = Utc::now();
        let row = store::insert_message(
            &mut tx,
            &MessageRow {
                movement_id: None,
                direction: "in",
                message_type: &fields.message_type,
                message_id: &fields.message_id,
                party: &from,
                body: opened.body,
                envelope: Some(&wire),
                at: now.timestamp_millis(),
            },
        )
        .await?;
        if let Message::CA005C(update) = &message {
            let received = self
                .refdata
                .receive(
                    &mut tx,
                    update,
                    &self.outbox,
                    &self.signer,
                    self.country,
                    &fields.message_id,
                )
                .await?;
            let asked = matches!(received, crate::refdata::Received::Gap { .. });
            self.committed(tx, asked).await?;
            self.refdata.commit(received);
            drop(guard);
            d.ack().await?;
            return Ok(());
        }
        if let Message::CA004C(decision) = &message {
            // A registration decision: to the national system.
            store::append_stream(
                &mut tx,
                None,
                "CA004C",
                None,
                None,
                &fields.message_id,
                "",
                now.timestamp_millis(),
                &String::from_utf8_lossy(opened.body),
            )
            .await?;
            tracing::info!(
                tin = %decision.trader_decision.identification_number,
                decision = %decision.trader_decision.decision.as_str(),
                "registration decision received"
            );
            self.committed(tx, false).await?;
            drop(guard);
            d.ack().await?;
            return Ok(());
        }
        if let Message::CD917C(nack) = &message
            && self.deliver_balance_refusal(&mut tx, nack).await?
        {
            // The hub refused a forwarded guarantee query: to the national system.
            self.committed(tx, false).await?;
            drop(guard);
            d.ack().await?;
            return Ok(());
        }
        if matches!(message, Message::CD094C(_) | Message::CD095C(_)) {
            let then = self.status_message(&mut tx, &message, &fields).await?;
            self.committed(tx, true).await?;
            drop(guard);
            d.ack().await?;
            if then == crate::status::Then::Reconcile
                && let Err(e) = self.reconcile().await
            {
                tracing::warn!(code = e.code(), error = %e, "reconciliation after a status message");
            }
            return Ok(());
        }
        if let Message::CD906C(_) = &message {
            self.status_message(&mut tx, &message, &fields).await?;
        }
        let sent = if let Message::CC037C(answer) = &message {
            self.deliver_balance(&mut tx, answer).await?;
            false
        } else {
            self.apply_common(&mut tx, &message, &fields, &from, row, opened.body)
                .await?
        };
        self.committed(tx, sent).await?;
        drop(guard);
        d.ack().await?;
        Ok(())
    }

    async fn apply_common(
        &self,
        tx: &mut Tx<'static>,
        message: &Message,
        fields: &EnvelopeHeaderFields,
        from: &str,
        row: i64,
        body: &[u8],
    ) -> Result<bool, EngineError> {
        let ty = message.message_type();
        let mrn = match lifecycle::reference(message) {
            Reference::Mrn(m) => m,
            other => {
                tracing::info!(message_type = ty, ?other, "recorded, not applied");
                return Ok(false);
            }
        };
        let current = store::movement(tx, Lookup::Mrn(mrn.as_str())).await?;
        let mine = |o: &str| {
            CustomsOfficeRef::parse(o)
                .ok()
                .filter(|o| o.country() == self.country)
        };
        let held_departure = current
            .as_ref()
            .and_then(|s| s.movement.departure.as_ref().map(|d| d.office));
        let departure_office = held_departure
            .or_else(|| CustomsOfficeRef::parse(mrn.as_str().get(2..10).unwrap_or("")).ok());
        let targets: Vec<(CustomsOfficeRef, Role)> = match message {
            Message::CD160C(m) => m
                .customs_office_of_exit_for_transit_declared
                .iter()
                .filter_map(|o| mine(&o.reference_number))
                .find(|o| {
                    current
                        .as_ref()
                        .is_none_or(|s| !s.movement.exits.contains_key(o))
                })
                .map(|o| vec![(o, Role::Exit)])
                .unwrap_or_default(),
            Message::CD050C(m) => m
                .customs_office_of_transit_declared
                .iter()
                .filter_map(|o| mine(&o.reference_number))
                .find(|o| {
                    current
                        .as_ref()
                        .is_none_or(|s| !s.movement.transits.contains_key(o))
                })
                .map(|o| vec![(o, Role::Transit)])
                .unwrap_or_default(),
            Message::CD001C(m) => mine(&m.customs_office_of_destination_declared.reference_number)
                .map(|o| vec![(o, Role::Destination)])
                .unwrap_or_default(),
            Message::CD168C(_)
            | Message::CD118C(_)
            | Message::CD006C(_)
            | Message::CD018C(_)
            | Message::CD205C(_) => departure_office
                .map(|o| vec![(o, Role::Departure)])
                .unwrap_or_default(),
            Message::CD010C(_) => current
                .as_ref()
                .map(|s| {
                    let m = &s.movement;
                    let mut t: Vec<(CustomsOfficeRef, Role)> =
                        m.exits.keys().map(|o| (*o, Role::Exit)).collect();
                    t.extend(m.transits.keys().map(|o| (*o, Role::Transit)));
                    t.extend(
                        m.destination
                            .as_ref()
                            .map(|d| (d.office, Role::Destination)),
                    );
                    t
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if targets.is_empty() {
            // NACKs and status messages are kept with the movement's history.
            if let Some(s) = &current {
                store::attach_message(tx, row, s.id).await?;
                let office = held_departure
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "-".to_owned());
                store::insert_history(
                    tx,
                    s.id,
                    &HistoryRow {
                        seq: 0,
                        at: now_millis(),
                        office,
                        role: "-".to_owned(),
                        kind: "in".to_owned(),
                        message_type: Some(ty.to_owned()),
                        action: None,
                        by: from.to_owned(),
                        from: from.to_owned(),
                        to: self.country.to_string(),
                        phase_after: None,
                        event: None,
                    },
                )
                .await?;
            }
            tracing::info!(
                message_type = ty,
                "recorded, no office of this node to apply it to"
            );
            return Ok(false);
        }
        let actor = match fields.sender {
            PeerIdentity::Hub => Actor::Node {
                country: "hub".to_owned(),
            },
            PeerIdentity::Node(c) => Actor::Node {
                country: c.to_string(),
            },
        };
        let origin = Origin {
            kind: "in",
            message_type: Some(ty.to_owned()),
            by: from.to_owned(),
            from: from.to_owned(),
            message_row: Some(row),
            record: Some(body.to_vec()),
            correlation: Some(fields.message_id.clone()),
            nack_to: match fields.sender {
                PeerIdentity::Node(_) => Some((fields.sender, OriginalHeader::of(message))),
                PeerIdentity::Hub => None,
            },
            ..Origin::default()
        };
        let mut current = current;
        let mut sent = false;
        for (office, role) in targets {
            let event = Event {
                at: whole_seconds(Utc::now()),
                by: actor.clone(),
                office,
                role,
                input: Input::Message(message.clone()),
            };
            let outcome = self.run_event(tx, current.take(), &event, &origin).await?;
            sent |= !outcome.sent.is_empty();
            let follow = self.follow_up(tx, outcome.movement).await?;
            sent |= !follow.sent.is_empty();
            current = follow.movement;
        }
        Ok(sent)
    }

    /// The movement as the API shows it.
    pub async fn movement_json(
        &self,
        tx: &mut Tx<'static>,
        s: &StoredMovement,
        with_details: bool,
    ) -> Result<serde_json::Value, EngineError> {
        let m = &s.movement;
        let zone = |office: &str| -> String {
            CustomsOfficeRef::parse(office)
                .ok()
                .and_then(|o| {
                    self.refdata
                        .current()
                        .office(&o)
                        .map(|x| x.time_zone.clone())
                })
                .unwrap_or_else(|| "UTC".to_owned())
        };
        let offices: Vec<serde_json::Value> = store::office_phases(m)
            .into_iter()
            .map(|(office, role, phase, since)| {
                let tz = zone(&office);
                json!({
                    "office": office,
                    "role": role_name(role),
                    "phase": phase,
                    "since": rfc3339_utc(since),
                    "since_local": rfc3339_local(since, &tz),
                    "time_zone": tz,
                })
            })
            .collect();
        let d = &m.declaration;
        let mut value = json!({
            "mrn": m.mrn.map(|x| x.to_string()),
            "lrn": d.lrn.as_ref().map(|l| l.as_str()),
            "holder": d.holder.as_ref().map(|h| h.as_str()),
            "route": {
                "departure": d.departure.to_string(),
                "exits": d.exits.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "transits": d.transits.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "destination": d.destination.to_string(),
            },
            "offices": offices,
            "updated_at": rfc3339_utc(s.updated_at),
        });
        if with_details {
            let selections: Vec<serde_json::Value> = store::selections(tx, s.id)
                .await?
                .into_iter()
                .map(|x| {
                    json!({
                        "office": x.office,
                        "role": x.role,
                        "selected": x.selected,
                        "reason": x.reason,
                        "at": rfc3339_utc(x.at),
                    })
                })
                .collect();
            let history: Vec<serde_json::Value> = store::history(tx, s.id)
                .await?
                .into_iter()
                .map(|h| {
                    let tz = zone(&h.office);
                    json!({
                        "seq": h.seq,
                        "at": rfc3339_utc(h.at),
                        "at_local": rfc3339_local(h.at, &tz),
                        "office": h.office,
                        "role": h.role,
                        "kind": h.kind,
                        "message_type": h.message_type,
                        "action": h.action,
                        "by": h.by,
                        "from": h.from,
                        "to": h.to,
                        "phase_after": h.phase_after,
                    })
                })
                .collect();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("selections".into(), selections.into());
                obj.insert("history".into(), history.into());
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_declaration_codes() {
        assert_eq!(functional_error("92"), Some(FunctionalError::OutOfSequence));
        assert_eq!(functional_error("12"), Some(FunctionalError::CodeList));
        assert_eq!(functional_error("7"), None);
    }

    #[test]
    fn functional_problems_carry_the_code_and_pointer() {
        let p = functional_problem(&Rejection {
            rejected: "CC007C".into(),
            code: FunctionalError::UnknownMrn,
            pointer: String::new(),
            reason: "no movement".into(),
        });
        assert_eq!(p.code, ErrorCode(90));
        assert_eq!(p.pointer, "/CC007C");
        assert_eq!(p.rule.as_deref(), Some("LC90"));
    }

    #[test]
    fn engine_errors_have_stable_codes() {
        assert_eq!(EngineError::Seal("x".into()).code(), "engine.seal");
    }
}
