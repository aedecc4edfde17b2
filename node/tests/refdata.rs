//! Reference data from the hub's master copy to the three nodes: a real hub (`cats_hub::start`)
//! and the KZ, AZ and GE nodes on the direct link, SQLite and PostgreSQL.
//!
//! - a change made over the hub's API reaches every node; bad changes are refused and change
//!   nothing;
//! - a registration approved, then suspended: every node's copy has the AEO, then not, and the
//!   ledger refuses the suspended holder's guarantee hook;
//! - a node that was offline catches up, in order, when it returns;
//! - a node that knows it is behind refuses a CC015C, then accepts one once it has caught up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cats_hub::RunningHub;
use cats_node::RunningNode;
use cats_node::config::RawConfig;
use cats_node::engine::Answer;
use cats_transport::contract::{Acknowledger, CountryCode, Delivery, TransportError};
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_trust::pki::{DevPki, DevPkiFiles};
use cats_trust::{EnvelopeHeaderFields, PeerIdentity, Signer};
use message_catalog::reference::update::{Change, Update, UpdateHeader, update_message};
use message_catalog::reference::{ReferenceData, RestrictedGoods, Restriction};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CC015C: &str = include_str!("data/cc015c-journey.xml");
const WAIT: Duration = Duration::from_secs(30);
const KZ: CountryCode = CountryCode::KZ;
const AZ: CountryCode = CountryCode::AZ;
const GE: CountryCode = CountryCode::GE;

#[derive(Debug, Clone, Copy)]
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
            let db = format!("cats_refdata_{name}_{:016x}", rand::random::<u64>());
            sqlx::query(&format!("CREATE DATABASE \"{db}\""))
                .execute(&mut admin)
                .await
                .expect("create database");
            let i = base.rfind('/').expect("database URL has a path");
            Some(format!("{}/{db}", &base[..i]))
        }
    }
}

struct Node {
    running: RunningNode,
    trigger: ShutdownTrigger,
    config: RawConfig,
}

struct World {
    _dir: tempfile::TempDir,
    files: DevPkiFiles,
    hub: RunningHub,
    _hub_trigger: ShutdownTrigger,
    nodes: BTreeMap<CountryCode, Node>,
}

async fn start_node(raw: RawConfig) -> Node {
    let config = raw.clone().resolve().expect("node config resolves");
    let (trigger, shutdown) = shutdown::channel();
    let running = cats_node::start(config, shutdown)
        .await
        .expect("node starts");
    let deadline = Instant::now() + WAIT;
    while !running.link.is_connected() {
        assert!(Instant::now() < deadline, "node did not connect to the hub");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Node {
        running,
        trigger,
        config: raw,
    }
}

async fn world(db: Db) -> Option<World> {
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
        let name = format!("node_{}", c.as_str().to_ascii_lowercase());
        let mut raw = RawConfig::default();
        raw.node.country = c.to_string();
        raw.store.url = database_url(db, dir.path(), &name).await?;
        raw.http.listen = "127.0.0.1:0".into();
        // Plain HTTP and one national-system token, for the balance query over the node API.
        raw.http.tls = false;
        raw.http.tokens = vec![cats_node::config::RawToken {
            name: format!("{c}-national-system"),
            sha256: hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                NATIONAL_TOKEN.as_bytes(),
            )),
            role: "national-system".into(),
        }];
        raw.transport.hub = hub
            .direct_addr
            .expect("the hub runs the direct link")
            .to_string();
        raw.transport.server_name = "localhost".into();
        raw.certs.dir = files.dir.clone();
        nodes.insert(c, start_node(raw).await);
    }
    Some(World {
        _dir: dir,
        files,
        hub,
        _hub_trigger: hub_trigger,
        nodes,
    })
}

/// The national system's bearer token at every node of these tests.
const NATIONAL_TOKEN: &str = "refdata-test-national-system";

/// One plain HTTP/1.1 request to the hub's API as an administrator (`administrator:admin-test`
/// in the audit): (status, JSON body).
async fn hub_api(hub: &RunningHub, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = cats_hub::access::issue(
        &hub.services.store,
        cats_hub::access::Role::Administrator,
        "admin-test",
    )
    .await
    .expect("credential")
    .token;
    hub_api_as(hub, Some(&token), method, path, body).await
}

/// [`hub_api`] with the given bearer token (an insurer's, say), or none.
async fn hub_api_as(
    hub: &RunningHub,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(hub.http_addr)
        .await
        .expect("connect to the hub API");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let kind = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n{auth}{kind}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, rest) = text.split_once("\r\n\r\n").expect("head and body");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut r = rest;
        while let Some((size, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            r = &tail[n + 2..];
        }
        out
    } else {
        rest.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn wait_version(w: &World, c: CountryCode, version: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = w.nodes[&c].running.engine.refdata.versions();
        if v.held >= version {
            assert_eq!(v.held, version, "{c} went past {version}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{c} never reached reference data version {version}: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn change(w: &World, change: Value) -> (u16, Value) {
    hub_api(
        &w.hub,
        "POST",
        "/api/v1/refs/changes",
        Some(json!({"reason": "test", "change": change})),
    )
    .await
}

#[derive(Debug)]
struct NoAck;

impl Acknowledger for NoAck {
    fn ack(self: Box<Self>) -> futures_like::BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }
    fn reject(
        self: Box<Self>,
        reason: String,
    ) -> futures_like::BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move { panic!("the node dead-lettered the update: {reason}") })
    }
}

mod futures_like {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

fn ca003c(id: &str, tin: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<adm:CA003C xmlns:adm="urn:carec:cats:admin:1">
  <messageSender>KZ.NATIONAL</messageSender>
  <messageRecipient>CATS.HUB</messageRecipient>
  <preparationDateAndTime>2026-11-21T09:30:00</preparationDateAndTime>
  <messageIdentification>{id}</messageIdentification>
  <messageType>CA003C</messageType>
  <TraderApplication>
    <role>AEO</role>
    <identificationNumber>{tin}</identificationNumber>
    <name>Mangyshlak Freight LLP</name>
    <Address>
      <streetAndNumber>Dostyk 12</streetAndNumber>
      <city>Aktau</city>
      <country>KZ</country>
    </Address>
    <country>KZ</country>
    <validityStartDate>2026-01-01</validityStartDate>
    <validityEndDate>2029-12-31</validityEndDate>
  </TraderApplication>
</adm:CA003C>
"#
    )
}

/// Waits until the node's national stream has `n` messages of type `ty`; their XML.
async fn wait_stream(engine: &cats_node::engine::Engine, ty: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut tx = engine.store().begin().await.expect("begin");
        let items = cats_node::store::stream_after(&mut tx, 0, 10_000)
            .await
            .expect("stream");
        tx.commit().await.expect("commit");
        let found: Vec<String> = items
            .into_iter()
            .filter(|i| i.message_type == ty)
            .map(|i| i.xml)
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(Instant::now() < deadline, "{ty} x{n} never came: {found:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn declaration(lrn: &str) -> Vec<u8> {
    CC015C.replace("LRN-NODE-0001", lrn).into_bytes()
}

async fn scenario(db: Db) {
    let Some(mut w) = world(db).await else {
        return;
    };
    let pilot = ReferenceData::pilot().version();
    for c in [KZ, AZ, GE] {
        assert_eq!(w.nodes[&c].running.engine.refdata.versions().held, pilot);
    }
    let (status, refs) = hub_api(&w.hub, "GET", "/api/v1/refs", None).await;
    assert_eq!(status, 200, "{refs}");
    assert_eq!(refs["version"], pilot);

    // 1. A change over the API reaches every node.
    let (status, made) = change(
        &w,
        json!({"restricted_goods": [{"hs_prefix": "8703", "condition": "always-inspect"}]}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let v1 = pilot + 1;
    assert_eq!(made["version"], v1);
    for c in [KZ, AZ, GE] {
        wait_version(&w, c, v1).await;
        let r = w.nodes[&c].running.engine.refdata.current();
        assert_eq!(
            r.restriction("870323").map(|g| g.condition),
            Some(Restriction::AlwaysInspect),
            "{c}"
        );
    }

    // 2. Bad input: refused with its code, nothing changed.
    let (status, e) = change(
        &w,
        json!({"removed": [{"section": "office", "key": "KZ999999"}]}),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("reference.unknown-key")),
        "{e}"
    );
    let (status, e) = change(
        &w,
        json!({"traders": [{"role": "aeo", "tin": "TR1234567890", "name": "x", "country": "TR",
                "status": "active", "valid_from": "2026-01-01"}]}),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("reference.unknown-country")),
        "{e}"
    );
    let (_, refs) = hub_api(&w.hub, "GET", "/api/v1/refs", None).await;
    assert_eq!(refs["version"], v1, "a refused change made no version");
    let (status, changes) = hub_api(
        &w.hub,
        "GET",
        &format!("/api/v1/refs/changes?since={pilot}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let list = changes["changes"].as_array().expect("changes");
    assert_eq!(list.len(), 1, "{changes}");
    assert_eq!(list[0]["actor"], "administrator:admin-test");
    assert_eq!(list[0]["key"], "8703");

    // 3. Registration: applied, overlapping application refused, approved, suspended.
    let app = json!({"role": "aeo", "tin": "KZ111222333444", "name": "Tengiz Cargo LLP",
                     "country": "KZ", "valid_from": "2026-01-01", "valid_until": "2029-12-31"});
    let (status, reg) = hub_api(&w.hub, "POST", "/api/v1/registrations", Some(app.clone())).await;
    assert_eq!(status, 201, "{reg}");
    let id = reg["id"].as_i64().expect("id");
    let (status, e) = hub_api(&w.hub, "POST", "/api/v1/registrations", Some(app)).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (409, Some("registration.overlap")),
        "{e}"
    );
    let (status, e) = hub_api(
        &w.hub,
        "POST",
        "/api/v1/registrations",
        Some(
            json!({"role": "aeo", "tin": "TR1234567890", "name": "x", "country": "TR",
                    "valid_from": "2026-01-01"}),
        ),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("registration.unknown-country")),
        "{e}"
    );
    let (status, r) = hub_api(
        &w.hub,
        "POST",
        &format!("/api/v1/registrations/{id}/decision"),
        Some(json!({"action": "approve"})),
    )
    .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("approved")),
        "{r}"
    );
    let today = chrono::Utc::now().date_naive();
    for c in [KZ, AZ, GE] {
        wait_version(&w, c, v1 + 1).await;
        assert!(
            w.nodes[&c]
                .running
                .engine
                .refdata
                .current()
                .is_aeo("KZ111222333444", today)
        );
    }
    let (status, e) = hub_api(
        &w.hub,
        "POST",
        &format!("/api/v1/registrations/{id}/decision"),
        Some(json!({"action": "suspend"})),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("registration.invalid")),
        "reason required: {e}"
    );
    let (status, r) = hub_api(
        &w.hub,
        "POST",
        &format!("/api/v1/registrations/{id}/decision"),
        Some(json!({"action": "suspend", "reason": "audit findings"})),
    )
    .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("suspended")),
        "{r}"
    );
    for c in [KZ, AZ, GE] {
        wait_version(&w, c, v1 + 2).await;
        let r = w.nodes[&c].running.engine.refdata.current();
        assert!(!r.is_aeo("KZ111222333444", today), "{c}: suspended AEO");
        assert!(r.withdrawn_registration("KZ111222333444").is_some(), "{c}");
    }
    assert_eq!(
        cats_hub::refdata::holder_eligible(
            &cats_hub::refdata::current(&w.hub.services),
            "KZ111222333444"
        ),
        Err(message_catalog::reference::GuaranteeRefusal::HolderNotCovered)
    );
    let (_, one) = hub_api(&w.hub, "GET", &format!("/api/v1/registrations/{id}"), None).await;
    let steps: Vec<&str> = one["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["action"].as_str())
        .collect();
    assert_eq!(steps, ["apply", "approve", "suspend"]);

    // 3b. By message: a CA003C through the KZ node reaches the hub; approved there, the
    //     CA004C comes back on KZ's national stream; an overlapping one is refused at once.
    let kz = &w.nodes[&KZ].running.engine;
    let a = kz
        .submit(ca003c("KZ-APP-1", "KZ555000111222").as_bytes())
        .await
        .expect("submit");
    assert_eq!(a.answer, Answer::Accepted, "{:?}", a.answer);
    let deadline = Instant::now() + WAIT;
    let id = loop {
        let (_, list) = hub_api(&w.hub, "GET", "/api/v1/registrations", None).await;
        let found = list["registrations"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["message_id"] == "KZ-APP-1").cloned());
        if let Some(r) = found {
            assert_eq!(r["source"], "node:KZ");
            assert_eq!(r["status"], "pending");
            break r["id"].as_i64().expect("id");
        }
        assert!(
            Instant::now() < deadline,
            "the CA003C never reached the hub: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, r) = hub_api(
        &w.hub,
        "POST",
        &format!("/api/v1/registrations/{id}/decision"),
        Some(json!({"action": "approve"})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let a = kz
        .submit(ca003c("KZ-APP-2", "KZ555000111222").as_bytes())
        .await
        .expect("submit");
    assert_eq!(a.answer, Answer::Accepted, "{:?}", a.answer);
    let decisions = wait_stream(kz, "CA004C", 2).await;
    assert!(
        decisions[0].contains("<decision>approved</decision>"),
        "{}",
        decisions[0]
    );
    assert!(
        decisions[1].contains("<decision>refused</decision>"),
        "{}",
        decisions[1]
    );
    assert!(
        decisions[1].contains("registration.overlap"),
        "{}",
        decisions[1]
    );
    let v3 = v1 + 3;
    for c in [KZ, AZ, GE] {
        wait_version(&w, c, v3).await;
        assert!(
            w.nodes[&c]
                .running
                .engine
                .refdata
                .current()
                .is_aeo("KZ555000111222", today)
        );
    }

    // 4. GE offline: two changes wait for it and arrive in order when it returns.
    let ge = w.nodes.remove(&GE).expect("GE");
    ge.trigger.trigger();
    ge.running.stopped().await;
    for prefix in ["8704", "8705"] {
        let (status, made) = change(
            &w,
            json!({"restricted_goods": [{"hs_prefix": prefix, "condition": "licence-required"}]}),
        )
        .await;
        assert_eq!(status, 201, "{made}");
    }
    let v5 = v3 + 2;
    for c in [KZ, AZ] {
        wait_version(&w, c, v5).await;
    }
    w.nodes.insert(GE, start_node(ge.config).await);
    wait_version(&w, GE, v5).await;
    assert!(w.nodes[&GE].running.engine.refdata.behind().is_none());

    // 5. KZ learns of a version it does not hold (v5 + 2 announced before v5 + 1): it is
    //    behind, refuses a declaration, and accepts one once the versions in between came.
    let hub_signer = Signer::load(
        &w.files.dir.join("signer-hub.pem"),
        &w.files.dir.join("signer-hub.key.pem"),
    )
    .expect("hub signer");
    let ahead = Update {
        version: v5 + 2,
        previous: Some(v5 + 1),
        effective: chrono::Utc::now().naive_utc(),
        change: Change {
            restricted_goods: vec![RestrictedGoods {
                hs_prefix: "8706".into(),
                condition: Restriction::AlwaysInspect,
            }],
            ..Change::default()
        },
    };
    let now = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).expect("now");
    let header = UpdateHeader {
        sender: "CATS.HUB".into(),
        recipient: "NTA.KZ".into(),
        message_id: "HUB-TEST-AHEAD".into(),
        prepared_at: now.naive_utc(),
        correlation: None,
    };
    let body = message_catalog::codec::encode(&update_message(&header, &ahead));
    let sealed = hub_signer
        .seal(
            &EnvelopeHeaderFields {
                message_id: "HUB-TEST-AHEAD".into(),
                message_type: "CA005C".into(),
                sender: PeerIdentity::Hub,
                recipient: PeerIdentity::Node(KZ),
                correlation_id: None,
                mrn: None,
                prepared_at: now,
            },
            &body,
        )
        .expect("seal");
    let kz = &w.nodes[&KZ].running.engine;
    kz.deliver(Delivery::new(
        PeerIdentity::Hub,
        "HUB-TEST-AHEAD".into(),
        None,
        bytes::Bytes::from(sealed),
        false,
        Box::new(NoAck),
    ))
    .await
    .expect("delivered");
    let behind = kz.refdata.behind().expect("KZ knows it is behind");
    assert_eq!((behind.held, behind.known), (v5, v5 + 2));
    let refused = kz
        .submit(&declaration("LRN-REF-BEHIND"))
        .await
        .expect("submit");
    match &refused.answer {
        Answer::Rejected { xml, code, .. } => {
            assert_eq!(code, "refdata.behind");
            assert!(xml.contains("<errorReason>REFDATA</errorReason>"), "{xml}");
        }
        other => panic!("a node that is behind accepted a declaration: {other:?}"),
    }
    for prefix in ["8707", "8708"] {
        let (status, made) = change(
            &w,
            json!({"restricted_goods": [{"hs_prefix": prefix, "condition": "licence-required"}]}),
        )
        .await;
        assert_eq!(status, 201, "{made}");
    }
    wait_version(&w, KZ, v5 + 2).await;
    let kz = &w.nodes[&KZ].running.engine;
    assert!(kz.refdata.behind().is_none());
    // The hub's version v5 + 2 is what KZ holds, not what was announced early.
    assert!(kz.refdata.current().restriction("870890").is_some());
    assert!(kz.refdata.current().restriction("870690").is_none());
    let accepted = kz
        .submit(&declaration("LRN-REF-CAUGHT"))
        .await
        .expect("submit");
    assert!(
        !matches!(
            accepted.answer,
            Answer::Rejected { .. } | Answer::Invalid { .. }
        ),
        "refused after catching up: {:?}",
        accepted.answer
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reference_data_reaches_every_node_on_sqlite() {
    scenario(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reference_data_reaches_every_node_on_postgres() {
    scenario(Db::Postgres).await;
}

/// One plain HTTP/1.1 GET to `node`'s national API with the national-system token: (status,
/// head, body).
async fn node_get(node: &Node, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(node.running.http_addr)
        .await
        .expect("connect to the node API");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\
         Authorization: Bearer {NATIONAL_TOKEN}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A trader's CC034C (guarantee balance query) as the national system sends it to its node.
fn cc034c(id: &str, requester: &str, grn: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ncts:CC034C xmlns:ncts="http://ncts.dgtaxud.ec">
  <messageSender>{requester}</messageSender>
  <messageRecipient>NTA.KZ</messageRecipient>
  <preparationDateAndTime>2026-11-21T09:30:00</preparationDateAndTime>
  <messageIdentification>{id}</messageIdentification>
  <messageType>CC034C</messageType>
  <Requester><identificationNumber>{requester}</identificationNumber><role>1</role></Requester>
  <GuaranteeReference>
    <sequenceNumber>1</sequenceNumber>
    <GRN>{grn}</GRN>
    <GuaranteeQuery><queryIdentifier>1</queryIdentifier></GuaranteeQuery>
    <AccessCode><accessCode>AC01</accessCode></AccessCode>
  </GuaranteeReference>
</ncts:CC034C>"#
    )
    .into_bytes()
}

/// Waits until every node holds version `version` and returns what `check` says of each copy.
async fn on_every_node<T: std::fmt::Debug + PartialEq>(
    w: &World,
    version: u64,
    check: impl Fn(&ReferenceData) -> T,
) -> T {
    let mut seen = Vec::new();
    for c in [KZ, AZ, GE] {
        wait_version(w, c, version).await;
        seen.push(check(&w.nodes[&c].running.engine.refdata.current()));
    }
    let first = seen.remove(0);
    assert!(seen.iter().all(|s| *s == first), "{first:?} / {seen:?}");
    first
}

/// An insurer's registration, its contract and a refused balance query, end to end: the insurer
/// applies over the hub API, an administrator approves, and every node's copy lists it as an
/// approved insurer; with a credential it submits a contract, which on approval is in every
/// node's copy, and then suspended there too. A suspended insurer, or one refused, may not
/// submit. A balance query the hub refuses reaches the national system as a CC917C, and the
/// node API answers it at once with the refusal's code.
async fn insurers_contracts_and_refused_queries(db: Db) {
    use cats_hub::insurer::{Principal, issue_credential};
    use message_catalog::ids::{CustomsOfficeRef, Grn, Tin};
    use message_catalog::reference::{ContractStatus, TraderStatus};
    let Some(w) = world(db).await else {
        return;
    };
    let pilot = ReferenceData::pilot().version();
    let services = &w.hub.services;
    let credential = |p: Principal| async move {
        issue_credential(&services.store, &cats_hub::refdata::current(services), &p).await
    };
    let admin = credential(Principal::Administrator("ops".into()))
        .await
        .expect("administrator");

    // The insurer applies; before the approval it is no insurer.
    let tin = "KZ770011223344";
    let (status, reg) = hub_api(
        &w.hub,
        "POST",
        "/api/v1/registrations",
        Some(
            json!({"role": "insurer", "tin": tin, "name": "Steppe Mutual Insurance JSC",
                    "country": "KZ", "valid_from": "2026-01-01"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    let reg_id = reg["id"].as_i64().expect("id");
    let e = credential(Principal::Insurer(tin.into()))
        .await
        .expect_err("not yet an insurer");
    assert_eq!(e.code(), "contract.insurer");
    let (status, r) = hub_api(
        &w.hub,
        "POST",
        &format!("/api/v1/registrations/{reg_id}/decision"),
        Some(json!({"action": "approve"})),
    )
    .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("approved")),
        "{r}"
    );
    let insurer_tin = Tin::parse(tin).expect("TIN");
    let standing = |r: &ReferenceData| r.insurer(&insurer_tin).map(|i| i.status);
    assert_eq!(
        on_every_node(&w, pilot + 1, standing).await,
        Some(TraderStatus::Active)
    );

    // With a credential it submits a contract; approved, the contract is in every copy.
    let token = credential(Principal::Insurer(tin.into()))
        .await
        .expect("an approved insurer gets a credential");
    let office = CustomsOfficeRef::parse("KZ000101").expect("office");
    let grn = Grn::generate(26, &office, 990_001)
        .expect("GRN")
        .to_string();
    let contract = |id: &str| {
        json!({"contract_id": id, "grn": grn, "holders": ["KZ555000111222"],
               "valid_from": "2026-01-01", "valid_until": "2028-12-31",
               "insured_amount": "50000.00", "currency": "USD",
               "terms": "Comprehensive guarantee, KZ-AZ-GE."})
    };
    let (status, sub) = hub_api_as(
        &w.hub,
        Some(&token),
        "POST",
        "/api/v1/insurance-contracts",
        Some(contract("KZ-SM-2026-0001")),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let sub_id = sub["submission_id"].as_i64().expect("submission");
    let (status, d) = hub_api_as(
        &w.hub,
        Some(&admin),
        "POST",
        &format!("/api/v1/insurance-contracts/submissions/{sub_id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{d}");
    let held = |r: &ReferenceData| {
        r.contract("KZ-SM-2026-0001")
            .map(|c| (c.grn.to_string(), c.insurer.to_string(), c.status))
    };
    assert_eq!(
        on_every_node(&w, pilot + 2, held).await,
        Some((grn.clone(), tin.to_owned(), ContractStatus::Active))
    );

    // Suspended by the administrator: suspended in every copy.
    let (status, step) = hub_api_as(
        &w.hub,
        Some(&admin),
        "POST",
        "/api/v1/insurance-contracts/KZ-SM-2026-0001/suspend",
        Some(json!({"reason": "premium unpaid"})),
    )
    .await;
    assert_eq!(status, 200, "{step}");
    assert_eq!(
        on_every_node(&w, pilot + 3, held).await.map(|c| c.2),
        Some(ContractStatus::Suspended)
    );

    // A suspended insurer may not submit, nor have a pending contract approved; nor may an
    // applicant that was refused submit.
    let pending_grn = Grn::generate(26, &office, 990_003)
        .expect("GRN")
        .to_string();
    let (status, pending) = hub_api_as(
        &w.hub,
        Some(&token),
        "POST",
        "/api/v1/insurance-contracts",
        Some(json!({"contract_id": "KZ-SM-2026-0003", "grn": pending_grn,
                    "holders": ["KZ555000111222"], "valid_from": "2026-01-01",
                    "valid_until": "2027-12-31", "insured_amount": "1000.00",
                    "currency": "USD"})),
    )
    .await;
    assert_eq!(status, 201, "{pending}");
    let (status, r) = hub_api(
        &w.hub,
        "POST",
        &format!("/api/v1/registrations/{reg_id}/decision"),
        Some(json!({"action": "suspend", "reason": "solvency review"})),
    )
    .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("suspended")),
        "{r}"
    );
    assert_eq!(
        on_every_node(&w, pilot + 4, standing).await,
        Some(TraderStatus::Suspended)
    );
    let (status, e) = hub_api_as(
        &w.hub,
        Some(&token),
        "POST",
        "/api/v1/insurance-contracts",
        Some(contract("KZ-SM-2026-0002")),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("contract.insurer")),
        "a suspended insurer submits nothing: {e}"
    );
    let (status, e) = hub_api_as(
        &w.hub,
        Some(&admin),
        "POST",
        &format!(
            "/api/v1/insurance-contracts/submissions/{}/approve",
            pending["submission_id"]
        ),
        None,
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("contract.insurer")),
        "a suspended insurer's contract is not approved: {e}"
    );
    let (status, reg) = hub_api(
        &w.hub,
        "POST",
        "/api/v1/registrations",
        Some(
            json!({"role": "insurer", "tin": "GE405000111", "name": "Mtskheta Risk LLC",
                    "country": "GE", "valid_from": "2026-01-01"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    let (status, r) = hub_api(
        &w.hub,
        "POST",
        &format!("/api/v1/registrations/{}/decision", reg["id"]),
        Some(json!({"action": "refuse", "reason": "no licence"})),
    )
    .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("refused")),
        "{r}"
    );
    let e = credential(Principal::Insurer("GE405000111".into()))
        .await
        .expect_err("a refused applicant is no insurer");
    assert_eq!(e.code(), "contract.insurer");
    let (_, refs) = hub_api(&w.hub, "GET", "/api/v1/refs", None).await;
    assert_eq!(refs["version"], pilot + 4, "a refusal makes no version");

    // A balance query the hub refuses: a CC917C to the national system, at once over the API.
    let kz = &w.nodes[&KZ];
    let unknown = Grn::generate(26, &office, 990_002)
        .expect("GRN")
        .to_string();
    let asked = Instant::now();
    let (status, head, body) = node_get(
        kz,
        &format!("/api/v1/guarantees/{unknown}/balance?requester=KZ555000111222"),
    )
    .await;
    assert_eq!(status, 400, "{head}\n{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the refusal came after {:?}",
        asked.elapsed()
    );
    assert!(
        head.contains("x-cats-error-code: guarantee.unknown-grn"),
        "{head}"
    );
    assert!(body.contains("<messageType>CC917C</messageType>"), "{body}");
    assert!(body.contains("no insurance contract has GRN"), "{body}");
    let engine = &kz.running.engine;
    let sent = engine
        .submit(&cc034c("KZ-BQ-1", "AZ1234567890", "26KZ000101CG00029"))
        .await
        .expect("submit");
    assert_eq!(sent.answer, Answer::Accepted);
    let refusals = wait_stream(engine, "CC917C", 2).await;
    let refusal = refusals
        .iter()
        .find(|x| x.contains("<correlationIdentifier>KZ-BQ-1</correlationIdentifier>"))
        .unwrap_or_else(|| panic!("no CC917C answers KZ-BQ-1: {refusals:?}"));
    assert!(
        refusal.contains("<messageRecipient>AZ1234567890</messageRecipient>"),
        "{refusal}"
    );
    assert!(
        refusal.contains("<messageSender>NTA.KZ</messageSender>"),
        "{refusal}"
    );
    assert!(
        refusal.contains("guarantee.holder-not-covered"),
        "{refusal}"
    );
    assert!(
        refusal.contains("/CC034C/GuaranteeReference[1]/GRN"),
        "{refusal}"
    );
    // A query the hub answers still gets its CC037C.
    let (status, head, body) = node_get(
        kz,
        "/api/v1/guarantees/26KZ000101CG00029/balance?requester=KZ555000111222",
    )
    .await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.contains("<messageType>CC037C</messageType>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insurers_contracts_and_refused_queries_on_sqlite() {
    insurers_contracts_and_refused_queries(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insurers_contracts_and_refused_queries_on_postgres() {
    insurers_contracts_and_refused_queries(Db::Postgres).await;
}

// ------------------------------------------------ the same distribution over AMQP

/// This binary's RabbitMQ node (ports 26715 / 15685 / 25685), started by
/// `deploy/rabbitmq/start-node.sh` with a PKI of its own under `$TMPDIR/cats-refdata-test`;
/// `None` outside CI when it cannot start (under `CI=true` that fails the test).
fn broker() -> Option<std::path::PathBuf> {
    const PORT: u16 = 26715;
    let root = std::env::temp_dir().join("cats-refdata-test");
    let certs = root.join("certs");
    let started = DevPki::init(&certs, &[KZ, AZ, GE], false)
        .map_err(|e| format!("cannot create the test PKI: {e}"))
        .and_then(|_| {
            std::process::Command::new(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../deploy/rabbitmq/start-node.sh"),
            )
            .env("CATS_RABBITMQ_NODE_NAME", "cats-refdata@localhost")
            .env("CATS_RABBITMQ_AMQPS_PORT", PORT.to_string())
            .env("CATS_RABBITMQ_MANAGEMENT_PORT", "15685")
            .env("CATS_RABBITMQ_DIST_PORT", "25685")
            .arg("--state")
            .arg(root.join("rabbitmq"))
            .arg("--certs")
            .arg(&certs)
            .output()
            .map_err(|e| format!("cannot run start-node.sh: {e}"))
        })
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "start-node.sh failed: {}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ))
            }
        });
    match started {
        Ok(()) => Some(certs),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "RabbitMQ is required under CI=true: {e}"
            );
            eprintln!("\n!!!!! SKIPPED: no RabbitMQ for the AMQP case: {e}\n");
            None
        }
    }
}

/// Empties the hub's and the nodes' queues left by an earlier run of this binary.
async fn purge(certs: &std::path::Path) {
    use cats_transport_amqp::lapin::options::QueuePurgeOptions;
    use cats_transport_amqp::{AmqpConfig, TlsIdentity, raw_connection};
    for (identity, queue) in [
        ("hub-client", "cats.hub.in"),
        ("node-kz", "cats.node.KZ"),
        ("node-az", "cats.node.AZ"),
        ("node-ge", "cats.node.GE"),
    ] {
        let tls = TlsIdentity::from_pki_dir(certs, identity).expect("the test PKI");
        let Ok(connection) =
            raw_connection(&AmqpConfig::new("localhost", 26715, tls), "test-purge").await
        else {
            continue;
        };
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_purge(queue.into(), QueuePurgeOptions::default())
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}

/// The hub and the three nodes on the broker's AMQP, SQLite.
async fn amqp_world() -> Option<World> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let certs = broker()?;
    purge(&certs).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(&certs, &[KZ, AZ, GE], false).expect("the broker's PKI");
    let mut raw = cats_hub::RawConfig::default();
    raw.store.url = format!("sqlite://{}", dir.path().join("hub.db").display());
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.kind = "amqp".into();
    raw.transport.amqp.url = "amqps://localhost:26715/cats".into();
    raw.transport.amqp.operation_timeout_ms = 5_000;
    raw.transport.amqp.reconnect_max_ms = 1_000;
    raw.certs.dir = files.dir.clone();
    let (hub_trigger, shutdown) = shutdown::channel();
    let hub = cats_hub::start(raw.resolve().expect("hub config"), shutdown)
        .await
        .expect("hub starts");
    let mut nodes = BTreeMap::new();
    for c in [KZ, AZ, GE] {
        let mut raw = RawConfig::default();
        raw.node.country = c.to_string();
        raw.store.url = format!(
            "sqlite://{}",
            dir.path()
                .join(format!("node_{}.db", c.as_str().to_ascii_lowercase()))
                .display()
        );
        raw.http.listen = "127.0.0.1:0".into();
        raw.transport.kind = "amqp".into();
        raw.transport.amqp.host = "localhost".into();
        raw.transport.amqp.port = 26715;
        raw.transport.amqp.vhost = "cats".into();
        raw.certs.dir = files.dir.clone();
        nodes.insert(c, start_node(raw).await);
    }
    Some(World {
        _dir: dir,
        files,
        hub,
        _hub_trigger: hub_trigger,
        nodes,
    })
}

/// On AMQP: a change reaches all three nodes; GE offline misses two changes and catches up,
/// in order, when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amqp_reference_data_reaches_every_node_and_an_offline_node_catches_up() {
    let Some(mut w) = amqp_world().await else {
        return;
    };
    let pilot = ReferenceData::pilot().version();
    let (status, made) = change(
        &w,
        json!({"restricted_goods": [{"hs_prefix": "8703", "condition": "always-inspect"}]}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    for c in [KZ, AZ, GE] {
        wait_version(&w, c, pilot + 1).await;
        assert_eq!(
            w.nodes[&c]
                .running
                .engine
                .refdata
                .current()
                .restriction("870323")
                .map(|g| g.condition),
            Some(Restriction::AlwaysInspect),
            "{c}"
        );
    }

    let ge = w.nodes.remove(&GE).expect("GE");
    ge.trigger.trigger();
    ge.running.stopped().await;
    for prefix in ["8704", "8705"] {
        let (status, made) = change(
            &w,
            json!({"restricted_goods": [{"hs_prefix": prefix, "condition": "licence-required"}]}),
        )
        .await;
        assert_eq!(status, 201, "{made}");
    }
    for c in [KZ, AZ] {
        wait_version(&w, c, pilot + 3).await;
    }
    w.nodes.insert(GE, start_node(ge.config).await);
    wait_version(&w, GE, pilot + 3).await;
    let ge = &w.nodes[&GE].running.engine.refdata;
    assert!(ge.behind().is_none());
    for hs in ["870323", "870423", "870523"] {
        assert!(ge.current().restriction(hs).is_some(), "GE lacks {hs}");
    }
    for (_, n) in std::mem::take(&mut w.nodes) {
        n.trigger.trigger();
        n.running.stopped().await;
    }
}
