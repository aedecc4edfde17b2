//! The master copy of the CATS reference data, its distribution to the nodes, and what nodes
//! ask of it.
//!
//! **Versions.** Every version is stored whole (`hub_refdata_versions`, migration 0005: the
//! JSON of a [`ReferenceSet`], who made it, when and why) and every record it changed is an
//! audit row (`hub_refdata_audit`: section, key, old and new value). The first start seeds the
//! store from the configured set (the pilot set by default). [`current`] is the version in
//! force; the pipeline's reference checks and the guarantee ledger read it. The exchange-rate
//! table is not a keyed section, but a change to it alone is a change like any other: one
//! audit row (section `exchange-rate`, key `CURRENCY:valid_from`) per entry added, changed or
//! removed, and the table travels whole in the CA005C. A version that writes a contract also
//! writes its terms into the ledger's row in the same transaction
//! ([`crate::guarantee::register_in`]).
//!
//! **Changes** ([`make_change`]): a [`Change`] is applied to the latest version and checked
//! ([`ReferenceSet::apply`]: unknown key, unknown country, overlapping contracts … are refused
//! and nothing is written). In the same transaction the hub signs, for every participating
//! country, a CA005C carrying the change and the version it follows (`previousVersionNumber`),
//! journals it as emitted, and records it as owed (`hub_refdata_dispatch`). The dispatcher
//! ([`run_dispatcher`]) hands what is owed to the transport (the node's durable queue on the
//! direct link, the broker on AMQP), so a node that is offline gets every version, in order,
//! when it comes back.
//!
//! **A node that is behind** (it received a CA005C whose `previousVersionNumber` is not the
//! version it holds: a message lost, a node restored from a backup) sends a CA006C with the
//! version it holds; the hub answers with a CA005C carrying the whole set at the current
//! version and no `previousVersionNumber` ([`answer_request`]).
//!
//! **Registrations** are in [`crate::registrations`]; an approval, suspension or revocation is
//! a change like any other, distributed the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cats_transport::contract::{Destination, Outbound};
use cats_trust::{EnvelopeHeaderFields, PeerIdentity};
use chrono::{DateTime, Timelike, Utc};
use message_catalog::Message;
use message_catalog::codec::encode;
use message_catalog::ids::CountryCode;
use message_catalog::reference::update::{
    AuditEntry, Change, Section, Update, UpdateHeader, update_message,
};
use message_catalog::reference::{
    ExchangeRate, GuaranteeRefusal, ReferenceData, ReferenceError, ReferenceSet,
};
use serde::{Deserialize, Serialize};

use crate::dead_letters::Replay;
use crate::journal::{self, NewEntry, Status, sha256};
use crate::pipeline::HubServices;
use crate::routing::{HUB_ADDRESS, Recipient};
use crate::store::{HubStore, HubTx, StoreError, now_millis, on_tx};

/// A reference-data operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RefdataError {
    /// The change or the set is not valid; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ReferenceError),
    /// A request that cannot be carried out (bad parameter, nothing to change).
    #[error("refdata.bad-request: {0}")]
    BadRequest(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("refdata.seal: {0}")]
    Seal(String),
}

impl RefdataError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RefdataError::Invalid(e) => e.code(),
            RefdataError::BadRequest(_) => "refdata.bad-request",
            RefdataError::Store(e) => e.code(),
            RefdataError::Seal(_) => "refdata.seal",
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            RefdataError::Invalid(_) | RefdataError::BadRequest(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RefdataError::Store(_) | RefdataError::Seal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// The reference data in force: the master copy's latest version once it is open, the
/// configured set before (a hub assembled without [`open`], as some tests do).
pub fn current(services: &HubServices) -> Arc<ReferenceData> {
    let live = services
        .store
        .reference
        .read()
        .map(|g| g.clone())
        .unwrap_or_default();
    live.unwrap_or_else(|| Arc::new(services.reference.clone()))
}

/// The guarantee ledger's eligibility hook: a holder whose AEO or authorised-trader
/// registration is suspended or revoked may not use a comprehensive guarantee (refused as
/// holder not covered), from the moment the version that says so is in force.
pub fn holder_eligible(reference: &ReferenceData, holder: &str) -> Result<(), GuaranteeRefusal> {
    match reference.withdrawn_registration(holder) {
        Some(_) => Err(GuaranteeRefusal::HolderNotCovered),
        None => Ok(()),
    }
}

fn set_live(store: &HubStore, data: ReferenceData) {
    if let Ok(mut g) = store.reference.write() {
        *g = Some(Arc::new(data));
    }
}

/// The latest version of the master copy as `tx` sees it (the configured set before the
/// master copy is open).
pub async fn latest_in(
    tx: &mut HubTx<'_>,
    services: &HubServices,
) -> Result<ReferenceSet, StoreError> {
    Ok(match latest(tx).await? {
        Some(s) => s,
        None => current(services).to_set(),
    })
}

async fn latest(tx: &mut HubTx<'_>) -> Result<Option<ReferenceSet>, StoreError> {
    let row: Option<String> = on_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT snapshot FROM hub_refdata_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&mut *c)
        .await?
    });
    row.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("reference data snapshot", e)))
        .transpose()
}

/// Arbitrary constant for `pg_advisory_xact_lock` around seeding the reference data
/// (`"CATSREFD"`).
const PG_SEED_LOCK: i64 = 0x4341_5453_5245_4644;

/// Opens the master copy: seeds it with `seed` when the store has no version yet, and puts the
/// latest version in force. Returns it.
pub async fn open(
    store: &HubStore,
    seed: &ReferenceData,
) -> Result<Arc<ReferenceData>, RefdataError> {
    let mut tx = store.begin().await?;
    // Two hub processes starting together on one empty PostgreSQL database would both find no
    // version and both insert version 1: the second waits here and then finds the first's.
    if let HubTx::Postgres(t) = &mut tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_SEED_LOCK)
            .execute(&mut **t)
            .await
            .map_err(StoreError::from)?;
    }
    let set = match latest(&mut tx).await? {
        Some(s) => s,
        None => {
            let set = seed.to_set();
            insert_version(
                &mut tx,
                &set,
                "seed",
                "the configured reference data",
                now_millis(),
            )
            .await?;
            let empty = ReferenceSet {
                version: 0,
                countries: Vec::new(),
                offices: Vec::new(),
                insurers: Vec::new(),
                insurance_contracts: Vec::new(),
                traders: Vec::new(),
                restricted_goods: Vec::new(),
                exchange_rates: Vec::new(),
            };
            insert_audit(
                &mut tx,
                set.version,
                "seed",
                &empty.audit(&set)?,
                now_millis(),
            )
            .await?;
            set
        }
    };
    tx.commit().await?;
    let data = ReferenceData::from_set(set)?;
    set_live(store, data.clone());
    Ok(Arc::new(data))
}

async fn insert_version(
    tx: &mut HubTx<'_>,
    set: &ReferenceSet,
    actor: &str,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    let snapshot = serde_json::to_string(set).map_err(|e| corrupt("reference data", e))?;
    let version = i64::try_from(set.version).map_err(|e| corrupt("version", e))?;
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO hub_refdata_versions (version, recorded_at, actor, reason, snapshot) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version)
        .bind(at)
        .bind(actor)
        .bind(reason)
        .bind(&snapshot)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

async fn insert_audit(
    tx: &mut HubTx<'_>,
    version: u64,
    actor: &str,
    entries: &[AuditEntry],
    at: i64,
) -> Result<(), StoreError> {
    let version = i64::try_from(version).map_err(|e| corrupt("version", e))?;
    for e in entries {
        let old = e.old.as_ref().map(|v| v.to_string());
        let new = e.new.as_ref().map(|v| v.to_string());
        on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO hub_refdata_audit \
                 (version, recorded_at, actor, section, record_key, old_value, new_value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(version)
            .bind(at)
            .bind(actor)
            .bind(e.section.as_str())
            .bind(&e.key)
            .bind(old)
            .bind(new)
            .execute(&mut *c)
            .await?;
        });
    }
    Ok(())
}

/// The section name of the exchange-rate rows in `hub_refdata_audit`.
pub const RATE_SECTION: &str = "exchange-rate";

/// One entry of the rate table added, changed or removed, keyed `CURRENCY:valid_from`.
#[derive(Debug, Clone, PartialEq)]
struct RateAudit {
    key: String,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
}

/// The entries of the rate table that differ between `old` and `new` (the table is not a keyed
/// section of the set, so [`ReferenceSet::audit`] does not list them).
fn rate_audit(old: &[ExchangeRate], new: &[ExchangeRate]) -> Vec<RateAudit> {
    let keyed = |list: &[ExchangeRate]| -> BTreeMap<String, serde_json::Value> {
        list.iter()
            .map(|r| {
                (
                    format!("{}:{}", r.currency, r.valid_from),
                    serde_json::to_value(r).unwrap_or_default(),
                )
            })
            .collect()
    };
    let (a, b) = (keyed(old), keyed(new));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| RateAudit {
            key: k.clone(),
            old: a.get(k).cloned(),
            new: b.get(k).cloned(),
        })
        .collect()
}

async fn insert_rate_audit(
    tx: &mut HubTx<'_>,
    version: u64,
    actor: &str,
    entries: &[RateAudit],
    at: i64,
) -> Result<(), StoreError> {
    let version = i64::try_from(version).map_err(|e| corrupt("version", e))?;
    for e in entries {
        let old = e.old.as_ref().map(|v| v.to_string());
        let new = e.new.as_ref().map(|v| v.to_string());
        on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO hub_refdata_audit \
                 (version, recorded_at, actor, section, record_key, old_value, new_value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(version)
            .bind(at)
            .bind(actor)
            .bind(RATE_SECTION)
            .bind(&e.key)
            .bind(old)
            .bind(new)
            .execute(&mut *c)
            .await?;
        });
    }
    Ok(())
}

fn message_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 10];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("HUB-{}", hex::encode(b))
}

/// A message the hub authored for a node, signed, journalled and owed.
#[derive(Debug, Clone)]
pub struct Owed {
    /// Its message identification.
    pub message_id: String,
    /// Its type.
    pub message_type: String,
    /// The node.
    pub country: CountryCode,
    /// The signed envelope.
    pub envelope: Vec<u8>,
    /// Its journal sequence.
    pub sequence: i64,
}

/// Signs `message` for `country`'s node, journals it as emitted and records it as owed,
/// inside `tx`.
pub async fn emit(
    tx: &mut HubTx<'_>,
    services: &HubServices,
    message: &Message,
    country: CountryCode,
    version: u64,
    correlation: Option<String>,
    now: DateTime<Utc>,
) -> Result<Owed, RefdataError> {
    let id = message
        .message_identification()
        .unwrap_or_default()
        .to_owned();
    let ty = message.message_type().to_owned();
    let body = encode(message);
    let fields = EnvelopeHeaderFields {
        message_id: id.clone(),
        message_type: ty.clone(),
        sender: PeerIdentity::Hub,
        recipient: PeerIdentity::Node(country),
        correlation_id: correlation.clone(),
        mrn: None,
        prepared_at: now,
    };
    let sealed = services
        .signer
        .seal(&fields, &body)
        .map_err(|e| RefdataError::Seal(e.to_string()))?;
    let entry = journal::append(
        tx,
        NewEntry {
            message_id: id.clone(),
            message_type: ty.clone(),
            sender: PeerIdentity::Hub.urn(),
            recipients: vec![Recipient::Node(country).to_string()],
            mrn: None,
            correlation_id: correlation,
            prepared_at: Some(now),
            recorded_at: now,
            body_sha256: sha256(&body),
            envelope: sealed.clone(),
            signer: Some(services.signer.identity().urn()),
            status: Status::Emitted,
        },
    )
    .await?;
    let v = i64::try_from(version).map_err(|e| corrupt("version", e))?;
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO hub_refdata_dispatch (version, country, message_id, envelope, sent_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(v)
        .bind(country.as_str())
        .bind(&id)
        .bind(&sealed)
        .execute(&mut *c)
        .await
        .map_err(StoreError::from)?;
    });
    Ok(Owed {
        message_id: id,
        message_type: ty,
        country,
        envelope: sealed,
        sequence: entry.sequence,
    })
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

fn update_for(country: CountryCode, update: &Update, correlation: Option<String>) -> Message {
    update_message(
        &UpdateHeader {
            sender: HUB_ADDRESS.to_owned(),
            recipient: format!("NTA.{country}"),
            message_id: message_id(),
            prepared_at: update.effective,
            correlation,
        },
        update,
    )
}

/// A version made by [`make_change`].
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    /// The new version.
    pub version: u64,
    /// The version it follows.
    pub previous: u64,
    /// The records changed.
    pub changes: Vec<AuditEntry>,
    /// The nodes it goes to.
    pub sent_to: Vec<String>,
}

/// Applies `change` to the latest version as `actor` for `reason`, inside `tx`: the new version,
/// its audit rows, and one CA005C per participating country, owed. The caller commits and then
/// calls [`committed`].
pub async fn change_in(
    tx: &mut HubTx<'_>,
    services: &HubServices,
    actor: &str,
    reason: &str,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<(Made, ReferenceData), RefdataError> {
    if actor.trim().is_empty() {
        return Err(RefdataError::BadRequest(
            "who makes the change (actor) is required".into(),
        ));
    }
    if change.is_empty() {
        return Err(RefdataError::BadRequest(
            "the change changes nothing".into(),
        ));
    }
    let now = whole_seconds(now);
    let held = match latest(tx).await? {
        Some(s) => s,
        None => current(services).to_set(),
    };
    let next = held.apply(change, held.version + 1)?;
    let data = ReferenceData::from_set(next.clone())?;
    let audit = held.audit(&next)?;
    let rates = rate_audit(&held.exchange_rates, &next.exchange_rates);
    if audit.is_empty() && rates.is_empty() {
        return Err(RefdataError::BadRequest(
            "the change writes what the reference data already holds".into(),
        ));
    }
    let at = now.timestamp_millis();
    insert_version(tx, &next, actor, reason, at).await?;
    insert_audit(tx, next.version, actor, &audit, at).await?;
    insert_rate_audit(tx, next.version, actor, &rates, at).await?;
    // The ledger reads a contract's terms from its own row: written in this transaction.
    for e in audit.iter().filter(|e| e.section == Section::Contract) {
        if let Some(c) = data.contract(&e.key) {
            crate::guarantee::register_in(tx, c).await?;
        }
    }
    let update = Update {
        version: next.version,
        previous: Some(held.version),
        effective: now.naive_utc(),
        change: held.diff(&next)?,
    };
    let countries: BTreeSet<CountryCode> = next.countries.iter().map(|c| c.code).collect();
    let mut sent_to = Vec::new();
    for country in countries {
        let message = update_for(country, &update, None);
        emit(tx, services, &message, country, next.version, None, now).await?;
        sent_to.push(country.to_string());
    }
    Ok((
        Made {
            version: next.version,
            previous: held.version,
            changes: audit,
            sent_to,
        },
        data,
    ))
}

/// After the transaction of [`change_in`] committed: the new version is in force, the ledger
/// knows its contracts, and the dispatcher is woken.
pub async fn committed(services: &HubServices, data: ReferenceData) -> Result<(), StoreError> {
    crate::guarantee::register(&services.store, &data).await?;
    set_live(&services.store, data);
    WAKE.notify_one();
    Ok(())
}

/// Applies `change` (see [`change_in`]) in a transaction of its own.
pub async fn make_change(
    services: &HubServices,
    actor: &str,
    reason: &str,
    change: &Change,
) -> Result<Made, RefdataError> {
    let mut tx = services.store.begin().await?;
    let (made, data) = change_in(&mut tx, services, actor, reason, change, Utc::now()).await?;
    tx.commit().await?;
    committed(services, data).await?;
    tracing::info!(
        version = made.version,
        actor,
        reason,
        "reference data changed"
    );
    Ok(made)
}

/// The answer to a node's CA006C (`held`: the version it says it holds): the whole set at the
/// current version, owed to that node, inside `tx`.
pub async fn answer_request(
    tx: &mut HubTx<'_>,
    services: &HubServices,
    country: CountryCode,
    held: u64,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<Owed, RefdataError> {
    let set = match latest(tx).await? {
        Some(s) => s,
        None => current(services).to_set(),
    };
    tracing::info!(%country, held, current = set.version, "whole reference data sent on request");
    let now = whole_seconds(now);
    let update = Update::whole(&set, now.naive_utc());
    let message = update_for(country, &update, Some(request_id.to_owned()));
    emit(
        tx,
        services,
        &message,
        country,
        set.version,
        Some(request_id.to_owned()),
        now,
    )
    .await
}

static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Wakes the dispatcher (something new is owed).
pub fn wake() {
    WAKE.notify_one();
}

/// Whether `message` is a request a node makes of the hub itself (CA006C, CA003C).
pub fn is_node_request(message: &Message) -> bool {
    matches!(message, Message::CA006C(_) | Message::CA003C(_))
}

/// Hands every owed message to the transport, oldest first; returns how many went.
pub async fn dispatch_pending(store: &HubStore, replay: &dyn Replay) -> Result<usize, StoreError> {
    let mut tx = store.begin().await?;
    let rows: Vec<(i64, String, String, Vec<u8>)> = on_tx!(&mut tx, |c| {
        sqlx::query_as(
            "SELECT id, country, message_id, envelope FROM hub_refdata_dispatch \
             WHERE sent_at IS NULL ORDER BY id LIMIT 500",
        )
        .fetch_all(&mut *c)
        .await?
    });
    tx.commit().await?;
    let mut sent = 0;
    for (id, country, message_id, envelope) in rows {
        let country = CountryCode::parse(&country).map_err(|e| corrupt("dispatch country", e))?;
        if let Err(e) = replay
            .resend(Outbound {
                message_id,
                destination: Destination::Node(country),
                partition_key: None,
                bytes: Bytes::from(envelope),
            })
            .await
        {
            tracing::warn!(code = e.code(), error = %e, %country, "reference data not sent yet");
            break;
        }
        let mut tx = store.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query("UPDATE hub_refdata_dispatch SET sent_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now_millis())
                .execute(&mut *c)
                .await?;
        });
        tx.commit().await?;
        sent += 1;
    }
    Ok(sent)
}

/// Sends what is owed whenever a change is made, and every second (what the transport could not
/// take before), until `shutdown` fires.
pub async fn run_dispatcher(
    store: HubStore,
    replay: Arc<dyn Replay>,
    mut shutdown: cats_transport::shutdown::Shutdown,
) {
    loop {
        if let Err(e) = dispatch_pending(&store, replay.as_ref()).await {
            tracing::warn!(code = e.code(), error = %e, "reference data dispatch failed");
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = WAKE.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One audited change of a record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// The version that made it.
    pub version: i64,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// Why (the version's reason).
    pub reason: String,
    /// The section.
    pub section: String,
    /// The record's key.
    pub key: String,
    /// The value before.
    pub old: Option<serde_json::Value>,
    /// The value after.
    pub new: Option<serde_json::Value>,
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The audited changes of the versions after `since`.
pub async fn changes_since(store: &HubStore, since: i64) -> Result<Vec<AuditRow>, StoreError> {
    type Row = (
        i64,
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let mut tx = store.begin().await?;
    let rows: Vec<Row> = on_tx!(&mut tx, |c| {
        sqlx::query_as(
            "SELECT a.version, a.recorded_at, a.actor, v.reason, a.section, a.record_key, \
             a.old_value, a.new_value FROM hub_refdata_audit a \
             JOIN hub_refdata_versions v ON v.version = a.version \
             WHERE a.version > $1 ORDER BY a.id",
        )
        .bind(since)
        .fetch_all(&mut *c)
        .await?
    });
    tx.commit().await?;
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(rows
        .into_iter()
        .map(
            |(version, at, actor, reason, section, key, old, new)| AuditRow {
                version,
                at: rfc3339(at),
                actor,
                reason,
                section,
                key,
                old: json(old),
                new: json(new),
            },
        )
        .collect())
}

/// What is still owed to each node (not handed to the transport).
pub async fn owed(store: &HubStore) -> Result<i64, StoreError> {
    let mut tx = store.begin().await?;
    let n: i64 = on_tx!(&mut tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM hub_refdata_dispatch WHERE sent_at IS NULL")
            .fetch_one(&mut *c)
            .await?
    });
    tx.commit().await?;
    Ok(n)
}

// --- HTTP ------------------------------------------------------------------------------------

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "error": message })),
    )
        .into_response()
}

/// The JSON answer of an error.
pub fn error_response(e: &RefdataError) -> Response {
    error(e.status(), e.code(), e.to_string())
}

async fn refs(State(s): State<Arc<HubServices>>) -> Response {
    let data = current(&s);
    let set = data.to_set();
    let sections = serde_json::json!({
        "countries": set.countries.len(),
        "offices": set.offices.len(),
        "insurers": set.insurers.len(),
        "insurance_contracts": set.insurance_contracts.len(),
        "traders": set.traders.len(),
        "restricted_goods": set.restricted_goods.len(),
    });
    Json(serde_json::json!({
        "version": set.version,
        "sections": sections,
        "data": set,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinceQuery {
    #[serde(default)]
    since: i64,
}

async fn changes(
    State(s): State<Arc<HubServices>>,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "refdata.bad-request",
            "since must be a version number".into(),
        );
    };
    match changes_since(&s.store, q.since).await {
        Ok(rows) => Json(serde_json::json!({
            "version": current(&s).version(),
            "changes": rows,
        }))
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

/// `POST /api/v1/refs/changes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// Who makes it: the administrator of the request's credential (`administrator:NAME`),
    /// never the body.
    #[serde(skip_deserializing, default)]
    pub actor: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// What.
    pub change: Change,
}

async fn post_change(
    State(s): State<Arc<HubServices>>,
    Extension(caller): Extension<crate::access::Caller>,
    body: Result<Json<ChangeRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(mut r)) => {
            r.actor = caller.actor();
            r
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "refdata.bad-request",
                format!("the body is not a change: {e}"),
            );
        }
    };
    match make_change(&s, &req.actor, &req.reason, &req.change).await {
        Ok(made) => (StatusCode::CREATED, Json(made)).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /api/v1/refs` (version, sections and the set), `GET /api/v1/refs/changes?since=N`
/// (the audited record changes of the versions after N), `POST /api/v1/refs/changes` (body
/// [`ChangeRequest`]: 201 with the version made; 422 with the reference error's code, nothing
/// changed), and the registration endpoints of [`crate::registrations::routes`].
pub fn routes(services: Arc<HubServices>) -> Router {
    Router::new()
        .route("/api/v1/refs", get(refs))
        .route("/api/v1/refs/changes", get(changes).post(post_change))
        .with_state(services.clone())
        .merge(crate::registrations::routes(services))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(currency: &str, rate: &str, from: &str) -> ExchangeRate {
        ExchangeRate {
            currency: currency.into(),
            rate: rate.parse().expect("rate"),
            valid_from: from.parse().expect("day"),
        }
    }

    #[test]
    fn rate_audit_lists_each_entry_added_changed_or_removed() {
        let old = [
            rate("USD", "1", "2026-01-01"),
            rate("KZT", "480.50", "2026-01-01"),
            rate("EUR", "0.92", "2026-01-01"),
        ];
        let new = [
            rate("USD", "1", "2026-01-01"),
            rate("KZT", "480.50", "2026-01-01"),
            rate("KZT", "500.00", "2026-11-20"),
            rate("EUR", "0.93", "2026-01-01"),
        ];
        let rows: Vec<(String, bool, bool)> = rate_audit(&old, &new)
            .into_iter()
            .map(|r| (r.key, r.old.is_some(), r.new.is_some()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("EUR:2026-01-01".to_owned(), true, true),
                ("KZT:2026-11-20".to_owned(), false, true),
            ]
        );
        assert!(rate_audit(&old, &old).is_empty());
        let removed = rate_audit(&new, &old);
        assert!(
            removed
                .iter()
                .any(|r| r.key == "KZT:2026-11-20" && r.new.is_none())
        );
    }
}
