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
//!
//! A delivery that names an office of this node's country where the node would act (the
//! destination of a CD001C, a transit office of a CD050C, an exit office of a CD160C) that the
//! copy does not hold is a **reference-data gap** ([`missing_office`]): the engine refuses it
//! before writing anything, with a reason starting `refdata-gap:`, and it becomes a dead
//! letter an operator replays once the gap is fixed.
//!
//! A copy that lost records without a version to show for it (restored from a backup older
//! than an office, edited by hand) sees no gap in the versions. [`Live::resync`] (the node's
//! `POST /api/v1/refdata/resync`) asks the hub for the whole set all the same, and the whole
//! set at the version held replaces the copy like a later one.

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
use message_catalog::ids::{CountryCode, CustomsOfficeRef};
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

/// The first office of `country` that `message` names where the node would act (destination
/// of a CD001C, transit of a CD050C, exit of a CD160C) and that `data` does not hold. Offices
/// of other countries are not this node's to check (the hub checks every office against the
/// master copy); other messages name no office the node acts at from the message itself.
pub fn missing_office(
    data: &ReferenceData,
    country: CountryCode,
    message: &Message,
) -> Option<CustomsOfficeRef> {
    let named: Vec<&str> = match message {
        Message::CD001C(m) => vec![
            m.customs_office_of_destination_declared
                .reference_number
                .as_str(),
        ],
        Message::CD050C(m) => m
            .customs_office_of_transit_declared
            .iter()
            .map(|o| o.reference_number.as_str())
            .collect(),
        Message::CD160C(m) => m
            .customs_office_of_exit_for_transit_declared
            .iter()
            .map(|o| o.reference_number.as_str())
            .collect(),
        _ => Vec::new(),
    };
    named
        .into_iter()
        .filter_map(|o| CustomsOfficeRef::parse(o).ok())
        .filter(|o| o.country() == country)
        .find(|o| data.office(o).is_none())
}

/// The reason a delivery with a reference-data gap is refused with (its dead letter's reason):
/// stable prefix `refdata-gap:`.
pub fn gap_reason(office: &CustomsOfficeRef, version: u64) -> String {
    format!("refdata-gap: office {office} is not in this node's reference data (version {version})")
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

    /// Asks the hub for the whole set even though no gap shows (a copy that lost records):
    /// a CA006C in the outbox, inside `tx`; the answer replaces the copy when it arrives
    /// ([`Live::receive`]). Returns the request's message identification.
    pub async fn resync(
        &self,
        tx: &mut Tx<'static>,
        outbox: &Outbox,
        signer: &Signer,
        country: CountryCode,
    ) -> Result<String, StoreError> {
        let held = self.versions().held;
        let now = now_millis();
        let id = request_whole_set(tx, outbox, signer, country, held, "resync").await?;
        log(tx, held, None, "resync requested", &id, now).await?;
        tracing::info!(held, request = %id, "reference data: whole set asked of the hub");
        Ok(id)
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
        // The whole set at the version held replaces the copy too: it is the hub's answer to
        // a resync, and the master copy of that version is what the node should hold.
        let whole = update.previous.is_none();
        if update.version < v.held || (update.version == v.held && !whole) {
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
) -> Result<String, StoreError> {
    let now = whole_seconds(Utc::now());
    let id = format!("{country}-REF-{}", now_millis());
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
                message_id: id.clone(),
                destination: Destination::Hub,
                partition_key: None,
                bytes: bytes::Bytes::from(sealed),
            },
        )
        .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use message_catalog::codec::Limits;
    use message_catalog::rules::{Level, validate};

    fn message(path: &str) -> Message {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../message-catalog/tests/data")
                .join(path),
        )
        .expect("a catalogue sample");
        validate(&bytes, &Limits::default(), Level::Xml).expect("a valid sample")
    }

    fn without(office: &str) -> ReferenceData {
        let mut set = ReferenceData::pilot().to_set();
        set.offices
            .retain(|o| o.reference_number.to_string() != office);
        ReferenceData::from_set(set).expect("still a valid set")
    }

    fn cc(c: &str) -> CountryCode {
        CountryCode::parse(c).expect("a country")
    }

    #[test]
    fn the_pilot_set_has_every_office_the_samples_name() {
        let pilot = ReferenceData::pilot();
        for sample in ["cd001c", "cd050c", "cd160c"] {
            let m = message(&format!("{sample}/valid-full.xml"));
            for c in ["KZ", "AZ", "GE"] {
                assert_eq!(missing_office(&pilot, cc(c), &m), None, "{sample} at {c}");
            }
        }
    }

    #[test]
    fn an_own_office_missing_where_the_node_acts_is_a_gap() {
        // The AAR's destination (GE000201) at the destination country.
        let aar = message("cd001c/valid-full.xml");
        let gap = missing_office(&without("GE000201"), cc("GE"), &aar).expect("a gap");
        assert_eq!(gap.to_string(), "GE000201");
        // The ATR's and AXR's own offices (AZ000101 in the samples).
        for sample in ["cd050c", "cd160c"] {
            let m = message(&format!("{sample}/valid-full.xml"));
            let gap = missing_office(&without("AZ000101"), cc("AZ"), &m).expect("a gap");
            assert_eq!(gap.to_string(), "AZ000101", "{sample}");
        }
    }

    #[test]
    fn other_countries_and_other_roles_are_not_checked() {
        let aar = message("cd001c/valid-full.xml");
        // Another country's destination is the hub's to check, not this node's.
        assert_eq!(missing_office(&without("GE000201"), cc("AZ"), &aar), None);
        // The AAR makes the node act at its destination only (the sample's transit offices
        // are AZ's, the AAR is not AZ's to act on).
        assert_eq!(missing_office(&without("AZ000101"), cc("AZ"), &aar), None);
        // Departure-side messages name no office the node acts at from the message itself.
        let arrival = message("cd006c/valid-full.xml");
        assert_eq!(
            missing_office(&without("KZ000101"), cc("KZ"), &arrival),
            None
        );
    }

    #[test]
    fn the_reason_has_a_stable_prefix() {
        let office = CustomsOfficeRef::parse("GE000201").expect("office");
        assert_eq!(
            gap_reason(&office, 3),
            "refdata-gap: office GE000201 is not in this node's reference data (version 3)"
        );
    }
}
