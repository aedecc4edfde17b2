//! A small HTTP/1.1 client (hyper) for plain `http://` APIs on trusted networks: the hub's own
//! operations API (used by `cats queues` and `cats dead-letters`) and RabbitMQ's management
//! API. One connection per request, every wait bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dead_letters::{DeadLetterDetail, DeadLetterSummary, Settled};
use crate::operations::QueuesReport;

/// An HTTP request failed, or its answer was not what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://HOST:PORT[/PATH]`.
    #[error("client.url: {0}")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("client.io: {0}")]
    Io(String),
    /// No answer within the timeout.
    #[error("client.timeout: no answer from {0} in time")]
    Timeout(String),
    /// The server answered with an error status; `code` is its stable error code if it gave one.
    #[error("{code} (HTTP {status}): {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The `code` of the JSON error body, or `http.<status>`.
        code: String,
        /// The `error` of the JSON error body, or the body.
        message: String,
    },
    /// The body is not the JSON expected.
    #[error("client.body: {0}")]
    Body(String),
}

impl ClientError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Url(_) => "client.url",
            ClientError::Io(_) => "client.io",
            ClientError::Timeout(_) => "client.timeout",
            ClientError::Status { code, .. } => code,
            ClientError::Body(_) => "client.body",
        }
    }
}

/// A parsed `http://` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpBase {
    /// `HOST:PORT` to connect to (and the `Host` header).
    authority: String,
    /// Path prefix without a trailing slash.
    prefix: String,
}

impl HttpBase {
    /// Parses `http://HOST[:PORT][/PREFIX]` (port 80 when absent). `https` is refused.
    pub fn parse(url: &str) -> Result<HttpBase, ClientError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            ClientError::Url(format!(
                "{url:?}: expected http://HOST:PORT (plain HTTP only)"
            ))
        })?;
        let (authority, prefix) = match rest.split_once('/') {
            Some((a, p)) => (a, format!("/{}", p.trim_end_matches('/'))),
            None => (rest, String::new()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(ClientError::Url(format!(
                "{url:?}: expected http://HOST:PORT with no user in the URL"
            )));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
        }) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let prefix = if prefix == "/" { String::new() } else { prefix };
        Ok(HttpBase { authority, prefix })
    }

    /// Sends one request and returns the status and the body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), ClientError> {
        let target = format!("{}{path}", self.prefix);
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| ClientError::Io(format!("connecting to {}: {e}", self.authority)))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| ClientError::Io(e.to_string()))?;
            let driver = tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut builder = Request::builder()
                .method(method)
                .uri(&target)
                .header(HOST, &self.authority);
            if let Some(a) = authorization {
                builder = builder.header(AUTHORIZATION, a);
            }
            if body.is_some() {
                builder = builder.header(CONTENT_TYPE, "application/json");
            }
            let request = builder
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| ClientError::Url(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| ClientError::Io(e.to_string()))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Io(e.to_string()))?
                .to_bytes();
            driver.abort();
            Ok((status, bytes))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.authority.clone()))?
    }
}

/// Turns an error status into [`ClientError::Status`], reading the API's JSON error body.
fn check(status: u16, body: &[u8]) -> Result<(), ClientError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Err(ClientError::Status {
        status,
        code: field("code").unwrap_or_else(|| format!("http.{status}")),
        message: field("error").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    })
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Body(e.to_string()))
}

/// What an operator sends with a replay or a discard (who asks is the credential of the
/// request's bearer token, recorded in the audit entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// Why (recorded in the audit entry; required for a discard).
    #[serde(default)]
    pub reason: String,
}

/// The hub's operations API, for `cats queues` and `cats dead-letters`.
#[derive(Debug, Clone)]
pub struct HubClient {
    base: HttpBase,
    timeout: Duration,
    /// `Bearer <token>`, sent with every request.
    authorization: Option<String>,
}

impl HubClient {
    /// A client of the hub at `url` (`http://127.0.0.1:8480`).
    pub fn new(url: &str) -> Result<HubClient, ClientError> {
        Ok(HubClient {
            base: HttpBase::parse(url)?,
            timeout: Duration::from_secs(30),
            authorization: None,
        })
    }

    /// The same client sending `Authorization: Bearer <token>` (an operator's or an
    /// administrator's credential; see `cats hub issue-credential`).
    pub fn with_token(mut self, token: &str) -> HubClient {
        self.authorization = Some(format!("Bearer {}", token.trim()));
        self
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, body) = self
            .base
            .request(
                "GET",
                path,
                self.authorization.as_deref(),
                None,
                self.timeout,
            )
            .await?;
        check(status, &body)?;
        json(&body)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        payload: &Settlement,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(payload).map_err(|e| ClientError::Body(e.to_string()))?;
        let (status, body) = self
            .base
            .request(
                "POST",
                path,
                self.authorization.as_deref(),
                Some(body),
                self.timeout,
            )
            .await?;
        check(status, &body)?;
        json(&body)
    }

    /// `GET /api/v1/queues`.
    pub async fn queues(&self) -> Result<QueuesReport, ClientError> {
        self.get("/api/v1/queues").await
    }

    /// `GET /api/v1/reconciliation`: every node's reconciliation totals.
    pub async fn reconciliation(
        &self,
    ) -> Result<Vec<crate::reconcile::NodeReconciliation>, ClientError> {
        #[derive(serde::Deserialize)]
        struct List {
            nodes: Vec<crate::reconcile::NodeReconciliation>,
        }
        let list: List = self.get("/api/v1/reconciliation").await?;
        Ok(list.nodes)
    }

    /// `GET /api/v1/dead-letters?state=STATE`.
    pub async fn dead_letters(&self, state: &str) -> Result<Vec<DeadLetterSummary>, ClientError> {
        #[derive(serde::Deserialize)]
        struct List {
            dead_letters: Vec<DeadLetterSummary>,
        }
        let list: List = self
            .get(&format!("/api/v1/dead-letters?state={state}"))
            .await?;
        Ok(list.dead_letters)
    }

    /// `GET /api/v1/dead-letters/{id}`.
    pub async fn dead_letter(&self, id: i64) -> Result<DeadLetterDetail, ClientError> {
        self.get(&format!("/api/v1/dead-letters/{id}")).await
    }

    /// `POST /api/v1/dead-letters/{id}/replay`.
    pub async fn replay(&self, id: i64, settlement: &Settlement) -> Result<Settled, ClientError> {
        self.post(&format!("/api/v1/dead-letters/{id}/replay"), settlement)
            .await
    }

    /// `POST /api/v1/dead-letters/{id}/discard`.
    pub async fn discard(&self, id: i64, settlement: &Settlement) -> Result<Settled, ClientError> {
        self.post(&format!("/api/v1/dead-letters/{id}/discard"), settlement)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let b = HttpBase::parse("http://127.0.0.1:8480").expect("parses");
        assert_eq!(b.authority, "127.0.0.1:8480");
        assert_eq!(b.prefix, "");
        let b = HttpBase::parse("http://localhost/hub/").expect("parses");
        assert_eq!(b.authority, "localhost:80");
        assert_eq!(b.prefix, "/hub");
        for bad in ["https://x:1", "ftp://x", "http://", "http://u:p@x:1", "x:1"] {
            assert!(
                matches!(HttpBase::parse(bad), Err(ClientError::Url(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_bodies_give_their_code() {
        let e = check(404, br#"{"code":"dead-letters.not-found","error":"no 7"}"#)
            .expect_err("404 is an error");
        assert_eq!(e.code(), "dead-letters.not-found");
        let e = check(502, b"bad gateway").expect_err("502 is an error");
        assert_eq!(e.code(), "http.502");
        assert!(check(200, b"").is_ok());
    }
}
