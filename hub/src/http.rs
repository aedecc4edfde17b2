//! The hub's operations API (axum):
//!
//! - `GET /api/v1/movements?state=&country=&office=&from=&to=`: the registry, JSON;
//! - `GET /api/v1/movements/{mrn}`: one movement with its offices and message history, JSON
//!   (404 with `{"code":"registry.not-found"}` when unknown);
//! - `GET /healthz`: the process is alive;
//! - `GET /readyz`: the store answers and the transport is up (direct: the listener accepts;
//!   AMQP: the connection is open); 503 with the failing part's code otherwise;
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]), queue gauges sampled at scrape time;
//! - `GET /api/v1/queues`: queues and nodes ([`crate::operations::QueuesReport`]);
//! - `GET /api/v1/dead-letters?state=dead|replayed|discarded|all&limit=N`: the register;
//! - `GET /api/v1/dead-letters/{id}`: one letter with its reason, envelope, bytes and audit;
//! - `POST /api/v1/dead-letters/{id}/replay` and `.../discard`, body `{"reason": "why"}`
//!   (required for a discard): settle it, with an audit entry ([`crate::dead_letters`]) naming
//!   the caller's credential (`operator:NAME` or `administrator:NAME`).
//!
//! Every route but `/healthz`, `/readyz` and `/metrics` needs a bearer token; the guard and the
//! roles are in [`crate::access`].
//!
//! Errors are JSON `{"code": "<stable code>", "error": "<message>"}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::access::Caller;
use crate::client::Settlement;
use crate::dead_letters::DeadLetterError;
use crate::metrics::Metrics;
use crate::operations::Operations;
use crate::registry::{self, MovementQuery, QueryError};
use crate::store::HubStore;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The hub's database.
    pub store: HubStore,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// Queues, nodes, dead letters and the transport.
    pub operations: Arc<Operations>,
}

/// The router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/movements", get(movements))
        .route("/api/v1/movements/{mrn}", get(movement))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::guarantee::routes(state.store.clone()))
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/reconciliation", get(reconciliation))
        .route("/api/v1/dead-letters", get(dead_letters))
        .route("/api/v1/dead-letters/{id}", get(dead_letter))
        .route("/api/v1/dead-letters/{id}/replay", post(replay))
        .route("/api/v1/dead-letters/{id}/discard", post(discard))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "error": message })),
    )
        .into_response()
}

fn query_error(e: QueryError) -> Response {
    let status = match e {
        QueryError::BadFilter(_) => StatusCode::BAD_REQUEST,
        QueryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.code(), e.to_string())
}

async fn movements(
    State(s): State<ApiState>,
    q: Result<Query<MovementQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "registry.bad-filter",
            "unknown or malformed filter (state, country, office, from, to)".into(),
        );
    };
    match registry::movements(&s.store, &q).await {
        Ok(list) => Json(serde_json::json!({ "movements": list })).into_response(),
        Err(e) => query_error(e),
    }
}

async fn movement(State(s): State<ApiState>, Path(mrn): Path<String>) -> Response {
    match registry::movement(&s.store, &mrn).await {
        Ok(Some(m)) => Json(m).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "registry.not-found",
            format!("no movement {mrn}"),
        ),
        Err(e) => query_error(e),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if let Err(e) = s.store.ping().await {
        return error(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string());
    }
    match s.operations.transport().ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(why) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "hub.transport-down",
            format!("{} transport: {why}", s.operations.transport().kind()),
        ),
    }
}

/// How long a request waits for a queue sample (a broker that does not answer must not hang
/// the API).
const SAMPLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn sample(s: &ApiState) -> Result<crate::operations::QueuesReport, (&'static str, String)> {
    match tokio::time::timeout(SAMPLE_TIMEOUT, s.operations.sample()).await {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => Err((e.code(), e.to_string())),
        Err(_) => Err((
            "operations.timeout",
            format!("no queue sample within {} s", SAMPLE_TIMEOUT.as_secs()),
        )),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    if let Err((code, e)) = sample(&s).await {
        // The gauges keep the last good sample.
        tracing::warn!(code, error = %e, "queue sample for /metrics failed");
    }
    let size = crate::journal::size(&s.store).await.unwrap_or(-1);
    let mut body = s.metrics.render(size);
    match crate::reconcile::report(&s.store).await {
        Ok(nodes) => body.push_str(&crate::reconcile::render(&nodes)),
        Err(e) => tracing::warn!(code = e.code(), error = %e, "reconciliation totals unavailable"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn reconciliation(State(s): State<ApiState>) -> Response {
    match crate::reconcile::report(&s.store).await {
        Ok(nodes) => Json(serde_json::json!({ "nodes": nodes })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

async fn queues(State(s): State<ApiState>) -> Response {
    match sample(&s).await {
        Ok(report) => Json(report).into_response(),
        Err((code, e)) => error(StatusCode::SERVICE_UNAVAILABLE, code, e),
    }
}

fn dead_letter_error(e: DeadLetterError) -> Response {
    let status = match &e {
        DeadLetterError::NotFound(_) => StatusCode::NOT_FOUND,
        DeadLetterError::Settled { .. } => StatusCode::CONFLICT,
        DeadLetterError::BadRequest(_) => StatusCode::BAD_REQUEST,
        DeadLetterError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        DeadLetterError::Replay(_) => StatusCode::BAD_GATEWAY,
    };
    error(status, e.code(), e.to_string())
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, "dead-letters.bad-request", message)
}

/// `?state=&limit=` of the dead-letter list.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    #[serde(default = "dead_state")]
    state: String,
    #[serde(default = "dead_limit")]
    limit: i64,
}

fn dead_state() -> String {
    "dead".into()
}

fn dead_limit() -> i64 {
    1000
}

async fn dead_letters(
    State(s): State<ApiState>,
    q: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad_request("unknown or malformed parameter (state, limit)".into());
    };
    if !(1..=10_000).contains(&q.limit) {
        return bad_request(format!("limit {}: from 1 to 10000", q.limit));
    }
    match s.operations.dead_letters().list(&q.state, q.limit).await {
        Ok(list) => Json(serde_json::json!({ "dead_letters": list })).into_response(),
        Err(e) => dead_letter_error(e),
    }
}

fn letter_id(id: &str) -> Result<i64, String> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("dead letter id {id:?}: expected a positive number"))
}

async fn dead_letter(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match letter_id(&id) {
        Ok(id) => id,
        Err(why) => return bad_request(why),
    };
    match s.operations.dead_letters().show(id).await {
        Ok(d) => Json(d).into_response(),
        Err(e) => dead_letter_error(e),
    }
}

fn settlement(
    body: Result<Json<Settlement>, axum::extract::rejection::JsonRejection>,
) -> Result<Settlement, String> {
    body.map(|Json(b)| b)
        .map_err(|e| format!("expected a JSON body {{\"reason\": \"why\"}}: {e}"))
}

async fn replay(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<Settlement>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let (id, body) = match (letter_id(&id), settlement(body)) {
        (Ok(id), Ok(body)) => (id, body),
        (Err(why), _) | (_, Err(why)) => return bad_request(why),
    };
    match s
        .operations
        .dead_letters()
        .replay(id, &caller.actor(), &body.reason)
        .await
    {
        Ok(done) => Json(done).into_response(),
        Err(e) => dead_letter_error(e),
    }
}

async fn discard(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<Settlement>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let (id, body) = match (letter_id(&id), settlement(body)) {
        (Ok(id), Ok(body)) => (id, body),
        (Err(why), _) | (_, Err(why)) => return bad_request(why),
    };
    match s
        .operations
        .dead_letters()
        .discard(id, &caller.actor(), &body.reason)
        .await
    {
        Ok(done) => Json(done).into_response(),
        Err(e) => dead_letter_error(e),
    }
}
