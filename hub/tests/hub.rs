//! The hub end to end on the direct link, with real TLS on loopback (certificates from
//! `DevPki::init` in a temporary directory), on SQLite and on PostgreSQL: three node identities
//! (KZ, AZ, GE) send signed CD messages through the hub started by `cats_hub::start`.
//!
//! PostgreSQL: `postgres://postgres@127.0.0.1:5432/postgres` (override with
//! `CATS_TEST_POSTGRES`), a fresh database per test. Unreachable: the test fails when
//! `CI=true`, else it says loudly that it did not run.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use cats_hub::journal;
use cats_hub::registry;
use cats_hub::{RawConfig, RunningHub};
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport::direct::{DirectNode, LinkConfig, NodeTls};
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_trust::pki::{DevPki, DevPkiFiles};
use cats_trust::{EnvelopeHeaderFields, Signer, TrustStore, Verifier};
use message_catalog::Message;
use message_catalog::codec::{Limits, decode};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CD001C: &str = include_str!("data/cd001c.xml");
const CD050C: &str = include_str!("data/cd050c.xml");
const CD203C: &str = include_str!("data/cd203c.xml");
const MRN: &str = "26KZ000101000001J0";

#[derive(Debug, Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

async fn database_url(db: Db, dir: &std::path::Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite://{}", dir.join("hub.db").display())),
        Db::Postgres => {
            let base = std::env::var("CATS_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
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
            let name = format!("cats_hub_{:016x}", rand::random::<u64>());
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await
                .expect("create database");
            let i = base.rfind('/').expect("database URL has a path");
            Some(format!("{}/{name}", &base[..i]))
        }
    }
}

struct Nodes {
    links: BTreeMap<CountryCode, DirectNode>,
    signers: BTreeMap<CountryCode, Signer>,
    verifiers: BTreeMap<CountryCode, Verifier>,
}

struct World {
    _dir: tempfile::TempDir,
    files: DevPkiFiles,
    url: String,
    hub: RunningHub,
    trigger: ShutdownTrigger,
    nodes: Nodes,
}

fn link_config() -> LinkConfig {
    LinkConfig {
        heartbeat: Duration::from_secs(1),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
        send_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(2),
        ..LinkConfig::default()
    }
}

async fn world(db: Db) -> Option<World> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let countries = [CountryCode::KZ, CountryCode::AZ, CountryCode::GE];
    let files = DevPki::init(&dir.path().join("pki"), &countries, false).expect("dev PKI");
    let url = database_url(db, dir.path()).await?;
    let mut raw = RawConfig::default();
    raw.store.url = url.clone();
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.listen = "127.0.0.1:0".into();
    raw.certs.dir = files.dir.clone();
    let config = raw.resolve().expect("config resolves");
    let (trigger, shutdown) = shutdown::channel();
    let hub = cats_hub::start(config, shutdown).await.expect("hub starts");

    let mut nodes = Nodes {
        links: BTreeMap::new(),
        signers: BTreeMap::new(),
        verifiers: BTreeMap::new(),
    };
    for c in countries {
        let node = files.nodes.get(&c).expect("node certificate");
        let mut tls = NodeTls::from_files(&files.ca.cert, &node.cert, &node.key).expect("node TLS");
        tls.server_name = "localhost".into();
        let link = DirectNode::connect(
            hub.direct_addr
                .expect("the hub runs the direct link")
                .to_string(),
            tls,
            link_config(),
        )
        .expect("node link");
        link.wait_connected(Duration::from_secs(10))
            .await
            .expect("node connects");
        nodes.links.insert(c, link);
        let signer = files.signers.get(&c).expect("signer");
        nodes.signers.insert(
            c,
            Signer::load(&signer.cert, &signer.key).expect("signer loads"),
        );
        let trust = TrustStore::load(&files.ca.cert, Some(&files.allow_list)).expect("trust");
        nodes.verifiers.insert(
            c,
            Verifier::new(trust, Duration::from_secs(300))
                .with_local_identity(PeerIdentity::Node(c)),
        );
    }
    Some(World {
        _dir: dir,
        files,
        url,
        hub,
        trigger,
        nodes,
    })
}

fn body(template: &str, id: &str, sender: &str, mrn: &str) -> Vec<u8> {
    template
        .replace("CD001C-MESS-0001", id)
        .replace("CD050C-MESS-0001", id)
        .replace(
            "<messageSender>NTA.KZ</messageSender>",
            &format!("<messageSender>{sender}</messageSender>"),
        )
        .replace("26KZ000101000001J0", mrn)
        .into_bytes()
}

fn seal(
    signer: &Signer,
    sender: CountryCode,
    to: CountryCode,
    id: &str,
    ty: &str,
    mrn: &str,
    body: &[u8],
) -> Bytes {
    seal_to(signer, sender, PeerIdentity::Node(to), id, ty, mrn, body)
}

fn seal_to(
    signer: &Signer,
    sender: CountryCode,
    recipient: PeerIdentity,
    id: &str,
    ty: &str,
    mrn: &str,
    body: &[u8],
) -> Bytes {
    let fields = EnvelopeHeaderFields {
        message_id: id.into(),
        message_type: ty.into(),
        sender: PeerIdentity::Node(sender),
        recipient,
        correlation_id: None,
        mrn: Some(mrn.into()),
        prepared_at: chrono::Utc::now(),
    };
    Bytes::from(signer.seal(&fields, body).expect("seal"))
}

impl World {
    async fn send(&self, from: CountryCode, id: &str, wire: Bytes) {
        self.nodes.links[&from]
            .send(Outbound {
                message_id: id.into(),
                destination: Destination::Hub,
                partition_key: Some(MRN.into()),
                bytes: wire,
            })
            .await
            .expect("hub takes the message");
    }

    /// Sends a message `from` signs for itself.
    async fn send_signed(
        &self,
        from: CountryCode,
        to: CountryCode,
        id: &str,
        ty: &str,
        body: &[u8],
    ) -> Bytes {
        let wire = seal(&self.nodes.signers[&from], from, to, id, ty, MRN, body);
        self.send(from, id, wire.clone()).await;
        wire
    }

    /// The next envelope delivered to `node`: verified as the node would, acked.
    async fn next(&self, node: CountryCode) -> (Bytes, Message) {
        let d = tokio::time::timeout(Duration::from_secs(15), self.nodes.links[&node].receive())
            .await
            .expect("a delivery arrives")
            .expect("receive");
        assert_eq!(d.from, PeerIdentity::Hub);
        let wire = d.bytes.clone();
        let opened = self.nodes.verifiers[&node]
            .open(&wire, &PeerIdentity::Hub, chrono::Utc::now())
            .expect("the node accepts what the hub delivers");
        let message = decode(opened.body, &Limits::default()).expect("body decodes");
        d.ack().await.expect("ack");
        (wire, message)
    }

    async fn nothing_for(&self, node: CountryCode) {
        let got = tokio::time::timeout(
            Duration::from_millis(700),
            self.nodes.links[&node].receive(),
        )
        .await;
        assert!(got.is_err(), "{node} received something it should not have");
    }

    async fn journal_size(&self) -> i64 {
        journal::size(&self.hub.services.store)
            .await
            .expect("journal size")
    }

    /// A fresh credential for `role` at the hub.
    async fn token(&self, role: cats_hub::access::Role) -> String {
        cats_hub::access::issue(&self.hub.services.store, role, "hub-test")
            .await
            .expect("credential")
            .token
    }

    /// `GET path` as an operator.
    async fn http_get(&self, path: &str) -> (u16, String) {
        let token = self.token(cats_hub::access::Role::Operator).await;
        self.http("GET", path, Some(&token), "").await
    }

    /// One request with an optional bearer token and a JSON body (empty for none).
    async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.hub.http_addr)
            .await
            .expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        s.write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n{auth}\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        (status, body.to_owned())
    }
}

fn functional_errors(m: &Message) -> Vec<(String, String)> {
    match m {
        Message::CD906C(n) => n
            .functional_error
            .iter()
            .map(|e| (e.error_pointer.clone(), format!("{:?}", e.error_code)))
            .collect(),
        other => panic!("expected a CD906C, got {}", other.message_type()),
    }
}

fn xml_errors(m: &Message) -> Vec<(Option<String>, String)> {
    match m {
        Message::CD917C(n) => n
            .xml_error
            .iter()
            .map(|e| (e.error_pointer.clone(), e.error_text.clone()))
            .collect(),
        other => panic!("expected a CD917C, got {}", other.message_type()),
    }
}

async fn scenario(db: Db) {
    let Some(w) = world(db).await else { return };
    let (kz, az, ge) = (CountryCode::KZ, CountryCode::AZ, CountryCode::GE);

    // AAR KZ → GE: GE receives the very bytes KZ signed.
    let aar = body(CD001C, "KZ-AAR-1", "NTA.KZ", MRN);
    let sent = w.send_signed(kz, ge, "KZ-AAR-1", "CD001C", &aar).await;
    let (got, m) = w.next(ge).await;
    assert_eq!(got, sent, "the hub forwards the node's envelope unchanged");
    assert_eq!(m.message_type(), "CD001C");

    // ATR KZ → AZ (office of transit AZ000101).
    let atr = body(CD050C, "KZ-ATR-1", "NTA.KZ", MRN);
    let sent = w.send_signed(kz, az, "KZ-ATR-1", "CD050C", &atr).await;
    let (got, m) = w.next(az).await;
    assert_eq!(got, sent);
    assert_eq!(m.message_type(), "CD050C");
    assert_eq!(w.journal_size().await, 2);

    // Guarantee use (CD203C) is for the hub's ledger: journalled, forwarded to nobody, and
    // answered by the hub's CD205C (the ledger itself is tested in tests/guarantee.rs).
    let guarantee = CD203C.replace("CD203C-MESS-0001", "KZ-GUA-1").into_bytes();
    let wire = seal_to(
        &w.nodes.signers[&kz],
        kz,
        PeerIdentity::Hub,
        "KZ-GUA-1",
        "CD203C",
        MRN,
        &guarantee,
    );
    w.send(kz, "KZ-GUA-1", wire).await;
    let (_, answer) = w.next(kz).await;
    assert_eq!(answer.message_type(), "CD205C");
    let entry = journal::entry(&w.hub.services.store, 3)
        .await
        .expect("read")
        .expect("entry 3");
    assert_eq!(entry.entry.message_type, "CD203C");
    assert_eq!(entry.entry.recipients, vec!["hub".to_owned()]);
    assert_eq!(entry.entry.status, journal::Status::Accepted);
    w.nothing_for(az).await;

    // AZ sends a message whose messageSender is GE: CD906C to AZ, nothing to GE.
    let forged = body(CD001C, "AZ-FORGED-1", "NTA.GE", MRN);
    w.send_signed(az, ge, "AZ-FORGED-1", "CD001C", &forged)
        .await;
    let (_, nack) = w.next(az).await;
    let errors = functional_errors(&nack);
    assert!(
        errors
            .iter()
            .any(|(p, c)| p == "/CD001C/messageSender" && c.contains("14")),
        "{errors:?}"
    );
    // AZ's transport delivering an envelope signed and sent as GE: CD917C to AZ.
    let ge_body = body(CD001C, "GE-STOLEN-1", "NTA.GE", MRN);
    let stolen = seal(
        &w.nodes.signers[&ge],
        ge,
        ge,
        "GE-STOLEN-1",
        "CD001C",
        MRN,
        &ge_body,
    );
    w.send(az, "GE-STOLEN-1", stolen).await;
    let (_, nack) = w.next(az).await;
    let errors = xml_errors(&nack);
    assert!(
        errors
            .iter()
            .any(|(_, t)| t.starts_with("envelope.transport-mismatch")),
        "{errors:?}"
    );

    // Schema error: CD917C with the pointer of the unknown element.
    let bad = String::from_utf8(body(CD001C, "KZ-BAD-XML", "NTA.KZ", MRN))
        .expect("utf-8")
        .replace(
            "<messageType>CD001C</messageType>",
            "<messageType>CD001C</messageType>\n  <colour>red</colour>",
        );
    w.send_signed(kz, ge, "KZ-BAD-XML", "CD001C", bad.as_bytes())
        .await;
    let (_, nack) = w.next(kz).await;
    let errors = xml_errors(&nack);
    assert!(
        errors
            .iter()
            .any(|(p, _)| p.as_deref().is_some_and(|p| p.contains("colour"))),
        "{errors:?}"
    );

    // Rules error: an MRN whose check digit is wrong gives CD906C code 93 at the MRN.
    let bad_mrn = "26KZ000101000001J1";
    let rules = body(CD001C, "KZ-BAD-MRN", "NTA.KZ", bad_mrn);
    let wire = seal(
        &w.nodes.signers[&kz],
        kz,
        ge,
        "KZ-BAD-MRN",
        "CD001C",
        bad_mrn,
        &rules,
    );
    w.send(kz, "KZ-BAD-MRN", wire).await;
    let (_, nack) = w.next(kz).await;
    let errors = functional_errors(&nack);
    assert!(
        errors
            .iter()
            .any(|(p, c)| p == "/CD001C/TransitOperation/MRN" && c.contains("93")),
        "{errors:?}"
    );

    // Duplicate: the same AAR again is acknowledged, not journalled or routed twice.
    let size = w.journal_size().await;
    w.send_signed(kz, ge, "KZ-AAR-1", "CD001C", &aar).await;
    assert_eq!(
        w.journal_size().await,
        size,
        "a duplicate adds no journal entry"
    );
    w.nothing_for(ge).await;

    // Same identification, other body: CD906C code 26.
    let other = body(CD001C, "KZ-AAR-1", "NTA.KZ", MRN);
    let other = String::from_utf8(other)
        .expect("utf-8")
        .replace("Seamless steel pipes", "Steel sheets");
    w.send_signed(kz, ge, "KZ-AAR-1", "CD001C", other.as_bytes())
        .await;
    let (_, nack) = w.next(kz).await;
    let errors = functional_errors(&nack);
    assert!(errors.iter().any(|(_, c)| c.contains("26")), "{errors:?}");

    // Registry: the movement with its history.
    let detail = registry::movement(&w.hub.services.store, MRN)
        .await
        .expect("query")
        .expect("movement known");
    assert_eq!(detail.summary.state, "released");
    assert_eq!(detail.summary.departure_office.as_deref(), Some("KZ000101"));
    assert!(
        detail
            .summary
            .route
            .iter()
            .any(|r| r.office == "AZ000101" && r.role == "transit")
    );
    let accepted: Vec<&str> = detail
        .history
        .iter()
        .filter(|h| h.status == "accepted")
        .map(|h| h.message_type.as_str())
        .collect();
    assert_eq!(accepted, vec!["CD001C", "CD050C", "CD203C"]);
    // The life cycle folded per receiving node: GE (destination) and AZ (transit).
    let countries: Vec<&str> = detail.nodes.iter().map(|n| n.country.as_str()).collect();
    assert_eq!(countries, vec!["AZ", "GE"], "{:?}", detail.nodes);
    assert!(
        detail
            .nodes
            .iter()
            .all(|n| n.digest.len() == 64 && n.applied == 1)
    );
    let (status, json) = w.http_get(&format!("/api/v1/movements/{MRN}")).await;
    assert_eq!(status, 200, "{json}");
    assert!(json.contains("\"KZ-ATR-1\""), "{json}");
    let (status, json) = w
        .http_get("/api/v1/movements?country=AZ&state=released")
        .await;
    assert_eq!(status, 200);
    assert!(json.contains(MRN), "{json}");
    let (status, json) = w.http_get("/api/v1/movements?office=GE000301").await;
    assert_eq!(status, 200);
    assert!(!json.contains(MRN), "{json}");
    assert_eq!(
        w.http_get("/api/v1/movements/26KZ000101000099J0").await.0,
        404
    );
    assert_eq!(w.http_get("/healthz").await.0, 200);
    assert_eq!(w.http_get("/readyz").await.0, 200);

    // Metrics count what happened.
    let (status, text) = w.http_get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "cats_hub_messages_in_total{type=\"CD001C\",country=\"KZ\"} 5",
        "cats_hub_messages_out_total{type=\"CD001C\",country=\"GE\"} 1",
        "cats_hub_messages_out_total{type=\"CD050C\",country=\"AZ\"} 1",
        "cats_hub_messages_rejected_total{type=\"CD001C\",country=\"AZ\",code=\"14\"} 1",
        "cats_hub_messages_rejected_total{type=\"CD001C\",country=\"KZ\",code=\"26\"} 1",
        "cats_hub_messages_rejected_total{type=\"CD001C\",country=\"KZ\",code=\"93\"} 1",
        "cats_hub_messages_in_total{type=\"CD203C\",country=\"KZ\"} 1",
        "cats_hub_messages_duplicate_total{type=\"CD001C\",country=\"KZ\"} 1",
        "cats_hub_processing_seconds_count 9",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let size = w.journal_size().await;
    assert!(
        text.contains(&format!("cats_hub_journal_entries {size}")),
        "{text}"
    );

    // Nothing reached GE but the AAR.
    w.nothing_for(ge).await;

    // The chain verifies; tampering with one row is reported at that row.
    let chain = cats_hub::verify_journal(&w.url)
        .await
        .expect("journal verifies");
    assert_eq!(chain.entries, size);
    let store = &w.hub.services.store;
    tamper(store, 4).await;
    match cats_hub::verify_journal(&w.url).await {
        Err(journal::VerifyError::Broken(b)) => assert_eq!(b.sequence, 4, "{b}"),
        other => panic!("tampering not detected: {other:?}"),
    }

    w.trigger.trigger();
    for (_, n) in w.nodes.links {
        n.shutdown().await;
    }
    tokio::time::timeout(Duration::from_secs(10), w.hub.stopped())
        .await
        .expect("hub stops on shutdown");
    let _ = w.files;
}

async fn tamper(store: &cats_hub::store::HubStore, sequence: i64) {
    let mut tx = store.begin().await.expect("tx");
    match &mut tx {
        cats_hub::store::HubTx::Sqlite(t) => {
            sqlx::query("UPDATE hub_journal SET mrn = '26KZ000101000002J8' WHERE sequence = $1")
                .bind(sequence)
                .execute(&mut **t)
                .await
                .expect("tamper");
        }
        cats_hub::store::HubTx::Postgres(t) => {
            sqlx::query("UPDATE hub_journal SET mrn = '26KZ000101000002J8' WHERE sequence = $1")
                .bind(sequence)
                .execute(&mut **t)
                .await
                .expect("tamper");
        }
    }
    tx.commit().await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_three_nodes_through_the_hub() {
    scenario(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_three_nodes_through_the_hub() {
    scenario(Db::Postgres).await;
}

// ------------------------------------------------ who may use the API

/// 401 without a token, with an unknown one and with a revoked one; 403 for the wrong role;
/// a representative route of each group; the probes stay open.
async fn api_access(db: Db) {
    use cats_hub::access::Role;
    let Some(w) = world(db).await else {
        return;
    };
    let operator = w.token(Role::Operator).await;
    let admin = w.token(Role::Administrator).await;
    let insurer = cats_hub::insurer::issue_credential(
        &w.hub.services.store,
        &message_catalog::reference::ReferenceData::pilot(),
        &cats_hub::insurer::Principal::Insurer("KZ990140000123".into()),
    )
    .await
    .expect("insurer credential");
    let code = |json: &str| -> String {
        serde_json::from_str::<serde_json::Value>(json).expect("JSON error")["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(w.http("GET", open, None, "").await.0, 200, "{open}");
    }
    // (method, path, body, who may, who may not)
    let change = r#"{"reason":"t","change":{"restricted_goods":[{"hs_prefix":"8709","condition":"always-inspect"}]}}"#;
    let groups: [(&str, &str, &str, &str, &str); 6] = [
        ("GET", "/api/v1/movements", "", &operator, &insurer),
        ("GET", "/api/v1/refs", "", &operator, &insurer),
        (
            "POST",
            "/api/v1/dead-letters/999999/discard",
            r#"{"reason":"x"}"#,
            &operator,
            &insurer,
        ),
        ("POST", "/api/v1/refs/changes", change, &admin, &operator),
        (
            "POST",
            "/api/v1/registrations/999999/decision",
            r#"{"action":"approve"}"#,
            &admin,
            &operator,
        ),
        ("GET", "/api/v1/insurer/contracts", "", &insurer, &operator),
    ];
    for (method, path, body, may, may_not) in groups {
        let (status, json) = w.http(method, path, None, body).await;
        assert_eq!(
            (status, code(&json)),
            (401, "auth.missing-token".into()),
            "{path}"
        );
        let (status, json) = w.http(method, path, Some("0badc0de"), body).await;
        assert_eq!(
            (status, code(&json)),
            (401, "auth.unknown-token".into()),
            "{path}"
        );
        let (status, json) = w.http(method, path, Some(may_not), body).await;
        assert_eq!(
            (status, code(&json)),
            (403, "auth.forbidden".into()),
            "{path}: {json}"
        );
        let (status, json) = w.http(method, path, Some(may), body).await;
        assert!(
            status != 401 && status != 403,
            "{method} {path} refused its role: {status} {json}"
        );
    }
    // The change went through as the administrator of the token, not a name in the body.
    let (status, json) = w
        .http("GET", "/api/v1/refs/changes?since=0", Some(&operator), "")
        .await;
    assert_eq!(status, 200, "{json}");
    assert!(
        json.contains("\"actor\":\"administrator:hub-test\""),
        "{json}"
    );
    let (status, json) = w
        .http(
            "POST",
            "/api/v1/refs/changes",
            Some(&admin),
            &change.replace("{\"reason\"", "{\"actor\":\"mallory\",\"reason\""),
        )
        .await;
    assert_eq!(
        status, 400,
        "a body that names its own actor is refused: {json}"
    );

    // Revocation: listed without tokens, effective at once, by id or for a principal.
    let (status, json) = w.http("GET", "/api/v1/credentials", Some(&admin), "").await;
    assert_eq!(status, 200, "{json}");
    assert!(
        !json.contains(&operator) && !json.contains(&admin),
        "a token was shown: {json}"
    );
    let listed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let id = cats_hub::access::token_hash(&operator)[..16].to_owned();
    assert!(
        listed["credentials"]
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["id"] == id.as_str()),
        "{json}"
    );
    let (status, json) = w
        .http(
            "POST",
            &format!("/api/v1/credentials/{id}/revoke"),
            Some(&operator),
            "",
        )
        .await;
    assert_eq!((status, code(&json)), (403, "auth.forbidden".into()));
    let (status, json) = w
        .http(
            "POST",
            &format!("/api/v1/credentials/{id}/revoke"),
            Some(&admin),
            "",
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert!(
        json.contains("\"revoked_by\":\"administrator:hub-test\""),
        "{json}"
    );
    let (status, json) = w
        .http("GET", "/api/v1/movements", Some(&operator), "")
        .await;
    assert_eq!(
        (status, code(&json)),
        (401, "auth.revoked-token".into()),
        "{json}"
    );
    let (status, json) = w
        .http(
            "POST",
            &format!("/api/v1/credentials/{id}/revoke"),
            Some(&admin),
            "",
        )
        .await;
    assert_eq!((status, code(&json)), (409, "credential.revoked".into()));
    let (status, json) = w
        .http(
            "POST",
            "/api/v1/credentials/ffffffffffffffff/revoke",
            Some(&admin),
            "",
        )
        .await;
    assert_eq!((status, code(&json)), (404, "credential.not-found".into()));
    let (status, json) = w
        .http(
            "POST",
            "/api/v1/credentials/revoke-all",
            Some(&admin),
            r#"{"principal":"insurer:KZ990140000123"}"#,
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert!(json.contains("\"revoked\":1"), "{json}");
    let (status, json) = w
        .http("GET", "/api/v1/insurer/contracts", Some(&insurer), "")
        .await;
    assert_eq!(
        (status, code(&json)),
        (401, "auth.revoked-token".into()),
        "{json}"
    );
    // The administrator's own token still works.
    assert_eq!(
        w.http("GET", "/api/v1/queues", Some(&admin), "").await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_api_needs_the_right_credential() {
    api_access(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_api_needs_the_right_credential() {
    api_access(Db::Postgres).await;
}

// ------------------------------------------------ redelivery after a crash, unreadable envelopes

/// A transport whose next `send` can be made to fail (the link dropped after the journal
/// commit), recording what it sends.
#[derive(Debug, Default)]
struct FlakyTransport {
    fail_next_send: std::sync::atomic::AtomicBool,
    sent: std::sync::Mutex<Vec<Outbound>>,
}

impl Transport for FlakyTransport {
    fn send(
        &self,
        msg: Outbound,
    ) -> impl std::future::Future<Output = Result<(), cats_transport::contract::TransportError>> + Send
    {
        let fail = self
            .fail_next_send
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        if !fail {
            self.sent.lock().expect("lock").push(msg);
        }
        async move {
            if fail {
                Err(cats_transport::contract::TransportError::Disconnected(
                    "test".into(),
                ))
            } else {
                Ok(())
            }
        }
    }

    async fn receive(
        &self,
    ) -> Result<cats_transport::contract::Delivery, cats_transport::contract::TransportError> {
        Err(cats_transport::contract::TransportError::Closed)
    }
}

type Settled = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

#[derive(Debug)]
struct Settle(Settled);

type Settling = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<(), cats_transport::contract::TransportError>>
            + Send,
    >,
>;

impl cats_transport::contract::Acknowledger for Settle {
    fn ack(self: Box<Self>) -> Settling {
        self.0.lock().expect("lock").push("ack".into());
        Box::pin(async { Ok(()) })
    }
    fn reject(self: Box<Self>, reason: String) -> Settling {
        self.0
            .lock()
            .expect("lock")
            .push(format!("reject: {reason}"));
        Box::pin(async { Ok(()) })
    }
}

fn delivery(
    from: CountryCode,
    id: &str,
    bytes: Bytes,
    settled: &Settled,
) -> cats_transport::contract::Delivery {
    cats_transport::contract::Delivery::new(
        PeerIdentity::Node(from),
        id.into(),
        Some(MRN.into()),
        bytes,
        false,
        Box::new(Settle(settled.clone())),
    )
}

async fn redelivery(db: Db) {
    use cats_hub::pipeline::{HubServices, Outcome, Pipeline};
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(
        &dir.path().join("pki"),
        &[CountryCode::KZ, CountryCode::GE],
        false,
    )
    .expect("dev PKI");
    let Some(url) = database_url(db, dir.path()).await else {
        return;
    };
    let store = cats_hub::store::HubStore::connect(&url)
        .await
        .expect("store");
    let trust = TrustStore::load(&files.ca.cert, Some(&files.allow_list)).expect("trust");
    let services = std::sync::Arc::new(HubServices {
        store: store.clone(),
        verifier: Verifier::new(trust, Duration::from_secs(300)),
        signer: Signer::load(&files.hub_signer.cert, &files.hub_signer.key).expect("hub signer"),
        reference: message_catalog::reference::ReferenceData::pilot(),
        ledger: Default::default(),
        metrics: std::sync::Arc::new(cats_hub::metrics::Metrics::new()),
        limits: Limits::default(),
    });
    let transport = std::sync::Arc::new(FlakyTransport::default());
    let pipeline = Pipeline::new(transport.clone(), services);
    let kz = CountryCode::KZ;
    let signer = files.signers.get(&kz).expect("KZ signer");
    let signer = Signer::load(&signer.cert, &signer.key).expect("signer");
    let aar = body(CD001C, "KZ-AAR-9", "NTA.KZ", MRN);
    let wire = seal(
        &signer,
        kz,
        CountryCode::GE,
        "KZ-AAR-9",
        "CD001C",
        MRN,
        &aar,
    );
    let settled = Settled::default();

    // Journal committed, then the forward fails: the delivery stays owed.
    transport
        .fail_next_send
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let first = pipeline
        .process(delivery(kz, "KZ-AAR-9", wire.clone(), &settled))
        .await;
    assert!(first.is_err(), "{first:?}");
    assert!(settled.lock().expect("lock").is_empty(), "not acked");
    assert!(transport.sent.lock().expect("lock").is_empty());
    assert_eq!(journal::size(&store).await.expect("size"), 1);

    // Redelivered: a duplicate, and the forward happens now, once.
    let again = pipeline
        .process(delivery(kz, "KZ-AAR-9", wire.clone(), &settled))
        .await
        .expect("processed");
    assert_eq!(again, Outcome::Duplicate { sequence: 1 });
    {
        let sent = transport.sent.lock().expect("lock");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].destination, Destination::Node(CountryCode::GE));
        assert_eq!(sent[0].bytes, wire);
    }
    assert_eq!(*settled.lock().expect("lock"), vec!["ack".to_owned()]);

    // Once more: acked, nothing sent again, nothing journalled.
    let third = pipeline
        .process(delivery(kz, "KZ-AAR-9", wire.clone(), &settled))
        .await
        .expect("processed");
    assert_eq!(third, Outcome::Duplicate { sequence: 1 });
    assert_eq!(transport.sent.lock().expect("lock").len(), 1);
    assert_eq!(journal::size(&store).await.expect("size"), 1);

    // An unreadable envelope: journalled as rejected and dead-lettered, not NACKed.
    let garbage = pipeline
        .process(delivery(
            kz,
            "KZ-GARBAGE",
            Bytes::from_static(b"not an envelope"),
            &settled,
        ))
        .await
        .expect("processed");
    assert_eq!(garbage, Outcome::DeadLettered { sequence: 2 });
    let last = settled
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(last.starts_with("reject: envelope.malformed"), "{last}");
    let entry = journal::entry(&store, 2)
        .await
        .expect("read")
        .expect("entry 2");
    assert!(
        matches!(&entry.entry.status, journal::Status::Rejected { code, .. } if code == "envelope.malformed")
    );
    assert_eq!(transport.sent.lock().expect("lock").len(), 1);
    journal::verify(&store).await.expect("chain verifies");
}

#[tokio::test]
async fn sqlite_redelivery_after_failed_forward_routes_once() {
    redelivery(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_redelivery_after_failed_forward_routes_once() {
    redelivery(Db::Postgres).await;
}

// ------------------------------------------------ two writers cannot fork the chain

async fn two_writers(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(url) = database_url(db, dir.path()).await else {
        return;
    };
    // Two stores = two connection pools, as two hub processes would have.
    let a = cats_hub::store::HubStore::connect(&url)
        .await
        .expect("store a");
    let b = cats_hub::store::HubStore::connect(&url)
        .await
        .expect("store b");
    let write = |store: cats_hub::store::HubStore, who: &'static str| async move {
        for i in 0..40 {
            let mut tx = store.begin().await.expect("begin");
            let body = format!("{who}-{i}");
            journal::append(
                &mut tx,
                journal::NewEntry {
                    message_id: body.clone(),
                    message_type: "CD001C".into(),
                    sender: format!("urn:cats:node:{who}"),
                    recipients: vec!["node:GE".into()],
                    mrn: Some(MRN.into()),
                    correlation_id: None,
                    prepared_at: None,
                    recorded_at: chrono::Utc::now(),
                    body_sha256: journal::sha256(body.as_bytes()),
                    envelope: body.into_bytes(),
                    signer: None,
                    status: journal::Status::Accepted,
                },
            )
            .await
            .expect("append");
            tx.commit().await.expect("commit");
        }
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(write(a.clone(), "KZ")),
        tokio::spawn(write(b.clone(), "AZ"))
    );
    ra.expect("writer a");
    rb.expect("writer b");
    let chain = journal::verify(&a).await.expect("one unbroken chain");
    assert_eq!(chain.entries, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_writers_keep_one_chain() {
    two_writers(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_writers_keep_one_chain() {
    two_writers(Db::Postgres).await;
}

// ------------------------------------------------ a batch: one transaction, each answer exact

/// A batch with clean messages of three movements, a redelivery of the first inside the batch,
/// an unreadable envelope between them and another body under a known identification: the
/// clean ones are journalled in batch order, the others get the answer they get alone, the
/// recipient index holds every entry forwarded to GE, and the chain verifies. Then the same
/// batch again after a forward that fails once: nothing is journalled twice, each envelope is
/// forwarded once more at most, and every delivery is settled.
async fn batch(db: Db) {
    use cats_hub::pipeline::{HubServices, Pipeline};
    use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(
        &dir.path().join("pki"),
        &[CountryCode::KZ, CountryCode::GE],
        false,
    )
    .expect("dev PKI");
    let Some(url) = database_url(db, dir.path()).await else {
        return;
    };
    let store = cats_hub::store::HubStore::connect(&url)
        .await
        .expect("store");
    let trust = TrustStore::load(&files.ca.cert, Some(&files.allow_list)).expect("trust");
    let services = std::sync::Arc::new(HubServices {
        store: store.clone(),
        verifier: Verifier::new(trust, Duration::from_secs(300)),
        signer: Signer::load(&files.hub_signer.cert, &files.hub_signer.key).expect("hub signer"),
        reference: message_catalog::reference::ReferenceData::pilot(),
        ledger: Default::default(),
        metrics: std::sync::Arc::new(cats_hub::metrics::Metrics::new()),
        limits: Limits::default(),
    });
    let transport = std::sync::Arc::new(FlakyTransport::default());
    let pipeline = Pipeline::new(transport.clone(), services);
    let kz = CountryCode::KZ;
    let signer = files.signers.get(&kz).expect("KZ signer");
    let signer = Signer::load(&signer.cert, &signer.key).expect("signer");
    let office = CustomsOfficeRef::parse("KZ000101").expect("office");
    let mrn = |n: u64| {
        Mrn::generate(26, &office, n, ProcedureLetter::J)
            .expect("MRN")
            .as_str()
            .to_owned()
    };
    let aar = |id: &str, mrn: &str, sender: &str| {
        let b = body(CD001C, id, sender, mrn);
        seal(&signer, kz, CountryCode::GE, id, "CD001C", mrn, &b)
    };
    let (m1, m2, m3) = (mrn(11), mrn(12), mrn(13));
    let a = aar("KZ-B-1", &m1, "NTA.KZ");
    let b = aar("KZ-B-2", &m2, "NTA.KZ");
    let c = aar("KZ-B-3", &m3, "NTA.KZ");
    // Same identification as a, another body (another MRN): CD906C code 26.
    let other = aar("KZ-B-1", &m3, "NTA.KZ");
    let settled = Settled::default();
    let make = |settled: &Settled| {
        vec![
            delivery(kz, "KZ-B-1", a.clone(), settled),
            delivery(kz, "KZ-B-2", b.clone(), settled),
            delivery(kz, "KZ-B-1", a.clone(), settled),
            delivery(
                kz,
                "KZ-B-GARBAGE",
                Bytes::from_static(b"not an envelope"),
                settled,
            ),
            delivery(kz, "KZ-B-3", c.clone(), settled),
            delivery(kz, "KZ-B-1", other.clone(), settled),
        ]
    };
    pipeline
        .process_batch(make(&settled))
        .await
        .expect("batch processed");
    // a, b; a again (duplicate: no entry); garbage; c; the other body (rejected + NACK).
    let entries = journal::entries_after(&store, 0, 100).await.expect("read");
    let summary: Vec<(i64, String, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.sequence,
                e.entry.message_id.clone(),
                e.entry.status.as_str(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 6, "{summary:?}");
    assert_eq!(
        summary[..4],
        [
            (1, "KZ-B-1".to_owned(), "accepted"),
            (2, "KZ-B-2".to_owned(), "accepted"),
            (3, "KZ-B-GARBAGE".to_owned(), "rejected"),
            (4, "KZ-B-3".to_owned(), "accepted"),
        ]
    );
    assert_eq!(
        (summary[4].1.as_str(), summary[4].2),
        ("KZ-B-1", "rejected")
    );
    assert!(
        matches!(&entries[4].entry.status, journal::Status::Rejected { code, .. } if code == "26"),
        "{:?}",
        entries[4].entry.status
    );
    assert_eq!(summary[5].2, "emitted");
    {
        let settled = settled.lock().expect("lock");
        assert_eq!(settled.len(), 6, "{settled:?}");
        for (i, s) in settled.iter().enumerate() {
            if i == 3 {
                assert!(s.starts_with("reject: envelope.malformed"), "{s}");
            } else {
                assert_eq!(s, "ack", "delivery {i}");
            }
        }
    }
    {
        let sent = transport.sent.lock().expect("lock");
        let ids: Vec<(&str, Destination)> = sent
            .iter()
            .map(|o| (o.message_id.as_str(), o.destination))
            .collect();
        // The three clean envelopes to GE, in order; the NACK to KZ.
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert_eq!(
            ids[..3],
            [
                ("KZ-B-1", Destination::Node(CountryCode::GE)),
                ("KZ-B-2", Destination::Node(CountryCode::GE)),
                ("KZ-B-3", Destination::Node(CountryCode::GE)),
            ]
        );
        assert_eq!(ids[3].1, Destination::Node(CountryCode::KZ));
    }
    // Reconciliation reads the recipient index: three movements were forwarded to GE, one
    // NACK to KZ.
    for (country, movements) in [(CountryCode::GE, 3), (CountryCode::KZ, 1)] {
        let digests = cats_hub::reconcile::node_digests(&store, country, 6)
            .await
            .expect("digests");
        assert_eq!(digests.len(), movements, "{country}: {digests:?}");
    }
    journal::verify(&store).await.expect("chain verifies");

    // The same batch again: every delivery is a redelivery, acknowledged, nothing new.
    let again = Settled::default();
    pipeline
        .process_batch(make(&again))
        .await
        .expect("batch processed");
    assert_eq!(again.lock().expect("lock").len(), 6);
    assert_eq!(journal::size(&store).await.expect("size"), 6);
    assert_eq!(transport.sent.lock().expect("lock").len(), 4);

    // Two new movements, the first forward failing after the commit: the batch stops and
    // nothing is acknowledged; redelivered, both are forwarded and acknowledged, and nothing
    // is journalled twice.
    let (m4, m5) = (mrn(14), mrn(15));
    let d = aar("KZ-B-4", &m4, "NTA.KZ");
    let e = aar("KZ-B-5", &m5, "NTA.KZ");
    let pair = |settled: &Settled| {
        vec![
            delivery(kz, "KZ-B-4", d.clone(), settled),
            delivery(kz, "KZ-B-5", e.clone(), settled),
        ]
    };
    transport
        .fail_next_send
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = Settled::default();
    assert!(pipeline.process_batch(pair(&failed)).await.is_err());
    assert!(
        failed.lock().expect("lock").is_empty(),
        "nothing acknowledged"
    );
    assert_eq!(journal::size(&store).await.expect("size"), 8);
    let retried = Settled::default();
    pipeline
        .process_batch(pair(&retried))
        .await
        .expect("batch processed");
    assert_eq!(*retried.lock().expect("lock"), vec!["ack", "ack"]);
    assert_eq!(journal::size(&store).await.expect("size"), 8);
    {
        let sent = transport.sent.lock().expect("lock");
        for id in ["KZ-B-4", "KZ-B-5"] {
            assert!(sent.iter().any(|o| o.message_id == id), "{id} forwarded");
        }
    }
    journal::verify(&store).await.expect("chain verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batch_journals_in_order_and_answers_each_delivery() {
    batch(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batch_journals_in_order_and_answers_each_delivery() {
    batch(Db::Postgres).await;
}
