//! Who may use the hub's HTTP API: bearer-token credentials, their roles, revocation, and the
//! guard in front of every route.
//!
//! **Credentials.** `cats hub issue-credential --administrator NAME | --operator NAME |
//! --insurer TIN` makes a random 256-bit token, prints it once, and the hub keeps only its
//! SHA-256 (`hub_api_credentials`) with the role and the subject. A credential is named by its
//! id, the first 16 hex digits of that SHA-256: safe to show, list and log, useless to call the
//! API with. Revoking a credential ([`revoke`], [`revoke_all_for`]) marks the row; the token is
//! refused from the next request on, because every request looks its token up.
//!
//! **Roles** (docs/DESIGN.md): an *administrator* looks after users and reference data; an
//! *operator* looks after queues, nodes, dead letters, reconciliation, replay and repair; an
//! *insurer* sees its own contracts. What each route needs ([`policy`]):
//!
//! | routes | who |
//! | --- | --- |
//! | `/healthz`, `/readyz`, `/metrics` | anyone, no token |
//! | every other `GET` (movements, queues, reconciliation, dead letters, refs, registrations, guarantees) | operator or administrator |
//! | `POST /api/v1/dead-letters/{id}/replay\|discard` | operator or administrator |
//! | `POST /api/v1/registrations` (an application made on the applicant's behalf) | operator or administrator |
//! | `POST /api/v1/refs/changes`, `POST /api/v1/registrations/{id}/decision`, `/api/v1/credentials…`, any other write | administrator |
//! | `/api/v1/insurance-contracts…`, `/api/v1/insurer/…`, `/api/v1/liabilities/…`, `/api/v1/guarantee-notifications` | insurer or administrator (the insurer module then decides per route) |
//!
//! A route not named here needs a token too: a read is for operators and administrators, a
//! write for administrators, so a route added later is never open by mistake.
//!
//! The three open routes stay open on purpose: a load balancer, an orchestrator's probes and a
//! Prometheus scraper call them without credentials, and they reveal no movement, trader or
//! message (`/metrics` holds counts only).
//!
//! Answers: 401 `auth.missing-token`, `auth.unknown-token` or `auth.revoked-token` (with
//! `WWW-Authenticate: Bearer`), 403 `auth.forbidden`, as JSON `{"code", "error"}`. A request
//! that passes carries its [`Caller`] as a request extension; handlers record
//! [`Caller::actor`] as the audit "who".
//!
//! Administrator routes ([`routes`]):
//!
//! - `GET /api/v1/credentials`: every credential (id, role, subject, issued, revoked), never a
//!   token;
//! - `POST /api/v1/credentials/{id}/revoke`: revokes one (404 `credential.not-found`, 409
//!   `credential.revoked` if it was revoked already);
//! - `POST /api/v1/credentials/revoke-all`, body `{"principal": "operator:alice"}`: revokes every
//!   live credential of that principal; answers how many.

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{HubStore, StoreError, now_millis, on_pool};

/// What a credential lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Users and reference data; also everything an operator may do.
    Administrator,
    /// Queues, nodes, dead letters, reconciliation, replay and repair.
    Operator,
    /// An approved insurer: its own contracts.
    Insurer,
}

impl Role {
    /// The role as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Operator => "operator",
            Role::Insurer => "insurer",
        }
    }

    /// Parses `administrator`, `operator` or `insurer`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "administrator" => Some(Role::Administrator),
            "operator" => Some(Role::Operator),
            "insurer" => Some(Role::Insurer),
            _ => None,
        }
    }
}

/// The holder of the bearer token of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What the credential allows.
    pub role: Role,
    /// The administrator's or operator's name, the insurer's TIN.
    pub subject: String,
    /// The credential's id (see the module documentation).
    pub credential: String,
}

impl Caller {
    /// `role:subject`, as recorded in audit trails.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.subject)
    }
}

/// What goes wrong; each has a stable code and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No `Authorization: Bearer` header.
    #[error(
        "auth.missing-token: this route needs Authorization: Bearer <token> \
         (an administrator issues one with `cats hub issue-credential`)"
    )]
    MissingToken,
    /// A token the hub never issued.
    #[error("auth.unknown-token: the bearer token is not one this hub issued")]
    UnknownToken,
    /// A token whose credential was revoked.
    #[error("auth.revoked-token: credential {0} was revoked")]
    Revoked(String),
    /// The credential's role may not use this route.
    #[error("auth.forbidden: {0}")]
    Forbidden(String),
    /// No credential with that id.
    #[error("credential.not-found: no credential {0}")]
    NotFound(String),
    /// The credential was revoked before.
    #[error("credential.revoked: credential {0} was revoked already")]
    AlreadyRevoked(String),
    /// The request cannot be read.
    #[error("credential.bad-request: {0}")]
    BadRequest(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccessError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AccessError::MissingToken => "auth.missing-token",
            AccessError::UnknownToken => "auth.unknown-token",
            AccessError::Revoked(_) => "auth.revoked-token",
            AccessError::Forbidden(_) => "auth.forbidden",
            AccessError::NotFound(_) => "credential.not-found",
            AccessError::AlreadyRevoked(_) => "credential.revoked",
            AccessError::BadRequest(_) => "credential.bad-request",
            AccessError::Store(e) => e.code(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AccessError::MissingToken | AccessError::UnknownToken | AccessError::Revoked(_) => {
                StatusCode::UNAUTHORIZED
            }
            AccessError::Forbidden(_) => StatusCode::FORBIDDEN,
            AccessError::NotFound(_) => StatusCode::NOT_FOUND,
            AccessError::AlreadyRevoked(_) => StatusCode::CONFLICT,
            AccessError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AccessError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<sqlx::Error> for AccessError {
    fn from(e: sqlx::Error) -> AccessError {
        AccessError::Store(StoreError::from(e))
    }
}

impl IntoResponse for AccessError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut r = (
            status,
            Json(serde_json::json!({ "code": self.code(), "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cats-hub\""),
            );
        }
        r
    }
}

/// The SHA-256 of a token, hex: what the hub stores.
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Length of a credential id in hex digits.
const ID_LEN: usize = 16;

fn id_of(hash: &str) -> String {
    hash.get(..ID_LEN).unwrap_or(hash).to_owned()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// A credential just made: the token is shown this once.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The credential's id.
    pub id: String,
    /// The bearer token.
    pub token: String,
}

/// Makes a token for `role` and `subject` and records its SHA-256. The caller checks that the
/// subject may hold the role (an insurer must be approved: [`crate::insurer::issue_credential`]).
pub async fn issue(store: &HubStore, role: Role, subject: &str) -> Result<Issued, AccessError> {
    let subject = subject.trim();
    if subject.is_empty() || subject.len() > 200 || subject.chars().any(char::is_control) {
        return Err(AccessError::BadRequest(format!(
            "{subject:?}: a {} name of 1 to 200 printable characters",
            role.as_str()
        )));
    }
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| corrupt("token", "no randomness"))?;
    let token = hex::encode(b);
    let hash = token_hash(&token);
    on_pool!(store, |p| {
        sqlx::query(
            "INSERT INTO hub_api_credentials (token_sha256, role, subject, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&hash)
        .bind(role.as_str())
        .bind(subject)
        .bind(now_millis())
        .execute(p)
        .await?;
    });
    Ok(Issued {
        id: id_of(&hash),
        token,
    })
}

/// The holder of a request's bearer token; refused when missing, unknown or revoked.
pub async fn authenticate(store: &HubStore, headers: &HeaderMap) -> Result<Caller, AccessError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AccessError::MissingToken)?;
    let hash = token_hash(token);
    let row: Option<(String, String, Option<i64>)> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT role, subject, revoked_at FROM hub_api_credentials WHERE token_sha256 = $1",
        )
        .bind(&hash)
        .fetch_optional(p)
        .await?
    });
    let (role, subject, revoked) = row.ok_or(AccessError::UnknownToken)?;
    if revoked.is_some() {
        return Err(AccessError::Revoked(id_of(&hash)));
    }
    let role = Role::parse(&role).ok_or_else(|| corrupt("credential role", &role))?;
    Ok(Caller {
        role,
        subject,
        credential: id_of(&hash),
    })
}

/// One credential as listed: never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialView {
    /// The id (first 16 hex digits of the token's SHA-256).
    pub id: String,
    /// `administrator`, `operator` or `insurer`.
    pub role: String,
    /// Who holds it.
    pub subject: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

type CredentialRow = (String, String, String, i64, Option<i64>, Option<String>);

fn view(row: CredentialRow) -> CredentialView {
    let (hash, role, subject, issued, revoked, by) = row;
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    CredentialView {
        id: id_of(&hash),
        role,
        subject,
        issued_at: at(issued),
        revoked_at: revoked.map(at),
        revoked_by: by,
    }
}

/// Every credential, oldest first.
pub async fn list(store: &HubStore) -> Result<Vec<CredentialView>, AccessError> {
    let rows: Vec<CredentialRow> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT token_sha256, role, subject, created_at, revoked_at, revoked_by \
             FROM hub_api_credentials ORDER BY created_at, token_sha256",
        )
        .fetch_all(p)
        .await?
    });
    Ok(rows.into_iter().map(view).collect())
}

fn check_id(id: &str) -> Result<(), AccessError> {
    if id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(AccessError::BadRequest(format!(
            "{id:?}: a credential id is {ID_LEN} lowercase hex digits (see `cats hub credentials`)"
        )))
    }
}

/// Revokes credential `id` on behalf of `by`; effective from the next request.
pub async fn revoke(store: &HubStore, id: &str, by: &str) -> Result<CredentialView, AccessError> {
    check_id(id)?;
    let pattern = format!("{id}%");
    let done = on_pool!(store, |p| {
        sqlx::query(
            "UPDATE hub_api_credentials SET revoked_at = $1, revoked_by = $2 \
             WHERE token_sha256 LIKE $3 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(by)
        .bind(&pattern)
        .execute(p)
        .await?
        .rows_affected()
    });
    let row: Option<CredentialRow> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT token_sha256, role, subject, created_at, revoked_at, revoked_by \
             FROM hub_api_credentials WHERE token_sha256 LIKE $1",
        )
        .bind(&pattern)
        .fetch_optional(p)
        .await?
    });
    match (row, done) {
        (None, _) => Err(AccessError::NotFound(id.to_owned())),
        (Some(_), 0) => Err(AccessError::AlreadyRevoked(id.to_owned())),
        (Some(row), _) => Ok(view(row)),
    }
}

/// Parses `role:subject` (`operator:alice`, `insurer:KZ990140000123`).
pub fn parse_principal(s: &str) -> Result<(Role, String), AccessError> {
    let bad = || {
        AccessError::BadRequest(format!(
            "{s:?}: expected ROLE:NAME, ROLE one of administrator, operator, insurer"
        ))
    };
    let (role, subject) = s.split_once(':').ok_or_else(bad)?;
    let role = Role::parse(role).ok_or_else(bad)?;
    if subject.trim().is_empty() {
        return Err(bad());
    }
    Ok((role, subject.trim().to_owned()))
}

/// Revokes every live credential of `role` and `subject` on behalf of `by`; how many.
pub async fn revoke_all_for(
    store: &HubStore,
    role: Role,
    subject: &str,
    by: &str,
) -> Result<u64, AccessError> {
    let n = on_pool!(store, |p| {
        sqlx::query(
            "UPDATE hub_api_credentials SET revoked_at = $1, revoked_by = $2 \
             WHERE role = $3 AND subject = $4 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(by)
        .bind(role.as_str())
        .bind(subject)
        .execute(p)
        .await?
        .rows_affected()
    });
    Ok(n)
}

/// Who a route admits (see the table in the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// No token needed.
    Open,
    /// Operators and administrators.
    Operations,
    /// Administrators only.
    Administration,
    /// Insurers and administrators.
    Insurers,
}

impl Policy {
    /// Whether `role` may use a route of this policy.
    pub fn admits(self, role: Role) -> bool {
        match self {
            Policy::Open => true,
            Policy::Operations => matches!(role, Role::Operator | Role::Administrator),
            Policy::Administration => role == Role::Administrator,
            Policy::Insurers => matches!(role, Role::Insurer | Role::Administrator),
        }
    }

    fn who(self) -> &'static str {
        match self {
            Policy::Open => "no credential",
            Policy::Operations => "an operator or administrator",
            Policy::Administration => "an administrator",
            Policy::Insurers => "an insurer or administrator",
        }
    }
}

/// The policy of `method` on `path`.
pub fn policy(method: &Method, path: &str) -> Policy {
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return Policy::Open;
    }
    let read = matches!(*method, Method::GET | Method::HEAD);
    let segments: Vec<&str> = path
        .strip_prefix("/api/v1/")
        .unwrap_or("")
        .split('/')
        .collect();
    match segments.as_slice() {
        ["insurance-contracts", ..]
        | ["insurer", ..]
        | ["liabilities", ..]
        | ["guarantee-notifications", ..] => Policy::Insurers,
        ["credentials", ..] => Policy::Administration,
        _ if read => Policy::Operations,
        ["dead-letters", _, "replay" | "discard"] if *method == Method::POST => Policy::Operations,
        ["registrations"] if *method == Method::POST => Policy::Operations,
        _ => Policy::Administration,
    }
}

/// The middleware in front of the whole router: authenticates, checks the role against
/// [`policy`], and hands the [`Caller`] on as a request extension.
pub async fn guard(State(store): State<HubStore>, mut req: Request, next: Next) -> Response {
    let policy = policy(req.method(), req.uri().path());
    if policy == Policy::Open {
        return next.run(req).await;
    }
    let caller = match authenticate(&store, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !policy.admits(caller.role) {
        return AccessError::Forbidden(format!(
            "{} {} is for {}; credential {} is {}",
            req.method(),
            req.uri().path(),
            policy.who(),
            caller.credential,
            caller.actor()
        ))
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn list_handler(State(store): State<HubStore>) -> Result<Response, AccessError> {
    let list = list(&store).await?;
    Ok(Json(serde_json::json!({ "credentials": list })).into_response())
}

async fn revoke_handler(
    State(store): State<HubStore>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, AccessError> {
    let v = revoke(&store, &id, &caller.actor()).await?;
    tracing::info!(credential = %id, by = %caller.actor(), "credential revoked");
    Ok(Json(v).into_response())
}

/// The body of `POST /api/v1/credentials/revoke-all`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeAll {
    principal: String,
}

async fn revoke_all_handler(
    State(store): State<HubStore>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<RevokeAll>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, AccessError> {
    let Json(b) = body.map_err(|e| {
        AccessError::BadRequest(format!(
            "expected {{\"principal\": \"ROLE:NAME\"}}: {}",
            e.body_text()
        ))
    })?;
    let (role, subject) = parse_principal(&b.principal)?;
    let n = revoke_all_for(&store, role, &subject, &caller.actor()).await?;
    tracing::info!(principal = %b.principal, revoked = n, by = %caller.actor(), "credentials revoked");
    Ok(Json(serde_json::json!({ "principal": b.principal, "revoked": n })).into_response())
}

/// The administrator routes of the module documentation (behind [`guard`]).
pub fn routes<S: Clone + Send + Sync + 'static>(store: HubStore) -> Router<S> {
    Router::new()
        .route("/api/v1/credentials", get(list_handler))
        .route("/api/v1/credentials/{id}/revoke", post(revoke_handler))
        .route("/api/v1/credentials/revoke-all", post(revoke_all_handler))
        .with_state(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_group_has_its_policy() {
        let p = |m: Method, path: &str| policy(&m, path);
        for open in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(p(Method::GET, open), Policy::Open, "{open}");
        }
        for read in [
            "/api/v1/movements",
            "/api/v1/movements/25KZ0001",
            "/api/v1/queues",
            "/api/v1/reconciliation",
            "/api/v1/dead-letters",
            "/api/v1/dead-letters/7",
            "/api/v1/refs",
            "/api/v1/refs/changes",
            "/api/v1/registrations",
            "/api/v1/registrations/3",
            "/api/v1/guarantees/25KZ000000000001",
            "/api/v1/something-added-later",
            "/not-api",
        ] {
            assert_eq!(p(Method::GET, read), Policy::Operations, "{read}");
        }
        assert_eq!(
            p(Method::POST, "/api/v1/dead-letters/7/replay"),
            Policy::Operations
        );
        assert_eq!(
            p(Method::POST, "/api/v1/dead-letters/7/discard"),
            Policy::Operations
        );
        assert_eq!(p(Method::POST, "/api/v1/registrations"), Policy::Operations);
        for admin in [
            "/api/v1/refs/changes",
            "/api/v1/registrations/3/decision",
            "/api/v1/credentials/0123456789abcdef/revoke",
            "/api/v1/something-added-later",
        ] {
            assert_eq!(p(Method::POST, admin), Policy::Administration, "{admin}");
        }
        assert_eq!(
            p(Method::GET, "/api/v1/credentials"),
            Policy::Administration
        );
        for insurer in [
            "/api/v1/insurer/contracts",
            "/api/v1/insurance-contracts/submissions",
            "/api/v1/guarantee-notifications",
        ] {
            assert_eq!(p(Method::GET, insurer), Policy::Insurers, "{insurer}");
        }
        assert_eq!(
            p(Method::POST, "/api/v1/liabilities/1/pay"),
            Policy::Insurers
        );
        assert!(!Policy::Operations.admits(Role::Insurer));
        assert!(!Policy::Administration.admits(Role::Operator));
        assert!(!Policy::Insurers.admits(Role::Operator));
        assert!(Policy::Operations.admits(Role::Administrator));
    }

    #[test]
    fn principals_and_ids() {
        assert_eq!(
            parse_principal("operator:alice").expect("parses"),
            (Role::Operator, "alice".to_owned())
        );
        for bad in ["alice", "root:alice", "operator:", ":x"] {
            assert!(parse_principal(bad).is_err(), "{bad}");
        }
        assert!(check_id("0123456789abcdef").is_ok());
        for bad in [
            "0123",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            "%%%%%%%%%%%%%%%%",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
