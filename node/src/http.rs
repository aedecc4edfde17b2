//! The national API (`/api/v1/...`, contract in `/work/briefs/node-api.md` and the OpenAPI
//! document served at `/api/v1/openapi.json`), plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Served by axum over HTTPS: [`TlsListener`] does the rustls handshakes in tasks of their own
//! (a slow client never holds up the others) and hands finished connections to `axum::serve`,
//! which keeps its graceful shutdown. Bearer tokens are configured by SHA-256; a token's role
//! (`national-system` or `officer`) decides what it may call, its name is "who" for officers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use cats_transport::shutdown::Shutdown;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::engine::{ActionError, ActionRequest, Answer, Engine};
use crate::store::{self, ListFilter, Lookup};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// A national system: sends messages, reads the stream and movements.
    NationalSystem,
    /// A customs officer: actions, reads.
    Officer,
}

/// A configured token (its SHA-256, never the token itself).
#[derive(Debug, Clone)]
pub struct Token {
    /// Who (recorded with officer actions).
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// What it may do.
    pub role: TokenRole,
}

/// Whether the outbound link to the hub is up (for `/readyz`).
pub type LinkUp = Arc<dyn Fn() -> bool + Send + Sync>;

/// The API's state.
#[derive(Clone)]
pub struct ApiState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The tokens.
    pub tokens: Arc<Vec<Token>>,
    /// Whether the transport is connected.
    pub link_up: LinkUp,
    /// Stops SSE streams on shutdown.
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Every route of the router, as `(method, path)`: checked against the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/messages"),
    ("get", "/api/v1/messages"),
    ("get", "/api/v1/messages/stream"),
    ("get", "/api/v1/movements"),
    ("get", "/api/v1/movements/{mrn}"),
    ("get", "/api/v1/movements/{mrn}/messages"),
    ("get", "/api/v1/declarations/{lrn}"),
    ("post", "/api/v1/actions"),
    ("get", "/api/v1/guarantees/{grn}/balance"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/reconciliation"),
    ("post", "/api/v1/reconciliation"),
    ("post", "/api/v1/movements/{mrn}/status-requests"),
    ("get", "/api/v1/status-requests/{id}"),
    ("post", "/api/v1/refdata/resync"),
];

/// The router; `max_bytes` bounds message bodies (413 above it).
pub fn router(state: ApiState, max_bytes: usize) -> Router {
    Router::new()
        .route("/api/v1/messages", post(post_message).get(pull))
        .route("/api/v1/messages/stream", get(stream))
        .route("/api/v1/movements", get(list_movements))
        .route("/api/v1/movements/{mrn}", get(movement_by_mrn))
        .route(
            "/api/v1/movements/{mrn}/messages",
            get(national_messages_of),
        )
        .route("/api/v1/declarations/{lrn}", get(declaration_by_lrn))
        .route("/api/v1/actions", post(action))
        .route("/api/v1/guarantees/{grn}/balance", get(guarantee_balance))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/reconciliation",
            get(reconciliation_runs).post(reconcile_now),
        )
        .route(
            "/api/v1/movements/{mrn}/status-requests",
            post(status_request_new),
        )
        .route("/api/v1/status-requests/{id}", get(status_request_by_id))
        .route("/api/v1/refdata/resync", post(refdata_resync))
        .layer(DefaultBodyLimit::max(max_bytes))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "API request failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

/// A refusal before the handler's work (authentication).
#[derive(Debug)]
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

fn authorise(
    state: &ApiState,
    headers: &HeaderMap,
    need: Option<TokenRole>,
) -> Result<Token, ApiError> {
    let unauthorised = |m: &str| ApiError(StatusCode::UNAUTHORIZED, "unauthorized", m.to_owned());
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorised("missing bearer token"));
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return Err(unauthorised("expected Authorization: Bearer <token>"));
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes());
    let found = state
        .tokens
        .iter()
        .find(|t| t.sha256.as_slice() == digest.as_ref());
    let Some(found) = found else {
        return Err(unauthorised("unknown token"));
    };
    if let Some(role) = need
        && found.role != role
    {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this call needs a {role:?} token"),
        ));
    }
    Ok(found.clone())
}

fn xml_response(status: StatusCode, message_type: &str, xml: String) -> Response {
    let mut r = (status, xml).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(message_type) {
        r.headers_mut().insert("x-cats-message-type", v);
    }
    r
}

async fn post_message(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorise(&state, &headers, Some(TokenRole::NationalSystem)) {
        return r.into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime != "application/xml" && mime != "text/xml" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("expected application/xml, got {content_type:?}"),
        );
    }
    let submission = match state.engine.submit(&body).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let mut r = match submission.answer {
        Answer::Reply { message_type, xml } => xml_response(StatusCode::OK, &message_type, xml),
        Answer::Accepted => StatusCode::ACCEPTED.into_response(),
        // A node whose reference data is behind the hub's refuses for a moment: 503.
        Answer::Rejected {
            message_type,
            xml,
            code,
        } if code == "refdata.behind" => {
            let mut r = xml_response(StatusCode::SERVICE_UNAVAILABLE, &message_type, xml);
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("5"),
            );
            r
        }
        Answer::Rejected {
            message_type, xml, ..
        } => xml_response(StatusCode::UNPROCESSABLE_ENTITY, &message_type, xml),
        Answer::Invalid { xml, .. } => xml_response(StatusCode::BAD_REQUEST, "CC917C", xml),
    };
    for (name, value) in [
        ("x-cats-mrn", submission.mrn),
        ("x-cats-lrn", submission.lrn),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

#[derive(Debug, Deserialize)]
struct PullQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `?requester=TIN` of the balance query.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceQuery {
    requester: String,
}

/// `GET /api/v1/guarantees/{grn}/balance?requester=TIN`: the CC037C from the hub's ledger
/// (`crate::engine` forwards a CC034C and waits up to 10 s); 400 with the NACK when the query
/// is refused, by the node or by the hub (the CC917C, at once; the refusal's label, such as
/// `guarantee.unknown-grn`, in `x-cats-error-code`), 504 `guarantee.no-answer` when the hub
/// does not answer in time.
async fn guarantee_balance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(grn): Path<String>,
    q: Result<Query<BalanceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "expected ?requester=TIN",
        );
    };
    let xml = |body: String| {
        (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/xml")],
            body,
        )
            .into_response()
    };
    match state
        .engine
        .balance_of(&grn, &q.requester, std::time::Duration::from_secs(10))
        .await
    {
        Ok(Ok(Some(answer))) => xml(answer),
        Ok(Ok(None)) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "guarantee.no-answer",
            "the hub did not answer within 10 s",
        ),
        Ok(Err(
            Answer::Invalid { xml: nack, code }
            | Answer::Rejected {
                xml: nack, code, ..
            },
        )) => (
            StatusCode::BAD_REQUEST,
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                ),
                (
                    axum::http::HeaderName::from_static("x-cats-error-code"),
                    HeaderValue::from_str(&code)
                        .unwrap_or_else(|_| HeaderValue::from_static("refused")),
                ),
            ],
            nack,
        )
            .into_response(),
        Ok(Err(other)) => internal(format!("unexpected answer {other:?}")),
        Err(e) => internal(e),
    }
}

async fn pull(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<PullQuery>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let after = q.after.unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = async {
        let mut tx = state.engine.store().begin().await?;
        let items = store::stream_after(&mut tx, after, limit).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(items)
    }
    .await;
    match items {
        Ok(items) => {
            let next = items.last().map_or(after, |i| i.cursor);
            Json(json!({"messages": items, "next": next})).into_response()
        }
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    after: Option<i64>,
}

async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = last_event.or(q.after).unwrap_or(0).max(0);
    struct S {
        state: ApiState,
        cursor: i64,
        buffer: std::collections::VecDeque<crate::store::StreamItem>,
        head: tokio::sync::watch::Receiver<i64>,
    }
    let initial = S {
        head: state.engine.subscribe_stream(),
        state,
        cursor: after,
        buffer: Default::default(),
    };
    let events = futures::stream::unfold(initial, |mut s| async move {
        loop {
            if let Some(item) = s.buffer.pop_front() {
                s.cursor = item.cursor;
                let data = serde_json::to_string(&item).unwrap_or_default();
                let event = SseEvent::default()
                    .id(item.cursor.to_string())
                    .event(item.message_type.clone())
                    .data(data);
                return Some((Ok::<_, Infallible>(event), s));
            }
            let read = async {
                let mut tx = s.state.engine.store().begin().await?;
                let items = store::stream_after(&mut tx, s.cursor, 100).await?;
                tx.commit().await?;
                Ok::<_, crate::store::StoreError>(items)
            }
            .await;
            match read {
                Ok(items) if !items.is_empty() => s.buffer.extend(items),
                Ok(_) => {
                    let mut shutdown = s.state.shutdown.clone();
                    tokio::select! {
                        _ = shutdown.wait() => return None,
                        changed = s.head.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SSE: stream read failed");
                    return None;
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn movement_by_mrn(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(mrn): Path<String>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    one_movement(&state, Lookup::Mrn(&mrn), "unknown-mrn", &mrn).await
}

/// The national system's messages for one movement, as the node received them (what
/// `cats conformance record` replays).
async fn national_messages_of(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(mrn): Path<String>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let found = async {
        let mut tx = state.engine.store().begin().await?;
        let Some(m) = store::movement(&mut tx, Lookup::Mrn(&mrn)).await? else {
            return Ok(None);
        };
        let messages = store::national_messages(&mut tx, m.id).await?;
        tx.commit().await?;
        Ok::<_, crate::engine::EngineError>(Some(messages))
    }
    .await;
    match found {
        Ok(Some(messages)) => {
            Json(serde_json::json!({ "mrn": mrn, "messages": messages })).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-mrn",
            format!("no movement {mrn} at this node"),
        ),
        Err(e) => internal(e),
    }
}

async fn declaration_by_lrn(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(lrn): Path<String>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    one_movement(&state, Lookup::Lrn(&lrn), "unknown-lrn", &lrn).await
}

async fn one_movement(state: &ApiState, lookup: Lookup<'_>, code: &str, what: &str) -> Response {
    let found = async {
        let mut tx = state.engine.store().begin().await?;
        let Some(m) = store::movement(&mut tx, lookup).await? else {
            return Ok(None);
        };
        let v = state.engine.movement_json(&mut tx, &m, true).await?;
        tx.commit().await?;
        Ok::<_, crate::engine::EngineError>(Some(v))
    }
    .await;
    match found {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            code,
            format!("no movement {what} at this node"),
        ),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    office: Option<String>,
    role: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
}

async fn list_movements(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        match v {
            None => Ok(None),
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| Some(t.timestamp_millis()))
                .map_err(|e| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        "bad-request",
                        format!("{name} {t:?}: {e}"),
                    )
                }),
        }
    };
    let from = match time("from", &q.from) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let to = match time("to", &q.to) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    if let Some(role) = &q.role
        && store::parse_role(role).is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("role {role:?}: expected departure, exit, transit or destination"),
        );
    }
    let filter = ListFilter {
        state: q.state,
        office: q.office,
        role: q.role,
        from,
        to,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let listed = async {
        let mut tx = state.engine.store().begin().await?;
        let rows = store::list(&mut tx, &filter).await?;
        let mut out = Vec::with_capacity(rows.len());
        for m in &rows {
            out.push(state.engine.movement_json(&mut tx, m, false).await?);
        }
        tx.commit().await?;
        Ok::<_, crate::engine::EngineError>(out)
    }
    .await;
    match listed {
        Ok(list) => Json(json!({"movements": list})).into_response(),
        Err(e) => internal(e),
    }
}

async fn action(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let token = match authorise(&state, &headers, Some(TokenRole::Officer)) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let req: ActionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-request", e.to_string()),
    };
    match state.engine.act(&req, &token.name).await {
        Ok(done) => {
            let movement = async {
                let mut tx = state.engine.store().begin().await?;
                let v = state
                    .engine
                    .movement_json(&mut tx, &done.movement, true)
                    .await?;
                tx.commit().await?;
                Ok::<_, crate::engine::EngineError>(v)
            }
            .await;
            match movement {
                Ok(v) => Json(json!({"movement": v, "sent": done.sent})).into_response(),
                Err(e) => internal(e),
            }
        }
        Err(ActionError::BadRequest(m)) => error(StatusCode::BAD_REQUEST, "bad-request", m),
        Err(ActionError::UnknownMovement(m)) => error(
            StatusCode::NOT_FOUND,
            "90",
            format!("no movement {m} at this node"),
        ),
        Err(ActionError::Refused(r)) => {
            error(StatusCode::CONFLICT, &r.code.code().to_string(), r.reason)
        }
        Err(ActionError::Engine(e)) => internal(e),
    }
}

async fn openapi() -> Response {
    let mut r = OPENAPI.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let store = async {
        let mut tx = state.engine.store().begin().await?;
        store::stream_head(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(())
    }
    .await;
    let link = (state.link_up)();
    let ok = store.is_ok() && link;
    let body = json!({
        "store": if store.is_ok() { "ok" } else { "down" },
        "transport": if link { "connected" } else { "disconnected" },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let gauges = async {
        let depth = state.engine.outbox().pending_count().await?;
        let mut tx = state.engine.store().begin().await?;
        let head = store::stream_head(&mut tx).await.map_err(|e| match e {
            crate::store::StoreError::Transport(t) => t,
            other => cats_transport::store::StoreError::Database(sqlx::Error::Protocol(
                other.to_string(),
            )),
        })?;
        tx.commit().await?;
        Ok::<_, cats_transport::store::StoreError>((depth, head))
    }
    .await;
    match gauges {
        Ok((depth, head)) => {
            let mut text = state.engine.metrics().render(depth, head);
            let gauges = async {
                let mut tx = state.engine.store().begin().await?;
                let g = crate::reconcile::render_gauges(&mut tx).await?;
                tx.commit().await?;
                Ok::<_, crate::store::StoreError>(g)
            }
            .await;
            match gauges {
                Ok(g) => text.push_str(&g),
                Err(e) => tracing::warn!(code = e.code(), error = %e, "reconciliation gauge"),
            }
            let mut r = text.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        Err(e) => internal(e),
    }
}

async fn reconciliation_runs(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let runs = async {
        let mut tx = state.engine.store().begin().await?;
        let runs = crate::reconcile::runs(&mut tx, 50).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(runs)
    }
    .await;
    match runs {
        Ok(runs) => Json(json!({ "runs": runs })).into_response(),
        Err(e) => internal(e),
    }
}

async fn reconcile_now(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorise(&state, &headers, Some(TokenRole::Officer)) {
        return r.into_response();
    }
    match state.engine.reconcile().await {
        Ok(started) => (StatusCode::ACCEPTED, Json(json!(started))).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /api/v1/refdata/resync`: asks the hub for the whole reference data set.
async fn refdata_resync(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorise(&state, &headers, Some(TokenRole::Officer)) {
        return r.into_response();
    }
    match state.engine.resync_refdata().await {
        Ok((request, held)) => (
            StatusCode::ACCEPTED,
            Json(json!({"request": request, "held": held})),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

/// The body of `POST /api/v1/movements/{mrn}/status-requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusRequestBody {
    /// The country to ask (ISO 3166-1 alpha-2).
    country: String,
    /// The time limit for each answer, in seconds.
    timeout_secs: Option<u64>,
}

async fn status_request_new(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(mrn): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let body: StatusRequestBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "status.invalid_body",
                format!("expected {{\"country\": \"GE\"}}: {e}"),
            );
        }
    };
    let timeout = body.timeout_secs.map(Duration::from_secs);
    match state
        .engine
        .request_status(&mrn, &body.country, timeout)
        .await
    {
        Ok(r) => (StatusCode::ACCEPTED, Json(json!(r))).into_response(),
        Err(crate::status::StatusError::Engine(e)) => internal(e),
        Err(e) => error(StatusCode::BAD_REQUEST, e.code(), e.to_string()),
    }
}

async fn status_request_by_id(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorise(&state, &headers, None) {
        return r.into_response();
    }
    let found = async {
        let mut tx = state.engine.store().begin().await?;
        let r = crate::status::request(&mut tx, &id).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(r)
    }
    .await;
    match found {
        Ok(Some(r)) => Json(json!(r)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "status.unknown_request",
            format!("no status request {id}"),
        ),
        Err(e) => internal(e),
    }
}

/// Accepts TCP connections and completes TLS handshakes in their own tasks; `axum::serve`
/// takes the finished connections.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` with `acceptor` until `shutdown` fires.
    pub fn new(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        mut shutdown: Shutdown,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = shutdown.wait() => return,
                    a = listener.accept() => a,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Parses `key=value&...` (for tests of the OpenAPI coverage).
pub fn openapi_paths() -> Result<HashMap<String, Vec<String>>, serde_json::Error> {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI)?;
    let mut out = HashMap::new();
    if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
        for (path, ops) in paths {
            let methods = ops
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            out.insert(path.clone(), methods);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let paths = openapi_paths().expect("the OpenAPI document is JSON");
        for (method, path) in ROUTES {
            let methods = paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not in openapi.json"));
            assert!(
                methods.iter().any(|m| m == method),
                "{method} {path} is not in openapi.json"
            );
        }
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        // And nothing documented that the router does not serve.
        let served: usize = paths.values().map(Vec::len).sum();
        assert_eq!(
            served,
            ROUTES.len(),
            "openapi.json documents routes the router lacks"
        );
    }
}
