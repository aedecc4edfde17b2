//! Reconciliation with the hub (issue 7), the node's side of
//! `message_catalog::lifecycle::reconcile` (see there and `hub/src/reconcile.rs` for the
//! exchange).
//!
//! - Every hub delivery the inbox accepts is recorded with its MRN in
//!   `node_reconcile_received`, in the transaction that applies it ([`record_received`]): the
//!   per-movement digest compared with the hub's journal is computed from these rows, so a
//!   database restored from a backup compares exactly what it holds.
//! - [`Engine::reconcile`] (on start, on a timer, and on demand): first the **self-check**:
//!   each movement is re-folded from its own event log (`node_history.event` and the stored
//!   messages) with the pure life cycle; a stored state that differs (a movement corrupted by
//!   hand, a bug) is replaced by the re-folded one and reported. Then a
//!   `CATS-RECONCILE-REQUEST` goes to the hub through the outbox with the resume point (the
//!   journal sequence of the last completed comparison) and the bucket hashes. The outbox is
//!   woken: the node's own messages the hub never saw are sent, not discarded.
//! - [`Engine::resume`] (each time the link to the hub comes up:
//!   [`Engine::run_resume_on_connect`]): a `CATS-RECONCILE-RESUME` with the resume point and
//!   the fingerprints of the deliveries applied since the hub last confirmed one
//!   (`node_resume_pending`, written in the transaction that applies each delivery). The hub
//!   re-delivers the entries after the resume point the node does not hold, then answers with
//!   differences without buckets; the answer confirms the deliveries the request named.
//! - On the hub's `CATS-RECONCILE-DIFFERENCES` ([`Engine::reconciliation_answer`]), which
//!   arrives after the entries the hub re-delivered for the resume, the node compares the
//!   hub's digests with its own, asks for the movements that still differ
//!   (`CATS-RECONCILE-REPAIR`), and moves its resume point to the comparison's sequence. The
//!   re-delivered entries go through [`Engine::deliver`] like any delivery: the inbox drops the
//!   ones already applied, the others are applied to the movement as it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cats_transport::contract::{Delivery, Destination, Outbound};
use cats_transport::store::Tx;
use cats_trust::{EnvelopeHeaderFields, PeerIdentity};
use chrono::{DateTime, Utc};
use message_catalog::codec;
use message_catalog::ids::CustomsOfficeRef;
use message_catalog::lifecycle::reconcile::{
    self as rc, Buckets, DIFFERENCES_TYPE, Differences, REPAIR_TYPE, REQUEST_TYPE, RESUME_TYPE,
    RepairRequest, Request, Resume,
};
use message_catalog::lifecycle::{self, Actor, Decision, Event, Input, Movement, Role};
use serde::Serialize;

use crate::engine::{Engine, EngineError};
use crate::store::{self, StoreError, now_millis};

/// The counter holding the resume point (the hub journal sequence of the last comparison).
const RESUME_COUNTER: &str = "reconcile.resume_after";

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

/// Records an accepted hub delivery for the per-movement digest (in the delivery's
/// transaction). Deliveries without an MRN are not part of any movement's digest.
///
/// A delivery about an MRN that one of this node's offices allocated also moves that office's
/// MRN sequence past it: a node restored from an older copy learns, from what the hub
/// re-delivers, the MRNs it had allocated since, and does not allocate them again.
pub async fn record_received(
    tx: &mut Tx<'_>,
    country: message_catalog::ids::CountryCode,
    fields: &EnvelopeHeaderFields,
) -> Result<(), StoreError> {
    let sender = fields.sender.urn();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO node_resume_pending (sender, message_id, request_id) \
             VALUES ($1, $2, NULL) ON CONFLICT (sender, message_id) DO NOTHING",
        )
        .bind(&sender)
        .bind(&fields.message_id)
        .execute(&mut *c)
        .await?;
    });
    let Some(mrn) = &fields.mrn else {
        return Ok(());
    };
    if let Some((counter, seq)) = mrn_sequence(mrn, country)
        && store::counter(tx, &counter).await? < seq
    {
        store::set_counter(tx, &counter, seq).await?;
    }
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO node_reconcile_received (message_id, sender, mrn, at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (sender, message_id) DO NOTHING",
        )
        .bind(&fields.message_id)
        .bind(&sender)
        .bind(mrn)
        .bind(now_millis())
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// For an MRN allocated by an office of `country`: the name of that office's MRN counter (as
/// the engine names it) and the MRN's sequence number.
fn mrn_sequence(mrn: &str, country: message_catalog::ids::CountryCode) -> Option<(String, i64)> {
    let year = mrn.get(..2)?;
    let office = mrn.get(2..10)?;
    if office.get(..2) != Some(country.as_str()) {
        return None;
    }
    let mut seq: i64 = 0;
    for c in mrn.get(10..16)?.chars() {
        seq = seq * 36 + i64::from(c.to_digit(36)?);
    }
    Some((format!("mrn:{office}:{year}"), seq))
}

/// The fingerprints of every applied delivery the hub has not confirmed yet, and marks them as
/// named by `request_id` (the hub's answer to that request removes them).
async fn claim_pending(
    tx: &mut Tx<'_>,
    request_id: &str,
) -> Result<Vec<[u8; rc::FINGERPRINT_LEN]>, StoreError> {
    let rows: Vec<(String, String)> = on_tx!(tx, |c| {
        let rows = sqlx::query_as("SELECT sender, message_id FROM node_resume_pending")
            .fetch_all(&mut *c)
            .await?;
        sqlx::query("UPDATE node_resume_pending SET request_id = $1")
            .bind(request_id)
            .execute(&mut *c)
            .await?;
        rows
    });
    Ok(rows
        .iter()
        .map(|(sender, id)| rc::delivery_fingerprint(sender, id))
        .collect())
}

/// Removes the pending deliveries named by `request_id`, which the hub's answer confirmed.
async fn confirm_pending(tx: &mut Tx<'_>, request_id: &str) -> Result<u64, StoreError> {
    Ok(on_tx!(tx, |c| {
        sqlx::query("DELETE FROM node_resume_pending WHERE request_id = $1")
            .bind(request_id)
            .execute(&mut *c)
            .await?
            .rows_affected()
    }))
}

/// This node's digest of every movement it holds hub deliveries for.
pub async fn digests(tx: &mut Tx<'_>) -> Result<Vec<(String, [u8; rc::DIGEST_LEN])>, StoreError> {
    let rows: Vec<(String, String)> = on_tx!(tx, |c| {
        sqlx::query_as("SELECT mrn, message_id FROM node_reconcile_received")
            .fetch_all(&mut *c)
            .await?
    });
    let mut per_mrn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (mrn, id) in rows {
        per_mrn.entry(mrn).or_default().push(id);
    }
    Ok(per_mrn
        .into_iter()
        .map(|(mrn, ids)| {
            let d = rc::movement_digest(ids.iter().map(String::as_str));
            (mrn, d)
        })
        .collect())
}

/// What [`Engine::reconcile`] did before the hub answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    /// The request's message identification (the hub's answer correlates to it).
    pub request_id: String,
    /// The resume point sent.
    pub resume_after: i64,
    /// Movements compared.
    pub movements: usize,
    /// Buckets.
    pub buckets: u32,
    /// Movements whose stored state differed from their re-folded event log, repaired.
    pub corrupt_repaired: Vec<String>,
    /// Bytes of the signed request.
    pub bytes_out: usize,
}

/// What [`Engine::resume`] sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resumed {
    /// The resume request's message identification (the hub's answer correlates to it).
    pub request_id: String,
    /// The resume point sent.
    pub resume_after: i64,
    /// Deliveries applied since the hub last confirmed one, named in the request.
    pub pending: usize,
    /// Bytes of the signed request.
    pub bytes_out: usize,
}

/// One run, as the node's reconciliation report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The request.
    pub request_id: String,
    /// Started (RFC 3339 UTC).
    pub started_at: String,
    /// The hub's answer was processed (RFC 3339 UTC).
    pub finished_at: Option<String>,
    /// The resume point sent.
    pub resume_after: i64,
    /// The journal sequence of the comparison.
    pub through: Option<i64>,
    /// Buckets that differed.
    pub buckets_differing: Option<i64>,
    /// Movements that differed from the hub (repair asked).
    pub movements_differing: Option<i64>,
    /// Movements repaired from their own event log.
    pub corrupt_repaired: i64,
    /// Bytes sent (request and repair request).
    pub bytes_out: i64,
    /// Bytes received (the answer; the re-delivered entries are counted by the hub).
    pub bytes_in: i64,
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The last `limit` runs, newest first.
pub async fn runs(tx: &mut Tx<'_>, limit: i64) -> Result<Vec<Run>, StoreError> {
    type Row = (
        String,
        i64,
        Option<i64>,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        i64,
        i64,
        i64,
    );
    let rows: Vec<Row> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT request_id, started_at, finished_at, resume_after, through, \
             buckets_differing, movements_differing, corrupt_repaired, bytes_out, bytes_in \
             FROM node_reconcile_runs ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *c)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| Run {
            request_id: r.0,
            started_at: rfc3339(r.1),
            finished_at: r.2.map(rfc3339),
            resume_after: r.3,
            through: r.4,
            buckets_differing: r.5,
            movements_differing: r.6,
            corrupt_repaired: r.7,
            bytes_out: r.8,
            bytes_in: r.9,
        })
        .collect())
}

/// The last finished run's time, for `/metrics`, as Prometheus text.
pub async fn render_gauges(tx: &mut Tx<'_>) -> Result<String, StoreError> {
    let last: Option<i64> = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT MAX(finished_at) FROM node_reconcile_runs")
            .fetch_one(&mut *c)
            .await?
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# TYPE cats_node_reconciliation_last_timestamp_seconds gauge"
    );
    let _ = writeln!(
        out,
        "cats_node_reconciliation_last_timestamp_seconds {}",
        last.unwrap_or(0) / 1000
    );
    Ok(out)
}

#[derive(serde::Deserialize)]
struct StoredEvent {
    at: DateTime<Utc>,
    by: Actor,
    office: String,
    role: Role,
    input: StoredInput,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredInput {
    Message(Option<i64>),
    Decision(Decision),
}

/// Re-folds a movement from its event log. `None` when the log cannot be read back (an event
/// whose message is missing or does not decode): such a movement is not touched.
async fn refold(engine: &Engine, tx: &mut Tx<'_>, id: i64) -> Result<Option<Movement>, StoreError> {
    let events: Vec<String> = on_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT event FROM node_history WHERE movement_id = $1 AND event IS NOT NULL \
             ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?
    });
    let mut state: Option<Movement> = None;
    for text in events {
        let Ok(e) = serde_json::from_str::<StoredEvent>(&text) else {
            return Ok(None);
        };
        let Ok(office) = CustomsOfficeRef::parse(&e.office) else {
            return Ok(None);
        };
        let input = match e.input {
            StoredInput::Decision(d) => Input::Decision(d),
            StoredInput::Message(None) => return Ok(None),
            StoredInput::Message(Some(row)) => {
                let body: Option<Vec<u8>> = on_tx!(tx, |c| {
                    sqlx::query_scalar("SELECT body FROM node_messages WHERE id = $1")
                        .bind(row)
                        .fetch_optional(&mut *c)
                        .await?
                });
                let Some(body) = body else {
                    return Ok(None);
                };
                match codec::decode(&body, &engine.limits) {
                    Ok(m) => Input::Message(m),
                    Err(_) => return Ok(None),
                }
            }
        };
        let event = Event {
            at: e.at,
            by: e.by,
            office,
            role: e.role,
            input,
        };
        state = lifecycle::apply(state, &event).movement;
    }
    Ok(state)
}

impl Engine {
    /// Re-folds every movement from its event log; a stored state that differs is replaced by
    /// the re-folded one. Returns the MRNs (or row ids) repaired.
    pub async fn self_check(&self) -> Result<Vec<String>, EngineError> {
        let _guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        let ids: Vec<i64> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar("SELECT id FROM node_movements ORDER BY id")
                .fetch_all(&mut *c)
                .await
                .map_err(StoreError::from)?
        });
        let mut repaired = Vec::new();
        for id in ids {
            let Some(stored) = store::movement(&mut tx, store::Lookup::Id(id)).await? else {
                continue;
            };
            let Some(refolded) = refold(self, &mut tx, id).await? else {
                continue;
            };
            if refolded != stored.movement {
                let name = stored
                    .movement
                    .mrn
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| format!("movement {id}"));
                tracing::warn!(
                    movement = %name,
                    stored = %stored.movement.digest_hex(),
                    refolded = %refolded.digest_hex(),
                    "reconciliation: stored state differs from its event log, replaced"
                );
                store::update_movement(&mut tx, id, &refolded, None).await?;
                repaired.push(name);
            }
        }
        tx.commit().await?;
        if !repaired.is_empty() {
            self.metrics
                .reconciliation("corrupt_repaired", repaired.len() as u64);
        }
        Ok(repaired)
    }

    fn control_id(&self) -> String {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 10];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        format!("{}R{}", self.country, hex::encode_upper(b))
    }

    async fn send_control(
        &self,
        tx: &mut Tx<'static>,
        message_type: &str,
        correlation: Option<String>,
        body: &[u8],
    ) -> Result<(String, usize), EngineError> {
        let id = self.control_id();
        self.send_control_as(tx, id, message_type, correlation, body)
            .await
    }

    async fn send_control_as(
        &self,
        tx: &mut Tx<'static>,
        id: String,
        message_type: &str,
        correlation: Option<String>,
        body: &[u8],
    ) -> Result<(String, usize), EngineError> {
        let fields = EnvelopeHeaderFields {
            message_id: id.clone(),
            message_type: message_type.to_owned(),
            sender: PeerIdentity::Node(self.country),
            recipient: PeerIdentity::Hub,
            correlation_id: correlation,
            mrn: None,
            prepared_at: Utc::now(),
        };
        let sealed = self
            .signer
            .seal(&fields, body)
            .map_err(|e| EngineError::Seal(e.to_string()))?;
        let len = sealed.len();
        self.outbox
            .enqueue(
                tx,
                &Outbound {
                    message_id: id.clone(),
                    destination: Destination::Hub,
                    partition_key: None,
                    bytes: bytes::Bytes::from(sealed),
                },
            )
            .await?;
        Ok((id, len))
    }

    /// Starts a reconciliation with the hub (see the module documentation): self-check, then
    /// the request through the outbox. The hub's answer is handled when it arrives.
    pub async fn reconcile(&self) -> Result<Started, EngineError> {
        let corrupt_repaired = self.self_check().await?;
        let _guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        let resume_after = store::counter(&mut tx, RESUME_COUNTER).await?;
        let leaves = digests(&mut tx).await?;
        let movements = leaves.len();
        let count = rc::bucket_count(movements);
        let request = Request {
            resume_after,
            buckets: Buckets::new(count, leaves).hashes(),
        };
        let (request_id, bytes_out) = self
            .send_control(&mut tx, REQUEST_TYPE, None, &request.encode())
            .await?;
        // The hub re-delivers everything after the resume point before it answers: its answer
        // confirms every delivery applied so far.
        claim_pending(&mut tx, &request_id).await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO node_reconcile_runs (request_id, started_at, resume_after, \
                 corrupt_repaired, bytes_out, bytes_in) VALUES ($1, $2, $3, $4, $5, 0)",
            )
            .bind(&request_id)
            .bind(now_millis())
            .bind(resume_after)
            .bind(corrupt_repaired.len() as i64)
            .bind(bytes_out as i64)
            .execute(&mut *c)
            .await
            .map_err(StoreError::from)?;
        });
        tx.commit().await?;
        self.outbox.wake();
        self.metrics.reconciliation("runs", 1);
        self.metrics.reconciliation("bytes_out", bytes_out as u64);
        tracing::info!(
            request = %request_id,
            resume_after,
            movements,
            buckets = count,
            corrupt = corrupt_repaired.len(),
            "reconciliation requested"
        );
        Ok(Started {
            request_id,
            resume_after,
            movements,
            buckets: count,
            corrupt_repaired,
            bytes_out,
        })
    }

    /// A reconciliation control message from the hub (already verified): the differences.
    pub(crate) async fn reconciliation_answer(
        &self,
        d: Delivery,
        fields: &EnvelopeHeaderFields,
        body: &[u8],
    ) -> Result<(), EngineError> {
        if fields.sender != PeerIdentity::Hub || fields.message_type != DIFFERENCES_TYPE {
            tracing::warn!(
                message_type = %fields.message_type,
                sender = %fields.sender,
                "reconciliation message not from the hub or not an answer: dead-lettered"
            );
            self.metrics.rejected("reconcile.unexpected");
            d.reject("reconcile.unexpected: only the hub answers reconciliation")
                .await?;
            return Ok(());
        }
        let diff = match Differences::decode(body) {
            Ok(x) => x,
            Err(e) => {
                self.metrics.rejected(e.code());
                tracing::warn!(code = e.code(), error = %e, "reconciliation answer refused");
                d.reject(&format!("{}: {e}", e.code())).await?;
                return Ok(());
            }
        };
        let guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        // An answer to a resume has no buckets: nothing to compare.
        let mut repair = if diff.buckets.is_empty() {
            Vec::new()
        } else {
            let mine = Buckets::new(diff.bucket_count, digests(&mut tx).await?);
            rc::to_repair(&mine, &diff)
        };
        repair.sort();
        let bytes_in = d.bytes.len();
        let mut bytes_out = 0usize;
        if !repair.is_empty() {
            let req = RepairRequest {
                fingerprints: repair.clone(),
            };
            let (_, n) = self
                .send_control(
                    &mut tx,
                    REPAIR_TYPE,
                    fields.correlation_id.clone(),
                    &req.encode(),
                )
                .await?;
            bytes_out = n;
        }
        let current = store::counter(&mut tx, RESUME_COUNTER).await?;
        if diff.through > current {
            store::set_counter(&mut tx, RESUME_COUNTER, diff.through).await?;
        }
        let confirmed = match fields.correlation_id.as_deref() {
            Some(request) => confirm_pending(&mut tx, request).await?,
            None => 0,
        };
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE node_reconcile_runs SET finished_at = $2, through = $3, \
                 buckets_differing = $4, movements_differing = $5, bytes_out = bytes_out + $6, \
                 bytes_in = bytes_in + $7 WHERE request_id = $1",
            )
            .bind(fields.correlation_id.as_deref().unwrap_or(""))
            .bind(now_millis())
            .bind(diff.through)
            .bind(diff.buckets.len() as i64)
            .bind(repair.len() as i64)
            .bind(bytes_out as i64)
            .bind(bytes_in as i64)
            .execute(&mut *c)
            .await
            .map_err(StoreError::from)?;
        });
        tx.commit().await?;
        drop(guard);
        self.outbox.wake();
        d.ack().await?;
        self.metrics.reconciliation("bytes_in", bytes_in as u64);
        self.metrics.reconciliation("bytes_out", bytes_out as u64);
        self.metrics
            .reconciliation("differences", repair.len() as u64);
        self.metrics
            .reconciliation("redelivered", u64::from(diff.resumed));
        if repair.is_empty() {
            tracing::info!(
                through = diff.through,
                resumed = diff.resumed,
                confirmed,
                "reconciliation: in step with the hub"
            );
        } else {
            tracing::warn!(
                through = diff.through,
                resumed = diff.resumed,
                movements = repair.len(),
                fingerprints = ?repair.iter().map(hex::encode).collect::<Vec<_>>(),
                "reconciliation: movements differ from the hub, repair asked"
            );
        }
        Ok(())
    }

    /// Resumes with the hub (see the module documentation): sends, through the outbox, a
    /// `CATS-RECONCILE-RESUME` with the resume point and the fingerprints of every delivery
    /// applied since the hub last confirmed one. The hub re-delivers the entries after the
    /// resume point that are not among them, then answers; the answer moves the resume point.
    pub async fn resume(&self) -> Result<Resumed, EngineError> {
        let _guard = self.lock.lock().await;
        let mut tx = self.store.begin().await?;
        let resume_after = store::counter(&mut tx, RESUME_COUNTER).await?;
        let id = self.control_id();
        let applied = claim_pending(&mut tx, &id).await?;
        let body = Resume {
            resume_after,
            applied,
        };
        let pending = body.applied.len();
        let (request_id, bytes_out) = self
            .send_control_as(&mut tx, id, RESUME_TYPE, None, &body.encode())
            .await?;
        tx.commit().await?;
        self.outbox.wake();
        self.metrics.reconciliation("resumes", 1);
        self.metrics.reconciliation("bytes_out", bytes_out as u64);
        tracing::info!(request = %request_id, resume_after, pending, "resume requested");
        Ok(Resumed {
            request_id,
            resume_after,
            pending,
            bytes_out,
        })
    }

    /// Resumes after every connection of the link to the hub (the first one and each
    /// reconnection), until `shutdown` fires. `connections` counts the link's connections so
    /// far (`DirectNode::connections`, `AmqpTransport::links_opened`); it is read every
    /// 200 ms, and a count that moved on by one or more gives one resume.
    pub async fn run_resume_on_connect(
        &self,
        connections: impl Fn() -> u64 + Send,
        mut shutdown: cats_transport::shutdown::Shutdown,
    ) {
        let mut seen = 0;
        loop {
            let now = connections();
            if now > seen {
                seen = now;
                if let Err(e) = self.resume().await {
                    tracing::warn!(code = e.code(), error = %e, "resume not requested");
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }

    /// Reconciles every `period` until `shutdown` fires, the first time one `period` after
    /// start (a starting node resumes when its link comes up: [`Engine::run_resume_on_connect`]).
    pub async fn run_reconciliation(
        &self,
        period: std::time::Duration,
        mut shutdown: cats_transport::shutdown::Shutdown,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(period) => {}
            }
            if let Err(e) = self.reconcile().await {
                tracing::warn!(code = e.code(), error = %e, "reconciliation not started");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use message_catalog::ids::{CountryCode, CustomsOfficeRef, Mrn, ProcedureLetter};

    #[test]
    fn an_own_mrn_gives_its_office_counter_and_sequence() {
        let office = CustomsOfficeRef::parse("GE000301").expect("office");
        let mrn = Mrn::generate(26, &office, 1297, ProcedureLetter::J).expect("MRN");
        assert_eq!(
            mrn_sequence(mrn.as_str(), CountryCode::GE),
            Some(("mrn:GE000301:26".to_owned(), 1297))
        );
        assert_eq!(mrn_sequence(mrn.as_str(), CountryCode::KZ), None);
        assert_eq!(mrn_sequence("26GE", CountryCode::GE), None);
    }
}
