//! The comprehensive-guarantee ledger: the one authority for every guarantee balance.
//!
//! The terms of each insurance contract (GRN, holders, policy period, insured amount and
//! currency, status) are reference data ([`ReferenceData::guarantee_cover`]); what is in use is
//! kept here, in the hub's store, in two tables (migration 0004):
//!
//! - `hub_guarantee_contracts`: one row per contract, its terms as JSON and the amount in use
//!   (a decimal as text). Every reservation and release holds this row while it changes it:
//!   `SELECT … FOR UPDATE` on PostgreSQL, the single writer (`BEGIN IMMEDIATE`) on SQLite, so
//!   concurrent reservations against one contract never overdraw it.
//! - `hub_guarantee_uses`: one row per movement (MRN) and GRN asked for, with the answer
//!   (reserved, refused and why) and, once released, by which message.
//!
//! Messages (dispatched by the pipeline inside the transaction of the journal entry, so that the
//! entry, the ledger change and the answer commit together or not at all):
//!
//! | message | effect | answer |
//! | --- | --- | --- |
//! | CD203C guarantee use | per GRN: reserve the amount, or refuse | CD205C to the departure node, signed by the hub, journalled as emitted |
//! | CD204C use cancellation | release the movement's reservation of each GRN | none |
//! | CD209C guarantee credit (write-off) | release likewise | none |
//!
//! A CD203C is refused per GRN ([`GuaranteeRefusal`]): unknown GRN, contract expired or
//! suspended, holder not covered, a currency with no exchange rate on the day, insufficient
//! available balance. An amount in another currency than the contract's is converted at the
//! rate table of the reference data ([`ReferenceData::convert`]: cross rate to 9 places, the
//! amount rounded up to 2) and the reservation records the amount declared, the amount in the
//! contract's currency and the rate; the CD205C gives the rate in `exchangeRate`.
//!
//! The contracts a GRN may name are those of the reference data and those approved at the hub
//! ([`crate::insurer`]), both mirrored in `hub_guarantee_contracts`. A reservation that takes
//! the amount in use across a threshold of the insured amount ([`LedgerPolicy::thresholds`],
//! 80 % and 100 % by default) records one notification per crossing for the insurer
//! (`hub_guarantee_notifications`); a release closes the movement's open enquiry. A second CD203C for a movement and GRN already answered gets the same
//! answer again and reserves nothing. A release of a reservation already released changes
//! nothing; a CD204C / CD209C naming a GRN the movement never asked for is refused by
//! [`check`] with a CD906C (code 14, `guarantee.not-reserved`) before anything is journalled.
//!
//! **A contract suspended or ended.** The administrator suspends, reinstates or terminates a
//! contract ([`crate::insurer::change_contract`]); the new status is a reference-data version,
//! and [`register_in`] writes the same terms into `hub_guarantee_contracts` in that version's
//! transaction. From then on a new CD203C naming the contract is refused (`suspended`, or
//! `expired` for a terminated contract). Reservations already held stay held: the movements
//! were released under the guarantee, so the insurer stays liable for them until they are
//! written off or cancelled, and a CD209C / CD204C releases them as usual (the amount in use
//! goes down, and a reinstated contract has that amount available again).
//!
//! [`routes`]: `GET /api/v1/guarantees` (every contract with insured amount, in use, available)
//! and `GET /api/v1/guarantees/{grn}` (the contract in force today and each movement with its
//! amount and status). Amounts are decimals, in JSON as strings.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cats_trust::{EnvelopeHeaderFields, PeerIdentity};
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use message_catalog::Message;
use message_catalog::codec::{ErrorCode, Problem, encode};
use message_catalog::generated::cats;
use message_catalog::ids::{CountryCode, Grn};
use message_catalog::reference::{
    ContractStatus, ConversionError, GuaranteeRefusal, InsuranceContract, ReferenceData,
};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::journal::{self, Entry, NewEntry, Status, sha256};
use crate::pipeline::{HubServices, PipelineError};
use crate::routing::{HUB_ADDRESS, Recipient};
use crate::store::{HubStore, HubTx, StoreError, now_millis, on_pool, on_tx};

/// Counters of the ledger, rendered with the hub's metrics.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    released: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    /// Counts what one committed message did (an answer repeated for a duplicate request is
    /// not counted again).
    pub fn count(&self, outcome: &Settled) {
        for a in outcome.answers.iter().filter(|a| !a.repeated) {
            match a.result {
                UseResult::Reserved { .. } => {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                }
                UseResult::Refused { reason, .. } => {
                    let mut m = match self.refused.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    *m.entry(reason.label()).or_insert(0) += 1;
                }
            }
        }
        let released = outcome
            .releases
            .iter()
            .filter(|r| **r == Release::Released)
            .count();
        self.released
            .fetch_add(u64::try_from(released).unwrap_or(0), Ordering::Relaxed);
    }

    /// Reservations accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Appends the counters in the Prometheus text format:
    /// `cats_hub_guarantee_reservations_total{result="accepted"}`,
    /// `cats_hub_guarantee_reservations_total{result="refused",reason="guarantee.…"}` and
    /// `cats_hub_guarantee_releases_total`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP cats_hub_guarantee_reservations_total Guarantee use requests answered, per result."
        );
        let _ = writeln!(out, "# TYPE cats_hub_guarantee_reservations_total counter");
        let _ = writeln!(
            out,
            "cats_hub_guarantee_reservations_total{{result=\"accepted\"}} {}",
            self.accepted()
        );
        let refused = match self.refused.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for (reason, n) in refused {
            let _ = writeln!(
                out,
                "cats_hub_guarantee_reservations_total{{result=\"refused\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP cats_hub_guarantee_releases_total Reservations released by CD204C or CD209C."
        );
        let _ = writeln!(out, "# TYPE cats_hub_guarantee_releases_total counter");
        let _ = writeln!(
            out,
            "cats_hub_guarantee_releases_total {}",
            self.released.load(Ordering::Relaxed)
        );
    }
}

/// What the ledger is told by configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPolicy {
    /// Percentages of the insured amount whose upward crossing is notified to the insurer.
    pub thresholds: Vec<Decimal>,
    /// Days after a reservation by which the movement must be discharged (its limit date).
    pub transit_days: i64,
    /// Days an enquiry stays open before it becomes a liability on the contract.
    pub liability_after_days: i64,
}

impl Default for LedgerPolicy {
    fn default() -> LedgerPolicy {
        LedgerPolicy {
            thresholds: vec![Decimal::from(80), Decimal::from(100)],
            transit_days: 8,
            liability_after_days: 28,
        }
    }
}

/// One GRN of a guarantee use request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseRequest {
    /// The movement.
    pub mrn: String,
    /// The GRN as written in the message.
    pub grn: String,
    /// The holder of the transit procedure (its identification number).
    pub holder: String,
    /// The amount to reserve.
    pub amount: Decimal,
    /// Its currency.
    pub currency: String,
    /// The request's message identification.
    pub request_id: String,
    /// The request's journal sequence, when it came through the pipeline.
    pub request_sequence: Option<i64>,
}

/// The answer for one GRN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UseResult {
    /// The amount is reserved on the contract.
    Reserved {
        /// The contract.
        contract_id: String,
        /// The amount reserved.
        amount: Decimal,
        /// Its currency (the contract's).
        currency: String,
        /// The rate the declared amount was converted at (units of the contract's currency
        /// per unit of the declared one); `None` when it was in the contract's currency.
        exchange_rate: Option<Decimal>,
    },
    /// Refused.
    Refused {
        /// Why.
        reason: GuaranteeRefusal,
        /// The contract the GRN names, when it names one, and its currency.
        contract: Option<(String, String)>,
    },
}

/// The answer for one GRN, and whether it was given before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseAnswer {
    /// The GRN as written.
    pub grn: String,
    /// The result.
    pub result: UseResult,
    /// `true` when this movement and GRN had been answered already (nothing reserved now).
    pub repeated: bool,
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The reservation was released.
    Released,
    /// It had been released already: nothing changed.
    AlreadyReleased,
    /// The use had been refused: nothing to release.
    WasRefused,
    /// The movement never asked for this GRN: nothing changed.
    NotReserved,
}

/// What the ledger did for one message, committed with its journal entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Per GRN of a CD203C.
    pub answers: Vec<UseAnswer>,
    /// Per GRN of a CD204C / CD209C.
    pub releases: Vec<Release>,
    /// The CD205C, journalled as emitted, to send to the departure node.
    pub reply: Option<Reply>,
}

/// A message the hub authored and journalled, to send after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Its journal sequence.
    pub sequence: i64,
    /// Its message identification.
    pub message_id: String,
    /// Its type (`CD205C`).
    pub message_type: String,
    /// The node it goes to.
    pub recipient: CountryCode,
    /// The signed envelope.
    pub envelope: Vec<u8>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn decimal(text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(text).map_err(|e| corrupt("ledger amount", e))
}

/// Records every contract of `reference` in the ledger (terms updated, amount in use kept), so
/// that the API lists contracts not used yet. Run at start.
pub async fn register(store: &HubStore, reference: &ReferenceData) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    for c in reference.contracts() {
        register_in(&mut tx, c).await?;
    }
    tx.commit().await
}

/// Records `c` in the ledger inside `tx`: a new row with nothing in use, or the terms of the
/// existing row replaced (its amount in use kept). A reference-data change that writes a
/// contract (approval, suspension, reinstatement, termination) calls this in its own
/// transaction, so the ledger never reads older terms than the version in force.
pub async fn register_in(tx: &mut HubTx<'_>, c: &InsuranceContract) -> Result<(), StoreError> {
    let terms = serde_json::to_string(c).map_err(|e| corrupt("contract terms", e))?;
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO hub_guarantee_contracts (contract_id, grn, terms, in_use, updated_at) \
             VALUES ($1, $2, $3, '0', $4) \
             ON CONFLICT (contract_id) DO UPDATE SET grn = $2, terms = $3, updated_at = $4",
        )
        .bind(&c.contract_id)
        .bind(c.grn.as_str())
        .bind(&terms)
        .bind(now_millis())
        .execute(&mut *conn)
        .await?;
    });
    Ok(())
}

/// Takes the contract's ledger row (creating it when missing) and returns the amount in use.
async fn lock_contract(tx: &mut HubTx<'_>, c: &InsuranceContract) -> Result<Decimal, StoreError> {
    let terms = serde_json::to_string(c).map_err(|e| corrupt("contract terms", e))?;
    let select = match tx {
        HubTx::Postgres(_) => {
            "SELECT in_use FROM hub_guarantee_contracts WHERE contract_id = $1 FOR UPDATE"
        }
        HubTx::Sqlite(_) => "SELECT in_use FROM hub_guarantee_contracts WHERE contract_id = $1",
    };
    let in_use: String = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO hub_guarantee_contracts (contract_id, grn, terms, in_use, updated_at) \
             VALUES ($1, $2, $3, '0', $4) ON CONFLICT (contract_id) DO NOTHING",
        )
        .bind(&c.contract_id)
        .bind(c.grn.as_str())
        .bind(&terms)
        .bind(now_millis())
        .execute(&mut *conn)
        .await?;
        sqlx::query_scalar(select)
            .bind(&c.contract_id)
            .fetch_one(&mut *conn)
            .await?
    });
    decimal(&in_use)
}

async fn set_in_use(
    tx: &mut HubTx<'_>,
    contract_id: &str,
    in_use: Decimal,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE hub_guarantee_contracts SET in_use = $2, updated_at = $3 WHERE contract_id = $1",
        )
        .bind(contract_id)
        .bind(in_use.to_string())
        .bind(now_millis())
        .execute(&mut *conn)
        .await?;
    });
    Ok(())
}

/// `(contract_id, amount, currency, status, refusal, exchange_rate)` of a `hub_guarantee_uses`
/// row.
type UseRow = (
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

async fn use_row(tx: &mut HubTx<'_>, mrn: &str, grn: &str) -> Result<Option<UseRow>, StoreError> {
    Ok(on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT contract_id, amount, currency, status, refusal, exchange_rate \
             FROM hub_guarantee_uses WHERE mrn = $1 AND grn = $2",
        )
        .bind(mrn)
        .bind(grn)
        .fetch_optional(&mut *conn)
        .await?
    }))
}

fn refusal_of_label(label: &str) -> Option<GuaranteeRefusal> {
    GuaranteeRefusal::ALL
        .into_iter()
        .find(|r| r.label() == label)
}

/// The answer recorded for a use row.
fn recorded_answer(
    grn: &str,
    row: UseRow,
    reference: &ReferenceData,
) -> Result<UseAnswer, StoreError> {
    let (contract_id, amount, currency, status, refusal, rate) = row;
    let result = match status.as_str() {
        "reserved" | "released" => UseResult::Reserved {
            contract_id: contract_id.unwrap_or_default(),
            amount: decimal(&amount)?,
            currency,
            exchange_rate: match rate.as_deref() {
                Some(r) => Some(decimal(r)?).filter(|r| *r != Decimal::ONE),
                None => None,
            },
        },
        "refused" => {
            let reason = refusal
                .as_deref()
                .and_then(refusal_of_label)
                .ok_or_else(|| corrupt("refusal reason", format!("{refusal:?}")))?;
            let contract = contract_id.map(|id| {
                let cur = reference
                    .contract(&id)
                    .map(|c| c.currency.clone())
                    .unwrap_or_default();
                (id, cur)
            });
            UseResult::Refused { reason, contract }
        }
        other => return Err(corrupt("use status", other)),
    };
    Ok(UseAnswer {
        grn: grn.to_owned(),
        result,
        repeated: true,
    })
}

/// An amount in the contract's currency and the rate it was converted at.
#[derive(Debug, Clone, Copy)]
struct Priced<'a> {
    amount: Decimal,
    currency: &'a str,
    rate: Decimal,
}

async fn insert_use(
    tx: &mut HubTx<'_>,
    request: &UseRequest,
    contract_id: Option<&str>,
    priced: Option<Priced<'_>>,
    status: &str,
    refusal: Option<GuaranteeRefusal>,
) -> Result<bool, StoreError> {
    let (amount, currency) = match priced {
        Some(p) => (p.amount, p.currency),
        None => (request.amount, request.currency.as_str()),
    };
    let done = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO hub_guarantee_uses (mrn, grn, contract_id, holder, amount, currency, \
             status, refusal, request_id, request_sequence, requested_at, declared_amount, \
             declared_currency, exchange_rate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (mrn, grn) DO NOTHING",
        )
        .bind(&request.mrn)
        .bind(&request.grn)
        .bind(contract_id)
        .bind(&request.holder)
        .bind(amount.to_string())
        .bind(currency)
        .bind(status)
        .bind(refusal.map(GuaranteeRefusal::label))
        .bind(&request.request_id)
        .bind(request.request_sequence)
        .bind(now_millis())
        .bind(request.amount.to_string())
        .bind(&request.currency)
        .bind(priced.map(|p| p.rate.to_string()))
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Reserves `request.amount` on the contract `request.grn` names on `day`, or refuses, inside
/// `tx`, with the default [`LedgerPolicy`]. A movement and GRN answered before get the same
/// answer (`repeated`), nothing more.
pub async fn reserve(
    tx: &mut HubTx<'_>,
    reference: &ReferenceData,
    request: &UseRequest,
    day: NaiveDate,
) -> Result<UseAnswer, StoreError> {
    reserve_with(tx, reference, &LedgerPolicy::default(), request, day).await
}

/// The contracts with this GRN: those of the reference data and those registered in the
/// ledger (approved at the hub), by contract id (the ledger's terms win), in order of policy
/// period.
pub async fn contracts_for(
    tx: &mut HubTx<'_>,
    reference: &ReferenceData,
    grn: &Grn,
) -> Result<Vec<InsuranceContract>, StoreError> {
    let mut all: BTreeMap<String, InsuranceContract> = reference
        .contracts_for(grn)
        .map(|c| (c.contract_id.clone(), c.clone()))
        .collect();
    let rows: Vec<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT terms FROM hub_guarantee_contracts WHERE grn = $1")
            .bind(grn.as_str())
            .fetch_all(&mut *conn)
            .await?
    });
    for terms in rows {
        let c: InsuranceContract =
            serde_json::from_str(&terms).map_err(|e| corrupt("contract terms", e))?;
        all.insert(c.contract_id.clone(), c);
    }
    let mut list: Vec<InsuranceContract> = all.into_values().collect();
    list.sort_by_key(|c| c.valid_from);
    Ok(list)
}

/// The contract of `contracts` (one GRN, in order of policy period) in force on `day`, as
/// [`ReferenceData::contract_on`], and whether it may guarantee `holder`, as
/// [`ReferenceData::guarantee_cover`] (the currency is converted, not compared).
pub fn cover<'a>(
    contracts: &'a [InsuranceContract],
    holder: &str,
    day: NaiveDate,
) -> Result<&'a InsuranceContract, (GuaranteeRefusal, Option<&'a InsuranceContract>)> {
    let Some(c) = contracts
        .iter()
        .find(|c| c.covers_day(day))
        .or_else(|| contracts.iter().rev().find(|c| c.valid_from <= day))
        .or_else(|| contracts.first())
    else {
        return Err((GuaranteeRefusal::UnknownGrn, None));
    };
    let refusal = match c.status {
        ContractStatus::Suspended => Some(GuaranteeRefusal::Suspended),
        ContractStatus::Expired => Some(GuaranteeRefusal::Expired),
        ContractStatus::Active if !c.covers_day(day) => Some(GuaranteeRefusal::Expired),
        ContractStatus::Active if !c.covers_holder(holder) => {
            Some(GuaranteeRefusal::HolderNotCovered)
        }
        ContractStatus::Active => None,
    };
    match refusal {
        Some(r) => Err((r, Some(c))),
        None => Ok(c),
    }
}

/// [`reserve`] with an explicit policy (the thresholds notified).
pub async fn reserve_with(
    tx: &mut HubTx<'_>,
    reference: &ReferenceData,
    policy: &LedgerPolicy,
    request: &UseRequest,
    day: NaiveDate,
) -> Result<UseAnswer, StoreError> {
    if let Some(row) = use_row(tx, &request.mrn, &request.grn).await? {
        return recorded_answer(&request.grn, row, reference);
    }
    let fresh = |result| UseAnswer {
        grn: request.grn.clone(),
        result,
        repeated: false,
    };
    let contracts = match Grn::parse(&request.grn) {
        Ok(grn) => contracts_for(tx, reference, &grn).await?,
        Err(_) => Vec::new(),
    };
    let refuse = |reason, contract: Option<&InsuranceContract>| {
        (
            reason,
            contract.map(|c| (c.contract_id.clone(), c.currency.clone())),
        )
    };
    let checked = cover(&contracts, &request.holder, day)
        .and_then(|c| {
            crate::refdata::holder_eligible(reference, &request.holder)
                .map(|()| c)
                .map_err(|r| (r, Some(c)))
        })
        .map_err(|(reason, c)| refuse(reason, c))
        .and_then(|c| {
            reference
                .convert(request.amount, &request.currency, &c.currency, day)
                .map(|conversion| (c, conversion))
                .map_err(|e| match e {
                    ConversionError::UnknownCurrency { .. } => {
                        refuse(GuaranteeRefusal::UnknownCurrency, Some(c))
                    }
                    ConversionError::Overflow(_) => {
                        refuse(GuaranteeRefusal::InsufficientBalance, Some(c))
                    }
                })
        });
    let (contract, conversion) = match checked {
        Ok(found) => found,
        Err((reason, contract)) => {
            let id = contract.as_ref().map(|(id, _)| id.as_str());
            if !insert_use(tx, request, id, None, "refused", Some(reason)).await? {
                return again(tx, request, reference).await;
            }
            return Ok(fresh(UseResult::Refused { reason, contract }));
        }
    };
    let priced = Priced {
        amount: conversion.amount,
        currency: &contract.currency,
        rate: conversion.rate,
    };
    let in_use = lock_contract(tx, contract).await?;
    // Another request for this movement and GRN may have committed while we waited.
    if let Some(row) = use_row(tx, &request.mrn, &request.grn).await? {
        return recorded_answer(&request.grn, row, reference);
    }
    let available = contract.insured_amount - in_use;
    if priced.amount > available {
        let reason = GuaranteeRefusal::InsufficientBalance;
        insert_use(
            tx,
            request,
            Some(&contract.contract_id),
            Some(priced),
            "refused",
            Some(reason),
        )
        .await?;
        return Ok(fresh(UseResult::Refused {
            reason,
            contract: Some((contract.contract_id.clone(), contract.currency.clone())),
        }));
    }
    let after = in_use + priced.amount;
    set_in_use(tx, &contract.contract_id, after).await?;
    insert_use(
        tx,
        request,
        Some(&contract.contract_id),
        Some(priced),
        "reserved",
        None,
    )
    .await?;
    notify_crossings(tx, policy, contract, in_use, after, &request.mrn).await?;
    Ok(fresh(UseResult::Reserved {
        contract_id: contract.contract_id.clone(),
        amount: priced.amount,
        currency: contract.currency.clone(),
        exchange_rate: Some(priced.rate).filter(|r| *r != Decimal::ONE),
    }))
}

/// Records a notification for each threshold of `policy` that the amount in use crossed
/// upwards, from `before` to `after` (one row per crossing: going down and up again is a new
/// crossing).
async fn notify_crossings(
    tx: &mut HubTx<'_>,
    policy: &LedgerPolicy,
    contract: &InsuranceContract,
    before: Decimal,
    after: Decimal,
    mrn: &str,
) -> Result<(), StoreError> {
    for t in &policy.thresholds {
        let level = contract.insured_amount * *t / Decimal::ONE_HUNDRED;
        if before < level && level <= after {
            tracing::info!(
                contract = contract.contract_id,
                threshold = %t,
                in_use = %after,
                "guarantee threshold crossed"
            );
            on_tx!(tx, |conn| {
                sqlx::query(
                    "INSERT INTO hub_guarantee_notifications (contract_id, insurer, threshold, \
                     in_use, insured_amount, mrn, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&contract.contract_id)
                .bind(contract.insurer.as_str())
                .bind(t.normalize().to_string())
                .bind(after.to_string())
                .bind(contract.insured_amount.to_string())
                .bind(mrn)
                .bind(now_millis())
                .execute(&mut *conn)
                .await?;
            });
        }
    }
    Ok(())
}

async fn again(
    tx: &mut HubTx<'_>,
    request: &UseRequest,
    reference: &ReferenceData,
) -> Result<UseAnswer, StoreError> {
    let row = use_row(tx, &request.mrn, &request.grn)
        .await?
        .ok_or_else(|| corrupt("guarantee use", "vanished after a conflicting insert"))?;
    recorded_answer(&request.grn, row, reference)
}

/// Releases the reservation of `grn` for movement `mrn`, inside `tx`; `by` is the releasing
/// message type (`CD204C`, `CD209C`), `message_id` and `sequence` the message and its entry.
pub async fn release(
    tx: &mut HubTx<'_>,
    mrn: &str,
    grn: &str,
    by: &str,
    message_id: &str,
    sequence: Option<i64>,
) -> Result<Release, StoreError> {
    let Some((contract_id, _, _, status, _, _)) = use_row(tx, mrn, grn).await? else {
        return Ok(Release::NotReserved);
    };
    match status.as_str() {
        "released" => return Ok(Release::AlreadyReleased),
        "refused" => return Ok(Release::WasRefused),
        "reserved" => {}
        other => return Err(corrupt("use status", other)),
    }
    let contract_id = contract_id.ok_or_else(|| corrupt("reservation", "no contract"))?;
    // Hold the contract row, then read the use again: a concurrent release of the same use
    // waits here and then sees it released.
    let in_use = lock_known_row(tx, &contract_id).await?;
    let Some((_, amount, _, status, _, _)) = use_row(tx, mrn, grn).await? else {
        return Err(corrupt("guarantee use", "vanished while releasing"));
    };
    if status != "reserved" {
        return Ok(Release::AlreadyReleased);
    }
    set_in_use(tx, &contract_id, in_use - decimal(&amount)?).await?;
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE hub_guarantee_uses SET status = 'released', released_by = $3, \
             release_id = $4, release_sequence = $5, released_at = $6 \
             WHERE mrn = $1 AND grn = $2 AND status = 'reserved'",
        )
        .bind(mrn)
        .bind(grn)
        .bind(by)
        .bind(message_id)
        .bind(sequence)
        .bind(now_millis())
        .execute(&mut *conn)
        .await?;
        // The movement is discharged: an open enquiry is closed.
        sqlx::query(
            "UPDATE hub_guarantee_enquiries SET status = 'resolved', closed_at = $3 \
             WHERE mrn = $1 AND grn = $2 AND status = 'open'",
        )
        .bind(mrn)
        .bind(grn)
        .bind(now_millis())
        .execute(&mut *conn)
        .await?;
    });
    Ok(Release::Released)
}

/// Locks a contract row that exists (a reservation points at it) and returns its amount in use.
async fn lock_known_row(tx: &mut HubTx<'_>, contract_id: &str) -> Result<Decimal, StoreError> {
    let select = match tx {
        HubTx::Postgres(_) => {
            "SELECT in_use FROM hub_guarantee_contracts WHERE contract_id = $1 FOR UPDATE"
        }
        HubTx::Sqlite(_) => "SELECT in_use FROM hub_guarantee_contracts WHERE contract_id = $1",
    };
    let in_use: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar(select)
            .bind(contract_id)
            .fetch_optional(&mut *conn)
            .await?
    });
    decimal(&in_use.ok_or_else(|| corrupt("reservation", "its contract row is missing"))?)
}

/// The GRNs a CD204C or CD209C names, with their pointers.
fn released_grns(message: &Message) -> Option<(String, Vec<(String, String)>)> {
    let (root, mrn, groups): (&str, &str, Vec<&[cats::GuaranteeReferenceType15]>) = match message {
        Message::CD204C(m) => (
            "CD204C",
            &m.transit_operation.mrn,
            m.guarantee
                .iter()
                .map(|g| g.guarantee_reference.as_slice())
                .collect(),
        ),
        Message::CD209C(m) => (
            "CD209C",
            &m.transit_operation.mrn,
            m.guarantee
                .iter()
                .map(|g| g.guarantee_reference.as_slice())
                .collect(),
        ),
        _ => return None,
    };
    let mut out = Vec::new();
    for (g, refs) in groups.into_iter().enumerate() {
        for (r, reference) in refs.iter().enumerate() {
            out.push((
                reference.grn.clone(),
                format!(
                    "/{root}/Guarantee[{}]/GuaranteeReference[{}]/GRN",
                    g + 1,
                    r + 1
                ),
            ));
        }
    }
    Some((mrn.to_owned(), out))
}

fn problem(pointer: String, label: &'static str, reason: String) -> Problem {
    Problem {
        line: 0,
        column: 0,
        pointer,
        code: ErrorCode::RULE,
        label,
        rule: None,
        reason,
    }
}

/// The checks made before a guarantee message is journalled; each problem becomes part of a
/// CD906C and the ledger is left unchanged:
///
/// - a GRN named twice in one message (`guarantee.grn-twice`);
/// - a CD204C / CD209C for a GRN the movement never asked for (`guarantee.not-reserved`).
pub async fn check(store: &HubStore, message: &Message) -> Result<Vec<Problem>, StoreError> {
    let mut out = Vec::new();
    let named: Vec<(String, String)> = match message {
        Message::CD203C(m) => m
            .guarantee
            .iter()
            .enumerate()
            .flat_map(|(g, group)| {
                group
                    .guarantee_reference
                    .iter()
                    .enumerate()
                    .map(move |(r, reference)| {
                        (
                            reference.grn.clone(),
                            format!(
                                "/CD203C/Guarantee[{}]/GuaranteeReference[{}]/GRN",
                                g + 1,
                                r + 1
                            ),
                        )
                    })
            })
            .collect(),
        other => released_grns(other).map(|(_, n)| n).unwrap_or_default(),
    };
    let mut seen = BTreeSet::new();
    for (grn, pointer) in &named {
        if !seen.insert(grn.as_str()) {
            out.push(problem(
                pointer.clone(),
                "guarantee.grn-twice",
                format!("GRN {grn} is named twice in this message"),
            ));
        }
    }
    if let Message::CC034C(q) = message {
        out.extend(query_problems(store, q).await?);
    }
    if let Some((mrn, grns)) = released_grns(message) {
        for (grn, pointer) in grns {
            let n: i64 = on_pool!(store, |p| {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM hub_guarantee_uses WHERE mrn = $1 AND grn = $2",
                )
                .bind(&mrn)
                .bind(&grn)
                .fetch_one(p)
                .await?
            });
            if n == 0 {
                out.push(problem(
                    pointer,
                    "guarantee.not-reserved",
                    format!("movement {mrn} never asked to use guarantee {grn}"),
                ));
            }
        }
    }
    Ok(out)
}

/// The contract of `grn` in force on `day` among the ledger's contracts (as
/// [`ReferenceData::contract_on`]) with its amount in use.
async fn contract_in_force(
    store: &HubStore,
    grn: &Grn,
    day: NaiveDate,
) -> Result<Option<(InsuranceContract, Decimal)>, StoreError> {
    let mut all = contract_rows(store, Some(grn.as_str())).await?;
    all.sort_by_key(|(c, _)| c.valid_from);
    let pick = all
        .iter()
        .position(|(c, _)| c.covers_day(day))
        .or_else(|| all.iter().rposition(|(c, _)| c.valid_from <= day))
        .or(if all.is_empty() { None } else { Some(0) });
    Ok(pick.map(|i| all.swap_remove(i)))
}

/// A CC034C names known GRNs (`guarantee.unknown-grn`, code 12) of contracts that cover its
/// requester (`guarantee.holder-not-covered`, code 14): a trader sees only its own balance.
async fn query_problems(
    store: &HubStore,
    q: &message_catalog::generated::ncts::CC034CType,
) -> Result<Vec<Problem>, StoreError> {
    let mut out = Vec::new();
    let day = Utc::now().date_naive();
    for (i, r) in q.guarantee_reference.iter().enumerate() {
        let pointer = format!("/CC034C/GuaranteeReference[{}]/GRN", i + 1);
        let found = match Grn::parse(&r.grn) {
            Ok(g) => contract_in_force(store, &g, day).await?,
            Err(_) => None,
        };
        match found {
            None => out.push(Problem {
                code: ErrorCode::CODE_LIST,
                ..problem(
                    pointer,
                    GuaranteeRefusal::UnknownGrn.label(),
                    format!("no insurance contract has GRN {}", r.grn),
                )
            }),
            Some((c, _)) if !c.covers_holder(&q.requester.identification_number) => {
                out.push(problem(
                    pointer,
                    GuaranteeRefusal::HolderNotCovered.label(),
                    format!(
                        "guarantee {} does not cover {}",
                        r.grn, q.requester.identification_number
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// The CC037C answering a node's CC034C from the ledger: per GRN the contract's insured amount
/// is not shown, the exposure (in use), the number of reservations held and the balance
/// (available), in the contract's currency; signed by the hub, journalled as emitted, sent to
/// the node. Its `correlationIdentifier` is the CC034C's (the national system's own request).
async fn balance(
    tx: &mut HubTx<'_>,
    services: &HubServices,
    q: &message_catalog::generated::ncts::CC034CType,
    entry: &Entry,
    sender: CountryCode,
    now: DateTime<Utc>,
) -> Result<Settled, PipelineError> {
    use message_catalog::generated::ncts;
    let now = now.with_nanosecond(0).unwrap_or(now);
    let day = now.date_naive();
    let mut references = Vec::new();
    for r in &q.guarantee_reference {
        let Ok(grn) = Grn::parse(&r.grn) else {
            continue;
        };
        let contracts = contracts_for(tx, &crate::refdata::current(services), &grn).await?;
        let Some(c) = contracts
            .iter()
            .find(|c| c.covers_day(day))
            .or_else(|| contracts.iter().rev().find(|c| c.valid_from <= day))
            .or_else(|| contracts.first())
        else {
            continue;
        };
        let (in_use, held): (Option<String>, i64) = on_tx!(tx, |conn| {
            let in_use = sqlx::query_scalar(
                "SELECT in_use FROM hub_guarantee_contracts WHERE contract_id = $1",
            )
            .bind(&c.contract_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            let held = sqlx::query_scalar(
                "SELECT COUNT(*) FROM hub_guarantee_uses WHERE contract_id = $1 \
                 AND status = 'reserved'",
            )
            .bind(&c.contract_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            (in_use, held)
        });
        let in_use = in_use
            .as_deref()
            .map(decimal)
            .transpose()?
            .unwrap_or_default();
        references.push(ncts::GuaranteeReferenceType07 {
            sequence_number: r.sequence_number,
            grn: r.grn.clone(),
            acceptance_date_and_time: c.valid_from.and_hms_opt(0, 0, 0).unwrap_or_default(),
            guarantee_type: "1".into(),
            guarantee_monitoring_code: "1".into(),
            guarantee_query: r.guarantee_query.clone(),
            owner: None,
            usage: Vec::new(),
            exposure: Some(ncts::ExposureType {
                exposure: in_use.round_dp(2),
                exposure_counter: held.max(1),
                balance: Some((c.insured_amount - in_use).round_dp(2)),
                currency: c.currency.clone(),
            }),
            guarantor: None,
            comprehensive_guarantee: None,
            individual_guarantee_by_guarantor: None,
            individual_guarantee_voucher: None,
        });
    }
    let id = reply_id();
    let body = encode(&Message::CC037C(Box::new(ncts::CC037CType {
        phase_id: None,
        message_sender: HUB_ADDRESS.to_owned(),
        message_recipient: format!("NTA.{sender}"),
        preparation_date_and_time: now.naive_utc(),
        message_identification: id.clone(),
        message_type: ncts::MessageTypes::CC037C,
        correlation_identifier: q.correlation_identifier.clone(),
        requester: ncts::RequesterType02 {
            identification_number: q.requester.identification_number.clone(),
            role: q.requester.role.clone(),
        },
        customs_office_of_guarantee: None,
        guarantee_reference: references,
    })));
    let fields = EnvelopeHeaderFields {
        message_id: id.clone(),
        message_type: "CC037C".into(),
        sender: PeerIdentity::Hub,
        recipient: PeerIdentity::Node(sender),
        correlation_id: Some(entry.entry.message_id.clone()),
        mrn: None,
        prepared_at: now,
    };
    let sealed = services
        .signer
        .seal(&fields, &body)
        .map_err(|e| PipelineError::Nack(e.to_string()))?;
    let emitted = journal::append(
        tx,
        NewEntry {
            message_id: id.clone(),
            message_type: "CC037C".into(),
            sender: PeerIdentity::Hub.urn(),
            recipients: vec![Recipient::Node(sender).to_string()],
            mrn: None,
            correlation_id: Some(entry.entry.message_id.clone()),
            prepared_at: Some(now),
            recorded_at: now,
            body_sha256: sha256(&body),
            envelope: sealed.clone(),
            signer: Some(services.signer.identity().urn()),
            status: Status::Emitted,
        },
    )
    .await?;
    Ok(Settled {
        reply: Some(Reply {
            sequence: emitted.sequence,
            message_id: id,
            message_type: "CC037C".into(),
            recipient: sender,
            envelope: sealed,
        }),
        ..Settled::default()
    })
}

/// Whether the message is one the ledger handles (CD203C, CD204C, CD209C, and the CA001C
/// contract submission of [`crate::insurer`]).
pub fn is_ledger_message(message: &Message) -> bool {
    matches!(
        message,
        Message::CD203C(_)
            | Message::CD204C(_)
            | Message::CD209C(_)
            | Message::CA001C(_)
            | Message::CC034C(_)
    )
}

fn reply_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 10];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("HUB-{}", hex::encode(b))
}

/// Applies a ledger message, inside the transaction of its journal `entry`: reservations and
/// the CD205C (built, signed by the hub, journalled as emitted) for a CD203C, releases for a
/// CD204C / CD209C. Any other message: nothing.
pub async fn apply(
    tx: &mut HubTx<'_>,
    services: &HubServices,
    message: &Message,
    entry: &Entry,
    sender: CountryCode,
    now: DateTime<Utc>,
) -> Result<Settled, PipelineError> {
    if let Message::CA001C(m) = message {
        return crate::insurer::apply_ca001c(tx, services, m, entry, sender, now).await;
    }
    if let Message::CC034C(m) = message {
        return balance(tx, services, m, entry, sender, now).await;
    }
    let mut settled = Settled::default();
    if let Some((mrn, grns)) = released_grns(message) {
        for (grn, _) in grns {
            let r = release(
                tx,
                &mrn,
                &grn,
                message.message_type(),
                &entry.entry.message_id,
                Some(entry.sequence),
            )
            .await?;
            tracing::info!(mrn, grn, outcome = ?r, "guarantee release");
            settled.releases.push(r);
        }
        return Ok(settled);
    }
    let Message::CD203C(request) = message else {
        return Ok(settled);
    };
    let day = now.date_naive();
    let mut groups = Vec::new();
    for g in &request.guarantee {
        let mut results = Vec::new();
        for r in &g.guarantee_reference {
            let ask = UseRequest {
                mrn: request.transit_operation.mrn.clone(),
                grn: r.grn.clone(),
                holder: request
                    .holder_of_the_transit_procedure
                    .identification_number
                    .clone(),
                amount: r.amount_concerned,
                currency: r.currency.clone(),
                request_id: entry.entry.message_id.clone(),
                request_sequence: Some(entry.sequence),
            };
            let answer = reserve_with(
                tx,
                &crate::refdata::current(services),
                &services.ledger,
                &ask,
                day,
            )
            .await?;
            tracing::info!(
                mrn = ask.mrn,
                grn = ask.grn,
                result = ?answer.result,
                repeated = answer.repeated,
                "guarantee use"
            );
            results.push(result_reference(r, &answer));
            settled.answers.push(answer);
        }
        groups.push(cats::GuaranteeUseResultType {
            sequence_number: g.sequence_number,
            guarantee_type: g.guarantee_type.clone(),
            guarantee_reference: results,
        });
    }
    let now = now.with_nanosecond(0).unwrap_or(now);
    let id = reply_id();
    let body = encode(&Message::CD205C(Box::new(cats::CD205CType {
        message_sender: HUB_ADDRESS.to_owned(),
        message_recipient: format!("NTA.{sender}"),
        preparation_date_and_time: now.naive_utc(),
        message_identification: id.clone(),
        message_type: cats::CatsCommonMessageTypes::CD205C,
        correlation_identifier: Some(request.message_identification.clone()),
        transit_operation: cats::TransitOperationType43 {
            mrn: request.transit_operation.mrn.clone(),
        },
        customs_office_of_departure: request.customs_office_of_departure.clone(),
        holder_of_the_transit_procedure: request.holder_of_the_transit_procedure.clone(),
        guarantee: groups,
    })));
    let fields = EnvelopeHeaderFields {
        message_id: id.clone(),
        message_type: "CD205C".into(),
        sender: PeerIdentity::Hub,
        recipient: PeerIdentity::Node(sender),
        correlation_id: Some(request.message_identification.clone()),
        mrn: Some(request.transit_operation.mrn.clone()),
        prepared_at: now,
    };
    let sealed = services
        .signer
        .seal(&fields, &body)
        .map_err(|e| PipelineError::Nack(e.to_string()))?;
    let emitted = journal::append(
        tx,
        NewEntry {
            message_id: id.clone(),
            message_type: "CD205C".into(),
            sender: PeerIdentity::Hub.urn(),
            recipients: vec![Recipient::Node(sender).to_string()],
            mrn: Some(request.transit_operation.mrn.clone()),
            correlation_id: Some(request.message_identification.clone()),
            prepared_at: Some(now),
            recorded_at: now,
            body_sha256: sha256(&body),
            envelope: sealed.clone(),
            signer: Some(services.signer.identity().urn()),
            status: Status::Emitted,
        },
    )
    .await?;
    settled.reply = Some(Reply {
        sequence: emitted.sequence,
        message_id: id,
        message_type: "CD205C".into(),
        recipient: sender,
        envelope: sealed,
    });
    Ok(settled)
}

fn result_reference(
    asked: &cats::GuaranteeReferenceType04,
    answer: &UseAnswer,
) -> cats::GuaranteeReferenceUseResultType {
    let (accepted, reason, amount, currency, rate) = match &answer.result {
        UseResult::Reserved {
            amount,
            currency,
            exchange_rate,
            ..
        } => (
            cats::Flag::V1,
            None,
            Some(*amount),
            Some(currency.clone()),
            *exchange_rate,
        ),
        UseResult::Refused { reason, contract } => (
            cats::Flag::V0,
            reason.cd205c(),
            None,
            contract.as_ref().map(|(_, c)| c.clone()),
            None,
        ),
    };
    cats::GuaranteeReferenceUseResultType {
        sequence_number: asked.sequence_number,
        grn: asked.grn.clone(),
        accepted,
        refusal_reason: reason,
        amount_reserved: amount,
        contract_currency: currency,
        exchange_rate: rate,
    }
}

// ---------------------------------------------------------------------------------------------
// Queries and the HTTP API.

/// One movement's use of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovementUse {
    /// The movement.
    pub mrn: String,
    /// The amount reserved (or refused), in the contract's currency once converted.
    pub amount: Decimal,
    /// Its currency.
    pub currency: String,
    /// The amount as declared in the CD203C.
    pub declared_amount: Decimal,
    /// Its currency.
    pub declared_currency: String,
    /// The rate the declared amount was converted at (1: no conversion); absent when the use
    /// was refused before any conversion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_rate: Option<Decimal>,
    /// `reserved`, `released` or `refused`.
    pub status: String,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The holder.
    pub holder: String,
    /// The CD203C.
    pub request_id: String,
    /// When it was asked for (UTC).
    pub requested_at: DateTime<Utc>,
    /// The releasing message type (`CD204C`, `CD209C`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// When it was released (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
}

/// A contract and its balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuaranteeView {
    /// The terms.
    pub contract: InsuranceContract,
    /// The insured amount.
    pub insured_amount: Decimal,
    /// Reserved and not released.
    pub in_use: Decimal,
    /// Insured amount minus in use.
    pub available: Decimal,
    /// Every movement that asked to use it (only in [`guarantee`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub movements: Option<Vec<MovementUse>>,
}

async fn contract_rows(
    store: &HubStore,
    grn: Option<&str>,
) -> Result<Vec<(InsuranceContract, Decimal)>, StoreError> {
    let rows: Vec<(String, String)> = on_pool!(store, |p| {
        match grn {
            Some(g) => {
                sqlx::query_as(
                    "SELECT terms, in_use FROM hub_guarantee_contracts WHERE grn = $1 \
                     ORDER BY contract_id",
                )
                .bind(g)
                .fetch_all(p)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT terms, in_use FROM hub_guarantee_contracts ORDER BY contract_id",
                )
                .fetch_all(p)
                .await?
            }
        }
    });
    rows.into_iter()
        .map(|(terms, in_use)| {
            let c: InsuranceContract =
                serde_json::from_str(&terms).map_err(|e| corrupt("contract terms", e))?;
            Ok((c, decimal(&in_use)?))
        })
        .collect()
}

fn view(
    c: InsuranceContract,
    in_use: Decimal,
    movements: Option<Vec<MovementUse>>,
) -> GuaranteeView {
    GuaranteeView {
        insured_amount: c.insured_amount,
        available: c.insured_amount - in_use,
        in_use,
        contract: c,
        movements,
    }
}

/// Every contract in the ledger with its balance.
pub async fn guarantees(store: &HubStore) -> Result<Vec<GuaranteeView>, StoreError> {
    Ok(contract_rows(store, None)
        .await?
        .into_iter()
        .map(|(c, in_use)| view(c, in_use, None))
        .collect())
}

type MovementRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Every movement that asked to use contract `contract_id`, in order of request.
pub async fn movement_uses(
    store: &HubStore,
    contract_id: &str,
) -> Result<Vec<MovementUse>, StoreError> {
    let rows: Vec<MovementRow> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT mrn, amount, currency, status, refusal, holder, request_id, requested_at, \
             released_by, released_at, declared_amount, declared_currency, exchange_rate \
             FROM hub_guarantee_uses WHERE contract_id = $1 ORDER BY requested_at, mrn",
        )
        .bind(contract_id)
        .fetch_all(p)
        .await?
    });
    let millis = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    rows.into_iter()
        .map(
            |(
                mrn,
                amount,
                currency,
                status,
                refusal,
                holder,
                request_id,
                at,
                by,
                released,
                declared_amount,
                declared_currency,
                rate,
            )| {
                let amount = decimal(&amount)?;
                Ok(MovementUse {
                    mrn,
                    declared_amount: match declared_amount.as_deref() {
                        Some(d) => decimal(d)?,
                        None => amount,
                    },
                    declared_currency: declared_currency.unwrap_or_else(|| currency.clone()),
                    exchange_rate: rate.as_deref().map(decimal).transpose()?,
                    amount,
                    currency,
                    status,
                    refusal,
                    holder,
                    request_id,
                    requested_at: millis(at),
                    released_by: by,
                    released_at: released.map(millis),
                })
            },
        )
        .collect()
}

/// The contract `grn` names on `day` (as [`ReferenceData::contract_on`]) with its balance and
/// every movement that asked to use it; `None` when the ledger has no contract with this GRN.
pub async fn guarantee(
    store: &HubStore,
    grn: &Grn,
    day: NaiveDate,
) -> Result<Option<GuaranteeView>, StoreError> {
    let mut all = contract_rows(store, Some(grn.as_str())).await?;
    all.sort_by_key(|(c, _)| c.valid_from);
    let pick = all
        .iter()
        .position(|(c, _)| c.covers_day(day))
        .or_else(|| all.iter().rposition(|(c, _)| c.valid_from <= day))
        .or(if all.is_empty() { None } else { Some(0) });
    let Some(i) = pick else { return Ok(None) };
    let (c, in_use) = all.swap_remove(i);
    let movements = movement_uses(store, &c.contract_id).await?;
    Ok(Some(view(c, in_use, Some(movements))))
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "error": message })),
    )
        .into_response()
}

async fn list_handler(State(store): State<HubStore>) -> Response {
    match guarantees(&store).await {
        Ok(list) => Json(serde_json::json!({ "guarantees": list })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

async fn one_handler(State(store): State<HubStore>, Path(grn): Path<String>) -> Response {
    let Ok(grn) = Grn::parse(&grn) else {
        return error(
            StatusCode::BAD_REQUEST,
            "guarantee.bad-grn",
            format!("{grn:?} is not a GRN"),
        );
    };
    match guarantee(&store, &grn, Utc::now().date_naive()).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            GuaranteeRefusal::UnknownGrn.label(),
            format!("no insurance contract has GRN {grn}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

/// `GET /api/v1/guarantees` and `GET /api/v1/guarantees/{grn}` (see the module documentation).
/// Errors are JSON `{"code", "error"}`: 400 `guarantee.bad-grn`, 404 `guarantee.unknown-grn`,
/// 503 with the store's code.
pub fn routes<S: Clone + Send + Sync + 'static>(store: HubStore) -> Router<S> {
    Router::new()
        .route("/api/v1/guarantees", get(list_handler))
        .route("/api/v1/guarantees/{grn}", get(one_handler))
        .with_state(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mrn: &str, grn: &str, holder: &str, amount: &str, currency: &str) -> UseRequest {
        UseRequest {
            mrn: mrn.into(),
            grn: grn.into(),
            holder: holder.into(),
            amount: Decimal::from_str(amount).expect("decimal"),
            currency: currency.into(),
            request_id: format!("REQ-{mrn}"),
            request_sequence: None,
        }
    }

    const SMALL: &str = "26KZ000101CG00029";
    const HOLDER: &str = "KZ555000111222";

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).expect("date")
    }

    async fn store() -> (tempfile::TempDir, HubStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let s = HubStore::connect(&url).await.expect("store");
        (dir, s)
    }

    async fn reserve_one(s: &HubStore, r: &ReferenceData, q: &UseRequest) -> UseAnswer {
        let mut tx = s.begin().await.expect("begin");
        let a = reserve(&mut tx, r, q, day()).await.expect("reserve");
        tx.commit().await.expect("commit");
        a
    }

    #[tokio::test]
    async fn reserve_refuse_release_on_sqlite() {
        let (_d, s) = store().await;
        let r = ReferenceData::pilot();
        let a = reserve_one(&s, &r, &request("M1", SMALL, HOLDER, "20000.00", "USD")).await;
        assert!(matches!(a.result, UseResult::Reserved { .. }), "{a:?}");
        let b = reserve_one(&s, &r, &request("M2", SMALL, HOLDER, "10000.01", "USD")).await;
        assert_eq!(
            b.result,
            UseResult::Refused {
                reason: GuaranteeRefusal::InsufficientBalance,
                contract: Some(("KZ-CG-2026-0002".into(), "USD".into()))
            }
        );
        // The same movement and GRN again: the same answer, nothing more reserved.
        let again = reserve_one(&s, &r, &request("M1", SMALL, HOLDER, "20000.00", "USD")).await;
        assert!(again.repeated);
        assert_eq!(again.result, a.result);
        let g = Grn::parse(SMALL).expect("grn");
        let v = guarantee(&s, &g, day())
            .await
            .expect("query")
            .expect("known");
        assert_eq!(v.in_use, Decimal::from(20_000));
        assert_eq!(v.available, Decimal::from(10_000));

        let mut tx = s.begin().await.expect("begin");
        let rel = release(&mut tx, "M1", SMALL, "CD209C", "W1", None)
            .await
            .expect("release");
        let twice = release(&mut tx, "M1", SMALL, "CD209C", "W2", None)
            .await
            .expect("release");
        let refused = release(&mut tx, "M2", SMALL, "CD204C", "C1", None)
            .await
            .expect("release");
        let never = release(&mut tx, "M9", SMALL, "CD204C", "C2", None)
            .await
            .expect("release");
        tx.commit().await.expect("commit");
        assert_eq!(
            (rel, twice, refused, never),
            (
                Release::Released,
                Release::AlreadyReleased,
                Release::WasRefused,
                Release::NotReserved
            )
        );
        let v = guarantee(&s, &g, day())
            .await
            .expect("query")
            .expect("known");
        assert_eq!(v.in_use, Decimal::ZERO);
        let statuses: Vec<(&str, &str)> = v
            .movements
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| (m.mrn.as_str(), m.status.as_str()))
            .collect();
        assert_eq!(statuses, vec![("M1", "released"), ("M2", "refused")]);
    }

    #[test]
    fn counters_render() {
        let c = Counters::default();
        c.count(&Settled {
            answers: vec![
                UseAnswer {
                    grn: SMALL.into(),
                    result: UseResult::Refused {
                        reason: GuaranteeRefusal::Expired,
                        contract: None,
                    },
                    repeated: false,
                },
                UseAnswer {
                    grn: SMALL.into(),
                    result: UseResult::Reserved {
                        contract_id: "X".into(),
                        amount: Decimal::ONE,
                        currency: "USD".into(),
                        exchange_rate: None,
                    },
                    repeated: false,
                },
            ],
            releases: vec![Release::Released, Release::AlreadyReleased],
            reply: None,
        });
        let mut out = String::new();
        c.render(&mut out);
        for line in [
            "cats_hub_guarantee_reservations_total{result=\"accepted\"} 1",
            "cats_hub_guarantee_reservations_total{result=\"refused\",reason=\"guarantee.expired\"} 1",
            "cats_hub_guarantee_releases_total 1",
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
    }
}
