//! The hub's operations API (axum):
//!
//! - `GET /api/v1/movements?state=&country=&office=&from=&to=`: the registry, JSON;
//! - `GET /api/v1/movements/{mrn}`: one movement with its offices and message history, JSON
//!   (404 with `{"code":"registry.not-found"}` when unknown);
//! - `GET /healthz`: the process is alive;
//! - `GET /readyz`: the store answers (503 otherwise);
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]).
//!
//! Errors are JSON `{"code": "<stable code>", "error": "<message>"}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;
use crate::registry::{self, MovementQuery, QueryError};
use crate::store::HubStore;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The hub's database.
    pub store: HubStore,
    /// The counters.
    pub metrics: Arc<Metrics>,
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
    match s.store.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let size = crate::journal::size(&s.store).await.unwrap_or(-1);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(size),
    )
        .into_response()
}
