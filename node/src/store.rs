//! The node's tables, in the transport's database (SQLite or PostgreSQL), so that one
//! transaction covers the inbox, the movement, the outbox and the outbound stream.
//!
//! # Migrations
//!
//! `node/migrations/{sqlite,postgres}/NNNN_name.sql`, applied by [`migrate`] and recorded in
//! `node_schema_versions` (not sqlx's `_sqlx_migrations`, which the transport's store owns: sqlx
//! refuses a database whose table lists versions it does not know). Every table is prefixed
//! `node_`. On PostgreSQL the migrations run under an advisory lock.
//!
//! # Access
//!
//! Every function takes a [`Tx`] of the transport [`Store`]: the engine writes in the
//! transaction that also accepts the inbox entry and enqueues the outbox rows; readers open a
//! short transaction of their own.

use cats_transport::store::{Store, Tx};
use message_catalog::lifecycle::{Movement, Role};
use sqlx::Row;

/// Runs `$body` with `$c` bound to the connection of a transport [`Tx`], for either driver.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            cats_transport::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            cats_transport::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// A node store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The transport store (connection, transaction) failed.
    #[error("store: {0}")]
    Transport(#[from] cats_transport::store::StoreError),
    /// A query failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration {version}: {source}")]
    Migrate {
        /// The migration version.
        version: i64,
        /// Why.
        source: sqlx::Error,
    },
    /// A stored row does not hold what the node wrote.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Transport(_) => "node-store.transport",
            StoreError::Database(_) => "node-store.database",
            StoreError::Migrate { .. } => "node-store.migrate",
            StoreError::Corrupt(_) => "node-store.corrupt",
        }
    }
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "node",
        sqlite: include_str!("../migrations/sqlite/0001_node.sql"),
        postgres: include_str!("../migrations/postgres/0001_node.sql"),
    },
    Migration {
        version: 2,
        name: "reference_data",
        sqlite: include_str!("../migrations/sqlite/0002_reference_data.sql"),
        postgres: include_str!("../migrations/postgres/0002_reference_data.sql"),
    },
    Migration {
        version: 3,
        name: "reconciliation",
        sqlite: include_str!("../migrations/sqlite/0003_reconciliation.sql"),
        postgres: include_str!("../migrations/postgres/0003_reconciliation.sql"),
    },
    Migration {
        version: 4,
        name: "resume",
        sqlite: include_str!("../migrations/sqlite/0004_resume.sql"),
        postgres: include_str!("../migrations/postgres/0004_resume.sql"),
    },
    Migration {
        version: 5,
        name: "messages_by_id",
        sqlite: include_str!("../migrations/sqlite/0005_messages_by_id.sql"),
        postgres: include_str!("../migrations/postgres/0005_messages_by_id.sql"),
    },
    Migration {
        version: 6,
        name: "status_requests",
        sqlite: include_str!("../migrations/sqlite/0006_status_requests.sql"),
        postgres: include_str!("../migrations/postgres/0006_status_requests.sql"),
    },
];

/// Arbitrary constant for `pg_advisory_xact_lock` around migrations (`"CATSNODM"`).
const PG_MIGRATION_LOCK: i64 = 0x4341_5453_4e4f_444d;

/// Unix time in milliseconds.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn statements(script: &str) -> Vec<String> {
    let without_comments: String = script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Brings the node's tables up to date.
pub async fn migrate(store: &Store) -> Result<(), StoreError> {
    for m in MIGRATIONS {
        let mut tx = store.begin().await?;
        let script = match &tx {
            Tx::Sqlite(_) => m.sqlite,
            Tx::Postgres(_) => m.postgres,
        };
        let fail = |source| StoreError::Migrate {
            version: m.version,
            source,
        };
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut **t)
                .await
                .map_err(fail)?;
        }
        let applied: Option<i64> = on_tx!(&mut tx, |c| {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS node_schema_versions \
                 (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *c)
            .await
            .map_err(fail)?;
            sqlx::query_scalar("SELECT version FROM node_schema_versions WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *c)
                .await
                .map_err(fail)?
        });
        if applied.is_some() {
            continue;
        }
        for statement in statements(script) {
            on_tx!(&mut tx, |c| {
                sqlx::query(&statement)
                    .execute(&mut *c)
                    .await
                    .map_err(fail)?;
            });
        }
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO node_schema_versions (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now_millis())
            .execute(&mut *c)
            .await
            .map_err(fail)?;
        });
        tx.commit().await?;
    }
    Ok(())
}

/// A movement as stored.
#[derive(Debug, Clone)]
pub struct StoredMovement {
    /// Row id.
    pub id: i64,
    /// The life cycle state.
    pub movement: Movement,
    /// The record it started from (CC015C at departure, the anticipated record elsewhere).
    pub record: Vec<u8>,
    /// The national system's address for replies (`messageSender` of its last message).
    pub national_party: Option<String>,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

const MOVEMENT_COLUMNS: &str = "id, state, record, national_party, updated_at";

fn movement_from_row<R>(row: &R) -> Result<StoredMovement, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let movement = serde_json::from_str(&state)
        .map_err(|e| StoreError::Corrupt(format!("movement state: {e}")))?;
    Ok(StoredMovement {
        id: row.try_get("id")?,
        movement,
        record: row.try_get("record")?,
        national_party: row.try_get("national_party")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Which column to look a movement up by.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// Row id.
    Id(i64),
    /// MRN.
    Mrn(&'a str),
    /// Declaration key (LRN, holder, office of departure).
    Key(&'a str),
    /// LRN (a declaration without an MRN yet).
    Lrn(&'a str),
}

/// One movement by `lookup` (by LRN: the most recent one).
pub async fn movement(
    tx: &mut Tx<'_>,
    lookup: Lookup<'_>,
) -> Result<Option<StoredMovement>, StoreError> {
    let (column, text, id) = match lookup {
        Lookup::Id(id) => ("id", None, Some(id)),
        Lookup::Mrn(m) => ("mrn", Some(m), None),
        Lookup::Key(k) => ("declaration_key", Some(k), None),
        Lookup::Lrn(l) => ("lrn", Some(l), None),
    };
    let sql = format!(
        "SELECT {MOVEMENT_COLUMNS} FROM node_movements WHERE {column} = $1 ORDER BY id DESC LIMIT 1"
    );
    on_tx!(tx, |c| {
        let q = sqlx::query(&sql);
        let q = match (text, id) {
            (Some(t), _) => q.bind(t.to_owned()),
            (None, Some(i)) => q.bind(i),
            (None, None) => q.bind(0i64),
        };
        match q.fetch_optional(&mut *c).await? {
            Some(row) => Ok(Some(movement_from_row(&row)?)),
            None => Ok(None),
        }
    })
}

/// The text key of a declaration key.
pub fn key_text(key: &message_catalog::lifecycle::DeclarationKey) -> String {
    format!(
        "{}|{}|{}",
        key.lrn.as_str(),
        key.holder.as_ref().map(|h| h.as_str()).unwrap_or(""),
        key.departure
    )
}

/// The name of a role in the API and the tables.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Departure => "departure",
        Role::Exit => "exit",
        Role::Transit => "transit",
        Role::Destination => "destination",
    }
}

/// Reads a role name.
pub fn parse_role(text: &str) -> Option<Role> {
    match text {
        "departure" => Some(Role::Departure),
        "exit" => Some(Role::Exit),
        "transit" => Some(Role::Transit),
        "destination" => Some(Role::Destination),
        _ => None,
    }
}

/// Every office role of `movement` with its phase name and since (Unix ms).
pub fn office_phases(movement: &Movement) -> Vec<(String, Role, String, i64)> {
    let mut out = Vec::new();
    if let Some(d) = &movement.departure {
        out.push((
            d.office.to_string(),
            Role::Departure,
            format!("{:?}", d.phase),
            d.since.timestamp_millis(),
        ));
    }
    for (office, b) in &movement.exits {
        out.push((
            office.to_string(),
            Role::Exit,
            format!("{:?}", b.phase),
            b.since.timestamp_millis(),
        ));
    }
    for (office, b) in &movement.transits {
        out.push((
            office.to_string(),
            Role::Transit,
            format!("{:?}", b.phase),
            b.since.timestamp_millis(),
        ));
    }
    if let Some(d) = &movement.destination {
        out.push((
            d.office.to_string(),
            Role::Destination,
            format!("{:?}", d.phase),
            d.since.timestamp_millis(),
        ));
    }
    out
}

/// Inserts a new movement; returns its row id.
pub async fn insert_movement(
    tx: &mut Tx<'_>,
    movement: &Movement,
    record: &[u8],
    national_party: Option<&str>,
) -> Result<i64, StoreError> {
    let state = serde_json::to_string(movement)
        .map_err(|e| StoreError::Corrupt(format!("movement state: {e}")))?;
    let key = movement.declaration.key().map(|k| key_text(&k));
    let now = now_millis();
    let id: i64 = on_tx!(&mut *tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO node_movements \
             (mrn, lrn, holder, declaration_key, state, record, national_party, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(movement.mrn.map(|m| m.to_string()))
        .bind(movement.declaration.lrn.as_ref().map(|l| l.as_str().to_owned()))
        .bind(movement.declaration.holder.as_ref().map(|h| h.as_str().to_owned()))
        .bind(key)
        .bind(state)
        .bind(record)
        .bind(national_party)
        .bind(now)
        .fetch_one(&mut *c)
        .await?
    });
    replace_offices(tx, id, movement).await?;
    Ok(id)
}

/// Replaces the record movement `id` composes from (the CC015C as amended by an accepted
/// CC013C). The original stays in the stored messages.
pub async fn update_record(tx: &mut Tx<'_>, id: i64, record: &[u8]) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE node_movements SET record = $2 WHERE id = $1")
            .bind(id)
            .bind(record)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// Writes the new state of movement `id` (and its office phases).
pub async fn update_movement(
    tx: &mut Tx<'_>,
    id: i64,
    movement: &Movement,
    national_party: Option<&str>,
) -> Result<(), StoreError> {
    let state = serde_json::to_string(movement)
        .map_err(|e| StoreError::Corrupt(format!("movement state: {e}")))?;
    on_tx!(&mut *tx, |c| {
        sqlx::query(
            "UPDATE node_movements SET mrn = $2, state = $3, updated_at = $4, \
             national_party = COALESCE($5, national_party) WHERE id = $1",
        )
        .bind(id)
        .bind(movement.mrn.map(|m| m.to_string()))
        .bind(state)
        .bind(now_millis())
        .bind(national_party)
        .execute(&mut *c)
        .await?;
    });
    replace_offices(tx, id, movement).await
}

async fn replace_offices(tx: &mut Tx<'_>, id: i64, movement: &Movement) -> Result<(), StoreError> {
    on_tx!(&mut *tx, |c| {
        sqlx::query("DELETE FROM node_movement_offices WHERE movement_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        for (office, role, phase, since) in office_phases(movement) {
            sqlx::query(
                "INSERT INTO node_movement_offices (movement_id, office, role, phase, since) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(office)
            .bind(role_name(role))
            .bind(phase)
            .bind(since)
            .execute(&mut *c)
            .await?;
        }
    });
    Ok(())
}

/// A message in or out, as stored.
#[derive(Debug, Clone)]
pub struct MessageRow<'a> {
    /// The movement, when known.
    pub movement_id: Option<i64>,
    /// `in` or `out`.
    pub direction: &'static str,
    /// Message type.
    pub message_type: &'a str,
    /// Message identification.
    pub message_id: &'a str,
    /// Who sent it (in) or who it is for (out).
    pub party: &'a str,
    /// The XML bytes.
    pub body: &'a [u8],
    /// The signed envelope (CD messages).
    pub envelope: Option<&'a [u8]>,
    /// When (Unix ms).
    pub at: i64,
}

/// Stores a message; returns its row id.
pub async fn insert_message(tx: &mut Tx<'_>, m: &MessageRow<'_>) -> Result<i64, StoreError> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO node_messages \
             (movement_id, direction, message_type, message_id, party, body, envelope, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(m.movement_id)
        .bind(m.direction)
        .bind(m.message_type)
        .bind(m.message_id)
        .bind(m.party)
        .bind(m.body)
        .bind(m.envelope)
        .bind(m.at)
        .fetch_one(&mut *c)
        .await?
    }))
}

/// The body of the message of type `message_type` that this node sent to the hub with message
/// identification `message_id` (a forwarded CC034C, which a hub NACK names in its
/// `correlationIdentifier`).
pub async fn sent_to_hub(
    tx: &mut Tx<'_>,
    message_type: &str,
    message_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT body FROM node_messages \
             WHERE message_id = $1 AND direction = 'out' AND party = 'hub' AND message_type = $2 \
             ORDER BY id LIMIT 1",
        )
        .bind(message_id)
        .bind(message_type)
        .fetch_optional(&mut *c)
        .await?
    }))
}

/// Whether movement `movement_id` already has a message from the national system with this
/// message identification (a resend: NCTS code 26).
pub async fn national_message_seen(
    tx: &mut Tx<'_>,
    movement_id: i64,
    message_id: &str,
) -> Result<bool, StoreError> {
    let found: Option<i64> = on_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT id FROM node_messages \
             WHERE movement_id = $1 AND direction = 'in' AND message_id = $2 AND envelope IS NULL \
             LIMIT 1",
        )
        .bind(movement_id)
        .bind(message_id)
        .fetch_optional(&mut *c)
        .await?
    });
    Ok(found.is_some())
}

/// A message the national system sent for a movement, as the node received it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NationalMessage {
    /// Message type (CC015C, CC013C, CC007C ...).
    pub message_type: String,
    /// Its message identification.
    pub message_identification: String,
    /// Who sent it (the national party).
    pub party: String,
    /// When the node received it (Unix ms).
    pub at: i64,
    /// The XML exactly as received.
    pub xml: String,
}

/// The messages the national system sent for movement `movement_id`, in the order received
/// (not the signed common-domain messages from the hub, which carry an envelope).
pub async fn national_messages(
    tx: &mut Tx<'_>,
    movement_id: i64,
) -> Result<Vec<NationalMessage>, StoreError> {
    on_tx!(tx, |c| {
        let rows = sqlx::query(
            "SELECT message_type, message_id, party, at, body FROM node_messages \
             WHERE movement_id = $1 AND direction = 'in' AND envelope IS NULL ORDER BY id",
        )
        .bind(movement_id)
        .fetch_all(&mut *c)
        .await?;
        rows.iter()
            .map(|r| {
                let body: Vec<u8> = r.try_get("body")?;
                Ok(NationalMessage {
                    message_type: r.try_get("message_type")?,
                    message_identification: r.try_get("message_id")?,
                    party: r.try_get("party")?,
                    at: r.try_get("at")?,
                    xml: String::from_utf8_lossy(&body).into_owned(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    })
}

/// Attaches stored messages without a movement to `movement_id` (a CC015C that started it).
pub async fn attach_message(
    tx: &mut Tx<'_>,
    message_row: i64,
    movement_id: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE node_messages SET movement_id = $2 WHERE id = $1")
            .bind(message_row)
            .bind(movement_id)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// One line of a movement's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryRow {
    /// Order.
    pub seq: i64,
    /// When the node recorded it (Unix ms, the node's clock). The times inside messages and
    /// life-cycle events are whole seconds (NCTS); these keep milliseconds so that lines
    /// recorded within one second by different nodes can still be put in order.
    pub at: i64,
    /// Office.
    pub office: String,
    /// Role name.
    pub role: String,
    /// `in`, `out` or `action`.
    pub kind: String,
    /// The message type, for messages.
    pub message_type: Option<String>,
    /// The action or system decision, for actions.
    pub action: Option<String>,
    /// Who.
    pub by: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// The phase of the office role afterwards.
    pub phase_after: Option<String>,
    /// The applied input, as JSON (for re-folding).
    pub event: Option<String>,
}

/// Appends a history line (its `seq` is allocated).
pub async fn insert_history(
    tx: &mut Tx<'_>,
    movement_id: i64,
    h: &HistoryRow,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO node_history (movement_id, at, office, role, kind, message_type, action, \
             by_whom, from_party, to_party, phase_after, event) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(movement_id)
        .bind(h.at)
        .bind(&h.office)
        .bind(&h.role)
        .bind(&h.kind)
        .bind(&h.message_type)
        .bind(&h.action)
        .bind(&h.by)
        .bind(&h.from)
        .bind(&h.to)
        .bind(&h.phase_after)
        .bind(&h.event)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// The history of movement `id`, in order.
pub async fn history(tx: &mut Tx<'_>, id: i64) -> Result<Vec<HistoryRow>, StoreError> {
    on_tx!(tx, |c| {
        let rows = sqlx::query(
            "SELECT seq, at, office, role, kind, message_type, action, by_whom, from_party, \
             to_party, phase_after, event FROM node_history WHERE movement_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    office: r.try_get("office")?,
                    role: r.try_get("role")?,
                    kind: r.try_get("kind")?,
                    message_type: r.try_get("message_type")?,
                    action: r.try_get("action")?,
                    by: r.try_get("by_whom")?,
                    from: r.try_get("from_party")?,
                    to: r.try_get("to_party")?,
                    phase_after: r.try_get("phase_after")?,
                    event: r.try_get("event")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    })
}

/// A selection for control, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionRow {
    /// Office.
    pub office: String,
    /// Role name.
    pub role: String,
    /// Selected or not.
    pub selected: bool,
    /// Why.
    pub reason: String,
    /// When (Unix ms).
    pub at: i64,
}

/// Stores a selection.
pub async fn insert_selection(
    tx: &mut Tx<'_>,
    movement_id: i64,
    s: &SelectionRow,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO node_selections (movement_id, office, role, selected, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(movement_id)
        .bind(&s.office)
        .bind(&s.role)
        .bind(i64::from(s.selected))
        .bind(&s.reason)
        .bind(s.at)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// The selections of movement `id`.
pub async fn selections(tx: &mut Tx<'_>, id: i64) -> Result<Vec<SelectionRow>, StoreError> {
    on_tx!(tx, |c| {
        let rows = sqlx::query(
            "SELECT office, role, selected, reason, at FROM node_selections \
             WHERE movement_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SelectionRow {
                    office: r.try_get("office")?,
                    role: r.try_get("role")?,
                    selected: r.try_get::<i64, _>("selected")? != 0,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    })
}

/// One message of the outbound stream to the national system.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamItem {
    /// The cursor.
    pub cursor: i64,
    /// Message type.
    #[serde(rename = "type")]
    pub message_type: String,
    /// MRN, when known.
    pub mrn: Option<String>,
    /// LRN, when known.
    pub lrn: Option<String>,
    /// Message identification.
    pub message_id: String,
    /// The office it comes from.
    pub office: String,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// The message.
    pub xml: String,
}

/// Appends to the outbound stream; returns the cursor.
#[allow(clippy::too_many_arguments)]
pub async fn append_stream(
    tx: &mut Tx<'_>,
    movement_id: Option<i64>,
    message_type: &str,
    mrn: Option<&str>,
    lrn: Option<&str>,
    message_id: &str,
    office: &str,
    at: i64,
    xml: &str,
) -> Result<i64, StoreError> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO node_stream (movement_id, message_type, mrn, lrn, message_id, office, at, xml) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(movement_id)
        .bind(message_type)
        .bind(mrn)
        .bind(lrn)
        .bind(message_id)
        .bind(office)
        .bind(at)
        .bind(xml)
        .fetch_one(&mut *c)
        .await?
    }))
}

/// Up to `limit` stream items after `after`, in cursor order.
pub async fn stream_after(
    tx: &mut Tx<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<StreamItem>, StoreError> {
    on_tx!(tx, |c| {
        let rows = sqlx::query(
            "SELECT id, message_type, mrn, lrn, message_id, office, at, xml FROM node_stream \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        rows.iter()
            .map(|r| {
                let at: i64 = r.try_get("at")?;
                Ok(StreamItem {
                    cursor: r.try_get("id")?,
                    message_type: r.try_get("message_type")?,
                    mrn: r.try_get("mrn")?,
                    lrn: r.try_get("lrn")?,
                    message_id: r.try_get("message_id")?,
                    office: r.try_get("office")?,
                    at: crate::time::rfc3339_utc(at),
                    xml: r.try_get("xml")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    })
}

/// The last cursor of the stream (0 when empty).
pub async fn stream_head(tx: &mut Tx<'_>) -> Result<i64, StoreError> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM node_stream")
            .fetch_one(&mut *c)
            .await?
            .unwrap_or(0)
    }))
}

/// Increments counter `name` and returns the new value (1 the first time).
pub async fn next_counter(tx: &mut Tx<'_>, name: &str) -> Result<i64, StoreError> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO node_counters (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = node_counters.value + 1 RETURNING value",
        )
        .bind(name)
        .fetch_one(&mut *c)
        .await?
    }))
}

/// The value of counter `name` (0 when never set).
pub async fn counter(tx: &mut Tx<'_>, name: &str) -> Result<i64, StoreError> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar::<_, i64>("SELECT value FROM node_counters WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *c)
            .await?
            .unwrap_or(0)
    }))
}

/// Sets counter `name` to `value`.
pub async fn set_counter(tx: &mut Tx<'_>, name: &str, value: i64) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO node_counters (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = $2",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// Filters of the movement list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Phase name of some office role.
    pub state: Option<String>,
    /// Office.
    pub office: Option<String>,
    /// Role name.
    pub role: Option<String>,
    /// Updated at or after (Unix ms).
    pub from: Option<i64>,
    /// Updated before (Unix ms).
    pub to: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// Movements matching `f`, most recently updated first.
pub async fn list(tx: &mut Tx<'_>, f: &ListFilter) -> Result<Vec<StoredMovement>, StoreError> {
    let sql = format!(
        "SELECT {} FROM node_movements m WHERE \
         ($1 IS NULL OR m.updated_at >= $1) AND ($2 IS NULL OR m.updated_at < $2) AND \
         (($3 IS NULL AND $4 IS NULL AND $5 IS NULL) OR EXISTS (SELECT 1 FROM node_movement_offices o \
           WHERE o.movement_id = m.id AND ($3 IS NULL OR o.phase = $3) \
           AND ($4 IS NULL OR o.office = $4) AND ($5 IS NULL OR o.role = $5))) \
         ORDER BY m.updated_at DESC, m.id DESC LIMIT $6",
        MOVEMENT_COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    on_tx!(tx, |c| {
        let rows = sqlx::query(&sql)
            .bind(f.from)
            .bind(f.to)
            .bind(f.state.clone())
            .bind(f.office.clone())
            .bind(f.role.clone())
            .bind(f.limit)
            .fetch_all(&mut *c)
            .await?;
        rows.iter().map(movement_from_row).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_scripts_into_statements() {
        let s = statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE INDEX b ON a (x);\n");
        assert_eq!(s, vec!["CREATE TABLE a (x INT)", "CREATE INDEX b ON a (x)"]);
    }

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Departure,
            Role::Exit,
            Role::Transit,
            Role::Destination,
        ] {
            assert_eq!(parse_role(role_name(r)), Some(r));
        }
        assert_eq!(parse_role("entry"), None);
    }

    #[tokio::test]
    async fn migrations_are_idempotent_next_to_the_transport() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("n.db").display());
        let store = Store::connect(&url).await.expect("store");
        migrate(&store).await.expect("first");
        migrate(&store).await.expect("second");
        let mut tx = store.begin().await.expect("tx");
        assert_eq!(next_counter(&mut tx, "x").await.expect("counter"), 1);
        assert_eq!(next_counter(&mut tx, "x").await.expect("counter"), 2);
        set_counter(&mut tx, "w", 7).await.expect("set");
        assert_eq!(counter(&mut tx, "w").await.expect("get"), 7);
        assert_eq!(stream_head(&mut tx).await.expect("head"), 0);
        tx.commit().await.expect("commit");
    }
}
