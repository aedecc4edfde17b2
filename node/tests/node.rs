//! The node end to end: real sockets, real TLS (certificates from `DevPki::init` in a temporary
//! directory), a real hub (`cats_hub::start`) and the KZ, AZ and GE nodes on the direct link,
//! driven through the national API over HTTPS, on SQLite and on PostgreSQL.
//!
//! PostgreSQL: `postgres://postgres@127.0.0.1:5432/test` (override with `CATS_TEST_POSTGRES`),
//! a fresh database per service and test. Unreachable: the test fails when `CI=true`, else it
//! says loudly that it did not run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cats_hub::RunningHub;
use cats_node::RunningNode;
use cats_node::config::{RawConfig, RawToken};
use cats_transport::contract::CountryCode;
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_trust::pki::{DevPki, DevPkiFiles};
use serde_json::Value;
use sqlx::Connection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const CC015C: &str = include_str!("data/cc015c-journey.xml");
const CC007C: &str = include_str!("data/cc007c-arrival.xml");
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

async fn database_url(db: Db, dir: &std::path::Path, name: &str) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!(
            "sqlite://{}",
            dir.join(format!("{name}.db")).display()
        )),
        Db::Postgres => {
            let base = std::env::var("CATS_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let mut admin = match sqlx::PgConnection::connect(&base).await {
                Ok(c) => c,
                Err(e) => {
                    if std::env::var("CI").as_deref() == Ok("true") {
                        panic!("PostgreSQL at {base} is unreachable in CI: {e}");
                    }
                    eprintln!(
                        "\n!!!!! SKIPPED: PostgreSQL at {base} is unreachable ({e}); \
                         this test did NOT run on PostgreSQL !!!!!\n"
                    );
                    return None;
                }
            };
            let db = format!("cats_node_{name}_{:016x}", rand::random::<u64>());
            sqlx::query(&format!("CREATE DATABASE \"{db}\""))
                .execute(&mut admin)
                .await
                .expect("create database");
            let i = base.rfind('/').expect("database URL has a path");
            Some(format!("{}/{db}", &base[..i]))
        }
    }
}

fn sha256_hex(token: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

fn national_token(c: CountryCode) -> String {
    format!("national-secret-{c}")
}

fn officer_token(c: CountryCode) -> String {
    format!("officer-secret-{c}")
}

// --- a minimal HTTPS client -----------------------------------------------------------------

#[derive(Clone)]
struct Client {
    addr: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    token: Option<String>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Client {
    fn new(addr: std::net::SocketAddr, ca: &std::path::Path, https: bool) -> Client {
        let tls = https.then(|| {
            let mut roots = rustls::RootCertStore::empty();
            for c in cats_trust::load_certs(ca).expect("CA") {
                roots.add(c).expect("root");
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        });
        Client {
            addr,
            tls,
            token: None,
        }
    }

    fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    async fn connect(&self) -> Box<dyn Io> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        match &self.tls {
            None => Box::new(tcp),
            Some(c) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                Box::new(c.connect(name, tcp).await.expect("TLS handshake"))
            }
        }
    }

    fn head(&self, method: &str, path: &str, extra: &[(&str, &str)], len: usize) -> String {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {len}\r\n"
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut s = self.connect().await;
        s.write_all(self.head(method, path, extra, body.len()).as_bytes())
            .await
            .expect("write");
        // A server that refuses a request on its head (401, 413) answers and closes without
        // reading the whole body: the rest of the write may fail, and the answer is still there
        // to read.
        if s.write_all(body).await.is_ok() {
            let _ = s.flush().await;
        }
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
            .await
            .expect("response in time");
        parse_response(&raw)
    }

    async fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[], b"").await
    }

    async fn post_xml(&self, xml: &str) -> Answer {
        self.request(
            "POST",
            "/api/v1/messages",
            &[("Content-Type", "application/xml")],
            xml.as_bytes(),
        )
        .await
    }

    async fn action(&self, body: Value) -> Answer {
        self.request(
            "POST",
            "/api/v1/actions",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await
    }

    /// Reads server-sent events from `path` until `count` events came.
    async fn sse(
        &self,
        path: &str,
        extra: &[(&str, &str)],
        count: usize,
    ) -> Vec<(String, String, Value)> {
        let mut s = self.connect().await;
        s.write_all(self.head("GET", path, extra, 0).as_bytes())
            .await
            .expect("write");
        let mut raw = Vec::new();
        let mut events = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while events.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, s.read(&mut buf))
                .await
                .expect("SSE events in time")
                .expect("read");
            assert!(n > 0, "SSE stream closed after {} events", events.len());
            raw.extend_from_slice(&buf[..n]);
            let Some(end) = find(&raw, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let body = dechunk(&raw[end + 4..]);
            let text = String::from_utf8_lossy(&body).to_string();
            events = text
                .split("\n\n")
                .filter(|block| block.contains("data:"))
                .map(|block| {
                    let mut id = String::new();
                    let mut event = String::new();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim());
                        }
                    }
                    (
                        id,
                        event,
                        serde_json::from_str(&data).unwrap_or(Value::Null),
                    )
                })
                .filter(|(_, _, d)| !d.is_null())
                .collect();
        }
        events
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes as much of a chunked body as is complete.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(b, b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[(i + 4 + size).min(b.len())..];
    }
    out
}

fn parse_response(raw: &[u8]) -> Answer {
    let end = find(raw, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = &raw[end + 4..];
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Answer {
        status,
        headers,
        body,
    }
}

// --- the webhook receiver -------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Hooked {
    cursor: i64,
    message_type: String,
    signature_ok: bool,
}

/// A plain-HTTP receiver that answers 500 to the first `fail_first` requests, then 200, and
/// reports each request it accepted.
async fn webhook_receiver(
    secret: &'static str,
    fail_first: usize,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Hooked>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0usize;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            let (head, body) = loop {
                let Ok(n) = s.read(&mut buf).await else {
                    break (String::new(), Vec::new());
                };
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                raw.extend_from_slice(&buf[..n]);
                if let Some(end) = find(&raw, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&raw[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse().ok())
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + len {
                        break (head, raw[end + 4..end + 4 + len].to_vec());
                    }
                }
            };
            let header = |name: &str| {
                head.lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default()
            };
            seen += 1;
            if seen <= fail_first {
                let _ = s
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                    .await;
                continue;
            }
            let expected = cats_node::webhook::signature(secret.as_bytes(), &body);
            let _ = tx.send(Hooked {
                cursor: header("x-cats-cursor").parse().unwrap_or(-1),
                message_type: header("x-cats-message-type"),
                signature_ok: header("x-cats-signature") == expected,
            });
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    (addr, rx)
}

// --- the world ------------------------------------------------------------------------------

struct Node {
    running: RunningNode,
    trigger: ShutdownTrigger,
    config: RawConfig,
}

struct World {
    dir: tempfile::TempDir,
    files: DevPkiFiles,
    _hub: RunningHub,
    _hub_trigger: ShutdownTrigger,
    nodes: BTreeMap<CountryCode, Node>,
}

const KZ: CountryCode = CountryCode::KZ;
const AZ: CountryCode = CountryCode::AZ;
const GE: CountryCode = CountryCode::GE;
const HOOK_SECRET: &str = "webhook-secret-kz";

fn node_config(files: &DevPkiFiles, hub: &RunningHub, c: CountryCode, url: String) -> RawConfig {
    let mut raw = RawConfig::default();
    raw.node.country = c.to_string();
    raw.store.url = url;
    raw.http.listen = "127.0.0.1:0".into();
    raw.http.tokens = vec![
        RawToken {
            name: format!("{c}-national-system"),
            sha256: sha256_hex(&national_token(c)),
            role: "national-system".into(),
        },
        RawToken {
            name: format!("officer-{c}"),
            sha256: sha256_hex(&officer_token(c)),
            role: "officer".into(),
        },
    ];
    raw.transport.hub = hub
        .direct_addr
        .expect("the hub runs the direct link")
        .to_string();
    raw.transport.server_name = "localhost".into();
    raw.certs.dir = files.dir.clone();
    raw
}

async fn start_node(raw: RawConfig) -> Node {
    let config = raw.clone().resolve().expect("node config resolves");
    let (trigger, shutdown) = shutdown::channel();
    let running = cats_node::start(config, shutdown)
        .await
        .expect("node starts");
    Node {
        running,
        trigger,
        config: raw,
    }
}

async fn world(db: Db, webhook: Option<std::net::SocketAddr>) -> Option<World> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(&dir.path().join("pki"), &[KZ, AZ, GE], false).expect("dev PKI");
    let mut raw = cats_hub::RawConfig::default();
    raw.store.url = database_url(db, dir.path(), "hub").await?;
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.listen = "127.0.0.1:0".into();
    raw.certs.dir = files.dir.clone();
    let (hub_trigger, shutdown) = shutdown::channel();
    let hub = cats_hub::start(raw.resolve().expect("hub config"), shutdown)
        .await
        .expect("hub starts");
    let mut nodes = BTreeMap::new();
    for c in [KZ, AZ, GE] {
        let url = database_url(
            db,
            dir.path(),
            &format!("node_{}", c.as_str().to_ascii_lowercase()),
        )
        .await?;
        let mut raw = node_config(&files, &hub, c, url);
        if c == KZ
            && let Some(addr) = webhook
        {
            raw.national.webhook.url = format!("http://{addr}/hook");
            raw.national.webhook.secret = HOOK_SECRET.into();
        }
        nodes.insert(c, start_node(raw).await);
    }
    let w = World {
        dir,
        files,
        _hub: hub,
        _hub_trigger: hub_trigger,
        nodes,
    };
    for c in [KZ, AZ, GE] {
        let n = &w.nodes[&c];
        let deadline = Instant::now() + WAIT;
        while !n.running.link.is_connected() {
            assert!(
                Instant::now() < deadline,
                "node {c} did not connect to the hub"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Some(w)
}

impl World {
    fn client(&self, c: CountryCode) -> Client {
        let n = &self.nodes[&c];
        Client::new(n.running.http_addr, &self.files.ca.cert, n.running.https)
    }

    fn national(&self, c: CountryCode) -> Client {
        self.client(c).with_token(&national_token(c))
    }

    fn officer(&self, c: CountryCode) -> Client {
        self.client(c).with_token(&officer_token(c))
    }

    /// Waits until `office` (in `role`) of movement `mrn` at node `c` is in `phase`.
    async fn wait_phase(
        &self,
        c: CountryCode,
        mrn: &str,
        office: &str,
        role: &str,
        phase: &str,
    ) -> Value {
        let client = self.national(c);
        let deadline = Instant::now() + WAIT;
        loop {
            let a = client.get(&format!("/api/v1/movements/{mrn}")).await;
            if a.status == 200 {
                let m = a.json();
                let found = m["offices"].as_array().is_some_and(|o| {
                    o.iter()
                        .any(|x| x["office"] == office && x["role"] == role && x["phase"] == phase)
                });
                if found {
                    return m;
                }
                if Instant::now() > deadline {
                    panic!("{c}: {office} {role} never reached {phase}: {m:#}");
                }
            } else if Instant::now() > deadline {
                panic!("{c}: movement {mrn} not found: {} {}", a.status, a.text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn act(
        &self,
        c: CountryCode,
        action: &str,
        office: &str,
        role: &str,
        mrn: &str,
    ) -> Value {
        let a = self
            .officer(c)
            .action(
                serde_json::json!({"action": action, "office": office, "role": role, "mrn": mrn}),
            )
            .await;
        assert_eq!(a.status, 200, "{action} at {office}: {}", a.text());
        a.json()
    }

    async fn restart(&mut self, c: CountryCode) {
        let node = self.nodes.remove(&c).expect("node");
        node.trigger.trigger();
        node.running.stopped().await;
        let again = start_node(node.config).await;
        let deadline = Instant::now() + WAIT;
        while !again.running.link.is_connected() {
            assert!(Instant::now() < deadline, "node {c} did not reconnect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.nodes.insert(c, again);
    }
}

async fn pull_all(client: &Client) -> Vec<Value> {
    let a = client.get("/api/v1/messages?after=0&limit=1000").await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()["messages"].as_array().cloned().unwrap_or_default()
}

fn types(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Waits until the stream of node `c` holds a message of type `ty`; returns the stream.
async fn wait_stream(w: &World, c: CountryCode, ty: &str) -> Vec<Value> {
    let client = w.national(c);
    let deadline = Instant::now() + WAIT;
    loop {
        let items = pull_all(&client).await;
        if types(&items).iter().any(|t| t == ty) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{c}: no {ty} in {:?}",
            types(&items)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- the journey ----------------------------------------------------------------------------

async fn journey(db: Db) {
    let (hook_addr, mut hooked) = webhook_receiver(HOOK_SECRET, 2).await;
    let Some(mut w) = world(db, Some(hook_addr)).await else {
        return;
    };
    let kz = w.national(KZ);

    // Declaration in: CC928C at once, the MRN allocated by the system (CC028C) in the stream.
    let a = kz.post_xml(CC015C).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("x-cats-message-type"), Some("CC928C"));
    assert_eq!(a.header("content-type"), Some("application/xml"));
    assert_eq!(a.header("x-cats-lrn"), Some("LRN-NODE-0001"));
    assert!(
        a.text().contains("<LRN>LRN-NODE-0001</LRN>"),
        "{}",
        a.text()
    );
    let stream = wait_stream(&w, KZ, "CC028C").await;
    assert_eq!(types(&stream)[..2], ["CC928C", "CC028C"]);
    let mrn = stream[1]["mrn"]
        .as_str()
        .expect("MRN in the stream")
        .to_owned();
    assert!(stream[1]["xml"].as_str().unwrap_or("").contains(&mrn));
    assert_eq!(stream[0]["cursor"], 1);
    assert_eq!(stream[1]["office"], "KZ000101");

    // The movement by LRN and by MRN; not selected (defaults); the CD203C left the outbox and
    // the hub's ledger answered CD205C: released, CC029C to the holder.
    let by_lrn = kz.get("/api/v1/declarations/LRN-NODE-0001").await;
    assert_eq!(by_lrn.status, 200, "{}", by_lrn.text());
    assert_eq!(by_lrn.json()["mrn"], mrn.as_str());
    let m = w
        .wait_phase(KZ, &mrn, "KZ000101", "departure", "Released")
        .await;
    let selections = m["selections"].as_array().expect("selections");
    assert_eq!(selections.len(), 1, "{m:#}");
    assert_eq!(selections[0]["selected"], false);
    assert!(
        selections[0]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("no rule applies")
    );
    let history = m["history"].as_array().expect("history");
    let kinds: Vec<String> = history
        .iter()
        .map(|h| {
            format!(
                "{}:{}",
                h["kind"].as_str().unwrap_or(""),
                h["message_type"]
                    .as_str()
                    .or(h["action"].as_str())
                    .unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "in:CC015C",
        "out:CC928C",
        "action:AcceptDeclaration",
        "out:CC028C",
        "action:Selection",
        "out:CD203C",
        "in:CD205C",
        "out:CC029C",
        "out:CD001C",
    ] {
        assert!(
            kinds.contains(&expected.to_owned()),
            "{expected} missing from {kinds:?}"
        );
    }
    // Local time in Aktau: UTC+5.
    assert!(
        history[0]["at_local"]
            .as_str()
            .unwrap_or("")
            .ends_with("+05:00"),
        "{:#}",
        history[0]
    );
    let stream = wait_stream(&w, KZ, "CC029C").await;
    assert_eq!(types(&stream), ["CC928C", "CC028C", "CC029C"]);

    // The anticipated records reached every office en route, through the hub.
    w.wait_phase(KZ, &mrn, "KZ000101", "exit", "Anticipated")
        .await;
    w.wait_phase(AZ, &mrn, "AZ000101", "transit", "Anticipated")
        .await;
    w.wait_phase(AZ, &mrn, "AZ000201", "exit", "Anticipated")
        .await;
    w.wait_phase(GE, &mrn, "GE000101", "transit", "Anticipated")
        .await;
    w.wait_phase(GE, &mrn, "GE000201", "destination", "Anticipated")
        .await;

    // An action that does not fit: 409 with code 92, nothing recorded.
    let early = w
        .officer(GE)
        .action(serde_json::json!({"action": "release-goods", "office": "GE000201", "role": "destination", "mrn": mrn}))
        .await;
    assert_eq!(early.status, 409, "{}", early.text());
    assert_eq!(early.json()["error"]["code"], "92");

    // Exit from Kazakhstan; the KZ node restarts in the middle of the journey.
    w.act(KZ, "record-presentation", "KZ000101", "exit", &mrn)
        .await;
    let done = w.act(KZ, "record-exit", "KZ000101", "exit", &mrn).await;
    assert_eq!(done["sent"], serde_json::json!(["CD168C"]));
    assert!(
        done["movement"]["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|h| h["action"] == "record-exit" && h["by"] == "officer-KZ"),
        "who is recorded: {:#}",
        done["movement"]["history"]
    );
    w.restart(KZ).await;

    // Azerbaijan: entry at Alat, exit at Red Bridge.
    w.act(AZ, "record-presentation", "AZ000101", "transit", &mrn)
        .await;
    w.act(AZ, "record-entry", "AZ000101", "transit", &mrn).await;
    w.act(AZ, "record-presentation", "AZ000201", "exit", &mrn)
        .await;
    w.act(AZ, "record-exit", "AZ000201", "exit", &mrn).await;
    // Georgia: entry at Red Bridge, arrival at Poti (CC007C from the national system).
    w.act(GE, "record-presentation", "GE000101", "transit", &mrn)
        .await;
    w.act(GE, "record-entry", "GE000101", "transit", &mrn).await;
    let arrival = CC007C.replace("26KZ000101000001J0", &mrn);
    let a = w.national(GE).post_xml(&arrival).await;
    assert_eq!(a.status, 202, "{}", a.text());
    assert_eq!(a.header("x-cats-mrn"), Some(mrn.as_str()));
    let m = w
        .wait_phase(GE, &mrn, "GE000201", "destination", "ReadyForRelease")
        .await;
    assert_eq!(m["offices"].as_array().map(Vec::len), Some(2));
    let done = w
        .act(GE, "release-goods", "GE000201", "destination", &mrn)
        .await;
    assert_eq!(done["sent"], serde_json::json!(["CC025C", "CD018C"]));
    let ge_stream = wait_stream(&w, GE, "CC025C").await;
    assert_eq!(types(&ge_stream), ["CC025C"]);

    // Back at departure: passages recorded, arrival, control results, system write-off.
    let m = w
        .wait_phase(KZ, &mrn, "KZ000101", "departure", "WrittenOff")
        .await;
    let kinds: Vec<String> = m["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["message_type"].as_str().map(str::to_owned))
        .collect();
    for expected in [
        "CD160C", "CD168C", "CD118C", "CD006C", "CD018C", "CC045C", "CD209C",
    ] {
        assert!(
            kinds.contains(&expected.to_owned()),
            "{expected} missing from {kinds:?}"
        );
    }
    let stream = wait_stream(&w, KZ, "CC045C").await;
    assert_eq!(types(&stream), ["CC928C", "CC028C", "CC029C", "CC045C"]);

    // Server-sent events from the start, and again after the second (Last-Event-ID).
    let events = w
        .national(KZ)
        .sse("/api/v1/messages/stream?after=0", &[], 4)
        .await;
    let ids: Vec<&str> = events.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    assert_eq!(events[3].1, "CC045C");
    assert_eq!(events[3].2["mrn"], mrn.as_str());
    let events = w
        .national(KZ)
        .sse("/api/v1/messages/stream", &[("Last-Event-ID", "2")], 2)
        .await;
    assert_eq!(events[0].0, "3");

    // The webhook got every message once per cursor, in order, signed, after two failures.
    let mut got = Vec::new();
    while got.len() < 4 {
        let h = tokio::time::timeout(WAIT, hooked.recv())
            .await
            .expect("webhook in time")
            .expect("receiver alive");
        assert!(h.signature_ok, "HMAC of cursor {}", h.cursor);
        got.push((h.cursor, h.message_type));
    }
    assert_eq!(
        got,
        [
            (1, "CC928C".into()),
            (2, "CC028C".into()),
            (3, "CC029C".into()),
            (4, "CC045C".into())
        ]
    );

    // Lists, metrics, readiness (the restarted node listens on a new port).
    let kz = w.national(KZ);
    let list = kz
        .get("/api/v1/movements?state=WrittenOff&role=departure")
        .await;
    assert_eq!(list.json()["movements"].as_array().map(Vec::len), Some(1));
    let list = kz.get("/api/v1/movements?state=Submitted").await;
    assert_eq!(list.json()["movements"].as_array().map(Vec::len), Some(0));
    let metrics = w.client(KZ).get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text()
            .contains("cats_node_messages_in_total{type=\"CD018C\"} 1"),
        "{}",
        metrics.text()
    );
    assert!(
        metrics.text().contains("cats_node_stream_cursor 4"),
        "{}",
        metrics.text()
    );
    assert_eq!(w.client(KZ).get("/readyz").await.status, 200);
    assert_eq!(w.client(KZ).get("/healthz").await.status, 200);
    drop(w.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journey_over_https_with_a_real_hub_on_sqlite() {
    journey(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journey_over_https_with_a_real_hub_on_postgres() {
    journey(Db::Postgres).await;
}

// --- refusals -------------------------------------------------------------------------------

async fn refusals(db: Db) {
    let Some(w) = world(db, None).await else {
        return;
    };
    let kz = w.national(KZ);

    // No token, unknown token, wrong role.
    assert_eq!(w.client(KZ).post_xml(CC015C).await.status, 401);
    let a = w
        .client(KZ)
        .with_token("nope")
        .get("/api/v1/messages")
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["code"], "unauthorized");
    assert_eq!(w.officer(KZ).post_xml(CC015C).await.status, 403);
    // Wrong content type, too large.
    let a = kz
        .request(
            "POST",
            "/api/v1/messages",
            &[("Content-Type", "application/json")],
            b"{}",
        )
        .await;
    assert_eq!(a.status, 415);
    let big = vec![b'x'; 9 * 1024 * 1024];
    let a = kz
        .request(
            "POST",
            "/api/v1/messages",
            &[("Content-Type", "application/xml")],
            &big,
        )
        .await;
    assert_eq!(a.status, 413);

    // Not well formed: 400 with a CC917C and a pointer.
    let a = kz
        .post_xml("<ncts:CC015C xmlns:ncts=\"http://ncts.dgtaxud.ec\"><messageSender>")
        .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.header("x-cats-message-type"), Some("CC917C"));
    assert!(
        a.text().contains("CC917C") && a.text().contains("errorPointer"),
        "{}",
        a.text()
    );

    // Unknown MRN: 422 with code 90 (CC906C: the destination holds no movement to answer from).
    let a = w.national(GE).post_xml(CC007C).await;
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(
        a.text().contains("<errorCode>90</errorCode>"),
        "{}",
        a.text()
    );
    let a = w
        .officer(KZ)
        .action(serde_json::json!({"action": "record-exit", "office": "KZ000101", "role": "exit", "mrn": "26KZ000101000001J0"}))
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "90");
    let a = kz.get("/api/v1/movements/26KZ000101000001J0").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "unknown-mrn");
    let a = kz
        .get("/api/v1/movements/26KZ000101000001J0/messages")
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "unknown-mrn");

    // The declaration, then the same declaration again: one movement, code 26.
    let a = kz.post_xml(CC015C).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let stream = wait_stream(&w, KZ, "CC028C").await;
    let mrn = stream[1]["mrn"].as_str().expect("MRN").to_owned();
    // The national system's messages, as the node received them: the CC015C, byte for byte.
    let a = kz.get(&format!("/api/v1/movements/{mrn}/messages")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let messages = a.json()["messages"].clone();
    assert_eq!(messages[0]["messageType"], "CC015C", "{messages:#}");
    assert_eq!(messages[0]["xml"].as_str(), Some(CC015C), "{messages:#}");
    let again = CC015C.replace("MSG-LRN-NODE-0001", "MSG-LRN-NODE-0002");
    let a = kz.post_xml(&again).await;
    assert_eq!(a.status, 422, "{}", a.text());
    assert_eq!(a.header("x-cats-message-type"), Some("CC056C"));
    assert!(
        a.text().contains("<rejectionCode>26</rejectionCode>"),
        "{}",
        a.text()
    );
    let list = kz.get("/api/v1/movements").await;
    assert_eq!(list.json()["movements"].as_array().map(Vec::len), Some(1));

    // Out of sequence: an invalidation request after release (92), an officer's write-off now.
    w.wait_phase(KZ, &mrn, "KZ000101", "departure", "Released")
        .await;
    let cc014c = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC014C xmlns:ncts="http://ncts.dgtaxud.ec" PhaseID="NCTS5.1">
  <messageSender>NTS.KZ</messageSender>
  <messageRecipient>NTA.KZ</messageRecipient>
  <preparationDateAndTime>2026-11-21T10:00:00</preparationDateAndTime>
  <messageIdentification>MSG-CC014C-NODE-1</messageIdentification>
  <messageType>CC014C</messageType>
  <TransitOperation>
    <MRN>{mrn}</MRN>
  </TransitOperation>
  <Invalidation>
    <requestDateAndTime>2026-11-21T10:00:00</requestDateAndTime>
    <initiatedByCustoms>0</initiatedByCustoms>
    <justification>changed plans</justification>
  </Invalidation>
  <CustomsOfficeOfDeparture>
    <referenceNumber>KZ000101</referenceNumber>
  </CustomsOfficeOfDeparture>
  <HolderOfTheTransitProcedure>
    <identificationNumber>KZ123456789012</identificationNumber>
  </HolderOfTheTransitProcedure>
</ncts:CC014C>"#
    );
    let a = kz.post_xml(&cc014c).await;
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(
        a.text().contains("<rejectionCode>92</rejectionCode>"),
        "{}",
        a.text()
    );
    assert_eq!(a.header("x-cats-mrn"), Some(mrn.as_str()));
    // The same message again (its message identification already received for this
    // movement): a duplicate, 26, at the message identification.
    let a = kz.post_xml(&cc014c).await;
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(
        a.text().contains("<errorCode>26</errorCode>")
            && a.text()
                .contains("<errorPointer>/CC014C/messageIdentification</errorPointer>"),
        "{}",
        a.text()
    );
    let a = w
        .officer(KZ)
        .action(serde_json::json!({"action": "write-off", "office": "KZ000101", "role": "departure", "mrn": mrn}))
        .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.json()["error"]["code"], "92");
    let a = w
        .officer(KZ)
        .action(serde_json::json!({"action": "fly", "office": "KZ000101", "role": "departure", "mrn": mrn}))
        .await;
    assert_eq!(a.status, 400);

    // Every route the OpenAPI document lists is served (not 404/405).
    let doc = w.client(KZ).get("/api/v1/openapi.json").await.json();
    let officer = w.officer(KZ);
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            if path.ends_with("/stream") {
                continue;
            }
            let p = path
                .replace("{mrn}", &mrn)
                .replace("{lrn}", "LRN-NODE-0001");
            let a = officer
                .request(
                    &method.to_uppercase(),
                    &p,
                    &[("Content-Type", "application/json")],
                    b"{}",
                )
                .await;
            // A 404 of the route itself (unknown `{id}`) carries its JSON error code; the
            // router's own 404 for a path it does not serve has an empty body.
            let served = match a.status {
                405 => false,
                404 => !a.body.is_empty() && a.text().contains("\"code\""),
                _ => true,
            };
            assert!(served, "{method} {path}: {} {}", a.status, a.text());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_on_sqlite() {
    refusals(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_on_postgres() {
    refusals(Db::Postgres).await;
}
