//! The movement registry: per MRN, the route, a state, the last message, the last event at
//! each office, and the times, kept from accepted messages in the same transaction as their
//! journal entry.
//!
//! **Not yet the life cycle fold.** Issue 4 asks the hub to fold `message_catalog::lifecycle`
//! over the journal; this first registry derives its state from the messages themselves:
//!
//! | last message | state |
//! | --- | --- |
//! | CD001C, CD050C, CD160C (anticipated records) | `released` |
//! | CD168C exit, CD118C entry | `in_transit` |
//! | CD006C arrival advice | `arrived` |
//! | CD018C control results | `control_results_sent` |
//! | CD209C guarantee write-off (departure wrote the movement off) | `written_off` |
//! | CD010C cancellation | `cancelled` |
//!
//! Other messages (the other guarantee messages, status request and response, NACKs) are in the
//! history but do not change the state. A state never moves backwards (a late AAR does not undo an arrival).
//!
//! **Per node, the life cycle.** [`fold`] applies `message_catalog::lifecycle::apply` for each
//! message the hub forwards, at the receiving node's office in its role (destination for an
//! AAR, transit for an ATR, exit for an AXR, departure for CD168C/CD118C/CD006C/CD018C), and
//! keeps the resulting `Movement` and its digest per (MRN, country) in `hub_node_movements`:
//! what that node should hold, for reconciliation. The departure node's own movement starts from
//! its CC015C and officers' decisions, which the hub never sees, so at departure the fold has
//! no state (the life cycle answers 90) and nothing is stored.

use serde::Serialize;
use sqlx::Row;

use crate::journal::Entry;
use crate::routing::Facts;
use crate::store::{HubStore, HubTx, StoreError, on_pool, on_tx};

/// The state a message type puts a movement in, and its rank (states only move forward).
fn state_of(message_type: &str) -> Option<(&'static str, u8)> {
    Some(match message_type {
        "CD001C" | "CD050C" | "CD160C" => ("released", 1),
        "CD168C" | "CD118C" => ("in_transit", 2),
        "CD006C" => ("arrived", 3),
        "CD018C" => ("control_results_sent", 4),
        "CD209C" => ("written_off", 5),
        "CD010C" => ("cancelled", 6),
        _ => return None,
    })
}

fn rank(state: &str) -> u8 {
    match state {
        "released" => 1,
        "in_transit" => 2,
        "arrived" => 3,
        "control_results_sent" => 4,
        "written_off" => 5,
        "cancelled" => 6,
        _ => 0,
    }
}

fn role_name(role: message_catalog::reference::Role) -> &'static str {
    use message_catalog::reference::Role;
    match role {
        Role::Departure => "departure",
        Role::Exit => "exit",
        Role::Transit => "transit",
        Role::Destination => "destination",
    }
}

/// Records an accepted message in the registry, inside the transaction of its journal entry.
pub async fn record(tx: &mut HubTx<'_>, facts: &Facts, entry: &Entry) -> Result<(), StoreError> {
    record_all(tx, &[(facts, entry)]).await
}

/// A movement's registry row, as read and as it becomes.
struct MovementRow {
    state: String,
    departure_country: String,
    departure_office: Option<String>,
    destination_office: Option<String>,
    route: Vec<RouteOffice>,
    last_message_type: String,
    last_message_id: String,
    last_sequence: i64,
    first_seen: i64,
    last_seen: i64,
}

/// Rows per multi-row statement (far below either driver's limit on bound values).
const ROWS_PER_STATEMENT: usize = 500;

/// [`record`] for a run of accepted messages, in journal order, inside their transaction: the
/// movements they name are read in one statement, the messages applied to them in order in
/// memory, and the results written back in one upsert per table, whatever the run's length.
pub async fn record_all(tx: &mut HubTx<'_>, items: &[(&Facts, &Entry)]) -> Result<(), StoreError> {
    use message_catalog::reference::Role;
    use std::collections::{BTreeMap, BTreeSet};
    let mrns: BTreeSet<&str> = items.iter().filter_map(|(f, _)| f.mrn.as_deref()).collect();
    if mrns.is_empty() {
        return Ok(());
    }
    let mrns: Vec<&str> = mrns.into_iter().collect();
    let mut rows: BTreeMap<String, MovementRow> = BTreeMap::new();
    for chunk in mrns.chunks(ROWS_PER_STATEMENT) {
        type Read = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
            i64,
            i64,
            i64,
        );
        let read: Vec<Read> = on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT mrn, state, departure_country, departure_office, destination_office, \
                 route, last_message_type, last_message_id, last_sequence, first_seen, last_seen \
                 FROM hub_movements WHERE mrn IN (",
            );
            let mut list = q.separated(", ");
            for mrn in chunk {
                list.push_bind(*mrn);
            }
            q.push(")");
            q.build_query_as().fetch_all(&mut *c).await?
        });
        for r in read {
            rows.insert(
                r.0,
                MovementRow {
                    state: r.1,
                    departure_country: r.2,
                    departure_office: r.3,
                    destination_office: r.4,
                    route: serde_json::from_str(&r.5).unwrap_or_default(),
                    last_message_type: r.6,
                    last_message_id: r.7,
                    last_sequence: r.8,
                    first_seen: r.9,
                    last_seen: r.10,
                },
            );
        }
    }
    // (mrn, office, role) → (event, at): the last message of the run wins.
    let mut offices: BTreeMap<(String, String, &'static str), (&'static str, i64)> =
        BTreeMap::new();
    for (facts, entry) in items {
        let Some(mrn) = facts.mrn.as_deref() else {
            continue;
        };
        let at = entry.entry.recorded_at.timestamp_millis();
        let office_of = |role: Role| {
            facts
                .offices
                .iter()
                .find(|o| o.role == role)
                .map(|o| o.reference.clone())
        };
        let new_state = state_of(facts.message_type);
        let row = rows.entry(mrn.to_owned()).or_insert_with(|| MovementRow {
            state: new_state.map(|(s, _)| s).unwrap_or("known").to_owned(),
            departure_country: mrn.get(2..4).unwrap_or("").to_owned(),
            departure_office: None,
            destination_office: None,
            route: Vec::new(),
            last_message_type: String::new(),
            last_message_id: String::new(),
            last_sequence: entry.sequence,
            first_seen: at,
            last_seen: at,
        });
        if let Some((s, r)) = new_state
            && r >= rank(&row.state)
        {
            s.clone_into(&mut row.state);
        }
        // The route: every office named so far, with its role.
        for o in &facts.offices {
            let role = role_name(o.role);
            if !row
                .route
                .iter()
                .any(|r| r.office == o.reference && r.role == role)
            {
                row.route.push(RouteOffice {
                    office: o.reference.clone(),
                    role: role.to_owned(),
                    country: o.reference.get(..2).unwrap_or("").to_owned(),
                });
            }
        }
        facts.message_type.clone_into(&mut row.last_message_type);
        row.last_message_id.clone_from(&facts.message_id);
        row.last_sequence = entry.sequence;
        row.last_seen = at;
        if row.departure_office.is_none() {
            row.departure_office = office_of(Role::Departure);
        }
        if row.destination_office.is_none() {
            row.destination_office = office_of(Role::Destination);
        }
        // The office that acted: the sending office, or every office the message names when it
        // says who sends it (the departure office for anticipated records).
        if let Some(o) = facts.sending_office.and_then(|i| facts.offices.get(i)) {
            offices.insert(
                (mrn.to_owned(), o.reference.clone(), role_name(o.role)),
                (facts.message_type, at),
            );
        }
    }
    let rows: Vec<(String, MovementRow)> = rows.into_iter().collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO hub_movements (mrn, state, departure_country, departure_office, \
                 destination_office, route, last_message_type, last_message_id, last_sequence, \
                 first_seen, last_seen) ",
            );
            q.push_values(chunk, |mut b, (mrn, row)| {
                b.push_bind(mrn.as_str())
                    .push_bind(row.state.as_str())
                    .push_bind(row.departure_country.as_str())
                    .push_bind(row.departure_office.as_deref())
                    .push_bind(row.destination_office.as_deref())
                    .push_bind(serde_json::to_string(&row.route).unwrap_or_else(|_| "[]".into()))
                    .push_bind(row.last_message_type.as_str())
                    .push_bind(row.last_message_id.as_str())
                    .push_bind(row.last_sequence)
                    .push_bind(row.first_seen)
                    .push_bind(row.last_seen);
            });
            q.push(
                " ON CONFLICT (mrn) DO UPDATE SET state = excluded.state, route = excluded.route, \
                 last_message_type = excluded.last_message_type, \
                 last_message_id = excluded.last_message_id, \
                 last_sequence = excluded.last_sequence, last_seen = excluded.last_seen, \
                 departure_office = excluded.departure_office, \
                 destination_office = excluded.destination_office",
            );
            q.build().execute(&mut *c).await?;
        });
    }
    let offices: Vec<_> = offices.into_iter().collect();
    for chunk in offices.chunks(ROWS_PER_STATEMENT) {
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO hub_movement_offices (mrn, office, role, last_event, last_event_at) ",
            );
            q.push_values(chunk, |mut b, ((mrn, office, role), (event, at))| {
                b.push_bind(mrn.as_str())
                    .push_bind(office.as_str())
                    .push_bind(*role)
                    .push_bind(*event)
                    .push_bind(*at);
            });
            q.push(
                " ON CONFLICT (mrn, office, role) DO UPDATE SET last_event = excluded.last_event, \
                 last_event_at = excluded.last_event_at",
            );
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

fn lifecycle_role(role: message_catalog::reference::Role) -> message_catalog::lifecycle::Role {
    use message_catalog::lifecycle::Role as L;
    use message_catalog::reference::Role as R;
    match role {
        R::Departure => L::Departure,
        R::Exit => L::Exit,
        R::Transit => L::Transit,
        R::Destination => L::Destination,
    }
}

/// The roles in which a message is received at its recipient's offices.
fn receiving_roles(message_type: &str) -> &'static [message_catalog::reference::Role] {
    use message_catalog::reference::Role as R;
    match message_type {
        "CD001C" => &[R::Destination],
        "CD050C" => &[R::Transit],
        "CD160C" => &[R::Exit],
        "CD168C" | "CD118C" | "CD006C" | "CD018C" => &[R::Departure],
        "CD010C" => &[R::Destination, R::Transit, R::Exit],
        _ => &[],
    }
}

/// Folds the life cycle for each node `recipients` names (see the module documentation),
/// inside the transaction of the message's journal entry.
pub async fn fold(
    tx: &mut HubTx<'_>,
    facts: &Facts,
    message: &message_catalog::Message,
    sender: message_catalog::ids::CountryCode,
    recipients: &std::collections::BTreeSet<crate::routing::Recipient>,
    entry: &Entry,
) -> Result<(), StoreError> {
    fold_all(
        tx,
        &[Folded {
            facts,
            message,
            sender,
            recipients,
            entry,
        }],
    )
    .await
}

/// One accepted message for [`fold_all`].
#[derive(Debug, Clone, Copy)]
pub struct Folded<'a> {
    /// What routing read from it.
    pub facts: &'a Facts,
    /// The message.
    pub message: &'a message_catalog::Message,
    /// The country that sent it.
    pub sender: message_catalog::ids::CountryCode,
    /// Where it goes.
    pub recipients: &'a std::collections::BTreeSet<crate::routing::Recipient>,
    /// Its journal entry.
    pub entry: &'a Entry,
}

/// [`fold`] for a run of accepted messages, in journal order, inside their transaction: the
/// node movements they touch are read in one statement, folded in order in memory, and the
/// changed ones written back in one upsert.
pub async fn fold_all(tx: &mut HubTx<'_>, items: &[Folded<'_>]) -> Result<(), StoreError> {
    use message_catalog::ids::CustomsOfficeRef;
    use message_catalog::lifecycle::{self, Actor, Event, Input, Movement};
    use std::collections::{BTreeMap, BTreeSet};
    let mrns: BTreeSet<&str> = items
        .iter()
        .filter_map(|f| f.facts.mrn.as_deref())
        .collect();
    if mrns.is_empty() {
        return Ok(());
    }
    let mrns: Vec<&str> = mrns.into_iter().collect();
    // (mrn, country) → (movement, changed by this run).
    let mut held: BTreeMap<(String, String), (Movement, bool)> = BTreeMap::new();
    for chunk in mrns.chunks(ROWS_PER_STATEMENT) {
        let read: Vec<(String, String, String)> = on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT mrn, country, movement FROM hub_node_movements WHERE mrn IN (",
            );
            let mut list = q.separated(", ");
            for mrn in chunk {
                list.push_bind(*mrn);
            }
            q.push(")");
            q.build_query_as().fetch_all(&mut *c).await?
        });
        for (mrn, country, json) in read {
            let movement: Movement = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("node movement {mrn}/{country}: {e}")))?;
            held.insert((mrn, country), (movement, false));
        }
    }
    for f in items {
        let Some(mrn) = f.facts.mrn.as_deref() else {
            continue;
        };
        for r in f.recipients {
            let crate::routing::Recipient::Node(country) = r else {
                continue;
            };
            let key = (mrn.to_owned(), country.as_str().to_owned());
            let mut state: Option<Movement> = held.get(&key).map(|(m, _)| m.clone());
            let mut changed = false;
            let offices = f.facts.offices.iter().filter(|o| {
                receiving_roles(f.facts.message_type).contains(&o.role)
                    && o.reference.get(..2) == Some(country.as_str())
            });
            for o in offices {
                let Ok(office) = CustomsOfficeRef::parse(&o.reference) else {
                    continue;
                };
                let event = Event {
                    at: f.entry.entry.recorded_at,
                    by: Actor::Node {
                        country: f.sender.to_string(),
                    },
                    office,
                    role: lifecycle_role(o.role),
                    input: Input::Message(f.message.clone()),
                };
                let before = state.clone();
                let step = lifecycle::apply(state, &event);
                changed |= step.movement != before;
                state = step.movement;
            }
            if let Some(movement) = state.filter(|_| changed) {
                held.insert(key, (movement, true));
            }
        }
    }
    let changed: Vec<((String, String), String, String, i64)> = held
        .into_iter()
        .filter(|(_, (_, changed))| *changed)
        .map(|((mrn, country), (movement, _))| {
            let json = serde_json::to_string(&movement)
                .map_err(|e| StoreError::Corrupt(format!("node movement {mrn}/{country}: {e}")))?;
            let applied = i64::try_from(movement.applied).unwrap_or(i64::MAX);
            Ok(((mrn, country), json, movement.digest_hex(), applied))
        })
        .collect::<Result<_, StoreError>>()?;
    for chunk in changed.chunks(ROWS_PER_STATEMENT) {
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO hub_node_movements (mrn, country, movement, digest, applied) ",
            );
            q.push_values(chunk, |mut b, ((mrn, country), json, digest, applied)| {
                b.push_bind(mrn.as_str())
                    .push_bind(country.as_str())
                    .push_bind(json.as_str())
                    .push_bind(digest.as_str())
                    .push_bind(*applied);
            });
            q.push(
                " ON CONFLICT (mrn, country) DO UPDATE SET movement = excluded.movement, \
                 digest = excluded.digest, applied = excluded.applied",
            );
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

/// What one node should hold for a movement, from the life cycle folded by the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeState {
    /// The node's country.
    pub country: String,
    /// `Movement::digest_hex` of the expected state.
    pub digest: String,
    /// Events applied.
    pub applied: i64,
}

/// An office on a movement's route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RouteOffice {
    /// Reference number.
    pub office: String,
    /// `departure`, `exit`, `transit`, `destination`.
    pub role: String,
    /// Its country.
    pub country: String,
}

/// The last event at one office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfficeEvent {
    /// Reference number.
    pub office: String,
    /// Role.
    pub role: String,
    /// The last message it sent (type).
    pub last_event: Option<String>,
    /// When the hub recorded it (RFC 3339 UTC).
    pub at: Option<String>,
}

/// A movement as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovementSummary {
    /// The MRN.
    pub mrn: String,
    /// See the module documentation.
    pub state: String,
    /// From the MRN.
    pub departure_country: String,
    /// Office of departure, once a message named it.
    pub departure_office: Option<String>,
    /// Office of destination, once a message named it.
    pub destination_office: Option<String>,
    /// Every office named so far.
    pub route: Vec<RouteOffice>,
    /// Type of the last accepted message.
    pub last_message_type: String,
    /// Its identification.
    pub last_message_id: String,
    /// Its journal sequence.
    pub last_sequence: i64,
    /// First accepted message (RFC 3339 UTC).
    pub first_seen: String,
    /// Last accepted message (RFC 3339 UTC).
    pub last_seen: String,
}

/// One journal entry of a movement's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryItem {
    /// Journal sequence.
    pub sequence: i64,
    /// Message identification.
    pub message_id: String,
    /// Type.
    pub message_type: String,
    /// Sender URN.
    pub sender: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// `accepted`, `rejected`, `emitted`.
    pub status: String,
    /// Error code when rejected.
    pub error_code: Option<String>,
    /// When recorded (RFC 3339 UTC).
    pub recorded_at: String,
    /// SHA-256 of the body, hex.
    pub body_sha256: String,
}

/// A movement with its offices and full history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovementDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: MovementSummary,
    /// The last event at each office that acted.
    pub offices: Vec<OfficeEvent>,
    /// Every journal entry with this MRN, in order.
    pub history: Vec<HistoryItem>,
    /// What each node that received messages should hold (life cycle digests).
    pub nodes: Vec<NodeState>,
}

/// Filters of `GET /api/v1/movements`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovementQuery {
    /// Only movements in this state.
    pub state: Option<String>,
    /// Only movements with this country on the route (departure included).
    pub country: Option<String>,
    /// Only movements with this office on the route.
    pub office: Option<String>,
    /// Last seen at or after (RFC 3339).
    pub from: Option<String>,
    /// Last seen at or before (RFC 3339).
    pub to: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A filter value is malformed.
    #[error("registry.bad-filter: {0}")]
    BadFilter(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::BadFilter(_) => "registry.bad-filter",
            QueryError::Store(e) => e.code(),
        }
    }
}

fn parse_time(name: &str, v: &Option<String>) -> Result<Option<i64>, QueryError> {
    match v {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|e| QueryError::BadFilter(format!("{name}={s:?}: {e}"))),
    }
}

const SUMMARY_COLUMNS: &str = "mrn, state, departure_country, departure_office, destination_office, \
     route, last_message_type, last_message_id, last_sequence, first_seen, last_seen";

fn summary<R: Row>(row: &R) -> Result<MovementSummary, StoreError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let route: String = row.try_get("route")?;
    Ok(MovementSummary {
        mrn: row.try_get("mrn")?,
        state: row.try_get("state")?,
        departure_country: row.try_get("departure_country")?,
        departure_office: row.try_get("departure_office")?,
        destination_office: row.try_get("destination_office")?,
        route: serde_json::from_str(&route)
            .map_err(|e| StoreError::Corrupt(format!("route: {e}")))?,
        last_message_type: row.try_get("last_message_type")?,
        last_message_id: row.try_get("last_message_id")?,
        last_sequence: row.try_get("last_sequence")?,
        first_seen: rfc3339(row.try_get("first_seen")?),
        last_seen: rfc3339(row.try_get("last_seen")?),
    })
}

/// The movements matching `q`, most recently active first (at most 1000).
pub async fn movements(
    store: &HubStore,
    q: &MovementQuery,
) -> Result<Vec<MovementSummary>, QueryError> {
    let from = parse_time("from", &q.from)?;
    let to = parse_time("to", &q.to)?;
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM hub_movements \
         WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR last_seen >= $2) \
         AND ($3 IS NULL OR last_seen <= $3) ORDER BY last_seen DESC, mrn LIMIT 1000"
    );
    let all: Vec<MovementSummary> = on_pool!(store, |p| {
        sqlx::query(&sql)
            .bind(&q.state)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await
            .map_err(StoreError::from)?
            .iter()
            .map(summary)
            .collect::<Result<_, _>>()?
    });
    Ok(all
        .into_iter()
        .filter(|m| {
            q.country
                .as_deref()
                .is_none_or(|c| m.departure_country == c || m.route.iter().any(|r| r.country == c))
        })
        .filter(|m| {
            q.office
                .as_deref()
                .is_none_or(|o| m.route.iter().any(|r| r.office == o))
        })
        .collect())
}

/// One movement with its offices and history; `None` when the hub never accepted a message
/// with this MRN.
pub async fn movement(store: &HubStore, mrn: &str) -> Result<Option<MovementDetail>, QueryError> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM hub_movements WHERE mrn = $1");
    let found: Option<MovementSummary> = on_pool!(store, |p| {
        match sqlx::query(&sql)
            .bind(mrn)
            .fetch_optional(p)
            .await
            .map_err(StoreError::from)?
        {
            Some(row) => Some(summary(&row)?),
            None => None,
        }
    });
    let Some(summary) = found else {
        return Ok(None);
    };
    let offices: Vec<(String, String, Option<String>, Option<i64>)> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT office, role, last_event, last_event_at FROM hub_movement_offices \
             WHERE mrn = $1 ORDER BY last_event_at, office",
        )
        .bind(mrn)
        .fetch_all(p)
        .await
        .map_err(StoreError::from)?
    });
    let history = crate::journal::entries_of_mrn(store, mrn)
        .await?
        .into_iter()
        .map(|e| HistoryItem {
            sequence: e.sequence,
            message_id: e.entry.message_id,
            message_type: e.entry.message_type,
            sender: e.entry.sender,
            recipients: e.entry.recipients,
            status: e.entry.status.as_str().to_owned(),
            error_code: match e.entry.status {
                crate::journal::Status::Rejected { code, .. } => Some(code),
                _ => None,
            },
            recorded_at: e
                .entry
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            body_sha256: hex::encode(e.entry.body_sha256),
        })
        .collect();
    let nodes: Vec<(String, String, i64)> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT country, digest, applied FROM hub_node_movements WHERE mrn = $1 ORDER BY country",
        )
        .bind(mrn)
        .fetch_all(p)
        .await
        .map_err(StoreError::from)?
    });
    Ok(Some(MovementDetail {
        nodes: nodes
            .into_iter()
            .map(|(country, digest, applied)| NodeState {
                country,
                digest,
                applied,
            })
            .collect(),
        summary,
        offices: offices
            .into_iter()
            .map(|(office, role, last_event, at)| OfficeEvent {
                office,
                role,
                last_event,
                at: at.map(rfc3339),
            })
            .collect(),
        history,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{NewEntry, Status};
    use crate::routing::NamedOffice;
    use message_catalog::reference::Role;

    fn facts(message_type: &'static str, id: &str, mrn: &str, offices: &[(&str, Role)]) -> Facts {
        Facts {
            message_type,
            message_id: id.into(),
            sender: "NTA.KZ".into(),
            recipient: "NTA.GE".into(),
            mrn: Some(mrn.into()),
            offices: offices
                .iter()
                .map(|(reference, role)| NamedOffice {
                    reference: (*reference).into(),
                    role: *role,
                    pointer: String::new(),
                })
                .collect(),
            sending_office: Some(0),
        }
    }

    fn entry(sequence: i64, f: &Facts) -> Entry {
        Entry {
            sequence,
            entry: NewEntry {
                message_id: f.message_id.clone(),
                message_type: f.message_type.into(),
                sender: "urn:cats:node:KZ".into(),
                recipients: vec!["node:GE".into()],
                mrn: f.mrn.clone(),
                correlation_id: None,
                prepared_at: None,
                recorded_at: chrono::DateTime::from_timestamp(1_790_000_000 + sequence, 0)
                    .expect("a time"),
                body_sha256: [0; 32],
                envelope: Vec::new(),
                signer: None,
                status: Status::Accepted,
            },
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    type MovementColumns = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    type OfficeColumns = (String, String, String, Option<String>, Option<i64>);

    async fn tables(store: &HubStore) -> (Vec<String>, Vec<String>) {
        let movements: Vec<MovementColumns> = on_pool!(store, |p| sqlx::query_as(
            "SELECT mrn, state, last_message_id, departure_office, destination_office, route \
             FROM hub_movements ORDER BY mrn"
        )
        .fetch_all(p)
        .await
        .expect("movements"));
        let offices: Vec<OfficeColumns> = on_pool!(store, |p| sqlx::query_as(
            "SELECT mrn, office, role, last_event, last_event_at FROM hub_movement_offices \
             ORDER BY mrn, office, role"
        )
        .fetch_all(p)
        .await
        .expect("offices"));
        (
            movements.iter().map(|r| format!("{r:?}")).collect(),
            offices.iter().map(|r| format!("{r:?}")).collect(),
        )
    }

    /// A run recorded at once leaves exactly what recording its messages one by one leaves:
    /// several messages of one movement in the run, a state that must not move backwards, an
    /// office that acts twice, and a movement already registered before the run.
    #[tokio::test]
    async fn a_run_recorded_at_once_equals_its_messages_one_by_one() {
        let (a, b) = ("26KZ000101000001J0", "26KZ000101000002J0");
        let dep = ("KZ000101", Role::Departure);
        let dest = ("GE000101", Role::Destination);
        let transit = ("AZ000201", Role::Transit);
        let before = facts("CD001C", "M0", b, &[dep, dest]);
        let run = [
            facts("CD001C", "M1", a, &[dep, dest]),
            facts("CD050C", "M2", a, &[dep, transit]),
            facts("CD118C", "M3", b, &[transit]),
            facts("CD006C", "M4", a, &[dest, dep]),
            // Late: the state stays `arrived`; the route and the last message still move on.
            facts("CD160C", "M5", a, &[dep, ("AZ000301", Role::Exit)]),
            facts("CD118C", "M6", b, &[transit]),
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        let mut results = Vec::new();
        for (name, at_once) in [("one", false), ("all", true)] {
            let url = format!(
                "sqlite://{}",
                dir.path().join(format!("{name}.db")).display()
            );
            let store = HubStore::connect(&url).await.expect("store");
            let mut tx = store.begin().await.expect("tx");
            record(&mut tx, &before, &entry(1, &before))
                .await
                .expect("record");
            let entries: Vec<Entry> = run
                .iter()
                .enumerate()
                .map(|(i, f)| entry(i64::try_from(i).expect("small") + 2, f))
                .collect();
            if at_once {
                let items: Vec<(&Facts, &Entry)> = run.iter().zip(&entries).collect();
                record_all(&mut tx, &items).await.expect("record_all");
            } else {
                for (f, e) in run.iter().zip(&entries) {
                    record(&mut tx, f, e).await.expect("record");
                }
            }
            tx.commit().await.expect("commit");
            results.push(tables(&store).await);
        }
        assert_eq!(results[0], results[1]);
        let (movements, offices) = &results[1];
        assert_eq!(movements.len(), 2);
        assert!(
            movements[0].contains("\"arrived\", \"M5\""),
            "{movements:?}"
        );
        assert!(
            movements[1].contains("\"in_transit\", \"M6\""),
            "{movements:?}"
        );
        assert_eq!(offices.len(), 4, "{offices:?}");
    }
}
