//! The webhook: the outbound stream pushed to the national system, in cursor order, each
//! message POSTed until it gets a 2xx, with `X-CATS-Signature: sha256=<hex HMAC-SHA256(secret,
//! body)>`. Progress (the last cursor delivered) is stored in `node_counters`, so a restart
//! resumes after it; a message may be delivered again after a crash between the 2xx and the
//! store write (the receiver deduplicates by `X-CATS-Cursor`).
//!
//! The client is a minimal HTTP/1.1 one (one request per connection), over TCP for `http://`
//! and over rustls (roots: the configured CA) for `https://`.

use std::sync::Arc;
use std::time::Duration;

use cats_transport::shutdown::Shutdown;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::Engine;
use crate::store::{self, StreamItem};

/// The counter holding the last cursor delivered.
pub const PROGRESS: &str = "webhook:cursor";

/// A resolved webhook.
#[derive(Clone)]
pub struct Webhook {
    url: Url,
    key: ring::hmac::Key,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// First pause after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

/// The webhook configuration is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("national.webhook: {0}")]
pub struct WebhookConfigError(pub String);

fn parse_url(url: &str) -> Result<Url, WebhookConfigError> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(WebhookConfigError(format!(
            "url {url:?}: expected http:// or https://"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|e| WebhookConfigError(format!("url {url:?}: port: {e}")))?,
        ),
        None => (authority, if https { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(WebhookConfigError(format!("url {url:?}: no host")));
    }
    Ok(Url {
        https,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

impl Webhook {
    /// A webhook to `url` signed with `secret`; `roots` are the CAs trusted for `https://`.
    pub fn new(
        url: &str,
        secret: &str,
        roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Webhook, WebhookConfigError> {
        let url = parse_url(url)?;
        if secret.is_empty() {
            return Err(WebhookConfigError("secret is empty".into()));
        }
        let tls = if url.https {
            let mut store = rustls::RootCertStore::empty();
            for c in roots {
                store
                    .add(c.clone())
                    .map_err(|e| WebhookConfigError(format!("CA: {e}")))?;
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookConfigError(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Webhook {
            url,
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
            tls,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        })
    }

    /// Delivers the stream until `shutdown` fires.
    pub async fn run(&self, engine: Arc<Engine>, mut shutdown: Shutdown) {
        let mut head = engine.subscribe_stream();
        let mut backoff = self.min_backoff;
        loop {
            if shutdown.is_triggered() {
                return;
            }
            let next = async {
                let mut tx = engine.store().begin().await?;
                let after = store::counter(&mut tx, PROGRESS).await?;
                let items = store::stream_after(&mut tx, after, 1).await?;
                tx.commit().await?;
                Ok::<_, store::StoreError>(items.into_iter().next())
            }
            .await;
            let item = match next {
                Ok(Some(item)) => item,
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = head.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: store read failed");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    continue;
                }
            };
            let result = tokio::time::timeout(Duration::from_secs(10), self.post(&item)).await;
            match result {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    engine.metrics().webhook("ok");
                    backoff = self.min_backoff;
                    let saved = async {
                        let mut tx = engine.store().begin().await?;
                        store::set_counter(&mut tx, PROGRESS, item.cursor).await?;
                        tx.commit().await?;
                        Ok::<_, store::StoreError>(())
                    }
                    .await;
                    if let Err(e) = saved {
                        tracing::warn!(error = %e, "webhook: progress not saved");
                    }
                }
                other => {
                    engine.metrics().webhook("failed");
                    tracing::debug!(cursor = item.cursor, ?other, "webhook delivery failed");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    async fn post(&self, item: &StreamItem) -> std::io::Result<u16> {
        let body = item.xml.as_bytes();
        let sig = format!(
            "sha256={}",
            hex::encode(ring::hmac::sign(&self.key, body).as_ref())
        );
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nX-CATS-Cursor: {}\r\nX-CATS-Message-Type: {}\r\n\
             X-CATS-Signature: {}\r\nConnection: close\r\n\r\n",
            self.url.path,
            self.url.host,
            self.url.port,
            body.len(),
            item.cursor,
            item.message_type,
            sig
        );
        let tcp = tokio::net::TcpStream::connect((self.url.host.as_str(), self.url.port)).await?;
        match &self.tls {
            None => exchange(tcp, request.as_bytes(), body).await,
            Some(config) => {
                let name = ServerName::try_from(self.url.host.clone())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await?;
                exchange(tls, request.as_bytes(), body).await
            }
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<u16> {
    stream.write_all(head).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {:?}", line.lines().next())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/hook").expect("valid"),
            Url {
                https: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hook".into()
            }
        );
        assert_eq!(parse_url("https://ns.example").expect("valid").port, 443);
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://x:port/").is_err());
    }

    /// RFC 4231 test case 2.
    #[test]
    fn signature_is_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
