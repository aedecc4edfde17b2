//! The inbound pipeline: what the hub does with every delivery from a node.
//!
//! In order ([`Pipeline::process`]):
//!
//! 1. **Envelope.** [`Envelope::parse`]; an envelope that cannot even be read is journalled as
//!    rejected (`envelope.malformed`) and dead-lettered with [`Delivery::reject`]: there is no
//!    header to answer.
//! 2. **Exact redelivery.** The same transport sender, message identification and body SHA-256
//!    already journalled (whatever its outcome): acknowledged again with no new entry; if the
//!    earlier processing stopped between journal and dispatch (a crash), the forward or the
//!    NACK recorded then is sent now. This comes before the checks so that a redelivered
//!    rejected message is not NACKed twice.
//! 3. **Signature and sender** ([`Verifier::open`] with the transport identity): failures give a
//!    CD917C carrying the envelope error code.
//! 4. **Strict decode and rules** ([`rules::validate`]): schema errors give a CD917C, rules
//!    errors a CD906C, with line, column, pointer and code.
//! 5. **Consistency and reference checks** (header vs body, [`routing::check`]): CD906C.
//! 6. **Same identification, other body**: CD906C with code 26.
//! 7. **Journal** (entry, duplicate index, dispatch mark, registry) in one transaction.
//! 8. **Route**: the *same* envelope bytes, signed by the originating node, to each recipient
//!    country's queue ([`Transport::send`]). Guarantee messages stop at the hub: the ledger
//!    ([`guarantee::apply`], in the journal transaction of step 7) reserves or releases, and a
//!    CD203C's answer, a CD205C signed by the hub and journalled as emitted, goes to the
//!    departure node (on redelivery, step 2 sends that CD205C again).
//! 9. **Acknowledge.**
//!
//! A NACK is signed by the hub, journalled as an `emitted` entry next to the `rejected` one, and
//! sent to the transport sender's node; then the delivery is acknowledged, so a bad message
//! never blocks the queue. Store or transport failures are returned as [`PipelineError`]
//! without acknowledging: the delivery comes again and step 2 finishes the job.
//!
//! The hub runs the pipeline on batches ([`Pipeline::run_lanes`], [`Pipeline::process_batch`]):
//! the checks of a batch's deliveries run side by side on the cores, and each run of clean
//! messages is journalled in one transaction with one commit, with the same effect as
//! processing them one by one in order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cats_transport::contract::{Delivery, Destination, Outbound, Transport, TransportError};
use cats_trust::{Envelope, EnvelopeHeaderFields, PeerIdentity, Signer, Verifier};
use chrono::{DateTime, Timelike, Utc};
use message_catalog::codec::nack::{Domain, NackContext, OriginalHeader};
use message_catalog::codec::{ErrorCode, Limits, Problem, Rejection, RejectionKind, encode};
use message_catalog::ids::CountryCode;
use message_catalog::reference::ReferenceData;
use message_catalog::rules::{self, Level};
use tracing::Instrument;

use crate::guarantee;
use crate::journal::{self, NewEntry, Status, sha256};
use crate::metrics::Metrics;
use crate::registry;
use crate::routing::{self, Facts, HUB_ADDRESS, Recipient};
use crate::store::{HubStore, HubTx, StoreError, now_millis, on_tx};

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Journalled at `sequence` and forwarded to `recipients`.
    Accepted {
        /// Journal sequence.
        sequence: i64,
        /// Where it went.
        recipients: Vec<Recipient>,
    },
    /// Refused: journalled at `sequence`, NACK journalled at `nack_sequence` and sent.
    Rejected {
        /// Journal sequence of the refused message.
        sequence: i64,
        /// Journal sequence of the NACK.
        nack_sequence: i64,
        /// The stable code (`envelope.…`, `xml.…`, NCTS code).
        code: String,
    },
    /// A redelivery of journal entry `sequence`: acknowledged again.
    Duplicate {
        /// The earlier entry.
        sequence: i64,
    },
    /// Unreadable: journalled at `sequence` and dead-lettered.
    DeadLettered {
        /// Journal sequence.
        sequence: i64,
    },
    /// A reconciliation control message, answered by [`crate::reconcile::handle`].
    Reconciliation {
        /// Its type.
        message_type: String,
    },
}

/// Processing stopped before the delivery was settled; it stays owed and comes again.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The hub store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Forwarding, acknowledging or dead-lettering failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The hub could not build or sign its NACK.
    #[error("pipeline.nack: {0}")]
    Nack(String),
}

impl PipelineError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Store(e) => e.code(),
            PipelineError::Transport(e) => e.code(),
            PipelineError::Nack(_) => "pipeline.nack",
        }
    }
}

/// Everything the pipeline needs besides the transport.
#[derive(Debug)]
pub struct HubServices {
    /// The hub's database.
    pub store: HubStore,
    /// Checks envelopes (no local identity: the hub routes).
    pub verifier: Verifier,
    /// The hub's own message-signing key, for NACKs.
    pub signer: Signer,
    /// Reference data.
    pub reference: ReferenceData,
    /// Thresholds and periods of the guarantee ledger.
    pub ledger: guarantee::LedgerPolicy,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Decoder limits.
    pub limits: Limits,
}

/// The pipeline over one transport.
#[derive(Debug)]
pub struct Pipeline<T> {
    transport: Arc<T>,
    services: Arc<HubServices>,
}

/// What the hub knows of a message before it trusts it.
#[derive(Debug, Clone)]
struct Seen {
    from: String,
    from_country: Option<CountryCode>,
    message_id: String,
    message_type: String,
    recipient: Recipient,
    mrn: Option<String>,
    correlation_id: Option<String>,
    prepared_at: Option<DateTime<Utc>>,
    body_sha256: [u8; 32],
}

impl Seen {
    /// What the envelope header `h` of a delivery from `from` says, with the body's hash.
    fn of_header(from: &PeerIdentity, h: &EnvelopeHeaderFields, body: &[u8]) -> Seen {
        Seen {
            from: from.urn(),
            from_country: from.country(),
            message_id: h.message_id.clone(),
            message_type: h.message_type.clone(),
            recipient: match h.recipient {
                PeerIdentity::Hub => Recipient::Hub,
                PeerIdentity::Node(c) => Recipient::Node(c),
            },
            mrn: h.mrn.clone(),
            correlation_id: h.correlation_id.clone(),
            prepared_at: Some(h.prepared_at),
            body_sha256: sha256(body),
        }
    }
}

/// A delivery that passed every check that needs no store (steps 1 and 3 to 5), is a plain
/// transit message to route (not a ledger message, a request to the hub or a reconciliation
/// message), and so is journalled together with the other clean deliveries of its batch.
#[derive(Debug)]
struct Clean {
    seen: Seen,
    sender: CountryCode,
    signer: String,
    message: message_catalog::Message,
    facts: routing::Facts,
}

/// Steps 1 and 3 to 5 for one delivery, with no I/O (run on the blocking pool). `None` when
/// anything is not plain: [`Pipeline::process`] then takes the delivery alone and gives the
/// exact answer (NACK, dead letter, duplicate, ledger, reconciliation).
fn screen(s: &HubServices, from: &PeerIdentity, wire: &[u8], now: DateTime<Utc>) -> Option<Clean> {
    let parsed = Envelope::parse(wire).ok()?;
    let sender = from.country()?;
    let seen = Seen::of_header(from, &parsed.header.fields, parsed.body);
    let opened = s.verifier.open(wire, from, now).ok()?;
    if message_catalog::lifecycle::reconcile::is_control(&seen.message_type) {
        return None;
    }
    let message = rules::validate(opened.body, &s.limits, Level::Rules).ok()?;
    if crate::refdata::is_node_request(&message) || guarantee::is_ledger_message(&message) {
        return None;
    }
    let (problems, facts) = consistency(s, &seen, &message, sender);
    let facts = facts.filter(|_| problems.is_empty())?;
    Some(Clean {
        seen,
        sender,
        signer: opened.signer.urn(),
        message,
        facts,
    })
}

fn country_label(c: Option<CountryCode>) -> String {
    c.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
}

fn nack_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 10];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("HUB-{}", hex::encode(b))
}

fn rejection(kind: RejectionKind, message_type: &str, problems: Vec<Problem>) -> Rejection {
    Rejection {
        kind,
        problems,
        message_type: Some(message_type.to_owned()),
    }
}

fn one_problem(pointer: &str, code: ErrorCode, label: &'static str, reason: String) -> Problem {
    Problem {
        line: 0,
        column: 0,
        pointer: pointer.to_owned(),
        code,
        label,
        rule: None,
        reason,
    }
}

/// The code journalled for a rejection: the label of an XML error or an envelope error, the
/// NCTS code of a functional one.
fn rejection_code(r: &Rejection) -> String {
    match (r.kind, r.problems.first()) {
        (RejectionKind::Functional, Some(p)) => p.code.to_string(),
        (RejectionKind::Xml, Some(p)) => p.label.to_owned(),
        (_, None) => "rejected".into(),
    }
}

impl<T: Transport> Pipeline<T> {
    /// A pipeline receiving from and routing through `transport`.
    pub fn new(transport: Arc<T>, services: Arc<HubServices>) -> Pipeline<T> {
        Pipeline {
            transport,
            services,
        }
    }

    /// The services.
    pub fn services(&self) -> &Arc<HubServices> {
        &self.services
    }

    /// Receives and processes deliveries until `shutdown` fires or the transport closes.
    /// Errors of one delivery are logged and leave it owed (it comes again).
    pub async fn run(&self, mut shutdown: cats_transport::shutdown::Shutdown) {
        loop {
            let delivery = tokio::select! {
                _ = shutdown.wait() => return,
                d = self.transport.receive() => d,
            };
            match delivery {
                Ok(d) => {
                    if let Err(e) = self.process(d).await {
                        tracing::warn!(code = e.code(), error = %e, "delivery left owed");
                        // The delivery comes again at once: do not spin on a store or
                        // link that is down.
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
                Err(TransportError::Closed) => return,
                Err(e) => {
                    tracing::warn!(code = e.code(), error = %e, "receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Like [`Pipeline::run`], in batches of up to `lanes` deliveries: after waiting for one
    /// delivery it takes those already received (the transport's prefetch bounds them), then
    /// [`Pipeline::process_batch`]. One lane is a batch of one delivery at a time.
    pub async fn run_lanes(
        self: Arc<Self>,
        lanes: usize,
        mut shutdown: cats_transport::shutdown::Shutdown,
    ) where
        T: Send + Sync + 'static,
    {
        use futures::FutureExt;
        let bound = lanes.max(1);
        loop {
            let first = tokio::select! {
                _ = shutdown.wait() => return,
                d = self.transport.receive() => d,
            };
            let mut batch = match first {
                Ok(d) => vec![d],
                Err(TransportError::Closed) => return,
                Err(e) => {
                    tracing::warn!(code = e.code(), error = %e, "receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut closed = false;
            while batch.len() < bound {
                // Both transports' `receive` only wait on a channel: a future dropped before it
                // is ready takes nothing.
                match self.transport.receive().now_or_never() {
                    Some(Ok(d)) => batch.push(d),
                    Some(Err(TransportError::Closed)) => {
                        closed = true;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(code = e.code(), error = %e, "receive failed");
                        break;
                    }
                    None => break,
                }
            }
            if let Err(e) = self.process_batch(batch).await {
                tracing::warn!(code = e.code(), error = %e, "batch left owed");
                // The deliveries come again at once: do not spin on a store or link that is
                // down.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            if closed {
                return;
            }
        }
    }

    /// Processes `batch` (deliveries in the order received) and settles each delivery, with
    /// the effect of [`Pipeline::process`] on each in turn:
    ///
    /// 1. the checks that need no store (envelope, signature, decode, rules, route) run side
    ///    by side on the blocking pool, one chunk of the batch per core;
    /// 2. in batch order, runs of clean deliveries (see [`Clean`]) are journalled together: one
    ///    transaction, one take of the journal lock, the duplicate check for the whole run,
    ///    one multi-row append that continues the chain, the duplicate index, dispatch marks,
    ///    ledger and registry, one commit; then the envelopes are forwarded (each movement's in
    ///    order, movements side by side), the dispatch marks closed and the deliveries acked;
    /// 3. any other delivery (refused, unreadable, a duplicate, a ledger message, a request
    ///    to the hub, reconciliation) ends the run before it and is processed alone, in its
    ///    place, by [`Pipeline::process`]; so does a second delivery with the identification of
    ///    one in the same run.
    ///
    /// Nothing is acknowledged before its commit. On the first error the rest of the batch is
    /// dropped unsettled: the transport delivers it again, in order, and the redelivery check
    /// (step 2 of the module documentation) finishes what was committed.
    pub async fn process_batch(&self, batch: Vec<Delivery>) -> Result<(), PipelineError> {
        let started = Instant::now();
        let now = Utc::now();
        let size = batch.len();
        let (screened, cpu) = self.screen_all(&batch, now).await;
        tracing::debug!(
            size,
            clean = screened.iter().filter(|c| c.is_some()).count(),
            checks_ms = started.elapsed().as_secs_f64() * 1e3,
            checks_cpu_ms = cpu.as_secs_f64() * 1e3,
            "batch checked"
        );
        let mut run: Vec<(Delivery, Clean)> = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (delivery, clean) in batch.into_iter().zip(screened) {
            match clean {
                Some(c) if ids.insert((c.seen.from.clone(), c.seen.message_id.clone())) => {
                    run.push((delivery, c));
                }
                other => {
                    self.settle_clean(std::mem::take(&mut run), now, started)
                        .await?;
                    ids.clear();
                    match other {
                        Some(c) => {
                            ids.insert((c.seen.from.clone(), c.seen.message_id.clone()));
                            run.push((delivery, c));
                        }
                        None => {
                            self.process(delivery).await?;
                        }
                    }
                }
            }
        }
        self.settle_clean(run, now, started).await
    }

    /// [`screen`] for each delivery of `batch`, in order, spread over the cores; with the
    /// CPU time the checks took, summed over the cores.
    async fn screen_all(
        &self,
        batch: &[Delivery],
        now: DateTime<Utc>,
    ) -> (Vec<Option<Clean>>, std::time::Duration) {
        let work: Vec<(PeerIdentity, Bytes)> =
            batch.iter().map(|d| (d.from, d.bytes.clone())).collect();
        if work.len() <= 1 {
            let started = Instant::now();
            let screened = work
                .iter()
                .map(|(from, wire)| screen(&self.services, from, wire, now))
                .collect();
            return (screened, started.elapsed());
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_task = work.len().div_ceil(cores.min(work.len()));
        let mut tasks = Vec::new();
        let mut rest = work;
        while !rest.is_empty() {
            let tail = rest.split_off(per_task.min(rest.len()));
            let chunk = std::mem::replace(&mut rest, tail);
            let services = self.services.clone();
            let len = chunk.len();
            let task = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let screened = chunk
                    .iter()
                    .map(|(from, wire)| screen(&services, from, wire, now))
                    .collect::<Vec<_>>();
                (screened, started.elapsed())
            });
            tasks.push((len, task));
        }
        let mut screened = Vec::with_capacity(batch.len());
        let mut cpu = std::time::Duration::ZERO;
        for (len, task) in tasks {
            match task.await {
                Ok((chunk, took)) => {
                    screened.extend(chunk);
                    cpu += took;
                }
                // A check that panicked: process those deliveries alone.
                Err(e) => {
                    tracing::warn!(error = %e, "checks of a batch chunk failed");
                    screened.extend(std::iter::repeat_with(|| None).take(len));
                }
            }
        }
        (screened, cpu)
    }

    /// Journals, routes and acknowledges a run of clean deliveries (step 2 of
    /// [`Pipeline::process_batch`]).
    async fn settle_clean(
        &self,
        run: Vec<(Delivery, Clean)>,
        now: DateTime<Utc>,
        started: Instant,
    ) -> Result<(), PipelineError> {
        if run.is_empty() {
            return Ok(());
        }
        let s = &self.services;
        let t0 = Instant::now();
        let mut tx = s.store.begin().await?;
        // Under the journal lock, no other hub process journals in between: the duplicate
        // check (same sender and identification, any body) holds until the commit.
        journal::lock(&mut tx).await?;
        let keys: Vec<(&str, &str)> = run
            .iter()
            .map(|(_, c)| (c.seen.from.as_str(), c.seen.message_id.as_str()))
            .collect();
        let taken = journal::journalled_any(&mut tx, &keys).await?;
        if !taken.is_empty() {
            // A redelivery or another body under a known identification: each delivery of
            // the run alone, in order, gets its exact answer.
            drop(tx);
            for (delivery, _) in run {
                self.process(delivery).await?;
            }
            return Ok(());
        }
        for (_, c) in &run {
            s.metrics
                .message_in(&c.seen.message_type, c.sender.as_str());
        }
        let entries = run
            .iter()
            .map(|(d, c)| NewEntry {
                message_id: c.seen.message_id.clone(),
                message_type: c.seen.message_type.clone(),
                sender: c.seen.from.clone(),
                recipients: vec![c.seen.recipient.to_string()],
                mrn: c.seen.mrn.clone(),
                correlation_id: c.seen.correlation_id.clone(),
                prepared_at: c.seen.prepared_at,
                recorded_at: now,
                body_sha256: c.seen.body_sha256,
                envelope: d.bytes.to_vec(),
                signer: Some(c.signer.clone()),
                status: Status::Accepted,
            })
            .collect();
        let t1 = Instant::now();
        let entries = journal::append_all(&mut tx, entries).await?;
        mark_seen_all(
            &mut tx,
            run.iter()
                .zip(&entries)
                .map(|((_, c), e)| (&c.seen, e.sequence)),
        )
        .await?;
        let t2 = Instant::now();
        let mut ledgers = Vec::with_capacity(run.len());
        for ((_, c), entry) in run.iter().zip(&entries) {
            ledgers.push(guarantee::apply(&mut tx, s, &c.message, entry, c.sender, now).await?);
        }
        // The registry and the per-node fold for the whole run: a few statements, not a few
        // per message.
        let recorded: Vec<(&Facts, &journal::Entry)> = run
            .iter()
            .zip(&entries)
            .map(|((_, c), e)| (&c.facts, e))
            .collect();
        registry::record_all(&mut tx, &recorded).await?;
        let recipients: Vec<BTreeSet<Recipient>> = run
            .iter()
            .map(|(_, c)| BTreeSet::from([c.seen.recipient]))
            .collect();
        let folded: Vec<registry::Folded<'_>> = run
            .iter()
            .zip(&entries)
            .zip(&recipients)
            .map(|(((_, c), entry), recipients)| registry::Folded {
                facts: &c.facts,
                message: &c.message,
                sender: c.sender,
                recipients,
                entry,
            })
            .collect();
        registry::fold_all(&mut tx, &folded).await?;
        open_dispatch_all(
            &mut tx,
            entries
                .iter()
                .zip(&ledgers)
                .map(|(e, l)| (e.sequence, l.reply.as_ref().map(|r| r.sequence))),
        )
        .await?;
        let t3 = Instant::now();
        tx.commit().await?;
        let t4 = Instant::now();
        for l in &ledgers {
            s.metrics.guarantee.count(l);
        }

        // Route: each movement's envelopes (and ledger answers) in journal order, movements
        // side by side.
        let mut movements: Vec<Vec<(Bytes, Recipient, Seen)>> = Vec::new();
        let mut movement_of = std::collections::HashMap::new();
        for (((d, c), _), l) in run.iter().zip(&entries).zip(&ledgers) {
            let key = c
                .seen
                .mrn
                .clone()
                .unwrap_or_else(|| c.seen.message_id.clone());
            let at = *movement_of.entry(key).or_insert_with(|| {
                movements.push(Vec::new());
                movements.len() - 1
            });
            let Some(jobs) = movements.get_mut(at) else {
                continue;
            };
            jobs.push((d.bytes.clone(), c.seen.recipient, c.seen.clone()));
            if let Some(r) = &l.reply {
                let answer = Seen {
                    message_id: r.message_id.clone(),
                    message_type: r.message_type.clone(),
                    ..c.seen.clone()
                };
                jobs.push((
                    Bytes::from(r.envelope.clone()),
                    Recipient::Node(r.recipient),
                    answer,
                ));
            }
        }
        futures::future::try_join_all(movements.into_iter().map(|jobs| async move {
            for (wire, to, seen) in jobs {
                self.forward(&wire, &BTreeSet::from([to]), &seen).await?;
            }
            Ok::<(), PipelineError>(())
        }))
        .await?;
        let t5 = Instant::now();
        let first = entries.first().map_or(0, |e| e.sequence);
        let last = entries.last().map_or(0, |e| e.sequence);
        self.close_dispatch_range(first, last).await?;
        let t6 = Instant::now();

        // Acknowledge.
        futures::future::try_join_all(run.into_iter().map(|(d, _)| d.ack())).await?;
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        tracing::debug!(
            size = entries.len(),
            lock_and_duplicates_ms = ms(t0, t1),
            append_ms = ms(t1, t2),
            ledger_and_registry_ms = ms(t2, t3),
            commit_ms = ms(t3, t4),
            forward_ms = ms(t4, t5),
            dispatch_mark_ms = ms(t5, t6),
            ack_ms = ms(t6, Instant::now()),
            "batch settled"
        );
        let elapsed = started.elapsed().as_secs_f64();
        for e in &entries {
            s.metrics.observe_latency(elapsed);
            tracing::info!(
                sequence = e.sequence,
                id = %e.entry.message_id,
                mrn = e.entry.mrn.as_deref().unwrap_or("-"),
                recipients = ?e.entry.recipients,
                "accepted"
            );
        }
        Ok(())
    }

    /// Processes one delivery (see the module documentation) and settles it.
    pub async fn process(&self, delivery: Delivery) -> Result<Outcome, PipelineError> {
        let started = Instant::now();
        let span = tracing::info_span!(
            "message",
            id = %delivery.message_id,
            r#type = tracing::field::Empty,
            mrn = tracing::field::Empty,
            country = %delivery.from,
        );
        let result = self
            .process_inner(delivery, &span)
            .instrument(span.clone())
            .await;
        self.services
            .metrics
            .observe_latency(started.elapsed().as_secs_f64());
        match &result {
            Ok(outcome) => span.in_scope(|| tracing::debug!(?outcome, "processed")),
            Err(e) => span.in_scope(|| tracing::warn!(code = e.code(), error = %e, "not settled")),
        }
        result
    }

    async fn process_inner(
        &self,
        delivery: Delivery,
        span: &tracing::Span,
    ) -> Result<Outcome, PipelineError> {
        let s = &self.services;
        let now = Utc::now();
        let wire = delivery.bytes.clone();
        let from = delivery.from;
        let from_country = from.country();

        // 1. The envelope must at least parse.
        let parsed = match Envelope::parse(&wire) {
            Ok(p) => p,
            Err(e) => {
                let seen = Seen {
                    from: from.urn(),
                    from_country,
                    message_id: delivery.message_id.clone(),
                    message_type: "unknown".into(),
                    recipient: Recipient::Hub,
                    mrn: delivery.partition_key.clone(),
                    correlation_id: None,
                    prepared_at: None,
                    body_sha256: sha256(&wire),
                };
                s.metrics
                    .message_in("unknown", &country_label(from_country));
                if let Some(seq) = self.seen_before(&seen).await? {
                    delivery.reject(&format!("{}: {e}", e.code())).await?;
                    return Ok(Outcome::Duplicate { sequence: seq });
                }
                return self
                    .dead_letter(delivery, seen, e.code(), &e.to_string(), now)
                    .await;
            }
        };
        let h = &parsed.header.fields;
        span.record("type", h.message_type.as_str());
        if let Some(m) = &h.mrn {
            span.record("mrn", m.as_str());
        }
        let seen = Seen::of_header(&from, h, parsed.body);
        s.metrics
            .message_in(&seen.message_type, &country_label(from_country));

        // 2. Exact redelivery.
        if let Some(seq) = self.seen_before(&seen).await? {
            return self.duplicate(delivery, seq, &seen).await;
        }
        let Some(sender) = from_country else {
            // Only nodes deliver to the hub's inbound side.
            return self
                .dead_letter(
                    delivery,
                    seen,
                    "hub.not-a-node",
                    "delivered by the hub itself",
                    now,
                )
                .await;
        };

        // 3. Signature, signer, sender = transport identity.
        let opened = match s.verifier.open(&wire, &from, now) {
            Ok(o) => o,
            Err(e) => {
                let r = rejection(
                    RejectionKind::Xml,
                    &seen.message_type,
                    vec![one_problem(
                        "/",
                        ErrorCode::XML_OTHER,
                        e.code(),
                        e.to_string(),
                    )],
                );
                return self.reject(delivery, &seen, None, sender, r, now).await;
            }
        };
        let signer = Some(opened.signer.urn());

        // Reconciliation control messages (issue 7) are answered, not journalled or routed.
        if message_catalog::lifecycle::reconcile::is_control(&seen.message_type)
            && seen.recipient == Recipient::Hub
        {
            return crate::reconcile::handle(
                &*self.transport,
                s,
                delivery,
                sender,
                &seen.message_id,
                &seen.message_type,
                opened.body,
            )
            .await;
        }

        // 4. Strict decode and rules.
        let message = match rules::validate(opened.body, &s.limits, Level::Rules) {
            Ok(m) => m,
            Err(r) => return self.reject(delivery, &seen, signer, sender, r, now).await,
        };

        // Requests a node makes of the hub itself: reference data (CA006C), registration
        // (CA003C).
        if crate::refdata::is_node_request(&message) {
            return self
                .node_request(delivery, &seen, signer, sender, &message, now)
                .await;
        }

        // 5. Header/body consistency and reference checks.
        let root = message.message_type();
        let (mut problems, facts) = consistency(s, &seen, &message, sender);
        if problems.is_empty() && guarantee::is_ledger_message(&message) {
            problems.extend(guarantee::check(&s.store, &message).await?);
        }
        let Some(facts) = facts.filter(|_| problems.is_empty()) else {
            let r = rejection(RejectionKind::Functional, root, problems);
            return self.reject(delivery, &seen, signer, sender, r, now).await;
        };
        let recipients = BTreeSet::from([seen.recipient]);

        // 6. Same identification, other body.
        if self.id_taken(&seen).await? {
            let r = rejection(
                RejectionKind::Functional,
                root,
                vec![one_problem(
                    &format!("/{root}/messageIdentification"),
                    ErrorCode::DUPLICATE,
                    "hub.duplicate-id",
                    format!(
                        "message {} was already received from {} with another body",
                        seen.message_id, sender
                    ),
                )],
            );
            return self.reject(delivery, &seen, signer, sender, r, now).await;
        }

        // 7. Journal, duplicate index, dispatch mark and registry, together.
        let entry = NewEntry {
            message_id: seen.message_id.clone(),
            message_type: seen.message_type.clone(),
            sender: seen.from.clone(),
            recipients: recipients.iter().map(ToString::to_string).collect(),
            mrn: seen.mrn.clone(),
            correlation_id: seen.correlation_id.clone(),
            prepared_at: seen.prepared_at,
            recorded_at: now,
            body_sha256: seen.body_sha256,
            envelope: wire.to_vec(),
            signer,
            status: Status::Accepted,
        };
        let mut tx = s.store.begin().await?;
        // Another hub process (several share one database when the inbound queue is
        // partitioned) may have journalled this message since steps 2 and 6: decided again
        // under the journal lock. If so, start over: step 2 or 6 now answers.
        journal::lock(&mut tx).await?;
        if journal::journalled(&mut tx, &seen.from, &seen.message_id).await? {
            drop(tx);
            tracing::info!("journalled meanwhile by another hub process; checking again");
            return Box::pin(self.process_inner(delivery, span)).await;
        }
        let entry = journal::append(&mut tx, entry).await?;
        mark_seen(&mut tx, &seen, entry.sequence).await?;
        // The guarantee ledger; its answer (journalled) is what a redelivery sends again.
        let ledger = guarantee::apply(&mut tx, s, &message, &entry, sender, now).await?;
        let reply = ledger.reply.as_ref();
        open_dispatch(&mut tx, entry.sequence, reply.map(|r| r.sequence)).await?;
        registry::record(&mut tx, &facts, &entry).await?;
        registry::fold(&mut tx, &facts, &message, sender, &recipients, &entry).await?;
        tx.commit().await?;
        s.metrics.guarantee.count(&ledger);

        // 8. Route the same envelope, and the ledger's answer.
        self.forward(&wire, &recipients, &seen).await?;
        if let Some(r) = reply {
            let answer = Seen {
                message_id: r.message_id.clone(),
                message_type: r.message_type.clone(),
                ..seen.clone()
            };
            let to = BTreeSet::from([Recipient::Node(r.recipient)]);
            self.forward(&Bytes::from(r.envelope.clone()), &to, &answer)
                .await?;
        }
        self.close_dispatch(entry.sequence).await?;

        // 9. Acknowledge.
        delivery.ack().await?;
        tracing::info!(sequence = entry.sequence, recipients = ?recipients, "accepted");
        Ok(Outcome::Accepted {
            sequence: entry.sequence,
            recipients: recipients.into_iter().collect(),
        })
    }

    /// A CA006C (answered with the whole reference data) or a CA003C (recorded as a pending
    /// registration, or refused at once with a CA004C): journalled as accepted for the hub; the
    /// answer is signed, journalled and owed in the same transaction, and the reference-data
    /// dispatcher sends it.
    async fn node_request(
        &self,
        delivery: Delivery,
        seen: &Seen,
        signer: Option<String>,
        sender: CountryCode,
        message: &message_catalog::Message,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PipelineError> {
        use crate::refdata::RefdataError;
        use crate::registrations::{self, Application, Register, RegistrationError};
        use message_catalog::Message;
        let s = &self.services;
        let root = message.message_type();
        if root != seen.message_type
            || message.message_identification() != Some(seen.message_id.as_str())
            || seen.recipient != Recipient::Hub
        {
            let r = rejection(
                RejectionKind::Functional,
                root,
                vec![one_problem(
                    &format!("/{root}"),
                    ErrorCode::RULE,
                    "hub.header",
                    format!(
                        "the envelope's type, identification or recipient is not the body's \
                         ({root} goes to the hub)"
                    ),
                )],
            );
            return self.reject(delivery, seen, signer, sender, r, now).await;
        }
        if self.id_taken(seen).await? {
            let r = rejection(
                RejectionKind::Functional,
                root,
                vec![one_problem(
                    &format!("/{root}/messageIdentification"),
                    ErrorCode::DUPLICATE,
                    "hub.duplicate-id",
                    format!(
                        "message {} was already received from {} with another body",
                        seen.message_id, sender
                    ),
                )],
            );
            return self.reject(delivery, seen, signer, sender, r, now).await;
        }
        let refdata_error = |e: RefdataError| match e {
            RefdataError::Store(e) => PipelineError::Store(e),
            other => PipelineError::Nack(other.to_string()),
        };
        let mut tx = s.store.begin().await?;
        let entry = journal::append(
            &mut tx,
            NewEntry {
                message_id: seen.message_id.clone(),
                message_type: seen.message_type.clone(),
                sender: seen.from.clone(),
                recipients: vec![Recipient::Hub.to_string()],
                mrn: None,
                correlation_id: seen.correlation_id.clone(),
                prepared_at: seen.prepared_at,
                recorded_at: now,
                body_sha256: seen.body_sha256,
                envelope: delivery.bytes.to_vec(),
                signer,
                status: Status::Accepted,
            },
        )
        .await?;
        mark_seen(&mut tx, seen, entry.sequence).await?;
        match message {
            Message::CA006C(m) => {
                let held = u64::try_from(m.reference_data_request.version_number).unwrap_or(0);
                crate::refdata::answer_request(&mut tx, s, sender, held, &seen.message_id, now)
                    .await
                    .map_err(refdata_error)?;
            }
            Message::CA003C(m) => {
                let a = &m.trader_application;
                let app = Application {
                    role: Register::of_code(a.role),
                    tin: a.identification_number.clone(),
                    name: a.name.clone(),
                    country: a.country.clone(),
                    valid_from: a.validity_start_date,
                    valid_until: a.validity_end_date,
                };
                let source = format!("node:{sender}");
                match registrations::apply_in(
                    &mut tx,
                    s,
                    &app,
                    &source,
                    Some(&seen.message_id),
                    now,
                )
                .await
                {
                    Ok(r) => tracing::info!(id = r.id, "registration application recorded"),
                    Err(RegistrationError::Refdata(e)) => return Err(refdata_error(e)),
                    Err(why) => {
                        tracing::info!(code = why.code(), error = %why, "application refused");
                        registrations::refuse_message_in(
                            &mut tx,
                            s,
                            sender,
                            &app,
                            &seen.message_id,
                            &why,
                            now,
                        )
                        .await
                        .map_err(refdata_error)?;
                    }
                }
            }
            _ => {}
        }
        open_dispatch(&mut tx, entry.sequence, None).await?;
        tx.commit().await?;
        crate::refdata::wake();
        self.close_dispatch(entry.sequence).await?;
        delivery.ack().await?;
        Ok(Outcome::Accepted {
            sequence: entry.sequence,
            recipients: vec![Recipient::Hub],
        })
    }

    async fn forward(
        &self,
        wire: &Bytes,
        recipients: &BTreeSet<Recipient>,
        seen: &Seen,
    ) -> Result<(), PipelineError> {
        for r in recipients {
            if let Recipient::Node(country) = r {
                self.transport
                    .send(Outbound {
                        message_id: seen.message_id.clone(),
                        destination: Destination::Node(*country),
                        partition_key: seen.mrn.clone(),
                        bytes: wire.clone(),
                    })
                    .await?;
                self.services
                    .metrics
                    .message_out(&seen.message_type, country.as_str());
            }
        }
        Ok(())
    }

    async fn seen_before(&self, seen: &Seen) -> Result<Option<i64>, StoreError> {
        let mut tx = self.services.store.begin().await?;
        let seq: Option<i64> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
                "SELECT sequence FROM hub_seen WHERE sender = $1 AND message_id = $2 \
                 AND body_sha256 = $3",
            )
            .bind(&seen.from)
            .bind(&seen.message_id)
            .bind(seen.body_sha256.as_slice())
            .fetch_optional(&mut *c)
            .await?
        });
        tx.commit().await?;
        Ok(seq)
    }

    async fn id_taken(&self, seen: &Seen) -> Result<bool, StoreError> {
        let mut tx = self.services.store.begin().await?;
        let n: i64 = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM hub_seen WHERE sender = $1 AND message_id = $2",
            )
            .bind(&seen.from)
            .bind(&seen.message_id)
            .fetch_one(&mut *c)
            .await?
        });
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn close_dispatch(&self, sequence: i64) -> Result<(), StoreError> {
        let mut tx = self.services.store.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query("UPDATE hub_dispatch SET dispatched_at = $2 WHERE sequence = $1")
                .bind(sequence)
                .bind(now_millis())
                .execute(&mut *c)
                .await?;
        });
        tx.commit().await
    }

    /// Marks the entries `first..=last` (one batch, consecutive under the journal lock) as
    /// dispatched.
    async fn close_dispatch_range(&self, first: i64, last: i64) -> Result<(), StoreError> {
        let mut tx = self.services.store.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE hub_dispatch SET dispatched_at = $3 WHERE sequence >= $1 AND sequence <= $2",
            )
            .bind(first)
            .bind(last)
            .bind(now_millis())
            .execute(&mut *c)
            .await?;
        });
        tx.commit().await
    }

    /// A redelivery: finish what the first processing may not have, then acknowledge.
    async fn duplicate(
        &self,
        delivery: Delivery,
        sequence: i64,
        seen: &Seen,
    ) -> Result<Outcome, PipelineError> {
        let s = &self.services;
        s.metrics
            .duplicate(&seen.message_type, &country_label(seen.from_country));
        let mut tx = s.store.begin().await?;
        let dispatch: Option<(Option<i64>, Option<i64>)> = on_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT nack_sequence, dispatched_at FROM hub_dispatch WHERE sequence = $1",
            )
            .bind(sequence)
            .fetch_optional(&mut *c)
            .await
            .map_err(StoreError::from)?
        });
        tx.commit().await?;
        if let Some((nack, None)) = dispatch {
            let target = nack.unwrap_or(sequence);
            if let Some(e) = journal::entry(&s.store, target).await? {
                let recipients: BTreeSet<Recipient> = e
                    .entry
                    .recipients
                    .iter()
                    .filter_map(|r| Recipient::parse(r))
                    .collect();
                let again = Seen {
                    message_id: e.entry.message_id.clone(),
                    message_type: e.entry.message_type.clone(),
                    mrn: e.entry.mrn.clone(),
                    ..seen.clone()
                };
                self.forward(&Bytes::from(e.entry.envelope), &recipients, &again)
                    .await?;
                tracing::info!(sequence, "dispatch completed on redelivery");
            }
            self.close_dispatch(sequence).await?;
        }
        if dispatch.is_none() {
            // Dead-lettered unreadable envelope: dead-letter the redelivery too.
            delivery
                .reject("duplicate of a dead-lettered envelope")
                .await?;
        } else {
            delivery.ack().await?;
        }
        tracing::info!(sequence, "duplicate acknowledged");
        Ok(Outcome::Duplicate { sequence })
    }

    async fn dead_letter(
        &self,
        delivery: Delivery,
        seen: Seen,
        code: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PipelineError> {
        let s = &self.services;
        s.metrics
            .rejected(&seen.message_type, &country_label(seen.from_country), code);
        let mut tx = s.store.begin().await?;
        let entry = journal::append(
            &mut tx,
            NewEntry {
                message_id: seen.message_id.clone(),
                message_type: seen.message_type.clone(),
                sender: seen.from.clone(),
                recipients: Vec::new(),
                mrn: seen.mrn.clone(),
                correlation_id: None,
                prepared_at: seen.prepared_at,
                recorded_at: now,
                body_sha256: seen.body_sha256,
                envelope: delivery.bytes.to_vec(),
                signer: None,
                status: Status::Rejected {
                    code: code.to_owned(),
                    reason: reason.to_owned(),
                },
            },
        )
        .await?;
        mark_seen(&mut tx, &seen, entry.sequence).await?;
        tx.commit().await?;
        delivery.reject(&format!("{code}: {reason}")).await?;
        tracing::warn!(sequence = entry.sequence, code, reason, "dead-lettered");
        Ok(Outcome::DeadLettered {
            sequence: entry.sequence,
        })
    }

    /// Journals the refusal and the hub's NACK, sends the NACK to the sender's node, acks.
    async fn reject(
        &self,
        delivery: Delivery,
        seen: &Seen,
        signer: Option<String>,
        sender: CountryCode,
        rejection: Rejection,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PipelineError> {
        let s = &self.services;
        let code = rejection_code(&rejection);
        let reason = rejection.to_string();
        tracing::info!(code, reason, "rejected");

        // The NACK, addressed to the node that delivered the message (never to a country
        // the message merely claims to come from).
        let original = OriginalHeader {
            message_sender: Some(format!("NTA.{sender}")),
            message_identification: Some(seen.message_id.clone()),
            lrn: None,
            mrn: seen.mrn.clone(),
        };
        // NCTS times have whole seconds.
        let now = now.with_nanosecond(0).unwrap_or(now);
        let id = nack_id();
        let ctx = NackContext {
            sender: HUB_ADDRESS,
            message_identification: &id,
            prepared_at: now.naive_utc(),
            domain: Some(Domain::Common),
        };
        let nack = match rejection.to_nack(&original, &ctx) {
            Ok(m) => Ok(m),
            // A CD906C needs an MRN; without one the refusal travels as a CD917C.
            Err(message_catalog::codec::nack::NackError::NoMrn) => {
                let mut r = rejection.clone();
                r.kind = RejectionKind::Xml;
                r.to_nack(&original, &ctx)
            }
            Err(e) => Err(e),
        };
        let nack = match nack {
            Ok(m) => m,
            Err(e) => {
                // No NACK can be built: dead-letter rather than retry for ever.
                let why = format!("{reason}; no NACK could be built: {e}");
                return self
                    .dead_letter(delivery, seen.clone(), &code, &why, now)
                    .await;
            }
        };
        s.metrics
            .rejected(&seen.message_type, sender.as_str(), &code);
        let body = encode(&nack);
        let nack_type = nack.message_type().to_owned();
        let fields = EnvelopeHeaderFields {
            message_id: id.clone(),
            message_type: nack_type.clone(),
            sender: PeerIdentity::Hub,
            recipient: PeerIdentity::Node(sender),
            correlation_id: Some(seen.message_id.clone()),
            mrn: seen.mrn.clone(),
            prepared_at: now,
        };
        let sealed = s
            .signer
            .seal(&fields, &body)
            .map_err(|e| PipelineError::Nack(e.to_string()))?;

        let mut tx = s.store.begin().await?;
        let refused = journal::append(
            &mut tx,
            NewEntry {
                message_id: seen.message_id.clone(),
                message_type: seen.message_type.clone(),
                sender: seen.from.clone(),
                recipients: Vec::new(),
                mrn: seen.mrn.clone(),
                correlation_id: seen.correlation_id.clone(),
                prepared_at: seen.prepared_at,
                recorded_at: now,
                body_sha256: seen.body_sha256,
                envelope: delivery.bytes.to_vec(),
                signer,
                status: Status::Rejected {
                    code: code.clone(),
                    reason,
                },
            },
        )
        .await?;
        let nack_entry = journal::append(
            &mut tx,
            NewEntry {
                message_id: id.clone(),
                message_type: nack_type.clone(),
                sender: PeerIdentity::Hub.urn(),
                recipients: vec![Recipient::Node(sender).to_string()],
                mrn: seen.mrn.clone(),
                correlation_id: Some(seen.message_id.clone()),
                prepared_at: Some(now),
                recorded_at: now,
                body_sha256: sha256(&body),
                envelope: sealed.clone(),
                signer: Some(s.signer.identity().urn()),
                status: Status::Emitted,
            },
        )
        .await?;
        mark_seen(&mut tx, seen, refused.sequence).await?;
        open_dispatch(&mut tx, refused.sequence, Some(nack_entry.sequence)).await?;
        tx.commit().await?;

        let nack_seen = Seen {
            message_id: id,
            message_type: nack_type,
            ..seen.clone()
        };
        self.forward(
            &Bytes::from(sealed),
            &BTreeSet::from([Recipient::Node(sender)]),
            &nack_seen,
        )
        .await?;
        self.close_dispatch(refused.sequence).await?;
        delivery.ack().await?;
        Ok(Outcome::Rejected {
            sequence: refused.sequence,
            nack_sequence: nack_entry.sequence,
            code,
        })
    }
}

/// Step 5: whether the envelope header agrees with the body, the recipient is one the route
/// allows, and the route passes the reference checks; the routing facts when the message is
/// routable.
fn consistency(
    s: &HubServices,
    seen: &Seen,
    message: &message_catalog::Message,
    sender: CountryCode,
) -> (Vec<Problem>, Option<routing::Facts>) {
    let root = message.message_type();
    let mut problems = Vec::new();
    if root != seen.message_type {
        problems.push(one_problem(
            &format!("/{root}/messageType"),
            ErrorCode::RULE,
            "hub.header-type",
            format!(
                "the envelope says {} but the body is {root}",
                seen.message_type
            ),
        ));
    }
    if message.message_identification() != Some(seen.message_id.as_str()) {
        problems.push(one_problem(
            &format!("/{root}/messageIdentification"),
            ErrorCode::RULE,
            "hub.header-id",
            "the body's messageIdentification is not the envelope's".into(),
        ));
    }
    let facts = routing::facts(message);
    match &facts {
        None => problems.push(one_problem(
            &format!("/{root}"),
            ErrorCode::RULE,
            "hub.not-routable",
            format!("{root} is not a message a node sends to the hub"),
        )),
        Some(f) => {
            // The signed header names the final recipient; it must be one the route
            // allows, and it is the only one the envelope goes to.
            let allowed = routing::recipients(f);
            if !allowed.contains(&seen.recipient) {
                let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                problems.push(one_problem(
                    &format!("/{root}/messageRecipient"),
                    ErrorCode::RULE,
                    "hub.recipient",
                    format!(
                        "addressed to {}, but this {root} goes to [{}]",
                        seen.recipient,
                        list.join(", ")
                    ),
                ));
            }
            if f.mrn != seen.mrn {
                problems.push(one_problem(
                    &format!("/{root}/TransitOperation/MRN"),
                    ErrorCode::RULE,
                    "hub.header-mrn",
                    "the body's MRN is not the envelope's".into(),
                ));
            }
            problems.extend(routing::check(f, sender, &crate::refdata::current(s)));
        }
    }
    (problems, facts)
}

async fn mark_seen(tx: &mut HubTx<'_>, seen: &Seen, sequence: i64) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO hub_seen (sender, message_id, body_sha256, sequence) VALUES ($1, $2, $3, $4)",
        )
        .bind(&seen.from)
        .bind(&seen.message_id)
        .bind(seen.body_sha256.as_slice())
        .bind(sequence)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// [`mark_seen`] for each `(seen, sequence)`, in one statement.
async fn mark_seen_all<'a>(
    tx: &mut HubTx<'_>,
    rows: impl Iterator<Item = (&'a Seen, i64)>,
) -> Result<(), StoreError> {
    let rows: Vec<(&Seen, i64)> = rows.collect();
    for chunk in rows.chunks(1000) {
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO hub_seen (sender, message_id, body_sha256, sequence) ",
            );
            q.push_values(chunk, |mut b, (seen, sequence)| {
                b.push_bind(seen.from.as_str())
                    .push_bind(seen.message_id.as_str())
                    .push_bind(seen.body_sha256.as_slice())
                    .push_bind(*sequence);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

/// [`open_dispatch`] for each `(sequence, nack_sequence)`, in one statement.
async fn open_dispatch_all(
    tx: &mut HubTx<'_>,
    rows: impl Iterator<Item = (i64, Option<i64>)>,
) -> Result<(), StoreError> {
    let rows: Vec<(i64, Option<i64>)> = rows.collect();
    for chunk in rows.chunks(1000) {
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO hub_dispatch (sequence, nack_sequence, dispatched_at) ",
            );
            q.push_values(chunk, |mut b, (sequence, nack)| {
                b.push_bind(*sequence)
                    .push_bind(*nack)
                    .push_bind(None::<i64>);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

async fn open_dispatch(
    tx: &mut HubTx<'_>,
    sequence: i64,
    nack_sequence: Option<i64>,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO hub_dispatch (sequence, nack_sequence, dispatched_at) VALUES ($1, $2, NULL)",
        )
        .bind(sequence)
        .bind(nack_sequence)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}
