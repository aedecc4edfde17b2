//! The hub's register of dead letters, and what operators do with them.
//!
//! A dead letter is a message a receiver refused for good: an unreadable envelope at the hub, a
//! delivery the broker gave up on after its delivery limit, a message a node rejected. The hub
//! keeps every one in `hub_dead_letters` (with the reason and the exact bytes) until an operator
//! settles it:
//!
//! - **direct link**: the transport writes the hub's inbound dead letters to
//!   `transport_dead_letters` in the same database, and so does it for a delivery a node
//!   refused (the node's `Reject` frame), with the node's queue (`cats.node.XX`);
//!   [`DeadLetters::collect`] copies new rows into the register under their queue (no queue:
//!   the hub's inbound queue), idempotent: keyed by the transport row id;
//! - **AMQP**: [`drain_amqp`] consumes the broker's dead-letter queues (`cats.hub.in.dlq`,
//!   `cats.node.XX.dlq`) and records each message before acknowledging it, so the register is
//!   the one place to look, whatever the transport.
//!
//! Settling ([`DeadLetters::replay`], [`DeadLetters::discard`]) writes an audit entry (who,
//! when, why, outcome) in `hub_dead_letter_audit`:
//!
//! - a letter of the hub's inbound queue is replayed through the hub's own pipeline, as a
//!   redelivery from the node that sent it (its duplicate check makes a second replay harmless);
//! - a letter of a node's queue is sent to that node's queue again.
//!
//! A letter is `dead` until replayed (`replayed`) or discarded (`discarded`); rows are never
//! deleted.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use cats_transport::contract::{
    Acknowledger, CountryCode, Delivery, Destination, Outbound, PeerIdentity, Transport,
    TransportError,
};
use cats_transport::shutdown::Shutdown;
use cats_transport_amqp::AmqpConfig;
use cats_transport_amqp::lapin;
use cats_transport_amqp::topology;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::pipeline::{Outcome, Pipeline, PipelineError};
use crate::store::{HubStore, StoreError, now_millis, on_pool, on_tx};

/// The hub's inbound queue, as named in the register (the AMQP queue name, used for the direct
/// link too).
pub const HUB_INBOUND: &str = topology::HUB_INBOUND_QUEUE;

/// The register's name of `country`'s queue (`cats.node.KZ`).
pub fn node_queue(country: CountryCode) -> String {
    topology::consumer_queue(PeerIdentity::Node(country))
}

/// One dead letter, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterSummary {
    /// Its number in the register.
    pub id: i64,
    /// The queue it was refused from (`cats.hub.in`, `cats.node.KZ`).
    pub queue: String,
    /// Who sent it (`urn:cats:node:KZ`, `urn:cats:hub`).
    pub sender: String,
    /// Its message id.
    pub message_id: String,
    /// Its partition key (the MRN), if any.
    pub partition_key: Option<String>,
    /// Why it was refused.
    pub reason: String,
    /// When.
    pub dead_at: DateTime<Utc>,
    /// `dead`, `replayed` or `discarded`.
    pub state: String,
    /// When it was replayed or discarded.
    pub settled_at: Option<DateTime<Utc>>,
    /// Size of the message, bytes.
    pub size: i64,
}

/// The envelope of a dead letter, as far as it can be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeView {
    /// Message type from the header.
    pub message_type: String,
    /// Sender from the header.
    pub sender: String,
    /// Recipient from the header.
    pub recipient: String,
    /// MRN from the header.
    pub mrn: Option<String>,
    /// The XML body (lossy UTF-8).
    pub body: String,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// `replay` or `discard`.
    pub action: String,
    /// Who.
    pub operator: String,
    /// Why.
    pub reason: String,
    /// What came of it.
    pub outcome: String,
}

/// One dead letter with its bytes and its audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: DeadLetterSummary,
    /// The envelope read from the bytes; `None` when they are not an envelope.
    pub envelope: Option<EnvelopeView>,
    /// Why the bytes are not an envelope, when they are not.
    pub envelope_error: Option<String>,
    /// The exact bytes, base64.
    pub body_base64: String,
    /// What operators did with it, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// The answer to a replay or a discard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// The letter.
    pub id: i64,
    /// `replay` or `discard`.
    pub action: String,
    /// Its state now (`replayed`, `discarded`, or still `dead` when the replay was refused
    /// again).
    pub state: String,
    /// What came of it.
    pub outcome: String,
}

/// A dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// No such letter.
    #[error("no dead letter {0}")]
    NotFound(i64),
    /// Already replayed or discarded.
    #[error("dead letter {id} is already {state}")]
    Settled {
        /// The letter.
        id: i64,
        /// Its state.
        state: String,
    },
    /// The request is incomplete (operator, reason).
    #[error("{0}")]
    BadRequest(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replay could not be carried out (transport or store down); nothing changed but
    /// the audit entry of the attempt.
    #[error("replay failed: {0}")]
    Replay(String),
}

impl DeadLetterError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            DeadLetterError::NotFound(_) => "dead-letters.not-found",
            DeadLetterError::Settled { .. } => "dead-letters.settled",
            DeadLetterError::BadRequest(_) => "dead-letters.bad-request",
            DeadLetterError::Store(e) => e.code(),
            DeadLetterError::Replay(_) => "dead-letters.replay-failed",
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a replay needs from the running hub: its pipeline and its transport.
pub trait Replay: Send + Sync + fmt::Debug {
    /// Processes `delivery` through the hub's pipeline.
    fn inbound(&self, delivery: Delivery) -> BoxFuture<'_, Result<Outcome, PipelineError>>;
    /// Sends `message` to a node's queue.
    fn resend(&self, message: Outbound) -> BoxFuture<'_, Result<(), TransportError>>;
}

/// [`Replay`] with the hub's pipeline over transport `T`.
#[derive(Debug)]
pub struct PipelineReplay<T> {
    pipeline: Arc<Pipeline<T>>,
    transport: Arc<T>,
}

impl<T> PipelineReplay<T> {
    /// Replays through `pipeline` and sends through `transport`.
    pub fn new(pipeline: Arc<Pipeline<T>>, transport: Arc<T>) -> PipelineReplay<T> {
        PipelineReplay {
            pipeline,
            transport,
        }
    }
}

impl<T: Transport + fmt::Debug + 'static> Replay for PipelineReplay<T> {
    fn inbound(&self, delivery: Delivery) -> BoxFuture<'_, Result<Outcome, PipelineError>> {
        Box::pin(self.pipeline.process(delivery))
    }

    fn resend(&self, message: Outbound) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(self.transport.send(message))
    }
}

/// How the pipeline settled a replayed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settlement {
    Acked,
    Rejected(String),
}

#[derive(Debug)]
struct ReplayAcker(Arc<Mutex<Option<Settlement>>>);

impl ReplayAcker {
    fn set(&self, s: Settlement) {
        match self.0.lock() {
            Ok(mut g) => *g = Some(s),
            Err(p) => *p.into_inner() = Some(s),
        }
    }
}

impl Acknowledger for ReplayAcker {
    fn ack(self: Box<Self>) -> futures::future::BoxFuture<'static, Result<(), TransportError>> {
        self.set(Settlement::Acked);
        Box::pin(async { Ok(()) })
    }

    fn reject(
        self: Box<Self>,
        reason: String,
    ) -> futures::future::BoxFuture<'static, Result<(), TransportError>> {
        self.set(Settlement::Rejected(reason));
        Box::pin(async { Ok(()) })
    }
}

fn time(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

/// The register.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    store: HubStore,
    /// Whether `transport_dead_letters` (direct link) is collected.
    from_transport_table: bool,
    replay: Arc<dyn Replay>,
}

const SUMMARY_COLUMNS: &str = "id, queue, sender, message_id, partition_key, reason, \
     CAST(LENGTH(body) AS BIGINT) AS size, dead_at, state, settled_at";

fn summary(row: &impl RowLike) -> Result<DeadLetterSummary, sqlx::Error> {
    Ok(DeadLetterSummary {
        id: row.i64("id")?,
        queue: row.string("queue")?,
        sender: row.string("sender")?,
        message_id: row.string("message_id")?,
        partition_key: row.opt_string("partition_key")?,
        reason: row.string("reason")?,
        dead_at: time(row.i64("dead_at")?),
        state: row.string("state")?,
        settled_at: row.opt_i64("settled_at")?.map(time),
        size: row.i64("size")?,
    })
}

/// Column access for either driver's rows.
trait RowLike {
    fn i64(&self, c: &str) -> Result<i64, sqlx::Error>;
    fn opt_i64(&self, c: &str) -> Result<Option<i64>, sqlx::Error>;
    fn string(&self, c: &str) -> Result<String, sqlx::Error>;
    fn opt_string(&self, c: &str) -> Result<Option<String>, sqlx::Error>;
}

macro_rules! row_like {
    ($t:ty) => {
        impl RowLike for $t {
            fn i64(&self, c: &str) -> Result<i64, sqlx::Error> {
                self.try_get(c)
            }
            fn opt_i64(&self, c: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(c)
            }
            fn string(&self, c: &str) -> Result<String, sqlx::Error> {
                self.try_get(c)
            }
            fn opt_string(&self, c: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(c)
            }
        }
    };
}
row_like!(sqlx::sqlite::SqliteRow);
row_like!(sqlx::postgres::PgRow);

/// A letter to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    /// The queue it was refused from.
    pub queue: String,
    /// Its sender (`urn:cats:…`).
    pub sender: String,
    /// Its message id.
    pub message_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Why.
    pub reason: String,
    /// The exact bytes.
    pub body: Vec<u8>,
    /// When (Unix milliseconds).
    pub dead_at: i64,
}

impl DeadLetters {
    /// The register in `store`; `from_transport_table` on the direct link.
    pub fn new(store: HubStore, from_transport_table: bool, replay: Arc<dyn Replay>) -> Self {
        DeadLetters {
            store,
            from_transport_table,
            replay,
        }
    }

    /// Copies the transport's new dead letters into the register, each under its queue: the
    /// hub's inbound queue, or the queue of the node that refused it (direct link; a no-op on
    /// AMQP, where [`drain_amqp`] records them).
    pub async fn collect(&self) -> Result<u64, StoreError> {
        if !self.from_transport_table {
            return Ok(0);
        }
        let copied = on_pool!(self.store, |p| {
            sqlx::query(
                "INSERT INTO hub_dead_letters \
                 (queue, sender, message_id, partition_key, reason, body, dead_at, state, \
                  transport_id) \
                 SELECT COALESCE(t.queue, $1), t.sender, t.message_id, t.partition_key, \
                        t.reason, t.body, t.dead_at, 'dead', t.id \
                 FROM transport_dead_letters t \
                 WHERE NOT EXISTS \
                   (SELECT 1 FROM hub_dead_letters h WHERE h.transport_id = t.id) \
                 ON CONFLICT (transport_id) DO NOTHING",
            )
            .bind(HUB_INBOUND)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(copied)
    }

    /// Records one letter unless the same one (queue, message id, bytes) is already dead in the
    /// register (a broker redelivery after a crash between record and acknowledgement).
    pub async fn record(store: &HubStore, letter: &NewDeadLetter) -> Result<bool, StoreError> {
        let mut tx = store.begin().await?;
        let inserted = on_tx!(&mut tx, |c| {
            let known: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM hub_dead_letters WHERE state = 'dead' AND queue = $1 \
                 AND message_id = $2 AND body = $3",
            )
            .bind(&letter.queue)
            .bind(&letter.message_id)
            .bind(&letter.body)
            .fetch_one(&mut *c)
            .await?;
            if known == 0 {
                sqlx::query(
                    "INSERT INTO hub_dead_letters \
                     (queue, sender, message_id, partition_key, reason, body, dead_at, state) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'dead')",
                )
                .bind(&letter.queue)
                .bind(&letter.sender)
                .bind(&letter.message_id)
                .bind(&letter.partition_key)
                .bind(&letter.reason)
                .bind(&letter.body)
                .bind(letter.dead_at)
                .execute(&mut *c)
                .await?;
            }
            known == 0
        });
        tx.commit().await?;
        Ok(inserted)
    }

    /// Dead (unsettled) letters per queue.
    pub async fn pending_per_queue(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.collect().await?;
        Ok(on_pool!(self.store, |p| {
            sqlx::query(
                "SELECT queue, COUNT(*) AS n FROM hub_dead_letters WHERE state = 'dead' \
                 GROUP BY queue ORDER BY queue",
            )
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| Ok((r.string("queue")?, r.i64("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        }))
    }

    /// The letters in `state` (`dead`, `replayed`, `discarded` or `all`), oldest first, at most
    /// `limit`.
    pub async fn list(
        &self,
        state: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetterSummary>, DeadLetterError> {
        if !matches!(state, "dead" | "replayed" | "discarded" | "all") {
            return Err(DeadLetterError::BadRequest(format!(
                "state {state:?}: expected dead, replayed, discarded or all"
            )));
        }
        self.collect().await?;
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM hub_dead_letters \
             WHERE ($1 = 'all' OR state = $1) ORDER BY id LIMIT $2"
        );
        let list = on_pool!(self.store, |p| {
            sqlx::query(&sql)
                .bind(state)
                .bind(limit)
                .fetch_all(p)
                .await
                .map_err(StoreError::from)?
                .iter()
                .map(summary)
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)?
        });
        Ok(list)
    }

    async fn summary(&self, id: i64) -> Result<(DeadLetterSummary, Vec<u8>), DeadLetterError> {
        self.collect().await?;
        let sql = format!("SELECT {SUMMARY_COLUMNS}, body FROM hub_dead_letters WHERE id = $1");
        let found = on_pool!(self.store, |p| {
            match sqlx::query(&sql)
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(StoreError::from)?
            {
                None => None,
                Some(row) => {
                    let body: Vec<u8> = row.try_get("body").map_err(StoreError::from)?;
                    Some((summary(&row).map_err(StoreError::from)?, body))
                }
            }
        });
        found.ok_or(DeadLetterError::NotFound(id))
    }

    /// One letter with its bytes, its envelope as far as it reads, and its audit trail.
    pub async fn show(&self, id: i64) -> Result<DeadLetterDetail, DeadLetterError> {
        let (summary, body) = self.summary(id).await?;
        let audit = on_pool!(self.store, |p| {
            sqlx::query(
                "SELECT at, action, operator, reason, outcome FROM hub_dead_letter_audit \
                 WHERE dead_letter_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(p)
            .await
            .map_err(StoreError::from)?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: time(r.i64("at")?),
                    action: r.string("action")?,
                    operator: r.string("operator")?,
                    reason: r.string("reason")?,
                    outcome: r.string("outcome")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)?
        });
        let (envelope, envelope_error) = match cats_trust::Envelope::parse(&body) {
            Ok(parsed) => {
                let h = &parsed.header.fields;
                (
                    Some(EnvelopeView {
                        message_type: h.message_type.clone(),
                        sender: h.sender.to_string(),
                        recipient: h.recipient.to_string(),
                        mrn: h.mrn.clone(),
                        body: String::from_utf8_lossy(parsed.body).into_owned(),
                    }),
                    None,
                )
            }
            Err(e) => (None, Some(format!("{}: {e}", e.code()))),
        };
        Ok(DeadLetterDetail {
            summary,
            envelope,
            envelope_error,
            body_base64: base64::engine::general_purpose::STANDARD.encode(&body),
            audit,
        })
    }

    fn check_request(
        operator: &str,
        reason: &str,
        reason_required: bool,
    ) -> Result<(), DeadLetterError> {
        if operator.trim().is_empty() {
            return Err(DeadLetterError::BadRequest(
                "operator: say who asks (it goes into the audit entry)".into(),
            ));
        }
        if reason_required && reason.trim().is_empty() {
            return Err(DeadLetterError::BadRequest(
                "reason: say why (it goes into the audit entry)".into(),
            ));
        }
        Ok(())
    }

    /// Writes the audit entry and, when `new_state` is given, moves the letter from `dead` to
    /// it, in one transaction. `Ok(false)` when the letter was no longer `dead`.
    async fn settle(
        &self,
        id: i64,
        action: &str,
        operator: &str,
        reason: &str,
        outcome: &str,
        new_state: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        let mut tx = self.store.begin().await?;
        let moved = on_tx!(&mut tx, |c| {
            let moved = match new_state {
                Some(state) => {
                    sqlx::query(
                        "UPDATE hub_dead_letters SET state = $2, settled_at = $3 \
                         WHERE id = $1 AND state = 'dead'",
                    )
                    .bind(id)
                    .bind(state)
                    .bind(now)
                    .execute(&mut *c)
                    .await?
                    .rows_affected()
                        == 1
                }
                None => true,
            };
            if moved {
                sqlx::query(
                    "INSERT INTO hub_dead_letter_audit \
                     (dead_letter_id, action, operator, reason, outcome, at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(action)
                .bind(operator.trim())
                .bind(reason.trim())
                .bind(outcome)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            moved
        });
        tx.commit().await?;
        Ok(moved)
    }

    async fn dead(&self, id: i64) -> Result<(DeadLetterSummary, Vec<u8>), DeadLetterError> {
        let (s, body) = self.summary(id).await?;
        if s.state != "dead" {
            return Err(DeadLetterError::Settled { id, state: s.state });
        }
        Ok((s, body))
    }

    /// Discards letter `id`: it stays in the register, `discarded`, with the audit entry.
    pub async fn discard(
        &self,
        id: i64,
        operator: &str,
        reason: &str,
    ) -> Result<Settled, DeadLetterError> {
        Self::check_request(operator, reason, true)?;
        self.dead(id).await?;
        let outcome = "discarded";
        if !self
            .settle(id, "discard", operator, reason, outcome, Some("discarded"))
            .await?
        {
            let (s, _) = self.summary(id).await?;
            return Err(DeadLetterError::Settled { id, state: s.state });
        }
        tracing::info!(id, operator, reason, "dead letter discarded");
        Ok(Settled {
            id,
            action: "discard".into(),
            state: "discarded".into(),
            outcome: outcome.into(),
        })
    }

    /// Replays letter `id` (see the module documentation) and records the attempt.
    pub async fn replay(
        &self,
        id: i64,
        operator: &str,
        reason: &str,
    ) -> Result<Settled, DeadLetterError> {
        Self::check_request(operator, reason, false)?;
        let (letter, body) = self.dead(id).await?;
        let reason = if reason.trim().is_empty() {
            "replay requested"
        } else {
            reason
        };
        let attempt = self.carry_out(&letter, body).await;
        let (outcome, state) = match &attempt {
            Ok((outcome, true)) => (outcome.clone(), "replayed"),
            Ok((outcome, false)) => (outcome.clone(), "dead"),
            Err(e) => (format!("failed: {e}"), "dead"),
        };
        let new_state = (state == "replayed").then_some("replayed");
        if !self
            .settle(id, "replay", operator, reason, &outcome, new_state)
            .await?
        {
            // Replayed concurrently by someone else; the pipeline's duplicate check made this
            // one harmless.
            let (s, _) = self.summary(id).await?;
            return Err(DeadLetterError::Settled { id, state: s.state });
        }
        tracing::info!(id, operator, reason, outcome, "dead letter replay");
        match attempt {
            Err(e) => Err(DeadLetterError::Replay(e)),
            Ok(_) => Ok(Settled {
                id,
                action: "replay".into(),
                state: state.into(),
                outcome,
            }),
        }
    }

    /// Carries out a replay: `Ok((outcome, settled))`, `settled` false when the letter was
    /// refused again.
    async fn carry_out(
        &self,
        letter: &DeadLetterSummary,
        body: Vec<u8>,
    ) -> Result<(String, bool), String> {
        if letter.queue == HUB_INBOUND {
            let from = letter
                .sender
                .strip_prefix("urn:cats:node:")
                .and_then(|c| CountryCode::parse(c).ok())
                .map(PeerIdentity::Node)
                .ok_or_else(|| {
                    format!(
                        "the sender {:?} is not a node: nothing to replay it as",
                        letter.sender
                    )
                })?;
            let slot = Arc::new(Mutex::new(None));
            let delivery = Delivery::new(
                from,
                letter.message_id.clone(),
                letter.partition_key.clone(),
                Bytes::from(body),
                true,
                Box::new(ReplayAcker(slot.clone())),
            );
            let outcome = self
                .replay
                .inbound(delivery)
                .await
                .map_err(|e| format!("{}: {e}", e.code()))?;
            let settled = match slot.lock() {
                Ok(mut g) => g.take(),
                Err(p) => p.into_inner().take(),
            };
            let text = match &outcome {
                Outcome::Accepted {
                    sequence,
                    recipients,
                } => {
                    let to: Vec<String> = recipients.iter().map(ToString::to_string).collect();
                    format!("accepted: journal {sequence}, to [{}]", to.join(", "))
                }
                Outcome::Rejected { sequence, code, .. } => {
                    format!("rejected: journal {sequence}, code {code}, NACK sent")
                }
                Outcome::Duplicate { sequence } => {
                    format!("duplicate of journal entry {sequence}")
                }
                Outcome::DeadLettered { sequence } => {
                    format!("unreadable: journal {sequence}")
                }
                Outcome::Reconciliation { message_type } => {
                    format!("reconciliation message {message_type} answered")
                }
            };
            match settled {
                Some(Settlement::Acked) => Ok((text, true)),
                Some(Settlement::Rejected(why)) => {
                    Ok((format!("refused again ({text}): {why}"), false))
                }
                None => Err(format!("the pipeline did not settle the replay ({text})")),
            }
        } else if let Some(country) = letter
            .queue
            .strip_prefix("cats.node.")
            .and_then(|c| CountryCode::parse(c).ok())
        {
            self.replay
                .resend(Outbound {
                    message_id: letter.message_id.clone(),
                    destination: Destination::Node(country),
                    partition_key: letter.partition_key.clone(),
                    bytes: Bytes::from(body),
                })
                .await
                .map_err(|e| format!("{}: {e}", e.code()))?;
            Ok((format!("sent to {} again", letter.queue), true))
        } else {
            Err(format!(
                "no way to replay a letter of queue {:?}",
                letter.queue
            ))
        }
    }
}

fn header_text(headers: Option<&lapin::types::FieldTable>, name: &str) -> Option<String> {
    use lapin::types::AMQPValue;
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// What the hub records of a message from a broker dead-letter queue of `queue`.
fn letter_of(queue: &str, delivery: &lapin::message::Delivery) -> NewDeadLetter {
    let p = &delivery.properties;
    let headers = p.headers().as_ref();
    let user = header_text(headers, topology::ORIGINAL_USER_HEADER)
        .or_else(|| p.user_id().as_ref().map(|u| u.as_str().to_owned()));
    let sender = match user.as_deref().and_then(topology::identity_of_user) {
        Some(identity) => identity.urn(),
        None => format!("unknown:{}", user.unwrap_or_default()),
    };
    let reason = header_text(headers, topology::REASON_HEADER)
        .or_else(|| header_text(headers, "x-first-death-reason").map(|r| format!("broker: {r}")))
        .unwrap_or_else(|| "no reason given".into());
    let dead_at = p
        .timestamp()
        .and_then(|s| i64::try_from(s).ok())
        .map(|s| s.saturating_mul(1000))
        .unwrap_or_else(now_millis);
    NewDeadLetter {
        queue: queue.to_owned(),
        sender,
        message_id: p
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        partition_key: header_text(headers, topology::PARTITION_KEY_HEADER),
        reason,
        body: delivery.data.clone(),
        dead_at,
    }
}

/// Drains the broker's dead-letter queues of `queues` (`cats.hub.in`, `cats.node.KZ`, …) into
/// the register until `shutdown` fires: each message is recorded, then acknowledged. Reconnects
/// with backoff when the broker goes away.
pub async fn drain_amqp(
    config: AmqpConfig,
    store: HubStore,
    queues: Vec<String>,
    mut shutdown: Shutdown,
) {
    let mut backoff = config.reconnect_min;
    loop {
        let run = drain_once(&config, &store, &queues);
        tokio::select! {
            _ = shutdown.wait() => return,
            result = run => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, retry_in = ?backoff, "dead-letter collector stopped");
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.reconnect_max.max(Duration::from_millis(100)));
    }
}

async fn drain_once(
    config: &AmqpConfig,
    store: &HubStore,
    queues: &[String],
) -> Result<(), String> {
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    let op = config.operation_timeout;
    let timed = |what: &'static str| move |_| format!("timed out {what}");
    let connection = cats_transport_amqp::raw_connection(config, "cats-hub-dead-letters")
        .await
        .map_err(|e| e.to_string())?;
    let channel = tokio::time::timeout(op, connection.create_channel())
        .await
        .map_err(timed("opening a channel"))?
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(op, channel.basic_qos(32, BasicQosOptions::default()))
        .await
        .map_err(timed("setting the prefetch"))?
        .map_err(|e| e.to_string())?;
    let mut streams = Vec::new();
    for queue in queues {
        let dlq = topology::dead_letter_queue(queue);
        // A country in the reference data may have no queues on this broker yet: skip it
        // (checked on a channel of its own, which the broker closes when the queue is missing).
        let probe = tokio::time::timeout(op, connection.create_channel())
            .await
            .map_err(timed("opening a channel"))?
            .map_err(|e| e.to_string())?;
        let exists = tokio::time::timeout(
            op,
            probe.queue_declare(
                dlq.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            ),
        )
        .await
        .map_err(timed("checking a dead-letter queue"))?;
        if let Err(e) = exists {
            tracing::warn!(queue = dlq, error = %e, "no such dead-letter queue; not collected");
            continue;
        }
        let _ = probe.close(200, "checked".into()).await;
        let consumer = tokio::time::timeout(
            op,
            channel.basic_consume(
                dlq.as_str().into(),
                format!("cats-hub-dead-letters-{dlq}").into(),
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            ),
        )
        .await
        .map_err(timed("starting a dead-letter consumer"))?
        .map_err(|e| format!("consuming {dlq}: {e}"))?;
        let queue = queue.clone();
        streams.push(consumer.map(move |d| (queue.clone(), d)).boxed());
    }
    tracing::info!(queues = ?queues, "collecting the broker's dead letters");
    let mut all = futures::stream::select_all(streams);
    while let Some((queue, delivery)) = all.next().await {
        let delivery = delivery.map_err(|e| e.to_string())?;
        let letter = letter_of(&queue, &delivery);
        DeadLetters::record(store, &letter)
            .await
            .map_err(|e| e.to_string())?;
        tracing::warn!(
            queue,
            message_id = letter.message_id,
            reason = letter.reason,
            "dead letter recorded"
        );
        tokio::time::timeout(op, delivery.acker.ack(BasicAckOptions::default()))
            .await
            .map_err(timed("acknowledging a dead letter"))?
            .map_err(|e| e.to_string())?;
    }
    Err("the dead-letter consumers ended".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            DeadLetterError::NotFound(1).code(),
            "dead-letters.not-found"
        );
        assert_eq!(
            DeadLetterError::Settled {
                id: 1,
                state: "replayed".into()
            }
            .code(),
            "dead-letters.settled"
        );
        assert_eq!(
            DeadLetterError::BadRequest("x".into()).code(),
            "dead-letters.bad-request"
        );
        assert_eq!(
            DeadLetterError::Replay("x".into()).code(),
            "dead-letters.replay-failed"
        );
    }

    #[test]
    fn queue_names() {
        assert_eq!(HUB_INBOUND, "cats.hub.in");
        assert_eq!(node_queue(CountryCode::KZ), "cats.node.KZ");
        // The direct link names a node's letters as the AMQP topology names its queue.
        for c in [CountryCode::KZ, CountryCode::AZ, CountryCode::GE] {
            assert_eq!(cats_transport::store::node_queue_name(c), node_queue(c));
        }
    }
}
