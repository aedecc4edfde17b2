//! Registrations: AEO, authorised trader and approved insurer.
//!
//! An application comes by message (a CA003C from a node, [`apply_in`] from the pipeline) or
//! over the API (`POST /api/v1/registrations`). It is refused at once when the identification
//! number is malformed, the country is not a participating country, the validity period ends
//! before it begins, or another registration of the same trader on the same register is
//! pending or in force on an overlapping period (`registration.overlap`).
//!
//! An administrator reviews it over the API (`POST /api/v1/registrations/{id}/decision`):
//!
//! | action | from | to | reference data |
//! | --- | --- | --- | --- |
//! | `approve` | pending | approved | the trader (or insurer) written, active |
//! | `refuse` (reason required) | pending | refused | none |
//! | `suspend` (reason required) | approved | suspended | status suspended |
//! | `reinstate` | suspended | approved | status active |
//! | `revoke` (reason required) | approved, suspended | revoked | status revoked |
//!
//! Every step is an audit row (`hub_registration_audit`: who, when, action, old and new status,
//! reason). A step that changes the reference data makes a new version in the same transaction
//! ([`crate::refdata::change_in`]), distributed to every node; an application that came from a
//! node gets a CA004C with the decision.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use message_catalog::Message;
use message_catalog::generated::admin::{
    CA004CType, CatsAdminMessageTypes, RegistrationDecisionCode, TraderDecisionType, TraderRoleCode,
};
use message_catalog::ids::{CountryCode, Tin};
use message_catalog::reference::update::Change;
use message_catalog::reference::{Insurer, Trader, TraderRole, TraderStatus};
use serde::{Deserialize, Serialize};

use crate::pipeline::HubServices;
use crate::refdata::{self, Owed, RefdataError};
use crate::routing::HUB_ADDRESS;
use crate::store::{HubTx, StoreError, on_tx};

/// The register applied for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Register {
    /// Authorised economic operator.
    Aeo,
    /// Authorised trader.
    AuthorisedTrader,
    /// Approved insurer.
    Insurer,
}

impl Register {
    fn as_str(self) -> &'static str {
        match self {
            Register::Aeo => "aeo",
            Register::AuthorisedTrader => "authorised-trader",
            Register::Insurer => "insurer",
        }
    }

    fn parse(s: &str) -> Option<Register> {
        [Register::Aeo, Register::AuthorisedTrader, Register::Insurer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    fn code(self) -> TraderRoleCode {
        match self {
            Register::Aeo => TraderRoleCode::AEO,
            Register::AuthorisedTrader => TraderRoleCode::AuthorisedTrader,
            Register::Insurer => TraderRoleCode::Insurer,
        }
    }

    /// The register of a CA003C's role.
    pub fn of_code(c: TraderRoleCode) -> Register {
        match c {
            TraderRoleCode::AEO => Register::Aeo,
            TraderRoleCode::AuthorisedTrader => Register::AuthorisedTrader,
            TraderRoleCode::Insurer => Register::Insurer,
        }
    }
}

/// An application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The register.
    pub role: Register,
    /// The trader's identification number.
    pub tin: String,
    /// Its name.
    pub name: String,
    /// Its country.
    pub country: String,
    /// First day of validity asked for.
    pub valid_from: NaiveDate,
    /// Last day, when limited.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
}

/// A registration as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// Its number.
    pub id: i64,
    /// The register.
    pub role: String,
    /// The trader.
    pub tin: String,
    /// Its name.
    pub name: String,
    /// Its country.
    pub country: String,
    /// Validity.
    pub valid_from: String,
    /// Validity end.
    pub valid_until: Option<String>,
    /// `pending`, `approved`, `refused`, `suspended`, `revoked`.
    pub status: String,
    /// The reason of the last decision.
    pub reason: Option<String>,
    /// `api` or `node:<country>`.
    pub source: String,
    /// The CA003C, when it came by message.
    pub message_id: Option<String>,
}

/// A registration step failed; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The application or decision is malformed.
    #[error("registration.invalid: {0}")]
    Invalid(String),
    /// The country is not a participating country.
    #[error("registration.unknown-country: {0} is not a participating country")]
    UnknownCountry(String),
    /// Another registration of the trader on the register overlaps.
    #[error(
        "registration.overlap: {tin} already has registration {existing} ({status}) as {role} on an overlapping period"
    )]
    Overlap {
        /// The trader.
        tin: String,
        /// The register.
        role: &'static str,
        /// The registration it overlaps.
        existing: i64,
        /// Its status.
        status: String,
    },
    /// No such registration.
    #[error("registration.not-found: no registration {0}")]
    NotFound(i64),
    /// The action does not apply to the registration's status.
    #[error("registration.state: cannot {action} a registration that is {status}")]
    State {
        /// The action.
        action: &'static str,
        /// Its status.
        status: String,
    },
    /// The reference data change failed.
    #[error(transparent)]
    Refdata(#[from] RefdataError),
}

impl From<StoreError> for RegistrationError {
    fn from(e: StoreError) -> Self {
        RegistrationError::Refdata(RefdataError::Store(e))
    }
}

impl RegistrationError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::Invalid(_) => "registration.invalid",
            RegistrationError::UnknownCountry(_) => "registration.unknown-country",
            RegistrationError::Overlap { .. } => "registration.overlap",
            RegistrationError::NotFound(_) => "registration.not-found",
            RegistrationError::State { .. } => "registration.state",
            RegistrationError::Refdata(e) => e.code(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            RegistrationError::NotFound(_) => StatusCode::NOT_FOUND,
            RegistrationError::Overlap { .. } | RegistrationError::State { .. } => {
                StatusCode::CONFLICT
            }
            RegistrationError::Refdata(e) => e.status(),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
);

const COLUMNS: &str = "id, role, tin, name, country, valid_from, valid_until, status, reason, \
                       source, message_id";

fn registration(r: Row) -> Registration {
    Registration {
        id: r.0,
        role: r.1,
        tin: r.2,
        name: r.3,
        country: r.4,
        valid_from: r.5,
        valid_until: r.6,
        status: r.7,
        reason: r.8,
        source: r.9,
        message_id: r.10,
    }
}

async fn one(tx: &mut HubTx<'_>, id: i64) -> Result<Option<Registration>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM hub_registrations WHERE id = $1");
    let row: Option<Row> = on_tx!(tx, |c| {
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
    });
    Ok(row.map(registration))
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut HubTx<'_>,
    id: i64,
    actor: &str,
    action: &str,
    old: Option<&str>,
    new: &str,
    reason: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO hub_registration_audit \
             (registration_id, at, actor, action, old_status, new_status, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(old)
        .bind(new)
        .bind(reason)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

fn overlaps(
    a_from: NaiveDate,
    a_until: Option<NaiveDate>,
    b_from: NaiveDate,
    b_until: Option<NaiveDate>,
) -> bool {
    a_until.is_none_or(|u| b_from <= u) && b_until.is_none_or(|u| a_from <= u)
}

/// Records `app` as pending inside `tx`, or refuses it (see the module documentation).
pub async fn apply_in(
    tx: &mut HubTx<'_>,
    services: &HubServices,
    app: &Application,
    source: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Registration, RegistrationError> {
    let tin = Tin::parse(&app.tin)
        .map_err(|e| RegistrationError::Invalid(format!("identification number: {e}")))?;
    if app.name.trim().is_empty() {
        return Err(RegistrationError::Invalid("the name is empty".into()));
    }
    let country = CountryCode::parse(&app.country)
        .map_err(|_| RegistrationError::UnknownCountry(app.country.clone()))?;
    if refdata::current(services).country(country).is_none() {
        return Err(RegistrationError::UnknownCountry(app.country.clone()));
    }
    if let Some(u) = app.valid_until
        && u < app.valid_from
    {
        return Err(RegistrationError::Invalid(format!(
            "the validity ends ({u}) before it begins ({})",
            app.valid_from
        )));
    }
    let existing: Vec<(i64, String, String, Option<String>)> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT id, status, valid_from, valid_until FROM hub_registrations \
             WHERE role = $1 AND tin = $2 AND status IN ('pending', 'approved', 'suspended')",
        )
        .bind(app.role.as_str())
        .bind(tin.as_str())
        .fetch_all(&mut *c)
        .await
        .map_err(StoreError::from)?
    });
    for (id, status, from, until) in existing {
        let from: NaiveDate = from.parse().unwrap_or(NaiveDate::MIN);
        let until: Option<NaiveDate> = until.and_then(|u| u.parse().ok());
        if overlaps(from, until, app.valid_from, app.valid_until) {
            return Err(RegistrationError::Overlap {
                tin: tin.to_string(),
                role: app.role.as_str(),
                existing: id,
                status,
            });
        }
    }
    let at = now.timestamp_millis();
    let id: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO hub_registrations (role, tin, name, country, valid_from, valid_until, \
             status, reason, source, message_id, applied_at, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', NULL, $7, $8, $9, NULL) RETURNING id",
        )
        .bind(app.role.as_str())
        .bind(tin.as_str())
        .bind(app.name.trim())
        .bind(country.as_str())
        .bind(app.valid_from.to_string())
        .bind(app.valid_until.map(|u| u.to_string()))
        .bind(source)
        .bind(message_id)
        .bind(at)
        .fetch_one(&mut *c)
        .await
        .map_err(StoreError::from)?
    });
    audit(tx, id, source, "apply", None, "pending", None, at).await?;
    one(tx, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("registration {id} vanished")).into())
}

/// A decision on a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pending → approved.
    Approve,
    /// Pending → refused.
    Refuse,
    /// Approved → suspended.
    Suspend,
    /// Suspended → approved.
    Reinstate,
    /// Approved or suspended → revoked.
    Revoke,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Refuse => "refuse",
            Action::Suspend => "suspend",
            Action::Reinstate => "reinstate",
            Action::Revoke => "revoke",
        }
    }
}

/// `POST /api/v1/registrations/{id}/decision`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// What.
    pub action: Action,
    /// Who: over the API, the administrator of the request's credential (`administrator:NAME`),
    /// never the body.
    #[serde(skip_deserializing, default)]
    pub actor: String,
    /// Why (required to refuse, suspend or revoke).
    #[serde(default)]
    pub reason: Option<String>,
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

fn decision_message(
    r: &Registration,
    code: RegistrationDecisionCode,
    now: DateTime<Utc>,
) -> Option<(CountryCode, Message)> {
    let country = r
        .source
        .strip_prefix("node:")
        .and_then(|c| CountryCode::parse(c).ok())?;
    let role = Register::parse(&r.role)?;
    Some((
        country,
        Message::CA004C(Box::new(CA004CType {
            message_sender: HUB_ADDRESS.to_owned(),
            message_recipient: format!("NTA.{country}"),
            preparation_date_and_time: now.naive_utc(),
            message_identification: format!("HUB-REG-{}-{}", r.id, now.timestamp_millis()),
            message_type: CatsAdminMessageTypes::CA004C,
            correlation_identifier: r.message_id.clone(),
            trader_decision: TraderDecisionType {
                role: role.code(),
                identification_number: r.tin.clone(),
                decision: code,
                decision_date_and_time: now.naive_utc(),
                reason: r.reason.clone(),
                validity_start_date: r.valid_from.parse().ok(),
                validity_end_date: r.valid_until.as_ref().and_then(|u| u.parse().ok()),
            },
        })),
    ))
}

/// The CA004C refusing an application that came by message and could not be recorded.
pub async fn refuse_message_in(
    tx: &mut HubTx<'_>,
    services: &HubServices,
    country: CountryCode,
    app: &Application,
    message_id: &str,
    why: &RegistrationError,
    now: DateTime<Utc>,
) -> Result<Owed, RefdataError> {
    let now = whole_seconds(now);
    let r = Registration {
        id: 0,
        role: app.role.as_str().to_owned(),
        tin: app.tin.clone(),
        name: app.name.clone(),
        country: app.country.clone(),
        valid_from: app.valid_from.to_string(),
        valid_until: app.valid_until.map(|u| u.to_string()),
        status: "refused".into(),
        reason: Some(why.to_string().chars().take(512).collect()),
        source: format!("node:{country}"),
        message_id: Some(message_id.to_owned()),
    };
    let (to, m) = decision_message(&r, RegistrationDecisionCode::Refused, now)
        .ok_or_else(|| RefdataError::BadRequest("no CA004C for this application".into()))?;
    let version = refdata::current(services).version();
    refdata::emit(
        tx,
        services,
        &m,
        to,
        version,
        Some(message_id.to_owned()),
        now,
    )
    .await
}

/// Carries out `decision` on registration `id` (see the module documentation).
pub async fn decide(
    services: &HubServices,
    id: i64,
    decision: &Decision,
) -> Result<Registration, RegistrationError> {
    if decision.actor.trim().is_empty() {
        return Err(RegistrationError::Invalid(
            "who decides (actor) is required".into(),
        ));
    }
    let reason = decision
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if matches!(
        decision.action,
        Action::Refuse | Action::Suspend | Action::Revoke
    ) && reason.is_none()
    {
        return Err(RegistrationError::Invalid(format!(
            "a reason is required to {}",
            decision.action.as_str()
        )));
    }
    let now = whole_seconds(Utc::now());
    let mut tx = services.store.begin().await?;
    let Some(r) = one(&mut tx, id).await? else {
        return Err(RegistrationError::NotFound(id));
    };
    let (allowed, new_status, standing, code) = match decision.action {
        Action::Approve => (
            r.status == "pending",
            "approved",
            Some(TraderStatus::Active),
            RegistrationDecisionCode::Approved,
        ),
        Action::Refuse => (
            r.status == "pending",
            "refused",
            None,
            RegistrationDecisionCode::Refused,
        ),
        Action::Suspend => (
            r.status == "approved",
            "suspended",
            Some(TraderStatus::Suspended),
            RegistrationDecisionCode::Suspended,
        ),
        Action::Reinstate => (
            r.status == "suspended",
            "approved",
            Some(TraderStatus::Active),
            RegistrationDecisionCode::Approved,
        ),
        Action::Revoke => (
            r.status == "approved" || r.status == "suspended",
            "revoked",
            Some(TraderStatus::Revoked),
            RegistrationDecisionCode::Revoked,
        ),
    };
    if !allowed {
        return Err(RegistrationError::State {
            action: decision.action.as_str(),
            status: r.status,
        });
    }
    let at = now.timestamp_millis();
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE hub_registrations SET status = $2, reason = $3, decided_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(new_status)
        .bind(reason)
        .bind(at)
        .execute(&mut *c)
        .await
        .map_err(StoreError::from)?;
    });
    audit(
        &mut tx,
        id,
        &decision.actor,
        decision.action.as_str(),
        Some(&r.status),
        new_status,
        reason,
        at,
    )
    .await?;
    let mut data = None;
    if let Some(status) = standing {
        let change = record_change(&r, status)?;
        let why = format!(
            "registration {id}: {} {} {}{}",
            decision.action.as_str(),
            r.role,
            r.tin,
            reason.map(|w| format!(": {w}")).unwrap_or_default()
        );
        let (_, d) =
            refdata::change_in(&mut tx, services, &decision.actor, &why, &change, now).await?;
        data = Some(d);
    }
    let updated = one(&mut tx, id)
        .await?
        .ok_or(RegistrationError::NotFound(id))?;
    if let Some((country, m)) = decision_message(&updated, code, now) {
        let version = data
            .as_ref()
            .map(|d| d.version())
            .unwrap_or_else(|| refdata::current(services).version());
        refdata::emit(
            &mut tx,
            services,
            &m,
            country,
            version,
            updated.message_id.clone(),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    if let Some(d) = data {
        refdata::committed(services, d).await?;
    } else {
        refdata::committed(services, (*refdata::current(services)).clone()).await?;
    }
    tracing::info!(id, action = decision.action.as_str(), actor = %decision.actor, "registration decided");
    Ok(updated)
}

fn record_change(r: &Registration, status: TraderStatus) -> Result<Change, RegistrationError> {
    let corrupt = |what: &str| RegistrationError::Invalid(format!("registration {}: {what}", r.id));
    let tin = Tin::parse(&r.tin).map_err(|_| corrupt("identification number"))?;
    let country = CountryCode::parse(&r.country).map_err(|_| corrupt("country"))?;
    let mut change = Change::default();
    match Register::parse(&r.role) {
        Some(Register::Insurer) => change.insurers.push(Insurer {
            tin,
            name: r.name.clone(),
            country,
            status,
        }),
        Some(role) => change.traders.push(Trader {
            role: if role == Register::Aeo {
                TraderRole::Aeo
            } else {
                TraderRole::AuthorisedTrader
            },
            tin,
            name: r.name.clone(),
            country,
            status,
            valid_from: r.valid_from.parse().map_err(|_| corrupt("validity"))?,
            valid_until: r.valid_until.as_ref().and_then(|u| u.parse().ok()),
        }),
        None => return Err(corrupt("register")),
    }
    Ok(change)
}

/// Every registration, newest first.
pub async fn list(services: &HubServices) -> Result<Vec<Registration>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM hub_registrations ORDER BY id DESC");
    let mut tx = services.store.begin().await?;
    let rows: Vec<Row> = on_tx!(&mut tx, |c| {
        sqlx::query_as(&sql).fetch_all(&mut *c).await?
    });
    tx.commit().await?;
    Ok(rows.into_iter().map(registration).collect())
}

/// The audit of registration `id`: (at RFC 3339, actor, action, old, new, reason).
pub async fn history(
    services: &HubServices,
    id: i64,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let mut tx = services.store.begin().await?;
    type AuditRow = (i64, String, String, Option<String>, String, Option<String>);
    let rows: Vec<AuditRow> = on_tx!(&mut tx, |c| {
        sqlx::query_as(
            "SELECT at, actor, action, old_status, new_status, reason \
                 FROM hub_registration_audit WHERE registration_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?
    });
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(at, actor, action, old, new, reason)| {
            serde_json::json!({
                "at": DateTime::<Utc>::from_timestamp_millis(at).map(|t| t.to_rfc3339()),
                "actor": actor, "action": action, "old_status": old,
                "new_status": new, "reason": reason,
            })
        })
        .collect())
}

fn error(e: &RegistrationError) -> Response {
    (
        e.status(),
        Json(serde_json::json!({ "code": e.code(), "error": e.to_string() })),
    )
        .into_response()
}

async fn list_handler(State(s): State<Arc<HubServices>>) -> Response {
    match list(&s).await {
        Ok(l) => Json(serde_json::json!({ "registrations": l })).into_response(),
        Err(e) => error(&e.into()),
    }
}

async fn apply_handler(
    State(s): State<Arc<HubServices>>,
    Extension(caller): Extension<crate::access::Caller>,
    body: Result<Json<Application>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let app = match body {
        Ok(Json(a)) => a,
        Err(e) => {
            return error(&RegistrationError::Invalid(format!(
                "the body is not an application: {e}"
            )));
        }
    };
    let result = async {
        let mut tx = s.store.begin().await?;
        let source = format!("api:{}", caller.actor());
        let r = apply_in(&mut tx, &s, &app, &source, None, Utc::now()).await?;
        tx.commit().await?;
        Ok::<_, RegistrationError>(r)
    }
    .await;
    match result {
        Ok(r) => (StatusCode::CREATED, Json(r)).into_response(),
        Err(e) => error(&e),
    }
}

async fn one_handler(State(s): State<Arc<HubServices>>, Path(id): Path<i64>) -> Response {
    let result = async {
        let mut tx = s.store.begin().await?;
        let r = one(&mut tx, id).await?;
        tx.commit().await?;
        let r = r.ok_or(RegistrationError::NotFound(id))?;
        let h = history(&s, id).await?;
        Ok::<_, RegistrationError>(serde_json::json!({ "registration": r, "history": h }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(&e),
    }
}

async fn decide_handler(
    State(s): State<Arc<HubServices>>,
    Extension(caller): Extension<crate::access::Caller>,
    Path(id): Path<i64>,
    body: Result<Json<Decision>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let d = match body {
        Ok(Json(mut d)) => {
            d.actor = caller.actor();
            d
        }
        Err(e) => {
            return error(&RegistrationError::Invalid(format!(
                "the body is not a decision: {e}"
            )));
        }
    };
    match decide(&s, id, &d).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(&e),
    }
}

/// `GET /api/v1/registrations`, `POST /api/v1/registrations` (an [`Application`]: 201, or 409
/// `registration.overlap`, 422 `registration.invalid` / `registration.unknown-country`),
/// `GET /api/v1/registrations/{id}` (with its audit), `POST /api/v1/registrations/{id}/decision`
/// (a [`Decision`]).
pub fn routes(services: Arc<HubServices>) -> Router {
    Router::new()
        .route(
            "/api/v1/registrations",
            get(list_handler).post(apply_handler),
        )
        .route("/api/v1/registrations/{id}", get(one_handler))
        .route("/api/v1/registrations/{id}/decision", post(decide_handler))
        .with_state(services)
}
