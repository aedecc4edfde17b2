//! A national system's and an officer's view of a node: its HTTPS API (node-api contract), with
//! the CATS CA as the only trusted root and a bearer token per role.
//!
//! - [`NodeClient::submit`] POSTs a P5 message and reads the immediate answer.
//! - [`NodeClient::act`] POSTs an officer action.
//! - [`NodeClient::movement`] and [`NodeClient::declaration`] read what the node holds.
//! - [`Stream`] follows the node's server-sent events (the messages to the national system) in
//!   a task of its own and lets any number of callers wait for the message they expect, by MRN
//!   or LRN.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::Notify;

/// A node's API as one client with two tokens: the national system's and an officer's.
#[derive(Debug, Clone)]
pub struct NodeClient {
    /// The node's country (`KZ`).
    pub country: String,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// The national system's token.
    pub national_token: String,
    /// The officer's token.
    pub officer_token: String,
    http: reqwest::Client,
}

/// The answer to a message POSTed to `/api/v1/messages`.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// `X-CATS-Message-Type`, when the answer carries a message.
    pub message_type: Option<String>,
    /// `X-CATS-MRN`, when known.
    pub mrn: Option<String>,
    /// `X-CATS-LRN`, when known.
    pub lrn: Option<String>,
    /// The body (a P5 message or a JSON error).
    pub body: String,
}

impl Reply {
    /// The functional error code of a rejection in the body (`<functionalErrorCode>` or
    /// `<errorCode>` of P5 rejections, `"code"` of a JSON error), if any.
    pub fn error_code(&self) -> Option<String> {
        for tag in ["functionalErrorCode", "errorCode", "rejectionCode"] {
            if let Some(code) = element(&self.body, tag) {
                return Some(code);
            }
        }
        serde_json::from_str::<ApiError>(&self.body)
            .ok()
            .map(|e| e.error.code)
    }
}

/// The text of the first `<tag>` element in `xml`.
pub fn element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml.get(start..)?.find("</")? + start;
    xml.get(start..end).map(|s| s.trim().to_owned())
}

/// A JSON error of the API: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiError {
    /// The error.
    pub error: ApiErrorBody,
}

/// The inside of an [`ApiError`].
#[derive(Debug, Clone, Deserialize)]
pub struct ApiErrorBody {
    /// The stable code.
    pub code: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

/// An officer action that the node refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct Refused {
    /// The HTTP status.
    pub status: u16,
    /// The error code (`92`, `90`, ...).
    pub code: String,
    /// The node's explanation.
    pub message: String,
}

/// What the node holds for one movement (`GET /api/v1/movements/{mrn}`).
#[derive(Debug, Clone, Deserialize)]
pub struct MovementView {
    /// The MRN, once allocated.
    #[serde(default)]
    pub mrn: Option<String>,
    /// The LRN, known at departure.
    #[serde(default)]
    pub lrn: Option<String>,
    /// Each office of this node in the movement.
    #[serde(default)]
    pub offices: Vec<OfficeView>,
    /// The selections for control.
    #[serde(default)]
    pub selections: Vec<SelectionView>,
    /// Everything that happened, in order.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl MovementView {
    /// The phase of `office` in `role`, if this node holds it.
    pub fn phase(&self, office: &str, role: &str) -> Option<&str> {
        self.offices
            .iter()
            .find(|o| o.office == office && o.role == role)
            .map(|o| o.phase.as_str())
    }
}

/// One office's state in a [`MovementView`].
#[derive(Debug, Clone, Deserialize)]
pub struct OfficeView {
    /// The office reference.
    pub office: String,
    /// `departure`, `exit`, `transit` or `destination`.
    pub role: String,
    /// The phase.
    pub phase: String,
    /// Since when, UTC.
    #[serde(default)]
    pub since: String,
    /// Since when, in the office's zone.
    #[serde(default)]
    pub since_local: String,
    /// The office's time zone.
    #[serde(default)]
    pub time_zone: String,
}

/// One selection for control.
#[derive(Debug, Clone, Deserialize)]
pub struct SelectionView {
    /// The office.
    pub office: String,
    /// Its role.
    #[serde(default)]
    pub role: String,
    /// Selected or not.
    pub selected: bool,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// One step of a movement's history at one node.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryEntry {
    /// Its order at this node.
    pub seq: i64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// When, RFC 3339 in the office's zone.
    #[serde(default)]
    pub at_local: String,
    /// The office.
    pub office: String,
    /// The office's role.
    #[serde(default)]
    pub role: String,
    /// `in`, `out` or `action`.
    #[serde(default)]
    pub kind: String,
    /// The message type, for `in` and `out`.
    #[serde(default)]
    pub message_type: Option<String>,
    /// The action, for `action`.
    #[serde(default)]
    pub action: Option<String>,
    /// Who (a token name, the system, a country).
    #[serde(default)]
    pub by: Option<String>,
    /// From (`KZ`, `hub`, `national-system`, `officer` ...).
    #[serde(default)]
    pub from: Option<String>,
    /// To.
    #[serde(default)]
    pub to: Option<String>,
    /// The office's phase after this step.
    #[serde(default)]
    pub phase_after: Option<String>,
}

/// One message to the national system, as the pull API and the SSE stream give it.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamItem {
    /// Its cursor.
    pub cursor: i64,
    /// The message type.
    #[serde(rename = "type")]
    pub message_type: String,
    /// The MRN, when known.
    #[serde(default)]
    pub mrn: Option<String>,
    /// The LRN, when known.
    #[serde(default)]
    pub lrn: Option<String>,
    /// The office.
    #[serde(default)]
    pub office: Option<String>,
    /// When, UTC.
    #[serde(default)]
    pub at: String,
    /// The message.
    #[serde(default)]
    pub xml: String,
    /// When this client read it from the stream.
    #[serde(skip, default = "Instant::now")]
    pub seen: Instant,
}

/// Builds the HTTP client that trusts the CATS CA (and nothing else).
pub fn http_client(ca_pem: &[u8]) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots
            .add(cert.context("reading the CATS CA certificate")?)
            .context("adding the CATS CA")?;
    }
    if roots.is_empty() {
        bail!("the CATS CA file holds no certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

impl NodeClient {
    /// A client for the node at `base`.
    pub fn new(
        country: &str,
        base: String,
        national_token: String,
        officer_token: String,
        http: reqwest::Client,
    ) -> NodeClient {
        NodeClient {
            country: country.to_owned(),
            base,
            national_token,
            officer_token,
            http,
        }
    }

    /// POSTs a P5 message as the national system.
    pub async fn submit(&self, xml: String) -> anyhow::Result<Reply> {
        let response = self
            .http
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(&self.national_token)
            .header(reqwest::header::CONTENT_TYPE, "application/xml")
            .body(xml)
            .send()
            .await
            .with_context(|| format!("POST {}/api/v1/messages", self.base))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let message_type = header("x-cats-message-type");
        let mrn = header("x-cats-mrn");
        let lrn = header("x-cats-lrn");
        let body = response.text().await.context("reading the reply")?;
        Ok(Reply {
            status,
            message_type,
            mrn,
            lrn,
            body,
        })
    }

    /// POSTs an officer action; `Ok(response JSON)` on 200, `Err(Refused)` on an API error.
    pub async fn act(
        &self,
        action: serde_json::Value,
    ) -> anyhow::Result<Result<serde_json::Value, Refused>> {
        let response = self
            .http
            .post(format!("{}/api/v1/actions", self.base))
            .bearer_auth(&self.officer_token)
            .json(&action)
            .send()
            .await
            .with_context(|| format!("POST {}/api/v1/actions", self.base))?;
        let status = response.status().as_u16();
        let body = response.text().await.context("reading the answer")?;
        if status == 200 {
            return Ok(Ok(serde_json::from_str(&body).unwrap_or_default()));
        }
        let (code, message) = match serde_json::from_str::<ApiError>(&body) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (status.to_string(), body),
        };
        Ok(Err(Refused {
            status,
            code,
            message,
        }))
    }

    /// `GET /api/v1/movements/{mrn}`: `None` on 404.
    pub async fn movement(&self, mrn: &str) -> anyhow::Result<Option<MovementView>> {
        self.view(&format!("{}/api/v1/movements/{mrn}", self.base))
            .await
    }

    /// `GET /api/v1/guarantees/{grn}/balance?requester=TIN` as the national system: the status
    /// and the body (the CC037C, or the refusal).
    pub async fn guarantee_balance(
        &self,
        grn: &str,
        requester: &str,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}/api/v1/guarantees/{grn}/balance", self.base);
        let response = self
            .http
            .get(&url)
            .query(&[("requester", requester)])
            .bearer_auth(&self.national_token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.context("reading the answer")?))
    }

    /// `GET /api/v1/declarations/{lrn}`: `None` on 404.
    pub async fn declaration(&self, lrn: &str) -> anyhow::Result<Option<MovementView>> {
        self.view(&format!("{}/api/v1/declarations/{lrn}", self.base))
            .await
    }

    async fn view(&self, url: &str) -> anyhow::Result<Option<MovementView>> {
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.officer_token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let body = response.bytes().await.context("reading the movement")?;
                serde_json::from_slice(&body)
                    .map(Some)
                    .with_context(|| format!("GET {url}: unexpected movement JSON"))
            }
            s => {
                let body = response.text().await.unwrap_or_default();
                bail!("GET {url}: {s} {body}")
            }
        }
    }

    /// `GET /api/v1/messages?after=..`: the pull API (one page).
    pub async fn pull(&self, after: i64, limit: u32) -> anyhow::Result<(Vec<StreamItem>, i64)> {
        #[derive(Deserialize)]
        struct Page {
            messages: Vec<StreamItem>,
            next: i64,
        }
        let url = format!("{}/api/v1/messages?after={after}&limit={limit}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.national_token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        if status != 200 {
            bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
        }
        let page: Page =
            serde_json::from_slice(&body).with_context(|| format!("GET {url}: unexpected JSON"))?;
        Ok((page.messages, page.next))
    }
}

/// The messages a node sent to its national system, followed over SSE, indexed by MRN and LRN.
#[derive(Debug, Clone)]
pub struct Stream {
    inner: Arc<StreamInner>,
    country: String,
}

#[derive(Debug, Default)]
struct StreamInner {
    state: Mutex<StreamState>,
}

#[derive(Debug, Default)]
struct StreamState {
    by_key: HashMap<String, Vec<Arc<StreamItem>>>,
    waiters: HashMap<String, Arc<Notify>>,
    broken: Option<String>,
    last: i64,
}

impl Stream {
    /// Opens the node's SSE stream (from cursor `after`) in a task of its own; it reconnects
    /// from the last cursor seen when the connection drops.
    pub fn follow(client: &NodeClient, after: i64) -> Stream {
        let stream = Stream {
            inner: Arc::new(StreamInner::default()),
            country: client.country.clone(),
        };
        let task_stream = stream.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let mut after = after;
            // A node that restarts is away for a moment; one that stays away a minute is gone.
            let mut failing_since: Option<Instant> = None;
            loop {
                match task_stream.read(&client, after).await {
                    Ok(last) => {
                        after = last;
                        failing_since = None;
                    }
                    Err(e) => {
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(60) {
                            task_stream.broken(format!("{e:#}"));
                            return;
                        }
                    }
                }
                after = after.max(task_stream.last());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        stream
    }

    fn last(&self) -> i64 {
        self.inner.state.lock().map(|s| s.last).unwrap_or(0)
    }

    fn broken(&self, why: String) {
        if let Ok(mut s) = self.inner.state.lock() {
            s.broken = Some(why);
            for w in s.waiters.values() {
                w.notify_waiters();
            }
        }
    }

    async fn read(&self, client: &NodeClient, after: i64) -> anyhow::Result<i64> {
        let url = format!("{}/api/v1/messages/stream?after={after}", client.base);
        let response = client
            .http
            .get(&url)
            .bearer_auth(&client.national_token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if response.status().as_u16() != 200 {
            bail!("GET {url}: {}", response.status());
        }
        let mut body = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let mut last = after;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("reading the event stream")?;
            buffer.extend_from_slice(&chunk);
            while let Some(end) = event_end(&buffer) {
                let event: Vec<u8> = buffer.drain(..end.1).collect();
                let text = String::from_utf8_lossy(&event[..end.0]);
                if let Some(item) = parse_event(&text)? {
                    last = last.max(item.cursor);
                    self.push(item);
                }
            }
        }
        Ok(last)
    }

    fn push(&self, item: StreamItem) {
        let Ok(mut s) = self.inner.state.lock() else {
            return;
        };
        if item.cursor <= s.last {
            return;
        }
        s.last = item.cursor;
        let item = Arc::new(item);
        let keys: Vec<String> = [item.mrn.clone(), item.lrn.clone()]
            .into_iter()
            .flatten()
            .collect();
        for key in keys {
            s.by_key.entry(key.clone()).or_default().push(item.clone());
            if let Some(w) = s.waiters.get(&key) {
                w.notify_waiters();
            }
        }
    }

    /// Waits until a message of type `message_type` for `key` (MRN or LRN) has come, up to
    /// `limit`; says what it waited for when it does not come.
    pub async fn wait(
        &self,
        key: &str,
        message_type: &str,
        limit: Duration,
    ) -> anyhow::Result<Arc<StreamItem>> {
        self.wait_any(key, &[message_type], limit).await
    }

    /// Waits until a message of one of `types` for `key` has come.
    pub async fn wait_any(
        &self,
        key: &str,
        types: &[&str],
        limit: Duration,
    ) -> anyhow::Result<Arc<StreamItem>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notify = {
                let mut s = self
                    .inner
                    .state
                    .lock()
                    .map_err(|_| anyhow!("stream state poisoned"))?;
                if let Some(found) = s.by_key.get(key).and_then(|items| {
                    items
                        .iter()
                        .find(|i| types.contains(&i.message_type.as_str()))
                }) {
                    return Ok(found.clone());
                }
                if let Some(why) = &s.broken {
                    bail!("the {} node's event stream failed: {why}", self.country);
                }
                s.waiters.entry(key.to_owned()).or_default().clone()
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Check again now that the wakeup is armed (an item may have come in between).
            let seen = {
                let s = self
                    .inner
                    .state
                    .lock()
                    .map_err(|_| anyhow!("stream state poisoned"))?;
                s.by_key.get(key).is_some_and(|items| {
                    items
                        .iter()
                        .any(|i| types.contains(&i.message_type.as_str()))
                })
            };
            if seen {
                continue;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "timed out after {:.1} s waiting for {} for {key} on the {} node's stream to the national system",
                    limit.as_secs_f64(),
                    types.join(" or "),
                    self.country
                );
            }
        }
    }

    /// Every message seen so far for `key`, in cursor order.
    pub fn items(&self, key: &str) -> Vec<Arc<StreamItem>> {
        self.inner
            .state
            .lock()
            .ok()
            .and_then(|s| s.by_key.get(key).cloned())
            .unwrap_or_default()
    }

    /// Forgets what was kept for `key` (the load run calls it when a movement is done).
    pub fn forget(&self, key: &str) {
        if let Ok(mut s) = self.inner.state.lock() {
            s.by_key.remove(key);
            s.waiters.remove(key);
        }
    }
}

/// Where the first complete event in `buffer` ends: (end of its text, end including the
/// blank line).
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Reads one SSE event; comments and events without data give `None`.
fn parse_event(text: &str) -> anyhow::Result<Option<StreamItem>> {
    let mut data = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&data)
        .map(Some)
        .with_context(|| format!("an event of the stream is not a message item: {data}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_and_read_from_their_data() {
        let raw = b"id: 3\nevent: CC028C\ndata: {\"cursor\":3,\"type\":\"CC028C\",\"mrn\":\"M\",\"lrn\":\"L\"}\n\n: keep-alive\n\n";
        let (text_end, end) = event_end(raw).expect("one event");
        let text = std::str::from_utf8(&raw[..text_end]).expect("utf-8");
        let item = parse_event(text).expect("parses").expect("an item");
        assert_eq!(item.cursor, 3);
        assert_eq!(item.message_type, "CC028C");
        assert_eq!(item.mrn.as_deref(), Some("M"));
        let rest = &raw[end..];
        let (text_end, _) = event_end(rest).expect("the comment");
        let comment = std::str::from_utf8(&rest[..text_end]).expect("utf-8");
        assert!(parse_event(comment).expect("a comment is fine").is_none());
        assert!(parse_event("data: {not json}").is_err());
    }

    #[test]
    fn rejection_codes_are_read_from_p5_and_json_bodies() {
        let xml = Reply {
            status: 422,
            message_type: Some("CC056C".into()),
            mrn: None,
            lrn: None,
            body: "<FunctionalError><errorPointer>/x</errorPointer><errorCode>26</errorCode></FunctionalError>".into(),
        };
        assert_eq!(xml.error_code().as_deref(), Some("26"));
        let json = Reply {
            body: r#"{"error":{"code":"unknown-mrn","message":"no"}}"#.into(),
            ..xml
        };
        assert_eq!(json.error_code().as_deref(), Some("unknown-mrn"));
    }
}
