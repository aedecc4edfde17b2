//! Insurers and the hub administrator on the guarantee ledger: insurance contract submission
//! and approval, the insurer's view of its contracts, enquiries, liabilities and their
//! indemnity process, and threshold notifications.
//!
//! **Who is asking.** Every route here needs `Authorization: Bearer <token>`; the hub keeps the
//! SHA-256 of each token with its role and subject (`hub_api_credentials`, [`issue_credential`]):
//! an insurer (its TIN, an approved insurer of the reference data) or an administrator. An
//! insurer sees and moves only what belongs to its own contracts; another insurer's contract is
//! answered as unknown (404), so that contract numbers do not leak.
//!
//! **Submission** ([`submit`], [`decide`]): an insurer submits a contract (contract id, GRN,
//! holders, policy period, insured amount and currency, its terms). Refused with nothing
//! recorded: a contract id already used, a GRN whose contracts' periods overlap the new one
//! (reference data, approved or pending submissions), a zero or negative amount, a currency
//! that is not a CATS currency (code list CATS002), an insurer that is not approved, a period
//! that ends before it begins, no holder; a suspended or revoked insurer may not submit. An
//! administrator approves (the contract becomes reference data: a new version, audited and sent
//! to every node as a CA005C, and registered in the ledger, `hub_guarantee_contracts`, in the
//! same transaction; reservations may use it from then on) or refuses with a reason; either
//! decision is audited and gives the CA002C status notification ([`ca002c`]).
//!
//! **Suspension, reinstatement, termination** ([`change_contract`]): an administrator suspends
//! an active contract, reinstates a suspended one, or terminates either (status `expired`, for
//! good); the insurer may terminate its own. Each step is a reference-data version (audited,
//! distributed) and a `contract:ID` row of `hub_guarantee_audit`. New reservations on a
//! suspended or terminated contract are refused (CD205C `suspended` / `expired`); reservations
//! already held stay held until written off or cancelled (see [`crate::guarantee`]).
//!
//! **Enquiries and liabilities** ([`sweep`], run every minute by the hub with the clock passed
//! in): a reservation not released by its limit date (reserved + [`LedgerPolicy::transit_days`])
//! opens an enquiry; an enquiry still open [`LedgerPolicy::liability_after_days`] later becomes
//! a liability on the contract, `claimed`. A release (write-off, cancellation) closes the open
//! enquiry. The indemnity process ([`LiabilityState::next`]):
//!
//! | from | action | by | to |
//! | --- | --- | --- | --- |
//! | claimed | `notify` | administrator | notified |
//! | notified | `pay` | insurer | paid |
//! | notified | `dispute` | insurer | disputed |
//! | disputed | `pay` | administrator | paid |
//!
//! Anything else is refused (`liability.illegal-transition`); each step is audited
//! (`hub_guarantee_audit`).
//!
//! Routes ([`routes`]), errors as JSON `{"code", "error"}`:
//!
//! - `POST /api/v1/insurance-contracts` (insurer): submit; 201 with the submission;
//! - `GET /api/v1/insurance-contracts/submissions` (insurer: its own; administrator: all);
//! - `POST /api/v1/insurance-contracts/submissions/{id}/approve|refuse` (administrator), body
//!   `{"reason": "…"}` (required to refuse);
//! - `POST /api/v1/insurance-contracts/{contract_id}/suspend|reinstate|terminate`
//!   (administrator; an insurer may terminate its own contract), body `{"reason": "…"}`
//!   (required to suspend or terminate): 200 with the contract as it now stands and the
//!   reference-data version ([`change_contract`]);
//! - `GET /api/v1/insurer/contracts[/{contract_id}]`: per contract the insured amount, in use,
//!   available, each movement (MRN, amounts, currencies, rate, state, times), enquiries,
//!   liabilities and notifications;
//! - `POST /api/v1/liabilities/{id}/notify|pay|dispute`;
//! - `GET /api/v1/guarantee-notifications` (insurer: its own; administrator: all).

use std::str::FromStr;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Days, NaiveDate, Timelike, Utc};
use message_catalog::Message;
use message_catalog::codec::encode;
use message_catalog::codelists::CodeLists;
use message_catalog::generated::admin;
use message_catalog::ids::{Grn, Tin};
use message_catalog::reference::update::Change;
use message_catalog::reference::{ContractStatus, InsuranceContract, ReferenceData, TraderStatus};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::access::{AccessError, Role};
use crate::guarantee::{self, LedgerPolicy, MovementUse};
use crate::routing::HUB_ADDRESS;
use crate::store::{HubStore, HubTx, StoreError, now_millis, on_pool, on_tx};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An approved insurer, by TIN.
    Insurer(String),
    /// A hub administrator, by name.
    Administrator(String),
}

impl Principal {
    fn actor(&self) -> String {
        match self {
            Principal::Insurer(t) => format!("insurer:{t}"),
            Principal::Administrator(a) => format!("administrator:{a}"),
        }
    }
}

/// What goes wrong here; each has a stable code and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum InsurerError {
    /// No or unknown bearer token.
    #[error("insurer.unauthenticated: {0}")]
    Unauthenticated(String),
    /// The principal may not do this.
    #[error("insurer.forbidden: {0}")]
    Forbidden(String),
    /// The request cannot be read.
    #[error("contract.bad-request: {0}")]
    BadRequest(String),
    /// A submitted contract that is wrong on its own or against the ledger.
    #[error("{code}: {reason}")]
    Invalid {
        /// The stable code (`contract.overlap`, `contract.amount`, `contract.currency`,
        /// `contract.insurer`, `contract.period`, `contract.holders`, `contract.duplicate`,
        /// `contract.grn`).
        code: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No such submission, contract or liability (or not the insurer's).
    #[error("{code}: {what} not found")]
    NotFound {
        /// `contract.not-found`, `submission.not-found`, `liability.not-found`.
        code: &'static str,
        /// What was asked for.
        what: String,
    },
    /// The submission was decided already.
    #[error("submission.decided: submission {0} was {1} already")]
    Decided(i64, String),
    /// A liability step that the process does not allow.
    #[error("liability.illegal-transition: {0}")]
    IllegalTransition(String),
    /// A contract status step that the contract's status does not allow (suspending a
    /// suspended contract, reinstating an active or terminated one, terminating a terminated
    /// one).
    #[error("contract.illegal-transition: {0}")]
    ContractTransition(String),
    /// The reference-data version could not be made (nothing was written).
    #[error(transparent)]
    Refdata(#[from] crate::refdata::RefdataError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl InsurerError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            InsurerError::Unauthenticated(_) => "insurer.unauthenticated",
            InsurerError::Forbidden(_) => "insurer.forbidden",
            InsurerError::BadRequest(_) => "contract.bad-request",
            InsurerError::Invalid { code, .. } | InsurerError::NotFound { code, .. } => code,
            InsurerError::Decided(..) => "submission.decided",
            InsurerError::IllegalTransition(_) => "liability.illegal-transition",
            InsurerError::ContractTransition(_) => "contract.illegal-transition",
            InsurerError::Refdata(e) => e.code(),
            InsurerError::Store(e) => e.code(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            InsurerError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            InsurerError::Forbidden(_) => StatusCode::FORBIDDEN,
            InsurerError::BadRequest(_) | InsurerError::Invalid { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            InsurerError::NotFound { .. } => StatusCode::NOT_FOUND,
            InsurerError::Decided(..)
            | InsurerError::IllegalTransition(_)
            | InsurerError::ContractTransition(_) => StatusCode::CONFLICT,
            InsurerError::Refdata(e) => e.status(),
            InsurerError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<sqlx::Error> for InsurerError {
    fn from(e: sqlx::Error) -> InsurerError {
        InsurerError::Store(StoreError::from(e))
    }
}

impl IntoResponse for InsurerError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(serde_json::json!({ "code": self.code(), "error": self.to_string() })),
        )
            .into_response()
    }
}

fn invalid(code: &'static str, reason: impl Into<String>) -> InsurerError {
    InsurerError::Invalid {
        code,
        reason: reason.into(),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn decimal(text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(text).map_err(|e| corrupt("amount", e))
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Credentials (made, looked up and revoked by [`crate::access`]).

/// Creates a bearer token for `principal` and records its SHA-256; returns the token (shown
/// once). An insurer must be an approved insurer of `reference`.
pub async fn issue_credential(
    store: &HubStore,
    reference: &ReferenceData,
    principal: &Principal,
) -> Result<String, InsurerError> {
    let (role, subject) = match principal {
        Principal::Insurer(tin) => {
            let known = Tin::parse(tin)
                .ok()
                .and_then(|t| reference.insurer(&t).map(|_| ()));
            if known.is_none() {
                return Err(invalid(
                    "contract.insurer",
                    format!("{tin} is not an approved insurer"),
                ));
            }
            (Role::Insurer, tin)
        }
        Principal::Administrator(name) => (Role::Administrator, name),
    };
    match crate::access::issue(store, role, subject).await {
        Ok(issued) => Ok(issued.token),
        Err(AccessError::Store(e)) => Err(e.into()),
        Err(e) => Err(InsurerError::BadRequest(e.to_string())),
    }
}

/// The principal of a request's bearer token: an insurer or an administrator; an operator's
/// token is refused here (403), a missing, unknown or revoked one with 401.
pub async fn authenticate(
    store: &HubStore,
    headers: &HeaderMap,
) -> Result<Principal, InsurerError> {
    match crate::access::authenticate(store, headers).await {
        Ok(c) => match c.role {
            Role::Insurer => Ok(Principal::Insurer(c.subject)),
            Role::Administrator => Ok(Principal::Administrator(c.subject)),
            Role::Operator => Err(InsurerError::Forbidden(
                "an operator's credential does not open the insurer API".into(),
            )),
        },
        Err(AccessError::Store(e)) => Err(e.into()),
        Err(e) => Err(InsurerError::Unauthenticated(e.to_string())),
    }
}

fn administrator(p: &Principal) -> Result<&str, InsurerError> {
    match p {
        Principal::Administrator(a) => Ok(a),
        Principal::Insurer(_) => Err(InsurerError::Forbidden(
            "only a hub administrator may do this".into(),
        )),
    }
}

async fn audit(
    tx: &mut HubTx<'_>,
    subject: &str,
    action: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO hub_guarantee_audit (subject, action, actor, detail, at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(subject)
        .bind(action)
        .bind(actor)
        .bind(detail)
        .bind(now_millis())
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// One audited step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// What it is about (`submission:N`, `enquiry:MRN:GRN`, `liability:N`).
    pub subject: String,
    /// What was done.
    pub action: String,
    /// Who (`hub`, `insurer:TIN`, `administrator:NAME`).
    pub actor: String,
    /// Details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When (UTC).
    pub at: DateTime<Utc>,
}

/// The audit trail of `subject`, oldest first.
pub async fn audit_trail(store: &HubStore, subject: &str) -> Result<Vec<AuditEntry>, StoreError> {
    let rows: Vec<(String, String, String, Option<String>, i64)> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT subject, action, actor, detail, at FROM hub_guarantee_audit \
             WHERE subject = $1 ORDER BY audit_id",
        )
        .bind(subject)
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(subject, action, actor, detail, at)| AuditEntry {
            subject,
            action,
            actor,
            detail,
            at: millis(at),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Submission and approval.

/// A contract as an insurer submits it (the insurer is who submits it). Amounts are decimal
/// strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// The insurer's contract number.
    pub contract_id: String,
    /// The GRN declarations will quote.
    pub grn: String,
    /// The holders (TINs) it covers.
    pub holders: Vec<String>,
    /// First day of the policy period.
    pub valid_from: NaiveDate,
    /// Last day, inclusive.
    pub valid_until: NaiveDate,
    /// The insured amount, a decimal string.
    pub insured_amount: String,
    /// ISO 4217, a CATS currency.
    pub currency: String,
    /// The contract's terms, in its own words.
    #[serde(default)]
    pub terms: Option<String>,
}

/// How a submission came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// The hub's API.
    Api,
    /// A CA001C from a node.
    Message {
        /// Its message identification.
        message_id: String,
        /// The node (country code) it came from.
        node: String,
    },
}

/// A submission and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubmissionView {
    /// Its number.
    pub submission_id: i64,
    /// The contract as it would be registered.
    pub contract: InsuranceContract,
    /// Its terms in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms: Option<String>,
    /// `submitted`, `approved` or `refused`.
    pub status: String,
    /// The administrator's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `api` or `CA001C`.
    pub channel: String,
    /// Who submitted it.
    pub submitted_by: String,
    /// When (UTC).
    pub submitted_at: DateTime<Utc>,
    /// Who decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// Checks a submission on its own: returns the contract it describes (status active).
pub fn contract_of(
    reference: &ReferenceData,
    insurer: &str,
    s: &Submission,
) -> Result<InsuranceContract, InsurerError> {
    let id = s.contract_id.trim();
    if id.is_empty()
        || id.len() > 35
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.'))
    {
        return Err(invalid(
            "contract.id",
            format!(
                "contract id {:?}: 1 to 35 letters, digits, '-', '/', '.'",
                s.contract_id
            ),
        ));
    }
    let grn = Grn::parse(&s.grn)
        .map_err(|e| invalid("contract.grn", format!("{:?} is not a GRN: {e}", s.grn)))?;
    let insurer_tin = Tin::parse(insurer)
        .ok()
        .filter(|t| reference.insurer(t).is_some())
        .ok_or_else(|| {
            invalid(
                "contract.insurer",
                format!("{insurer} is not an approved insurer"),
            )
        })?;
    if let Some(i) = reference
        .insurer(&insurer_tin)
        .filter(|i| i.status != TraderStatus::Active)
    {
        return Err(invalid(
            "contract.insurer",
            format!(
                "insurer {insurer} is {} and may not submit contracts",
                i.status.as_str()
            ),
        ));
    }
    if s.holders.is_empty() {
        return Err(invalid("contract.holders", "the contract covers no holder"));
    }
    let holders = s
        .holders
        .iter()
        .map(|h| {
            Tin::parse(h).map_err(|e| {
                invalid(
                    "contract.holders",
                    format!("holder {h:?} is not a TIN: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if s.valid_until < s.valid_from {
        return Err(invalid(
            "contract.period",
            format!(
                "the policy period ends ({}) before it begins ({})",
                s.valid_until, s.valid_from
            ),
        ));
    }
    let amount = Decimal::from_str(s.insured_amount.trim()).map_err(|e| {
        invalid(
            "contract.amount",
            format!(
                "insured amount {:?} is not a decimal: {e}",
                s.insured_amount
            ),
        )
    })?;
    if amount <= Decimal::ZERO {
        return Err(invalid(
            "contract.amount",
            format!("the insured amount {amount} is not positive"),
        ));
    }
    if amount.scale() > 2 {
        return Err(invalid(
            "contract.amount",
            format!("the insured amount {amount} has more than 2 decimal places"),
        ));
    }
    if !CodeLists::embedded().contains("CATS002", &s.currency) {
        return Err(invalid(
            "contract.currency",
            format!(
                "currency {:?} is not a CATS currency (code list CATS002)",
                s.currency
            ),
        ));
    }
    if let Some(t) = &s.terms
        && (t.is_empty() || t.chars().count() > 4000)
    {
        return Err(invalid("contract.terms", "terms: 1 to 4000 characters"));
    }
    Ok(InsuranceContract {
        contract_id: id.to_owned(),
        grn,
        insurer: insurer_tin,
        holders,
        valid_from: s.valid_from,
        valid_until: s.valid_until,
        insured_amount: amount,
        currency: s.currency.clone(),
        status: ContractStatus::Active,
    })
}

/// Serialises submissions and approvals for one GRN (PostgreSQL; SQLite has one writer).
async fn lock_grn(tx: &mut HubTx<'_>, grn: &Grn) -> Result<(), StoreError> {
    if let HubTx::Postgres(t) = tx {
        let key = i64::from_be_bytes(
            ring::digest::digest(&ring::digest::SHA256, grn.as_str().as_bytes()).as_ref()[..8]
                .try_into()
                .map_err(|_| corrupt("lock key", "short digest"))?,
        );
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// Refuses a contract whose id is taken or whose period overlaps another contract of its GRN
/// (reference data, ledger, submissions not refused other than `except`).
async fn check_against_ledger(
    tx: &mut HubTx<'_>,
    reference: &ReferenceData,
    c: &InsuranceContract,
    except: Option<i64>,
) -> Result<(), InsurerError> {
    let taken_in_ledger: i64 = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT COUNT(*) FROM hub_guarantee_contracts WHERE contract_id = $1")
            .bind(&c.contract_id)
            .fetch_one(&mut *conn)
            .await?
    });
    let pending: Vec<(i64, String, String)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT submission_id, contract_id, terms FROM hub_contract_submissions \
             WHERE status = 'submitted' AND (contract_id = $1 OR grn = $2)",
        )
        .bind(&c.contract_id)
        .bind(c.grn.as_str())
        .fetch_all(&mut *conn)
        .await?
    });
    let pending: Vec<(i64, String, String)> = pending
        .into_iter()
        .filter(|(id, _, _)| Some(*id) != except)
        .collect();
    if reference.contract(&c.contract_id).is_some()
        || taken_in_ledger > 0
        || pending.iter().any(|(_, id, _)| *id == c.contract_id)
    {
        return Err(invalid(
            "contract.duplicate",
            format!(
                "contract id {} is already registered or submitted",
                c.contract_id
            ),
        ));
    }
    let mut others = guarantee::contracts_for(tx, reference, &c.grn).await?;
    for (_, _, terms) in &pending {
        let p: InsuranceContract =
            serde_json::from_str(terms).map_err(|e| corrupt("submitted terms", e))?;
        if p.grn == c.grn {
            others.push(p);
        }
    }
    if let Some(o) = others
        .iter()
        .find(|o| o.valid_from <= c.valid_until && c.valid_from <= o.valid_until)
    {
        return Err(invalid(
            "contract.overlap",
            format!(
                "GRN {} is held by contract {} from {} to {}, which overlaps {} to {}",
                c.grn, o.contract_id, o.valid_from, o.valid_until, c.valid_from, c.valid_until
            ),
        ));
    }
    Ok(())
}

type SubmissionRow = (
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
);

const SUBMISSION_COLUMNS: &str = "submission_id, terms, terms_text, status, reason, channel, \
     submitted_by, submitted_at, decided_by, decided_at";

fn submission_view(row: SubmissionRow) -> Result<SubmissionView, StoreError> {
    let (id, terms, text, status, reason, channel, by, at, decided_by, decided_at) = row;
    Ok(SubmissionView {
        submission_id: id,
        contract: serde_json::from_str(&terms).map_err(|e| corrupt("submitted terms", e))?,
        terms: text,
        status,
        reason,
        channel,
        submitted_by: by,
        submitted_at: millis(at),
        decided_by,
        decided_at: decided_at.map(millis),
    })
}

async fn submission_in(tx: &mut HubTx<'_>, id: i64) -> Result<Option<SubmissionView>, StoreError> {
    let q = format!(
        "SELECT {SUBMISSION_COLUMNS} FROM hub_contract_submissions WHERE submission_id = $1"
    );
    let row: Option<SubmissionRow> = on_tx!(tx, |c| {
        sqlx::query_as(&q).bind(id).fetch_optional(&mut *c).await?
    });
    row.map(submission_view).transpose()
}

/// Records a submission by `insurer` after [`contract_of`] and the ledger checks; nothing is
/// recorded when it is refused.
pub async fn submit(
    store: &HubStore,
    reference: &ReferenceData,
    insurer: &str,
    s: &Submission,
    channel: &Channel,
) -> Result<SubmissionView, InsurerError> {
    let mut tx = store.begin().await?;
    let view = submit_in(&mut tx, reference, insurer, s, channel).await?;
    tx.commit().await?;
    Ok(view)
}

/// [`submit`] inside `tx` (the pipeline's, for a CA001C).
pub async fn submit_in(
    tx: &mut HubTx<'_>,
    reference: &ReferenceData,
    insurer: &str,
    s: &Submission,
    channel: &Channel,
) -> Result<SubmissionView, InsurerError> {
    let c = contract_of(reference, insurer, s)?;
    lock_grn(tx, &c.grn).await?;
    check_against_ledger(tx, reference, &c, None).await?;
    let terms = serde_json::to_string(&c).map_err(|e| corrupt("contract terms", e))?;
    let (channel_name, message_id, node) = match channel {
        Channel::Api => ("api", None, None),
        Channel::Message { message_id, node } => {
            ("CA001C", Some(message_id.as_str()), Some(node.as_str()))
        }
    };
    let actor = Principal::Insurer(insurer.to_owned()).actor();
    let id: i64 = on_tx!(tx, |conn| {
        sqlx::query_scalar(
            "INSERT INTO hub_contract_submissions (contract_id, grn, insurer, terms, terms_text, \
             status, channel, message_id, node, submitted_by, submitted_at) \
             VALUES ($1, $2, $3, $4, $5, 'submitted', $6, $7, $8, $9, $10) \
             RETURNING submission_id",
        )
        .bind(&c.contract_id)
        .bind(c.grn.as_str())
        .bind(c.insurer.as_str())
        .bind(&terms)
        .bind(s.terms.as_deref())
        .bind(channel_name)
        .bind(message_id)
        .bind(node)
        .bind(&actor)
        .bind(now_millis())
        .fetch_one(&mut *conn)
        .await?
    });
    audit(
        tx,
        &format!("submission:{id}"),
        "submitted",
        &actor,
        Some(&c.contract_id),
    )
    .await?;
    let view = submission_in(tx, id)
        .await?
        .ok_or_else(|| corrupt("submission", "vanished after insert"))?;
    tracing::info!(submission = id, contract = c.contract_id, grn = %c.grn, channel = channel_name, "contract submitted");
    Ok(view)
}

/// A CA001C from `sender`'s node, inside the transaction of its journal `entry`: the submission
/// is recorded (the CA002C follows the administrator's decision, [`answer_node`]), or refused
/// at once with a CA002C `refused` that gives the code and reason, signed by the hub and
/// journalled as emitted.
pub async fn apply_ca001c(
    tx: &mut HubTx<'_>,
    services: &crate::pipeline::HubServices,
    m: &admin::CA001CType,
    entry: &crate::journal::Entry,
    sender: message_catalog::ids::CountryCode,
    now: DateTime<Utc>,
) -> Result<guarantee::Settled, crate::pipeline::PipelineError> {
    let c = &m.insurance_contract;
    let submission = Submission {
        contract_id: c.contract_identifier.clone(),
        grn: c.grn.clone(),
        holders: c
            .holder
            .iter()
            .map(|h| h.identification_number.clone())
            .collect(),
        valid_from: c.policy_start_date,
        valid_until: c.policy_end_date,
        insured_amount: c.insured_amount.to_string(),
        currency: c.currency.clone(),
        terms: c.terms.clone(),
    };
    let channel = Channel::Message {
        message_id: entry.entry.message_id.clone(),
        node: sender.to_string(),
    };
    let refused = match submit_in(
        tx,
        &crate::refdata::current(services),
        &c.insurer_identification_number,
        &submission,
        &channel,
    )
    .await
    {
        Ok(_) => return Ok(guarantee::Settled::default()),
        Err(InsurerError::Store(e)) => return Err(e.into()),
        Err(e) => e,
    };
    tracing::info!(code = refused.code(), error = %refused, "CA001C refused");
    let status = admin::InsuranceContractStatusType {
        contract_identifier: c.contract_identifier.clone(),
        grn: c.grn.clone(),
        status: admin::ContractStatusCode::Refused,
        status_date_and_time: now.with_nanosecond(0).unwrap_or(now).naive_utc(),
        reason: Some(refused.to_string().chars().take(350).collect()),
    };
    let reply = emit_ca002c(tx, services, status, sender, &entry.entry.message_id, now).await?;
    Ok(guarantee::Settled {
        reply: Some(reply),
        ..guarantee::Settled::default()
    })
}

/// Builds, signs and journals (as emitted) a CA002C for `node`, answering `correlation`.
async fn emit_ca002c(
    tx: &mut HubTx<'_>,
    services: &crate::pipeline::HubServices,
    status: admin::InsuranceContractStatusType,
    node: message_catalog::ids::CountryCode,
    correlation: &str,
    now: DateTime<Utc>,
) -> Result<guarantee::Reply, crate::pipeline::PipelineError> {
    use cats_trust::{EnvelopeHeaderFields, PeerIdentity};
    let now = now.with_nanosecond(0).unwrap_or(now);
    let id = {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 10];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        format!("HUB-{}", hex::encode(b))
    };
    let body = encode(&Message::CA002C(Box::new(admin::CA002CType {
        message_sender: HUB_ADDRESS.to_owned(),
        message_recipient: format!("NTA.{node}"),
        preparation_date_and_time: now.naive_utc(),
        message_identification: id.clone(),
        message_type: admin::CatsAdminMessageTypes::CA002C,
        correlation_identifier: Some(correlation.to_owned()),
        insurance_contract_status: status,
    })));
    let fields = EnvelopeHeaderFields {
        message_id: id.clone(),
        message_type: "CA002C".into(),
        sender: PeerIdentity::Hub,
        recipient: PeerIdentity::Node(node),
        correlation_id: Some(correlation.to_owned()),
        mrn: None,
        prepared_at: now,
    };
    let sealed = services
        .signer
        .seal(&fields, &body)
        .map_err(|e| crate::pipeline::PipelineError::Nack(e.to_string()))?;
    let emitted = crate::journal::append(
        tx,
        crate::journal::NewEntry {
            message_id: id.clone(),
            message_type: "CA002C".into(),
            sender: PeerIdentity::Hub.urn(),
            recipients: vec![crate::routing::Recipient::Node(node).to_string()],
            mrn: None,
            correlation_id: Some(correlation.to_owned()),
            prepared_at: Some(now),
            recorded_at: now,
            body_sha256: crate::journal::sha256(&body),
            envelope: sealed.clone(),
            signer: Some(services.signer.identity().urn()),
            status: crate::journal::Status::Emitted,
        },
    )
    .await?;
    Ok(guarantee::Reply {
        sequence: emitted.sequence,
        message_id: id,
        message_type: "CA002C".into(),
        recipient: node,
        envelope: sealed,
    })
}

/// After an administrator's decision on a submission that came as a CA001C: the CA002C to the
/// node it came from, journalled as emitted and sent. `Ok(None)` for an API submission.
pub async fn answer_node(
    store: &HubStore,
    services: &crate::pipeline::HubServices,
    transport: &crate::operations::HubTransport,
    view: &SubmissionView,
) -> Result<Option<String>, crate::pipeline::PipelineError> {
    use cats_transport::contract::{Destination, Outbound, Transport};
    let row: Option<(Option<String>, Option<String>)> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT node, message_id FROM hub_contract_submissions WHERE submission_id = $1",
        )
        .bind(view.submission_id)
        .fetch_optional(p)
        .await
        .map_err(StoreError::from)?
    });
    let Some((Some(node), Some(correlation))) = row else {
        return Ok(None);
    };
    let node = message_catalog::ids::CountryCode::parse(&node)
        .map_err(|e| StoreError::Corrupt(format!("submission node: {e}")))?;
    let now = Utc::now();
    let at = view.decided_at.unwrap_or(now);
    let status = admin::InsuranceContractStatusType {
        contract_identifier: view.contract.contract_id.clone(),
        grn: view.contract.grn.as_str().to_owned(),
        status: if view.status == "approved" {
            admin::ContractStatusCode::Approved
        } else {
            admin::ContractStatusCode::Refused
        },
        status_date_and_time: at.with_nanosecond(0).unwrap_or(at).naive_utc(),
        reason: view.reason.clone(),
    };
    let mut tx = store.begin().await?;
    let reply = emit_ca002c(&mut tx, services, status, node, &correlation, now).await?;
    tx.commit().await?;
    let outbound = Outbound {
        message_id: reply.message_id.clone(),
        destination: Destination::Node(node),
        partition_key: None,
        bytes: bytes::Bytes::from(reply.envelope),
    };
    match transport {
        crate::operations::HubTransport::Direct { hub } => hub.send(outbound).await?,
        crate::operations::HubTransport::Amqp { link, .. } => link.send(outbound).await?,
    }
    Ok(Some(reply.message_id))
}

/// An administrator approves (`approve`) or refuses a submission. Approval checks the ledger
/// and the insurer's standing (suspended or revoked since it submitted: `contract.insurer`)
/// again and makes the contract reference data: a new version holding it, audited and sent to
/// every node as a CA005C ([`crate::refdata::change_in`], in the decision's transaction, which
/// also registers it in the ledger). A refusal needs a reason.
pub async fn decide(
    services: &crate::pipeline::HubServices,
    principal: &Principal,
    id: i64,
    approve: bool,
    reason: Option<&str>,
) -> Result<SubmissionView, InsurerError> {
    let admin = administrator(principal)?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return Err(InsurerError::BadRequest(
            "a refusal needs a reason: {\"reason\": \"…\"}".into(),
        ));
    }
    let store = &services.store;
    let mut tx = store.begin().await?;
    let Some(before) = submission_in(&mut tx, id).await? else {
        return Err(InsurerError::NotFound {
            code: "submission.not-found",
            what: format!("submission {id}"),
        });
    };
    if before.status != "submitted" {
        return Err(InsurerError::Decided(id, before.status));
    }
    let c = before.contract;
    lock_grn(&mut tx, &c.grn).await?;
    let actor = principal.actor();
    let mut data = None;
    let status = if approve {
        let reference = crate::refdata::current(services);
        match reference.insurer(&c.insurer).map(|i| i.status) {
            Some(TraderStatus::Active) => {}
            standing => {
                return Err(invalid(
                    "contract.insurer",
                    format!(
                        "insurer {} is {} and its contracts may not be approved",
                        c.insurer,
                        standing.map_or("not an approved insurer", TraderStatus::as_str)
                    ),
                ));
            }
        }
        check_against_ledger(&mut tx, &reference, &c, Some(id)).await?;
        let change = Change {
            insurance_contracts: vec![c.clone()],
            ..Change::default()
        };
        let why = format!(
            "submission {id}: contract {} (GRN {}) approved",
            c.contract_id, c.grn
        );
        let (made, d) =
            crate::refdata::change_in(&mut tx, services, &actor, &why, &change, Utc::now()).await?;
        tracing::info!(
            version = made.version,
            contract = c.contract_id,
            "contract is reference data"
        );
        data = Some(d);
        "approved"
    } else {
        "refused"
    };
    on_tx!(&mut tx, |conn| {
        sqlx::query(
            "UPDATE hub_contract_submissions SET status = $2, reason = $3, decided_by = $4, \
             decided_at = $5 WHERE submission_id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(&actor)
        .bind(now_millis())
        .execute(&mut *conn)
        .await?;
    });
    audit(&mut tx, &format!("submission:{id}"), status, &actor, reason).await?;
    let view = submission_in(&mut tx, id)
        .await?
        .ok_or_else(|| corrupt("submission", "vanished"))?;
    tx.commit().await?;
    if let Some(d) = data {
        crate::refdata::committed(services, d).await?;
    }
    tracing::info!(
        submission = id,
        contract = c.contract_id,
        status,
        admin,
        "contract decided"
    );
    Ok(view)
}

/// A step in a registered contract's standing ([`change_contract`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractAction {
    /// Active → suspended (administrator; reason required).
    Suspend,
    /// Suspended → active (administrator).
    Reinstate,
    /// Active or suspended → expired, for good (administrator, or the contract's own insurer;
    /// reason required).
    Terminate,
}

impl ContractAction {
    /// `suspend`, `reinstate`, `terminate`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractAction::Suspend => "suspend",
            ContractAction::Reinstate => "reinstate",
            ContractAction::Terminate => "terminate",
        }
    }

    /// Parses [`ContractAction::as_str`].
    pub fn parse(s: &str) -> Option<ContractAction> {
        [
            ContractAction::Suspend,
            ContractAction::Reinstate,
            ContractAction::Terminate,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// The status it leads to from `from`, or `None` when the step is not allowed.
    pub fn next(self, from: ContractStatus) -> Option<ContractStatus> {
        match (self, from) {
            (ContractAction::Suspend, ContractStatus::Active) => Some(ContractStatus::Suspended),
            (ContractAction::Reinstate, ContractStatus::Suspended) => Some(ContractStatus::Active),
            (ContractAction::Terminate, ContractStatus::Active | ContractStatus::Suspended) => {
                Some(ContractStatus::Expired)
            }
            _ => None,
        }
    }
}

/// What [`change_contract`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ContractStep {
    /// The contract as it now stands.
    pub contract: InsuranceContract,
    /// Its status before.
    pub previous_status: ContractStatus,
    /// The reference-data version that holds the step.
    pub version: u64,
    /// The nodes the version goes to.
    pub sent_to: Vec<String>,
}

/// Suspends, reinstates or terminates the registered contract `contract_id` (see
/// [`ContractAction`]): a new reference-data version with the contract's new status, audited
/// (`hub_refdata_audit`, and `contract:ID` in `hub_guarantee_audit`), written into the ledger
/// and sent to every node, in one transaction. Refused with nothing changed: not an
/// administrator (`insurer.forbidden`; an insurer may terminate its own contract), an unknown
/// contract or another insurer's (`contract.not-found`), a missing reason
/// (`contract.bad-request`), a step its status does not allow (`contract.illegal-transition`).
pub async fn change_contract(
    services: &crate::pipeline::HubServices,
    principal: &Principal,
    contract_id: &str,
    action: ContractAction,
    reason: Option<&str>,
) -> Result<ContractStep, InsurerError> {
    if action != ContractAction::Terminate {
        administrator(principal)?;
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let not_found = || InsurerError::NotFound {
        code: "contract.not-found",
        what: format!("contract {contract_id}"),
    };
    let mut tx = services.store.begin().await?;
    let held = crate::refdata::latest_in(&mut tx, services).await?;
    let Some(before) = held
        .insurance_contracts
        .iter()
        .find(|c| c.contract_id == contract_id)
        .cloned()
    else {
        return Err(not_found());
    };
    if let Principal::Insurer(tin) = principal
        && before.insurer.as_str() != tin
    {
        return Err(not_found());
    }
    if action != ContractAction::Reinstate && reason.is_none() {
        return Err(InsurerError::BadRequest(format!(
            "a reason is required to {} a contract: {{\"reason\": \"…\"}}",
            action.as_str()
        )));
    }
    lock_grn(&mut tx, &before.grn).await?;
    let Some(status) = action.next(before.status) else {
        return Err(InsurerError::ContractTransition(format!(
            "contract {contract_id} is {}: it cannot {}",
            status_word(before.status),
            action.as_str()
        )));
    };
    let after = InsuranceContract {
        status,
        ..before.clone()
    };
    let actor = principal.actor();
    let why = format!(
        "contract {contract_id}: {}{}",
        action.as_str(),
        reason.map(|r| format!(": {r}")).unwrap_or_default()
    );
    let change = Change {
        insurance_contracts: vec![after.clone()],
        ..Change::default()
    };
    let (made, data) =
        crate::refdata::change_in(&mut tx, services, &actor, &why, &change, Utc::now()).await?;
    audit(
        &mut tx,
        &format!("contract:{contract_id}"),
        action.as_str(),
        &actor,
        reason,
    )
    .await?;
    tx.commit().await?;
    crate::refdata::committed(services, data).await?;
    tracing::info!(
        contract = contract_id,
        action = action.as_str(),
        version = made.version,
        actor,
        "contract status changed"
    );
    Ok(ContractStep {
        contract: after,
        previous_status: before.status,
        version: made.version,
        sent_to: made.sent_to,
    })
}

fn status_word(s: ContractStatus) -> &'static str {
    match s {
        ContractStatus::Active => "active",
        ContractStatus::Suspended => "suspended",
        ContractStatus::Expired => "expired (terminated)",
    }
}

/// Submissions: the insurer's own, or all for an administrator.
pub async fn submissions(
    store: &HubStore,
    principal: &Principal,
) -> Result<Vec<SubmissionView>, InsurerError> {
    let rows: Vec<SubmissionRow> = match principal {
        Principal::Insurer(tin) => {
            let q = format!(
                "SELECT {SUBMISSION_COLUMNS} FROM hub_contract_submissions WHERE insurer = $1 \
                 ORDER BY submission_id"
            );
            on_pool!(store, |p| {
                sqlx::query_as(&q)
                    .bind(tin)
                    .fetch_all(p)
                    .await
                    .map_err(StoreError::from)?
            })
        }
        Principal::Administrator(_) => {
            let q = format!(
                "SELECT {SUBMISSION_COLUMNS} FROM hub_contract_submissions ORDER BY submission_id"
            );
            on_pool!(store, |p| {
                sqlx::query_as(&q)
                    .fetch_all(p)
                    .await
                    .map_err(StoreError::from)?
            })
        }
    };
    Ok(rows
        .into_iter()
        .map(submission_view)
        .collect::<Result<_, _>>()?)
}

/// The CA002C status notification of a decided submission, from the hub to `recipient`.
pub fn ca002c(view: &SubmissionView, recipient: &str, now: DateTime<Utc>) -> Vec<u8> {
    let status = match view.status.as_str() {
        "approved" => admin::ContractStatusCode::Approved,
        _ => admin::ContractStatusCode::Refused,
    };
    let at = view.decided_at.unwrap_or(now);
    let now = now.with_nanosecond(0).unwrap_or(now);
    encode(&Message::CA002C(Box::new(admin::CA002CType {
        message_sender: HUB_ADDRESS.to_owned(),
        message_recipient: recipient.to_owned(),
        preparation_date_and_time: now.naive_utc(),
        message_identification: format!("HUB-CA002C-{}", view.submission_id),
        message_type: admin::CatsAdminMessageTypes::CA002C,
        correlation_identifier: None,
        insurance_contract_status: admin::InsuranceContractStatusType {
            contract_identifier: view.contract.contract_id.clone(),
            grn: view.contract.grn.as_str().to_owned(),
            status,
            status_date_and_time: at.with_nanosecond(0).unwrap_or(at).naive_utc(),
            reason: view.reason.clone(),
        },
    })))
}

// ---------------------------------------------------------------------------------------------
// Enquiries, liabilities, notifications.

/// The indemnity state of a liability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiabilityState {
    /// Opened by the hub from an unresolved enquiry.
    Claimed,
    /// The administrator notified the insurer.
    Notified,
    /// The insurer paid.
    Paid,
    /// The insurer disputes the claim.
    Disputed,
}

impl LiabilityState {
    fn parse(s: &str) -> Result<LiabilityState, StoreError> {
        Ok(match s {
            "claimed" => LiabilityState::Claimed,
            "notified" => LiabilityState::Notified,
            "paid" => LiabilityState::Paid,
            "disputed" => LiabilityState::Disputed,
            other => return Err(corrupt("liability state", other)),
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            LiabilityState::Claimed => "claimed",
            LiabilityState::Notified => "notified",
            LiabilityState::Paid => "paid",
            LiabilityState::Disputed => "disputed",
        }
    }

    /// The state after `action` by `principal` (see the table in the module documentation).
    pub fn next(self, action: &str, principal: &Principal) -> Result<LiabilityState, InsurerError> {
        let admin = matches!(principal, Principal::Administrator(_));
        match (self, action, admin) {
            (LiabilityState::Claimed, "notify", true) => Ok(LiabilityState::Notified),
            (LiabilityState::Notified, "pay", false) => Ok(LiabilityState::Paid),
            (LiabilityState::Notified, "dispute", false) => Ok(LiabilityState::Disputed),
            (LiabilityState::Disputed, "pay", true) => Ok(LiabilityState::Paid),
            _ => Err(InsurerError::IllegalTransition(format!(
                "{} may not {action} a {} liability",
                if admin {
                    "an administrator"
                } else {
                    "an insurer"
                },
                self.as_str()
            ))),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sweep {
    /// Enquiries opened.
    pub enquiries_opened: usize,
    /// Enquiries that became liabilities.
    pub liabilities_claimed: usize,
}

/// Opens an enquiry for each reservation not released by its limit date, and turns each
/// enquiry open for longer than the policy allows into a claimed liability, as of `now`.
pub async fn sweep(
    store: &HubStore,
    policy: &LedgerPolicy,
    now: DateTime<Utc>,
) -> Result<Sweep, StoreError> {
    let mut done = Sweep::default();
    let day_ms = 86_400_000_i64;
    let due = now.timestamp_millis() - policy.transit_days * day_ms;
    let mut tx = store.begin().await?;
    let overdue: Vec<(String, String, String, i64)> = on_tx!(&mut tx, |c| {
        sqlx::query_as(
            "SELECT u.mrn, u.grn, u.contract_id, u.requested_at FROM hub_guarantee_uses u \
             WHERE u.status = 'reserved' AND u.contract_id IS NOT NULL AND u.requested_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM hub_guarantee_enquiries e \
                             WHERE e.mrn = u.mrn AND e.grn = u.grn)",
        )
        .bind(due)
        .fetch_all(&mut *c)
        .await?
    });
    let transit = u64::try_from(policy.transit_days).unwrap_or(0);
    for (mrn, grn, contract, at) in overdue {
        let limit = millis(at)
            .date_naive()
            .checked_add_days(Days::new(transit))
            .unwrap_or(NaiveDate::MAX);
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO hub_guarantee_enquiries (mrn, grn, contract_id, limit_date, status, \
                 opened_at) VALUES ($1, $2, $3, $4, 'open', $5) ON CONFLICT (mrn, grn) DO NOTHING",
            )
            .bind(&mrn)
            .bind(&grn)
            .bind(&contract)
            .bind(limit.to_string())
            .bind(now.timestamp_millis())
            .execute(&mut *c)
            .await?;
        });
        audit(
            &mut tx,
            &format!("enquiry:{mrn}:{grn}"),
            "opened",
            "hub",
            Some(&limit.to_string()),
        )
        .await?;
        tracing::info!(mrn, grn, contract, %limit, "guarantee enquiry opened");
        done.enquiries_opened += 1;
    }
    let ripe = now.timestamp_millis() - policy.liability_after_days * day_ms;
    let unresolved: Vec<(String, String, String, String, String)> = on_tx!(&mut tx, |c| {
        sqlx::query_as(
            "SELECT e.mrn, e.grn, e.contract_id, u.amount, u.currency \
             FROM hub_guarantee_enquiries e JOIN hub_guarantee_uses u \
             ON u.mrn = e.mrn AND u.grn = e.grn \
             WHERE e.status = 'open' AND e.opened_at <= $1",
        )
        .bind(ripe)
        .fetch_all(&mut *c)
        .await?
    });
    for (mrn, grn, contract, amount, currency) in unresolved {
        let id: i64 = on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE hub_guarantee_enquiries SET status = 'liability', closed_at = $3 \
                 WHERE mrn = $1 AND grn = $2",
            )
            .bind(&mrn)
            .bind(&grn)
            .bind(now.timestamp_millis())
            .execute(&mut *c)
            .await?;
            sqlx::query_scalar(
                "INSERT INTO hub_guarantee_liabilities (mrn, grn, contract_id, amount, currency, \
                 state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'claimed', $6, $6) \
                 RETURNING liability_id",
            )
            .bind(&mrn)
            .bind(&grn)
            .bind(&contract)
            .bind(&amount)
            .bind(&currency)
            .bind(now.timestamp_millis())
            .fetch_one(&mut *c)
            .await?
        });
        audit(
            &mut tx,
            &format!("liability:{id}"),
            "claimed",
            "hub",
            Some(&format!("{mrn} {grn} {amount} {currency}")),
        )
        .await?;
        tracing::info!(
            mrn,
            grn,
            contract,
            liability = id,
            "guarantee liability claimed"
        );
        done.liabilities_claimed += 1;
    }
    tx.commit().await?;
    Ok(done)
}

/// Runs [`sweep`] every `every` until `shutdown` fires (the hub starts it).
pub async fn run_sweeps(
    store: HubStore,
    policy: LedgerPolicy,
    every: std::time::Duration,
    mut shutdown: cats_transport::shutdown::Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {
                if let Err(e) = sweep(&store, &policy, Utc::now()).await {
                    tracing::warn!(code = e.code(), error = %e, "guarantee sweep failed");
                }
            }
        }
    }
}

/// A liability on a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liability {
    /// Its number.
    pub liability_id: i64,
    /// The movement.
    pub mrn: String,
    /// The GRN.
    pub grn: String,
    /// The contract.
    pub contract_id: String,
    /// The amount, in the contract's currency.
    pub amount: Decimal,
    /// Its currency.
    pub currency: String,
    /// The indemnity state.
    pub state: LiabilityState,
    /// When it was claimed (UTC).
    pub created_at: DateTime<Utc>,
    /// Its last step (UTC).
    pub updated_at: DateTime<Utc>,
}

type LiabilityRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
);

fn liability(row: LiabilityRow) -> Result<Liability, StoreError> {
    let (id, mrn, grn, contract_id, amount, currency, state, created, updated) = row;
    Ok(Liability {
        liability_id: id,
        mrn,
        grn,
        contract_id,
        amount: decimal(&amount)?,
        currency,
        state: LiabilityState::parse(&state)?,
        created_at: millis(created),
        updated_at: millis(updated),
    })
}

const LIABILITY_COLUMNS: &str =
    "liability_id, mrn, grn, contract_id, amount, currency, state, created_at, updated_at";

/// Moves liability `id` by `action` (`notify`, `pay`, `dispute`) for `principal`; audited.
pub async fn move_liability(
    store: &HubStore,
    principal: &Principal,
    id: i64,
    action: &str,
) -> Result<Liability, InsurerError> {
    let mut tx = store.begin().await?;
    let select = match &tx {
        HubTx::Postgres(_) => {
            format!(
                "SELECT {LIABILITY_COLUMNS} FROM hub_guarantee_liabilities WHERE liability_id = $1 FOR UPDATE"
            )
        }
        HubTx::Sqlite(_) => {
            format!(
                "SELECT {LIABILITY_COLUMNS} FROM hub_guarantee_liabilities WHERE liability_id = $1"
            )
        }
    };
    let row: Option<LiabilityRow> = on_tx!(&mut tx, |c| {
        sqlx::query_as(&select)
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
    });
    let not_found = || InsurerError::NotFound {
        code: "liability.not-found",
        what: format!("liability {id}"),
    };
    let current = liability(row.ok_or_else(not_found)?)?;
    if let Principal::Insurer(tin) = principal {
        let own = owned_contract(&mut tx, &current.contract_id, tin).await?;
        if !own {
            return Err(not_found());
        }
    }
    let next = current.state.next(action, principal)?;
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE hub_guarantee_liabilities SET state = $2, updated_at = $3 WHERE liability_id = $1",
        )
        .bind(id)
        .bind(next.as_str())
        .bind(now_millis())
        .execute(&mut *c)
        .await?;
    });
    audit(
        &mut tx,
        &format!("liability:{id}"),
        next.as_str(),
        &principal.actor(),
        Some(&format!("{} -> {}", current.state.as_str(), next.as_str())),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        liability = id,
        from = current.state.as_str(),
        to = next.as_str(),
        "liability moved"
    );
    Ok(Liability {
        state: next,
        ..current
    })
}

async fn owned_contract(
    tx: &mut HubTx<'_>,
    contract_id: &str,
    tin: &str,
) -> Result<bool, StoreError> {
    let terms: Option<String> = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT terms FROM hub_guarantee_contracts WHERE contract_id = $1")
            .bind(contract_id)
            .fetch_optional(&mut *c)
            .await?
    });
    Ok(match terms {
        Some(t) => {
            let c: InsuranceContract =
                serde_json::from_str(&t).map_err(|e| corrupt("contract terms", e))?;
            c.insurer.as_str() == tin
        }
        None => false,
    })
}

/// A threshold notification waiting for the notification gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Its number.
    pub notification_id: i64,
    /// The contract.
    pub contract_id: String,
    /// The insurer to tell.
    pub insurer: String,
    /// The threshold crossed, percent of the insured amount.
    pub threshold: Decimal,
    /// The amount in use after the crossing.
    pub in_use: Decimal,
    /// The insured amount.
    pub insured_amount: Decimal,
    /// The reservation that crossed it.
    pub mrn: String,
    /// When (UTC).
    pub created_at: DateTime<Utc>,
}

type NotificationRow = (i64, String, String, String, String, String, String, i64);

/// Threshold notifications, oldest first: of one insurer, or all (`None`).
pub async fn notifications(
    store: &HubStore,
    insurer: Option<&str>,
) -> Result<Vec<Notification>, StoreError> {
    let rows: Vec<NotificationRow> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT notification_id, contract_id, insurer, threshold, in_use, insured_amount, \
             mrn, created_at FROM hub_guarantee_notifications \
             WHERE $1 IS NULL OR insurer = $1 ORDER BY notification_id",
        )
        .bind(insurer)
        .fetch_all(p)
        .await?
    });
    rows.into_iter()
        .map(
            |(id, contract_id, insurer, threshold, in_use, insured, mrn, at)| {
                Ok(Notification {
                    notification_id: id,
                    contract_id,
                    insurer,
                    threshold: decimal(&threshold)?,
                    in_use: decimal(&in_use)?,
                    insured_amount: decimal(&insured)?,
                    mrn,
                    created_at: millis(at),
                })
            },
        )
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The insurer's view.

/// An enquiry on a movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enquiry {
    /// The movement.
    pub mrn: String,
    /// The GRN.
    pub grn: String,
    /// The day it should have been discharged by.
    pub limit_date: String,
    /// `open`, `resolved` or `liability`.
    pub status: String,
    /// When it was opened (UTC).
    pub opened_at: DateTime<Utc>,
    /// When it was closed (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

/// One contract as its insurer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractView {
    /// The terms.
    pub contract: InsuranceContract,
    /// The insured amount.
    pub insured_amount: Decimal,
    /// Running total in use.
    pub in_use: Decimal,
    /// Insured amount minus in use.
    pub available: Decimal,
    /// Every movement that asked to use it.
    pub movements: Vec<MovementUse>,
    /// Enquiries on its movements.
    pub enquiries: Vec<Enquiry>,
    /// Liabilities and their indemnity state.
    pub liabilities: Vec<Liability>,
    /// Threshold notifications.
    pub notifications: Vec<Notification>,
}

/// The contracts `principal` may see (an insurer: its own; an administrator: all), or only
/// `contract_id`.
pub async fn contracts(
    store: &HubStore,
    principal: &Principal,
    contract_id: Option<&str>,
) -> Result<Vec<ContractView>, InsurerError> {
    let rows: Vec<(String, String)> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT terms, in_use FROM hub_guarantee_contracts \
             WHERE $1 IS NULL OR contract_id = $1 ORDER BY contract_id",
        )
        .bind(contract_id)
        .fetch_all(p)
        .await
        .map_err(StoreError::from)?
    });
    let mut out = Vec::new();
    for (terms, in_use) in rows {
        let c: InsuranceContract =
            serde_json::from_str(&terms).map_err(|e| corrupt("contract terms", e))?;
        if let Principal::Insurer(tin) = principal
            && c.insurer.as_str() != tin
        {
            continue;
        }
        let in_use = decimal(&in_use)?;
        let movements = guarantee::movement_uses(store, &c.contract_id).await?;
        let enquiries: Vec<(String, String, String, String, i64, Option<i64>)> =
            on_pool!(store, |p| {
                sqlx::query_as(
                    "SELECT mrn, grn, limit_date, status, opened_at, closed_at \
                     FROM hub_guarantee_enquiries WHERE contract_id = $1 ORDER BY opened_at, mrn",
                )
                .bind(&c.contract_id)
                .fetch_all(p)
                .await
                .map_err(StoreError::from)?
            });
        let q = format!(
            "SELECT {LIABILITY_COLUMNS} FROM hub_guarantee_liabilities WHERE contract_id = $1 \
             ORDER BY liability_id"
        );
        let liabilities: Vec<LiabilityRow> = on_pool!(store, |p| {
            sqlx::query_as(&q)
                .bind(&c.contract_id)
                .fetch_all(p)
                .await
                .map_err(StoreError::from)?
        });
        let notes = notifications(store, Some(c.insurer.as_str()))
            .await?
            .into_iter()
            .filter(|n| n.contract_id == c.contract_id)
            .collect();
        out.push(ContractView {
            insured_amount: c.insured_amount,
            available: c.insured_amount - in_use,
            in_use,
            movements,
            enquiries: enquiries
                .into_iter()
                .map(|(mrn, grn, limit_date, status, opened, closed)| Enquiry {
                    mrn,
                    grn,
                    limit_date,
                    status,
                    opened_at: millis(opened),
                    closed_at: closed.map(millis),
                })
                .collect(),
            liabilities: liabilities
                .into_iter()
                .map(liability)
                .collect::<Result<_, _>>()?,
            notifications: notes,
            contract: c,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// HTTP.

/// What the routes share.
#[derive(Debug, Clone)]
pub struct InsurerApi {
    /// The hub's database.
    pub store: HubStore,
    /// Reference data (approved insurers, contracts, currencies).
    pub reference: std::sync::Arc<ReferenceData>,
    /// The hub's signer and the transport, to answer a CA001C's node after a decision.
    pub answer: Option<(
        std::sync::Arc<crate::pipeline::HubServices>,
        std::sync::Arc<crate::operations::Operations>,
    )>,
}

impl InsurerApi {
    /// The reference data in force: the hub's master copy once the API is wired to the hub's
    /// services (registrations and contract steps change it while the hub runs), else the set
    /// given.
    pub fn reference(&self) -> std::sync::Arc<ReferenceData> {
        match &self.answer {
            Some((services, _)) => crate::refdata::current(services),
            None => self.reference.clone(),
        }
    }

    fn services(&self) -> Result<&crate::pipeline::HubServices, InsurerError> {
        self.answer
            .as_ref()
            .map(|(s, _)| s.as_ref())
            .ok_or_else(|| {
                StoreError::Corrupt(
                    "the insurer API is not wired to the hub's reference data".into(),
                )
                .into()
            })
    }
}

type Answer = Result<Response, InsurerError>;

async fn contract_step_handler(
    State(api): State<InsurerApi>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<Decision>>,
) -> Answer {
    let principal = who(&api, &headers).await?;
    let Some(action) = ContractAction::parse(&action) else {
        return Err(InsurerError::BadRequest(format!(
            "{action:?}: suspend, reinstate or terminate"
        )));
    };
    let Json(d) = body.unwrap_or_default();
    let step = change_contract(
        api.services()?,
        &principal,
        &id,
        action,
        d.reason.as_deref(),
    )
    .await?;
    Ok(Json(step).into_response())
}

async fn who(api: &InsurerApi, headers: &HeaderMap) -> Result<Principal, InsurerError> {
    authenticate(&api.store, headers).await
}

async fn submit_handler(
    State(api): State<InsurerApi>,
    headers: HeaderMap,
    body: Result<Json<Submission>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let principal = who(&api, &headers).await?;
    let Principal::Insurer(tin) = &principal else {
        return Err(InsurerError::Forbidden(
            "only an approved insurer submits contracts".into(),
        ));
    };
    let Json(s) = body.map_err(|e| InsurerError::BadRequest(e.body_text()))?;
    let view = submit(&api.store, &api.reference(), tin, &s, &Channel::Api).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn submissions_handler(State(api): State<InsurerApi>, headers: HeaderMap) -> Answer {
    let principal = who(&api, &headers).await?;
    let list = submissions(&api.store, &principal).await?;
    Ok(Json(serde_json::json!({ "submissions": list })).into_response())
}

/// The body of an approval or refusal.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    reason: Option<String>,
}

fn submission_id(id: &str) -> Result<i64, InsurerError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| InsurerError::BadRequest(format!("{id:?} is not a submission number")))
}

async fn decide_handler(
    State(api): State<InsurerApi>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<Decision>>,
) -> Answer {
    let principal = who(&api, &headers).await?;
    let approve = match action.as_str() {
        "approve" => true,
        "refuse" => false,
        other => {
            return Err(InsurerError::BadRequest(format!(
                "{other:?}: approve or refuse"
            )));
        }
    };
    let id = submission_id(&id)?;
    let Json(d) = body.unwrap_or_default();
    let view = decide(
        api.services()?,
        &principal,
        id,
        approve,
        d.reason.as_deref(),
    )
    .await?;
    let ca002c =
        String::from_utf8_lossy(&ca002c(&view, view.contract.insurer.as_str(), Utc::now()))
            .into_owned();
    let mut sent = None;
    if let Some((services, operations)) = &api.answer {
        match answer_node(&api.store, services, operations.transport(), &view).await {
            Ok(id) => sent = id,
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "CA002C to the node not sent");
            }
        }
    }
    Ok(
        Json(serde_json::json!({ "submission": view, "ca002c": ca002c, "ca002c_sent": sent }))
            .into_response(),
    )
}

async fn contracts_handler(State(api): State<InsurerApi>, headers: HeaderMap) -> Answer {
    let principal = who(&api, &headers).await?;
    let list = contracts(&api.store, &principal, None).await?;
    Ok(Json(serde_json::json!({ "contracts": list })).into_response())
}

async fn contract_handler(
    State(api): State<InsurerApi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let principal = who(&api, &headers).await?;
    let mut list = contracts(&api.store, &principal, Some(&id)).await?;
    match list.pop() {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(InsurerError::NotFound {
            code: "contract.not-found",
            what: format!("contract {id}"),
        }),
    }
}

async fn liability_handler(
    State(api): State<InsurerApi>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Answer {
    let principal = who(&api, &headers).await?;
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| InsurerError::BadRequest(format!("{id:?} is not a liability number")))?;
    if !matches!(action.as_str(), "notify" | "pay" | "dispute") {
        return Err(InsurerError::BadRequest(format!(
            "{action:?}: notify, pay or dispute"
        )));
    }
    let l = move_liability(&api.store, &principal, id, &action).await?;
    Ok(Json(l).into_response())
}

async fn notifications_handler(State(api): State<InsurerApi>, headers: HeaderMap) -> Answer {
    let principal = who(&api, &headers).await?;
    let insurer = match &principal {
        Principal::Insurer(t) => Some(t.as_str()),
        Principal::Administrator(_) => None,
    };
    let list = notifications(&api.store, insurer).await?;
    Ok(Json(serde_json::json!({ "notifications": list })).into_response())
}

/// The routes of the module documentation.
pub fn routes<S: Clone + Send + Sync + 'static>(api: InsurerApi) -> Router<S> {
    Router::new()
        .route("/api/v1/insurance-contracts", post(submit_handler))
        .route(
            "/api/v1/insurance-contracts/submissions",
            get(submissions_handler),
        )
        .route(
            "/api/v1/insurance-contracts/submissions/{id}/{action}",
            post(decide_handler),
        )
        .route(
            "/api/v1/insurance-contracts/{id}/{action}",
            post(contract_step_handler),
        )
        .route("/api/v1/insurer/contracts", get(contracts_handler))
        .route("/api/v1/insurer/contracts/{id}", get(contract_handler))
        .route("/api/v1/liabilities/{id}/{action}", post(liability_handler))
        .route(
            "/api/v1/guarantee-notifications",
            get(notifications_handler),
        )
        .with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_steps() {
        use ContractAction::*;
        use ContractStatus::*;
        let allowed = [
            (Suspend, Active, Suspended),
            (Reinstate, Suspended, Active),
            (Terminate, Active, Expired),
            (Terminate, Suspended, Expired),
        ];
        for action in [Suspend, Reinstate, Terminate] {
            assert_eq!(ContractAction::parse(action.as_str()), Some(action));
            for from in [Active, Suspended, Expired] {
                let want = allowed
                    .iter()
                    .find(|(a, f, _)| *a == action && *f == from)
                    .map(|(_, _, to)| *to);
                assert_eq!(action.next(from), want, "{action:?} from {from:?}");
            }
        }
        assert_eq!(ContractAction::parse("cancel"), None);
    }

    #[test]
    fn liability_process() {
        let admin = Principal::Administrator("a".into());
        let insurer = Principal::Insurer("KZ990140000123".into());
        use LiabilityState::*;
        assert_eq!(Claimed.next("notify", &admin).ok(), Some(Notified));
        assert_eq!(Notified.next("pay", &insurer).ok(), Some(Paid));
        assert_eq!(Notified.next("dispute", &insurer).ok(), Some(Disputed));
        assert_eq!(Disputed.next("pay", &admin).ok(), Some(Paid));
        for (from, action, by) in [
            (Claimed, "notify", &insurer),
            (Claimed, "pay", &insurer),
            (Claimed, "pay", &admin),
            (Notified, "pay", &admin),
            (Notified, "notify", &admin),
            (Paid, "dispute", &insurer),
            (Paid, "pay", &admin),
            (Disputed, "dispute", &insurer),
            (Disputed, "pay", &insurer),
        ] {
            let e = from.next(action, by).expect_err(action);
            assert_eq!(
                e.code(),
                "liability.illegal-transition",
                "{from:?} {action}"
            );
        }
    }
}
