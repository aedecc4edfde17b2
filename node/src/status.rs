//! Status requests (issue 7): CD094C/CD095C. A node asks, through the hub, another country's
//! node for its state of one MRN, compares the answer with its own copy, and gets the side
//! that is behind repaired through reconciliation.
//!
//! - **Asking** ([`Engine::request_status`], `POST /api/v1/movements/{mrn}/status-requests`,
//!   `cats node status`): the node first reconciles itself with the hub
//!   ([`Engine::reconcile`]: the self-check re-folds its movements from their event logs, and
//!   the digest comparison has the hub re-deliver what this node lacks), so that the copy it
//!   compares with is the hub's view of what concerns it. Then it sends a signed CD094C to the
//!   other country and records the request (`node_status_requests`).
//! - **Answering** ([`Engine::status_message`] for a CD094C): a node that holds the movement
//!   answers a CD095C with the state of each of its office roles (a three-letter code per phase,
//!   `compose::office_states`, and since when); one that does not, a CD906C with code 90
//!   (unknown MRN). Then it reconciles itself with the hub: whatever made it disagree (a stored
//!   state off its event log, a delivery it lacks) is repaired by the existing reconciliation
//!   path, and the next answer shows it.
//! - **Comparing** (for a CD095C): from the common-domain messages the asking node holds for the
//!   movement, each office role of the asked country has a lowest phase it must have reached
//!   (an anticipated record sent to it: the role exists; CD006C from it: arrived; CD018C: goods
//!   released; CD118C/CD168C: proceeded; an anticipated record from it: released at departure).
//!   An answer below one of these is the asked node behind. The other way, an asked office of
//!   destination that has arrived (or released the goods) while this node's office of departure
//!   has not seen the CD006C (or CD018C) is this node behind: it reconciles again.
//! - **Repairing and confirming**: after a disagreement the node asks again (up to
//!   [`ROUNDS`] answers, [`ROUND_PAUSE`] apart). The request ends `agreed` (the first answer
//!   agreed), `repaired` (a later answer agreed: `found` lists what differed), `differs` (still
//!   after the last round), `unknown_mrn` (the other node answered code 90), `refused` (another
//!   CD906C), or `timed_out` (no answer within the request's time limit).
//!
//! The request, what was found and what remains are in `GET /api/v1/status-requests/{id}`; the
//! counts are in `/metrics` (`cats_node_reconciliation_total{what="status_…"}`).

use std::collections::BTreeMap;
use std::time::Duration;

use cats_transport::contract::{Destination, Outbound};
use cats_transport::store::Tx;
use cats_trust::{EnvelopeHeaderFields, PeerIdentity};
use chrono::{DateTime, Utc};
use message_catalog::codec::{self, nack::OriginalHeader};
use message_catalog::generated::Message;
use message_catalog::ids::{CountryCode, CustomsOfficeRef, Mrn};
use message_catalog::lifecycle::compose::{self, Header, OfficeState};
use message_catalog::lifecycle::{FunctionalError, Rejection, Role};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError};
use crate::store::{self, Lookup, MessageRow, StoreError, now_millis};

/// How many answers one request compares at most (the first and the confirmations).
pub const ROUNDS: i64 = 5;
/// The pause between a disagreeing answer and the next question (time for the repair).
pub const ROUND_PAUSE: Duration = Duration::from_secs(2);
/// The time limit for each answer when the request names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest time limit a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Why a status request was not sent. Each has a stable code (the API's `error.code`).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The MRN does not parse (format or check digit).
    #[error("status.invalid_mrn: {0}")]
    InvalidMrn(String),
    /// The country is this node's own.
    #[error(
        "status.own_country: {0} is this node's own country; ask GET /api/v1/movements/{{mrn}}"
    )]
    OwnCountry(String),
    /// The country has no office in the reference data.
    #[error("status.unknown_country: {0} has no customs office in the reference data")]
    UnknownCountry(String),
    /// The time limit is zero or above [`MAX_TIMEOUT`].
    #[error("status.invalid_timeout: {0} s (1 to {max} s)", max = MAX_TIMEOUT.as_secs())]
    InvalidTimeout(u64),
    /// Storage or sending failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for StatusError {
    fn from(e: StoreError) -> Self {
        StatusError::Engine(EngineError::Store(e))
    }
}

impl From<cats_transport::store::StoreError> for StatusError {
    fn from(e: cats_transport::store::StoreError) -> Self {
        StatusError::Engine(EngineError::from(e))
    }
}

impl StatusError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StatusError::InvalidMrn(_) => "status.invalid_mrn",
            StatusError::OwnCountry(_) => "status.own_country",
            StatusError::UnknownCountry(_) => "status.unknown_country",
            StatusError::InvalidTimeout(_) => "status.invalid_timeout",
            StatusError::Engine(e) => e.code(),
        }
    }
}

/// One office role's state as reported or expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedOffice {
    /// `departure`, `exit`, `transit` or `destination`.
    pub role: String,
    /// The office.
    pub office: String,
    /// The phase code (`compose::phase_rank` knows them).
    pub status: String,
    /// Since when (RFC 3339 UTC), if given.
    pub since: Option<String>,
}

/// One disagreement between the answer and this node's copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The side that is behind: `asked` (the other node) or `asking` (this node).
    pub behind: String,
    /// The office role concerned.
    pub role: String,
    /// What was expected, in words.
    pub expected: String,
    /// What was found.
    pub found: String,
}

/// A status request as `GET /api/v1/status-requests/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// The request (the first CD094C's message identification).
    pub id: String,
    /// The MRN.
    pub mrn: String,
    /// The country asked.
    pub country: String,
    /// `asked`, `repairing`, `agreed`, `repaired`, `differs`, `unknown_mrn`, `refused` or
    /// `timed_out`.
    pub state: String,
    /// The CD094C waiting for its answer (the latest question).
    pub asked_id: String,
    /// Questions sent.
    pub rounds: i64,
    /// Created (RFC 3339 UTC).
    pub created_at: String,
    /// The last answer came (RFC 3339 UTC).
    pub answered_at: Option<String>,
    /// The other node's last answer, per office role.
    pub answer: Vec<ReportedOffice>,
    /// What differed in the first disagreeing answer (what was repaired when `state` is
    /// `repaired`).
    pub found: Vec<Difference>,
    /// What differed in the last answer.
    pub remaining: Vec<Difference>,
    /// This node's own movement was off its event log and repaired before asking.
    pub own_state_repaired: bool,
    /// The reconciliation this node started before asking (its run in
    /// `GET /api/v1/reconciliation`).
    pub reconciliation: Option<String>,
    /// Why it ended, for `unknown_mrn`, `refused` and `timed_out`.
    pub reason: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Departure => "departure",
        Role::Exit => "exit",
        Role::Transit => "transit",
        Role::Destination => "destination",
    }
}

fn reported(s: &OfficeState) -> ReportedOffice {
    ReportedOffice {
        role: role_name(s.role).to_owned(),
        office: s.office.to_string(),
        status: s.status.clone(),
        since: s
            .since
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    }
}

/// The lowest rank each office role of `country` must have reached, from the common-domain
/// messages this node holds for the movement: `(direction, type, party)`.
pub fn floors(messages: &[(String, String, String)], country: &str) -> BTreeMap<Role, u8> {
    let mut floors: BTreeMap<Role, u8> = BTreeMap::new();
    for (direction, ty, party) in messages {
        if party != country {
            continue;
        }
        let floor = match (direction.as_str(), ty.as_str()) {
            ("out", "CD001C") => Some((Role::Destination, 0)),
            ("out", "CD050C") => Some((Role::Transit, 0)),
            ("out", "CD160C") => Some((Role::Exit, 0)),
            ("in", "CD006C") => Some((Role::Destination, 1)),
            ("in", "CD018C") => Some((Role::Destination, 5)),
            ("in", "CD118C") => Some((Role::Transit, 4)),
            ("in", "CD168C") => Some((Role::Exit, 4)),
            ("in", "CD001C" | "CD050C" | "CD160C") => Some((Role::Departure, 5)),
            _ => None,
        };
        if let Some((role, rank)) = floor {
            let f = floors.entry(role).or_insert(rank);
            *f = (*f).max(rank);
        }
    }
    floors
}

/// Compares `answer` with the floors of this node's copy and with its own departure rank
/// (`own_departure`, when this node is the office of departure).
pub fn compare(
    answer: &[OfficeState],
    floors: &BTreeMap<Role, u8>,
    own_departure: Option<(u8, &str)>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for (role, floor) in floors {
        let best = answer
            .iter()
            .filter(|s| s.role == *role)
            .max_by_key(|s| s.rank().unwrap_or(0));
        let ok = best.is_some_and(|s| s.rank().is_some_and(|r| r >= *floor));
        if !ok {
            out.push(Difference {
                behind: "asked".to_owned(),
                role: role_name(*role).to_owned(),
                expected: format!("phase rank {floor} or later (from the messages exchanged)"),
                found: best
                    .map(|s| format!("{} at {}", s.status, s.office))
                    .unwrap_or_else(|| "no such office role".to_owned()),
            });
        }
    }
    if let Some((rank, code)) = own_departure
        && rank < 8
    {
        let destination = answer
            .iter()
            .filter(|s| s.role == Role::Destination)
            .filter_map(|s| s.rank())
            .max();
        let needed = match destination {
            Some(5) => Some((7, "the control results (CD018C) received")),
            Some(r) if r >= 1 => Some((6, "the arrival advice (CD006C) received")),
            _ => None,
        };
        if let Some((need, what)) = needed
            && rank < need
        {
            out.push(Difference {
                behind: "asking".to_owned(),
                role: "departure".to_owned(),
                expected: what.to_owned(),
                found: code.to_owned(),
            });
        }
    }
    out
}

type RequestRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

/// `(id, mrn, country, state, deadline, timeout_ms, next_round_at)`.
type DueRow = (String, String, String, String, i64, i64, Option<i64>);

const COLUMNS: &str = "id, mrn, country, state, asked_id, rounds, created_at, answered_at, \
                       answer, found, remaining, own_state_repaired, reconciliation, reason";

fn from_row(r: RequestRow) -> StatusRequest {
    StatusRequest {
        id: r.0,
        mrn: r.1,
        country: r.2,
        state: r.3,
        asked_id: r.4,
        rounds: r.5,
        created_at: rfc3339(r.6),
        answered_at: r.7.map(rfc3339),
        answer: r
            .8
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
        found: serde_json::from_str(&r.9).unwrap_or_default(),
        remaining: serde_json::from_str(&r.10).unwrap_or_default(),
        own_state_repaired: r.11 != 0,
        reconciliation: r.12,
        reason: r.13,
    }
}

/// One status request by id.
pub async fn request(tx: &mut Tx<'_>, id: &str) -> Result<Option<StatusRequest>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM node_status_requests WHERE id = $1");
    let row: Option<RequestRow> = on_tx!(tx, |c| {
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
    });
    Ok(row.map(from_row))
}

async fn request_asked(
    tx: &mut Tx<'_>,
    asked_id: &str,
) -> Result<Option<StatusRequest>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM node_status_requests WHERE asked_id = $1 \
         AND state IN ('asked', 'repairing')"
    );
    let row: Option<RequestRow> = on_tx!(tx, |c| {
        sqlx::query_as(&sql)
            .bind(asked_id)
            .fetch_optional(&mut *c)
            .await?
    });
    Ok(row.map(from_row))
}

async fn set_state(
    tx: &mut Tx<'_>,
    id: &str,
    state: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE node_status_requests SET state = $2, reason = $3 WHERE id = $1")
            .bind(id)
            .bind(state)
            .bind(reason)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// What the engine does once a status message's transaction is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Nothing more.
    Nothing,
    /// Reconcile this node with the hub (it answered, or it is behind).
    Reconcile,
}

impl Engine {
    /// Signs `message` for `to` (through the hub) and puts it in the outbox, in `tx`; keeps a
    /// copy with the movement (`movement_id`) when there is one.
    async fn send_status_message(
        &self,
        tx: &mut Tx<'static>,
        message: &Message,
        to: CountryCode,
        mrn: &str,
        movement_id: Option<i64>,
    ) -> Result<(), EngineError> {
        let ty = message.message_type().to_owned();
        let id = message
            .message_identification()
            .unwrap_or_default()
            .to_owned();
        let body = codec::encode(message);
        let fields = EnvelopeHeaderFields {
            message_id: id.clone(),
            message_type: ty.clone(),
            sender: PeerIdentity::Node(self.country),
            recipient: PeerIdentity::Node(to),
            correlation_id: message.correlation_identifier().map(str::to_owned),
            mrn: Some(mrn.to_owned()),
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
                    partition_key: Some(mrn.to_owned()),
                    bytes: bytes::Bytes::from(sealed.clone()),
                },
            )
            .await?;
        store::insert_message(
            tx,
            &MessageRow {
                movement_id,
                direction: "out",
                message_type: &ty,
                message_id: &id,
                party: to.as_str(),
                body: &body,
                envelope: Some(&sealed),
                at: now_millis(),
            },
        )
        .await?;
        self.metrics.message_out(&ty);
        Ok(())
    }

    fn status_header(&self, to: CountryCode, correlation: Option<String>) -> Header {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 10];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        Header {
            sender: format!("NTA.{}", self.country),
            recipient: format!("NTA.{to}"),
            prepared_at: DateTime::<Utc>::from_timestamp(Utc::now().timestamp(), 0)
                .unwrap_or_default(),
            message_id: format!("{}S{}", self.country, hex::encode_upper(b)),
            correlation,
        }
    }

    /// Sends one CD094C for `mrn` to `to`; returns its message identification.
    async fn ask(
        &self,
        tx: &mut Tx<'static>,
        mrn: &Mrn,
        to: CountryCode,
    ) -> Result<String, EngineError> {
        let held = store::movement(tx, Lookup::Mrn(mrn.as_str())).await?;
        let departure_office = held
            .as_ref()
            .and_then(|s| s.movement.departure.as_ref().map(|d| d.office))
            .or_else(|| CustomsOfficeRef::parse(mrn.as_str().get(2..10).unwrap_or("")).ok());
        let status = held
            .as_ref()
            .and_then(|s| s.movement.departure.as_ref())
            .map(|d| compose::departure_code(d.phase))
            .unwrap_or(compose::STATUS_NOT_HELD);
        let header = self.status_header(to, None);
        let Some(departure_office) = departure_office else {
            // Mrn::parse checked the office part's shape; kept as an error, not a panic.
            return Err(EngineError::Seal(format!(
                "{mrn}: no office of departure in the MRN"
            )));
        };
        let message = Message::CD094C(Box::new(compose::status_request(
            &header,
            mrn,
            &departure_office,
            status,
        )));
        self.send_status_message(tx, &message, to, mrn.as_str(), held.map(|s| s.id))
            .await?;
        Ok(header.message_id)
    }

    /// Asks `country`'s node for its state of `mrn` (see the module documentation). The
    /// answer is compared when it comes; the request is returned as recorded.
    pub async fn request_status(
        &self,
        mrn: &str,
        country: &str,
        timeout: Option<Duration>,
    ) -> Result<StatusRequest, StatusError> {
        let mrn = Mrn::parse(mrn.trim()).map_err(|e| StatusError::InvalidMrn(e.to_string()))?;
        let to = CountryCode::parse(country.trim())
            .map_err(|_| StatusError::UnknownCountry(country.to_owned()))?;
        if to == self.country {
            return Err(StatusError::OwnCountry(to.to_string()));
        }
        if !self.refdata.current().offices().any(|o| o.country == to) {
            return Err(StatusError::UnknownCountry(to.to_string()));
        }
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(StatusError::InvalidTimeout(timeout.as_secs()));
        }
        // The hub's view first: this node's own copy reconciled.
        let started = self.reconcile().await?;
        let own_repaired = started.corrupt_repaired.iter().any(|m| m == mrn.as_str());
        let guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        let id = self.ask(&mut tx, &mrn, to).await?;
        let now = now_millis();
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO node_status_requests (id, mrn, country, state, asked_id, rounds, \
                 created_at, deadline, timeout_ms, next_round_at, answered_at, answer, found, \
                 remaining, own_state_repaired, reconciliation, reason) \
                 VALUES ($1, $2, $3, 'asked', $1, 1, $4, $5, $6, NULL, NULL, NULL, '[]', '[]', \
                 $7, $8, NULL)",
            )
            .bind(&id)
            .bind(mrn.as_str())
            .bind(to.as_str())
            .bind(now)
            .bind(now + timeout.as_millis() as i64)
            .bind(timeout.as_millis() as i64)
            .bind(i64::from(own_repaired))
            .bind(&started.request_id)
            .execute(&mut *c)
            .await
            .map_err(StoreError::from)?;
        });
        let recorded = request(&mut tx, &id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        drop(guard);
        self.outbox.wake();
        self.metrics.reconciliation("status_requests", 1);
        tracing::info!(request = %id, %mrn, country = %to, "status request sent");
        recorded.ok_or_else(|| StatusError::from(StoreError::from(sqlx::Error::RowNotFound)))
    }

    /// A CD094C, CD095C or CD906C from another node (verified, in the inbox, stored as row
    /// `row`), in the delivery's transaction. Returns what to do after the commit.
    pub(crate) async fn status_message(
        &self,
        tx: &mut Tx<'static>,
        message: &Message,
        fields: &EnvelopeHeaderFields,
    ) -> Result<Then, EngineError> {
        let PeerIdentity::Node(from) = fields.sender else {
            return Ok(Then::Nothing);
        };
        match message {
            Message::CD094C(m) => {
                let mrn_text = &m.transit_operation.mrn;
                let held = store::movement(tx, Lookup::Mrn(mrn_text)).await?;
                let states = held
                    .as_ref()
                    .map(|s| compose::office_states(&s.movement))
                    .unwrap_or_default();
                let header = self.status_header(from, Some(m.message_identification.clone()));
                let response = match (
                    Mrn::parse(mrn_text),
                    CustomsOfficeRef::parse(&m.customs_office_of_departure.reference_number),
                ) {
                    (Ok(mrn), Ok(office)) => {
                        compose::status_response(&header, &mrn, &office, &states)
                    }
                    _ => None,
                };
                let answer = match response {
                    Some(r) => Message::CD095C(Box::new(r)),
                    None => {
                        let rejection = Rejection {
                            rejected: "CD094C".to_owned(),
                            code: FunctionalError::UnknownMrn,
                            pointer: "/CD094C/TransitOperation/MRN".to_owned(),
                            reason: format!("{} holds no movement {mrn_text}", self.country),
                        };
                        let original = OriginalHeader::of(message);
                        match self.cd906c(&rejection, &original, PeerIdentity::Node(from)) {
                            Some(nack) => nack,
                            None => {
                                tracing::warn!(mrn = %mrn_text, "no CD906C for an unknown MRN");
                                return Ok(Then::Reconcile);
                            }
                        }
                    }
                };
                self.send_status_message(tx, &answer, from, mrn_text, held.map(|s| s.id))
                    .await?;
                tracing::info!(
                    mrn = %mrn_text,
                    asked_by = %from,
                    answer = answer.message_type(),
                    offices = states.len(),
                    "status request answered"
                );
                Ok(Then::Reconcile)
            }
            Message::CD095C(m) => {
                let Some(correlation) = m.correlation_identifier.as_deref() else {
                    return Ok(Then::Nothing);
                };
                let Some(req) = request_asked(tx, correlation).await? else {
                    tracing::info!(correlation, "a CD095C for no open status request: kept");
                    return Ok(Then::Nothing);
                };
                if req.country != from.as_str() {
                    tracing::warn!(request = %req.id, %from, "a CD095C from another country than asked");
                    return Ok(Then::Nothing);
                }
                self.compare_answer(tx, &req, &compose::states_of(m)).await
            }
            Message::CD906C(m) => {
                let Some(correlation) = m.correlation_identifier.as_deref() else {
                    return Ok(Then::Nothing);
                };
                let Some(req) = request_asked(tx, correlation).await? else {
                    return Ok(Then::Nothing);
                };
                let codes: Vec<String> = m
                    .functional_error
                    .iter()
                    .map(|e| e.error_code.as_str().to_owned())
                    .collect();
                let unknown = codes.iter().any(|c| c == "90");
                let state = if unknown { "unknown_mrn" } else { "refused" };
                let reason = format!("{from} answered CD906C with code {}", codes.join(", "));
                set_state(tx, &req.id, state, Some(&reason)).await?;
                self.metrics.reconciliation(&format!("status_{state}"), 1);
                tracing::info!(request = %req.id, state, %reason, "status request ended");
                Ok(Then::Nothing)
            }
            _ => Ok(Then::Nothing),
        }
    }

    async fn compare_answer(
        &self,
        tx: &mut Tx<'static>,
        req: &StatusRequest,
        answer: &[OfficeState],
    ) -> Result<Then, EngineError> {
        let held = store::movement(tx, Lookup::Mrn(&req.mrn)).await?;
        let messages: Vec<(String, String, String)> = match &held {
            Some(s) => on_tx!(tx, |c| {
                sqlx::query_as(
                    "SELECT direction, message_type, party FROM node_messages \
                     WHERE movement_id = $1",
                )
                .bind(s.id)
                .fetch_all(&mut *c)
                .await
                .map_err(StoreError::from)?
            }),
            None => Vec::new(),
        };
        let own = held.as_ref().and_then(|s| {
            s.movement
                .departure
                .as_ref()
                .map(|d| (d.phase.rank(), compose::departure_code(d.phase)))
        });
        let differences = compare(answer, &floors(&messages, &req.country), own);
        let asking_behind = differences.iter().any(|d| d.behind == "asking");
        let now = now_millis();
        let (state, found) = if differences.is_empty() {
            if req.found.is_empty() && !req.own_state_repaired {
                ("agreed", Vec::new())
            } else {
                ("repaired", req.found.clone())
            }
        } else if req.rounds < ROUNDS {
            (
                "repairing",
                if req.found.is_empty() {
                    differences.clone()
                } else {
                    req.found.clone()
                },
            )
        } else {
            (
                "differs",
                if req.found.is_empty() {
                    differences.clone()
                } else {
                    req.found.clone()
                },
            )
        };
        let answer_json = serde_json::to_string(&answer.iter().map(reported).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".to_owned());
        let found_json = serde_json::to_string(&found).unwrap_or_else(|_| "[]".to_owned());
        let remaining_json =
            serde_json::to_string(&differences).unwrap_or_else(|_| "[]".to_owned());
        on_tx!(tx, |c| {
            sqlx::query(
                "UPDATE node_status_requests SET state = $2, answered_at = $3, answer = $4, \
                 found = $5, remaining = $6, next_round_at = $7 WHERE id = $1",
            )
            .bind(&req.id)
            .bind(state)
            .bind(now)
            .bind(&answer_json)
            .bind(&found_json)
            .bind(&remaining_json)
            .bind((state == "repairing").then(|| now + ROUND_PAUSE.as_millis() as i64))
            .execute(&mut *c)
            .await
            .map_err(StoreError::from)?;
        });
        if req.found.is_empty() && !differences.is_empty() {
            self.metrics
                .reconciliation("status_differences", differences.len() as u64);
        }
        if state == "repaired" {
            self.metrics
                .reconciliation("status_repaired", found.len().max(1) as u64);
        }
        if differences.is_empty() {
            tracing::info!(request = %req.id, mrn = %req.mrn, state, "status request: in agreement");
        } else {
            tracing::warn!(
                request = %req.id,
                mrn = %req.mrn,
                state,
                ?differences,
                "status request: the answer disagrees"
            );
        }
        Ok(if asking_behind {
            Then::Reconcile
        } else {
            Then::Nothing
        })
    }

    /// Asks again where a repair is awaited and ends the requests whose answer is overdue,
    /// every half second until `shutdown` fires.
    pub async fn run_status_requests(&self, mut shutdown: cats_transport::shutdown::Shutdown) {
        loop {
            if let Err(e) = self.status_tick().await {
                tracing::warn!(code = e.code(), error = %e, "status requests");
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// One pass of [`Engine::run_status_requests`].
    pub async fn status_tick(&self) -> Result<(), EngineError> {
        let guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        let now = now_millis();
        let due: Vec<DueRow> = on_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT id, mrn, country, state, deadline, timeout_ms, next_round_at \
                 FROM node_status_requests WHERE state IN ('asked', 'repairing')",
            )
            .fetch_all(&mut *c)
            .await
            .map_err(StoreError::from)?
        });
        let mut sent = false;
        for (id, mrn, country, state, deadline, timeout_ms, next_round_at) in due {
            if state == "asked" && now > deadline {
                let reason = format!("no answer from {country} within {} ms", timeout_ms);
                set_state(&mut tx, &id, "timed_out", Some(&reason)).await?;
                self.metrics.reconciliation("status_timed_out", 1);
                tracing::warn!(request = %id, %mrn, %reason, "status request timed out");
                continue;
            }
            if state == "repairing" && next_round_at.is_some_and(|t| t <= now) {
                let (Ok(m), Ok(to)) = (Mrn::parse(&mrn), CountryCode::parse(&country)) else {
                    set_state(
                        &mut tx,
                        &id,
                        "refused",
                        Some("stored MRN or country unreadable"),
                    )
                    .await?;
                    continue;
                };
                let asked = self.ask(&mut tx, &m, to).await?;
                on_tx!(&mut tx, |c| {
                    sqlx::query(
                        "UPDATE node_status_requests SET state = 'asked', asked_id = $2, \
                         rounds = rounds + 1, deadline = $3, next_round_at = NULL WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(&asked)
                    .bind(now + timeout_ms)
                    .execute(&mut *c)
                    .await
                    .map_err(StoreError::from)?;
                });
                sent = true;
                tracing::info!(request = %id, %mrn, asked = %asked, "status request: asked again");
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        drop(guard);
        if sent {
            self.outbox.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(role: Role, office: &str, status: &str) -> OfficeState {
        OfficeState {
            role,
            office: CustomsOfficeRef::parse(office).expect("office"),
            status: status.to_owned(),
            since: None,
        }
    }

    fn msg(d: &str, t: &str, p: &str) -> (String, String, String) {
        (d.to_owned(), t.to_owned(), p.to_owned())
    }

    #[test]
    fn floors_come_from_the_messages_exchanged_with_that_country() {
        let m = vec![
            msg("out", "CD001C", "GE"),
            msg("out", "CD050C", "AZ"),
            msg("in", "CD006C", "GE"),
            msg("in", "CD018C", "GE"),
            msg("in", "CD118C", "AZ"),
        ];
        let f = floors(&m, "GE");
        assert_eq!(f.get(&Role::Destination), Some(&5));
        assert_eq!(f.len(), 1);
        assert_eq!(floors(&m, "AZ").get(&Role::Transit), Some(&4));
    }

    #[test]
    fn an_answer_below_the_floor_is_the_asked_node_behind() {
        let f = BTreeMap::from([(Role::Destination, 5u8)]);
        assert!(compare(&[state(Role::Destination, "GE000201", "GRL")], &f, None).is_empty());
        let d = compare(&[state(Role::Destination, "GE000201", "ANT")], &f, None);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].behind, "asked");
        let d = compare(&[], &f, None);
        assert_eq!(d[0].found, "no such office role");
    }

    #[test]
    fn an_arrived_destination_with_departure_before_arrival_is_the_asking_node_behind() {
        let answer = [state(Role::Destination, "GE000201", "GRL")];
        let d = compare(&answer, &BTreeMap::new(), Some((5, "REL")));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].behind, "asking");
        assert!(compare(&answer, &BTreeMap::new(), Some((8, "WOF"))).is_empty());
        assert!(compare(&answer, &BTreeMap::new(), Some((7, "CRR"))).is_empty());
    }

    #[test]
    fn status_errors_have_stable_codes() {
        assert_eq!(
            StatusError::OwnCountry("KZ".into()).code(),
            "status.own_country"
        );
        assert_eq!(
            StatusError::UnknownCountry("FR".into()).code(),
            "status.unknown_country"
        );
        assert_eq!(
            StatusError::InvalidMrn("x".into()).code(),
            "status.invalid_mrn"
        );
        assert_eq!(
            StatusError::InvalidTimeout(0).code(),
            "status.invalid_timeout"
        );
    }
}
