//! The node's copy of the CATS reference data and how it follows the hub's.
//!
//! The copy is one row of `node_refdata` (migration 0002): the whole set, its version, and the
//! latest version the node knows the hub has. A new node starts from the configured set (the
//! pilot set by default).
//!
//! A CA005C from the hub ([`Live::receive`]) is, in the same transaction as the inbox entry:
//!
//! - a version at or below the one held: already applied, nothing to do;
//! - a change whose `previousVersionNumber` is the version held: applied, checked, stored;
//! - the whole set (no `previousVersionNumber`): it replaces the copy;
//! - a change that follows a version the node does not hold: a **gap**. The node records that
//!   the hub has at least that version, and asks for what it lacks with a CA006C carrying the
//!   version it holds; the hub answers with the whole set.
//!
//! While the known version is above the one held the node is **behind**
//! ([`Live::behind`]) and refuses declarations (CC015C) with a CC906C that says so.
//! The engine reads offices, the AEO register and the restricted goods list from
//! [`Live::current`].

use std::sync::{Arc, RwLock};

use cats_transport::contract::{Destination, Outbound};
use cats_transport::store::{Outbox, Store, Tx};
use cats_trust::{EnvelopeHeaderFields, PeerIdentity, Signer};
use chrono::{DateTime, Timelike, Utc};
use message_catalog::Message;
use message_catalog::codec::encode;
use message_catalog::generated::admin::{
    CA005CType, CA006CType, CatsAdminMessageTypes, ReferenceDataRequestType,
};
use message_catalog::ids::CountryCode;
use message_catalog::reference::update::read_update;
use message_catalog::reference::{ReferenceData, ReferenceSet};

use crate::store::{StoreError, now_millis};

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

/// The version held and the latest version known at the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// The version of the copy.
    pub held: u64,
    /// The latest version the node knows the hub has.
    pub known: u64,
}

#[derive(Debug)]
struct State {
    data: Arc<ReferenceData>,
    known: u64,
}

/// The reference data in force at the node.
#[derive(Debug)]
pub struct Live {
    state: RwLock<State>,
}

/// What a CA005C did.
#[derive(Debug)]
pub enum Received {
    /// Nothing: a version already held.
    Old,
    /// A new version, stored in the transaction; put in force with [`Live::commit`] once the
    /// transaction committed.
    Applied(Box<ReferenceData>),
    /// A gap: the CA006C asking for the whole set is in the outbox.
    Gap {
        /// The version the update makes.
        version: u64,
    },
    /// The update could not be applied (not a valid set): recorded, the copy unchanged.
    Refused(String),
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Live {
    /// A copy holding `data` (before [`Live::load`]).
    pub fn new(data: ReferenceData) -> Live {
        let known = data.version();
        Live {
            state: RwLock::new(State {
                data: Arc::new(data),
                known,
            }),
        }
    }

    /// The set in force.
    pub fn current(&self) -> Arc<ReferenceData> {
        self.state
            .read()
            .map(|s| s.data.clone())
            .unwrap_or_else(|p| p.into_inner().data.clone())
    }

    /// The versions held and known.
    pub fn versions(&self) -> Versions {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        Versions {
            held: s.data.version(),
            known: s.known,
        }
    }

    /// `Some` when the node knows the hub has a later version than it holds.
    pub fn behind(&self) -> Option<Versions> {
        let v = self.versions();
        (v.known > v.held).then_some(v)
    }

    fn set(&self, data: Option<ReferenceData>, known: u64) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = data {
            s.data = Arc::new(d);
        }
        s.known = s.known.max(known);
    }

    /// Puts in force the copy stored (or stores the configured one on a new node).
    pub async fn load(&self, store: &Store) -> Result<(), StoreError> {
        let mut tx = store.begin().await?;
        let row: Option<(i64, String)> = on_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT known_version, snapshot FROM node_refdata WHERE id = 1")
                .fetch_optional(&mut *c)
                .await?
        });
        match row {
            Some((known, snapshot)) => {
                let set: ReferenceSet = serde_json::from_str(&snapshot)
                    .map_err(|e| corrupt("reference data copy", e))?;
                let data =
                    ReferenceData::from_set(set).map_err(|e| corrupt("reference data copy", e))?;
                self.set(Some(data), u64::try_from(known).unwrap_or(0));
            }
            None => {
                let data = self.current();
                store_copy(&mut tx, &data.to_set(), data.version()).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts in force what [`Live::receive`] stored, after its transaction committed.
    pub fn commit(&self, received: Received) {
        match received {
            Received::Applied(d) => {
                let v = d.version();
                self.set(Some(*d), v);
            }
            Received::Gap { version } => self.set(None, version),
            Received::Old | Received::Refused(_) => {}
        }
    }

    /// Takes a CA005C inside `tx` (see the module documentation).
    #[allow(clippy::too_many_arguments)]
    pub async fn receive(
        &self,
        tx: &mut Tx<'static>,
        m: &CA005CType,
        outbox: &Outbox,
        signer: &Signer,
        country: CountryCode,
        message_id: &str,
    ) -> Result<Received, StoreError> {
        let now = now_millis();
        let v = self.versions();
        let update = match read_update(m) {
            Ok(u) => u,
            Err(e) => {
                log(tx, 0, None, &format!("refused: {e}"), message_id, now).await?;
                tracing::warn!(error = %e, "reference data update refused");
                return Ok(Received::Refused(e.to_string()));
            }
        };
        if update.version <= v.held {
            return Ok(Received::Old);
        }
        let held = self.current().to_set();
        let follows = update.previous.is_none_or(|p| p == v.held);
        if !follows {
            let known = v.known.max(update.version);
            on_tx!(tx, |c| {
                sqlx::query(
                    "UPDATE node_refdata SET known_version = $1, updated_at = $2 WHERE id = 1",
                )
                .bind(as_i64(known))
                .bind(now)
                .execute(&mut *c)
                .await?;
            });
            log(tx, update.version, update.previous, "gap", message_id, now).await?;
            request_whole_set(tx, outbox, signer, country, v.held, message_id).await?;
            tracing::warn!(
                held = v.held,
                version = update.version,
                previous = ?update.previous,
                "reference data gap: asked the hub for the whole set"
            );
            return Ok(Received::Gap {
                version: update.version,
            });
        }
        let made = update
            .applied_to(&held)
            .and_then(|set| ReferenceData::from_set(set.clone()).map(|d| (set, d)));
        match made {
            Ok((set, data)) => {
                store_copy(tx, &set, v.known.max(set.version)).await?;
                let outcome = if update.previous.is_none() {
                    "whole"
                } else {
                    "applied"
                };
                log(
                    tx,
                    update.version,
                    update.previous,
                    outcome,
                    message_id,
                    now,
                )
                .await?;
                tracing::info!(version = set.version, outcome, "reference data updated");
                Ok(Received::Applied(Box::new(data)))
            }
            Err(e) => {
                log(
                    tx,
                    update.version,
                    update.previous,
                    &format!("refused: {e}"),
                    message_id,
                    now,
                )
                .await?;
                tracing::warn!(error = %e, "reference data update refused");
                Ok(Received::Refused(e.to_string()))
            }
        }
    }
}

/// Sends a trader registration application (CA003C) from the national system to the hub,
/// signed by this node, inside `tx` (the hub answers with a CA004C, which goes on the national
/// stream).
pub async fn forward_application(
    tx: &mut Tx<'static>,
    outbox: &Outbox,
    signer: &Signer,
    country: CountryCode,
    message: &Message,
    body: &[u8],
) -> Result<String, StoreError> {
    let id = message
        .message_identification()
        .unwrap_or_default()
        .to_owned();
    let fields = EnvelopeHeaderFields {
        message_id: id.clone(),
        message_type: message.message_type().to_owned(),
        sender: PeerIdentity::Node(country),
        recipient: PeerIdentity::Hub,
        correlation_id: None,
        mrn: None,
        prepared_at: whole_seconds(Utc::now()),
    };
    let sealed = signer
        .seal(&fields, body)
        .map_err(|e| corrupt("signing the CA003C", e))?;
    outbox
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
    Ok(id)
}

async fn store_copy(
    tx: &mut Tx<'static>,
    set: &ReferenceSet,
    known: u64,
) -> Result<(), StoreError> {
    let snapshot = serde_json::to_string(set).map_err(|e| corrupt("reference data", e))?;
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM node_refdata WHERE id = 1")
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "INSERT INTO node_refdata (id, version, known_version, snapshot, updated_at) \
             VALUES (1, $1, $2, $3, $4)",
        )
        .bind(as_i64(set.version))
        .bind(as_i64(known))
        .bind(&snapshot)
        .bind(now_millis())
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

async fn log(
    tx: &mut Tx<'static>,
    version: u64,
    previous: Option<u64>,
    outcome: &str,
    message_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO node_refdata_log (version, previous, outcome, message_id, at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(as_i64(version))
        .bind(previous.map(as_i64))
        .bind(outcome)
        .bind(message_id)
        .bind(at)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

async fn request_whole_set(
    tx: &mut Tx<'static>,
    outbox: &Outbox,
    signer: &Signer,
    country: CountryCode,
    held: u64,
    correlation: &str,
) -> Result<(), StoreError> {
    let now = whole_seconds(Utc::now());
    let id = format!("{country}-REF-{}", now.timestamp_millis());
    let message = Message::CA006C(Box::new(CA006CType {
        message_sender: format!("NTA.{country}"),
        message_recipient: "CATS.HUB".into(),
        preparation_date_and_time: now.naive_utc(),
        message_identification: id.clone(),
        message_type: CatsAdminMessageTypes::CA006C,
        correlation_identifier: Some(correlation.chars().take(35).collect()),
        reference_data_request: ReferenceDataRequestType {
            version_number: as_i64(held.max(1)),
        },
    }));
    let body = encode(&message);
    let fields = EnvelopeHeaderFields {
        message_id: id.clone(),
        message_type: "CA006C".into(),
        sender: PeerIdentity::Node(country),
        recipient: PeerIdentity::Hub,
        correlation_id: Some(correlation.to_owned()),
        mrn: None,
        prepared_at: now,
    };
    let sealed = signer
        .seal(&fields, &body)
        .map_err(|e| corrupt("signing the CA006C", e))?;
    outbox
        .enqueue(
            tx,
            &Outbound {
                message_id: id,
                destination: Destination::Hub,
                partition_key: None,
                bytes: bytes::Bytes::from(sealed),
            },
        )
        .await?;
    Ok(())
}
