//! What operators see and do, on both transports, on SQLite and on PostgreSQL:
//!
//! - the hub on **AMQP** (its own RabbitMQ node started by `deploy/rabbitmq/start-node.sh`
//!   with the CATS configuration: TLS, EXTERNAL, quorum queues, dead-letter queues): three node
//!   identities through the hub (routing, rejection with pointer, duplicate, journal chain,
//!   registry, metrics), `/readyz`, `GET /api/v1/queues` from passive declares (SQLite run) and
//!   from the management API (PostgreSQL run), and the broker's dead letters drained into the
//!   hub's register, replayed and discarded over the API;
//! - the hub on the **direct link**: `GET /api/v1/queues` from the per-node queue tables (a
//!   disconnected node's undelivered count and oldest age), the transport's dead letters in the
//!   register, replay through the pipeline, discard, audit entries, and the API's errors.
//!
//! The RabbitMQ node is this binary's own (ports 26713 / 15683 / 25683, state under
//! `$TMPDIR/cats-hub-ops-test`), so that it never shares queues with the transport's tests.
//! When it cannot be started the AMQP tests fail under `CI=true` and are skipped loudly
//! otherwise; likewise PostgreSQL (`CATS_TEST_POSTGRES`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cats_hub::client::{ClientError, HubClient, Settlement};
use cats_hub::operations::QueuesReport;
use cats_hub::{RawConfig, RunningHub, journal, registry};
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport::direct::{DirectNode, LinkConfig, NodeTls};
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_transport::store::{DeadLetter, Store};
use cats_transport_amqp::lapin::options::QueuePurgeOptions;
use cats_transport_amqp::{AmqpConfig, AmqpTransport, TlsIdentity, raw_connection};
use cats_trust::pki::{DevPki, DevPkiFiles};
use cats_trust::{EnvelopeHeaderFields, Signer, TrustStore, Verifier};
use message_catalog::Message;
use message_catalog::codec::{Limits, decode};
use sqlx::Connection;

const CD001C: &str = include_str!("data/cd001c.xml");
const CD050C: &str = include_str!("data/cd050c.xml");
const MRN: &str = "26KZ000101000001J0";
const COUNTRIES: [CountryCode; 3] = [CountryCode::KZ, CountryCode::AZ, CountryCode::GE];
const MONITOR_USER: &str = "cats-monitor";
const MONITOR_PASSWORD: &str = "cats-monitor-test";

// ------------------------------------------------------------------------------ services

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

async fn database_url(db: Db, dir: &Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite://{}", dir.join("hub.db").display())),
        Db::Postgres => {
            let base = std::env::var("CATS_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
            let mut admin = match sqlx::PgConnection::connect(&base).await {
                Ok(c) => c,
                Err(e) => {
                    assert!(!in_ci(), "PostgreSQL at {base} is unreachable in CI: {e}");
                    eprintln!(
                        "\n!!!!! SKIPPED: PostgreSQL at {base} is unreachable ({e}); \
                         this test did NOT run on PostgreSQL !!!!!\n"
                    );
                    return None;
                }
            };
            let name = format!("cats_hubops_{:016x}", rand::random::<u64>());
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await
                .expect("create database");
            let i = base.rfind('/').expect("database URL has a path");
            Some(format!("{}/{name}", &base[..i]))
        }
    }
}

/// This binary's RabbitMQ node.
#[derive(Debug)]
struct Broker {
    certs: PathBuf,
    state: PathBuf,
    node_name: String,
    port: u16,
    management_port: u16,
    dist_port: u16,
    files: DevPkiFiles,
}

fn rabbitmqctl() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/rabbitmq/lib")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("sbin/rabbitmqctl"))
        .find(|p| p.exists())
}

impl Broker {
    fn start() -> Result<Broker, String> {
        let root = std::env::temp_dir().join("cats-hub-ops-test");
        let certs = root.join("certs");
        let files = DevPki::init(&certs, &COUNTRIES, false)
            .map_err(|e| format!("cannot create the test PKI: {e}"))?;
        let broker = Broker {
            certs,
            state: root.join("rabbitmq"),
            node_name: "cats-hub-ops@localhost".into(),
            port: 26713,
            management_port: 15683,
            dist_port: 25683,
            files,
        };
        // A node left running by an earlier run is stopped first, so each run starts a fresh
        // one: RabbitMQ 3.10's management API can keep answering HTTP 500 (`badkey` in
        // `rabbit_mgmt_db:list_queue_stats`) for a quorum queue deleted and declared again by
        // an earlier run. With its pid file, `stop` returns once the process has exited.
        let pid_file = broker.state.join(format!("{}.pid", broker.node_name));
        let _ = broker.ctl(&["stop", &pid_file.to_string_lossy()]);
        let output = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rabbitmq/start-node.sh"),
        )
        .env("CATS_RABBITMQ_NODE_NAME", &broker.node_name)
        .env("CATS_RABBITMQ_AMQPS_PORT", broker.port.to_string())
        .env(
            "CATS_RABBITMQ_MANAGEMENT_PORT",
            broker.management_port.to_string(),
        )
        .env("CATS_RABBITMQ_DIST_PORT", broker.dist_port.to_string())
        .arg("--state")
        .arg(&broker.state)
        .arg("--certs")
        .arg(&broker.certs)
        .output()
        .map_err(|e| format!("cannot run start-node.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "start-node.sh failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        // A monitoring user with a password for the management API (the CATS users log in
        // with certificates only).
        for args in [
            vec!["add_user", MONITOR_USER, MONITOR_PASSWORD],
            vec!["set_user_tags", MONITOR_USER, "monitoring"],
            vec![
                "set_permissions",
                "-p",
                "cats",
                MONITOR_USER,
                "^$",
                "^$",
                "^$",
            ],
        ] {
            // add_user fails when the user exists from an earlier run: that is fine.
            let _ = broker.ctl(&args);
        }
        broker
            .ctl(&["list_users"])
            .filter(|out| out.contains(MONITOR_USER))
            .ok_or("the monitoring user could not be created")?;
        Ok(broker)
    }

    fn ctl(&self, args: &[&str]) -> Option<String> {
        // Under `timeout`: a node that does not answer (or a `stop` that waits for a process
        // that never exits) fails the call instead of holding the test.
        let output = Command::new("timeout")
            .arg("120")
            .arg(rabbitmqctl()?)
            .env("HOME", &self.state)
            .args(["-q", "-n", &self.node_name])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Consumers on the `cats` queues (`None` if the node cannot be asked).
    fn consumers(&self) -> Option<u64> {
        Some(
            self.ctl(&["list_queues", "-p", "cats", "consumers"])?
                .lines()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .sum(),
        )
    }

    fn amqp(&self, party: &str) -> AmqpConfig {
        let tls = TlsIdentity::from_pki_dir(&self.certs, party).expect("the test PKI exists");
        let mut config = AmqpConfig::new("localhost", self.port, tls);
        config.operation_timeout = Duration::from_secs(5);
        config.connect_timeout = Duration::from_secs(5);
        config.reconnect_max = Duration::from_secs(1);
        config
    }

    fn node(&self, c: CountryCode) -> AmqpConfig {
        self.amqp(&format!("node-{}", c.as_str().to_ascii_lowercase()))
    }
}

fn broker() -> Option<&'static Broker> {
    static BROKER: OnceLock<Option<Broker>> = OnceLock::new();
    BROKER
        .get_or_init(|| match Broker::start() {
            Ok(b) => Some(b),
            Err(e) => {
                assert!(!in_ci(), "RabbitMQ is required under CI=true: {e}");
                eprintln!("\n!!!!! SKIPPED: no RabbitMQ for the hub's AMQP tests: {e}\n");
                None
            }
        })
        .as_ref()
}

/// The AMQP tests share the broker's queues: one at a time, starting from empty queues and no
/// consumer left over from the previous one.
async fn exclusive(broker: &Broker) -> tokio::sync::SemaphorePermit<'static> {
    static LOCK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let permit = LOCK.acquire().await.expect("never closed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && broker.consumers().is_some_and(|n| n > 0) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hub = broker.amqp("hub-client");
    purge(&hub, "cats.hub.in").await;
    purge(&hub, "cats.hub.in.dlq").await;
    for c in COUNTRIES {
        purge(&broker.node(c), &format!("cats.node.{c}")).await;
        purge(&hub, &format!("cats.node.{c}.dlq")).await;
    }
    permit
}

async fn purge(config: &AmqpConfig, queue: &str) {
    let connection = raw_connection(config, "test-purge").await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    let _ = connection.close(200, "done".into()).await;
}

// ------------------------------------------------------------------------------ messages

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

struct Parties {
    signers: BTreeMap<CountryCode, Signer>,
    verifiers: BTreeMap<CountryCode, Verifier>,
}

impl Parties {
    fn new(files: &DevPkiFiles) -> Parties {
        let mut p = Parties {
            signers: BTreeMap::new(),
            verifiers: BTreeMap::new(),
        };
        for c in COUNTRIES {
            let s = files.signers.get(&c).expect("signer");
            p.signers
                .insert(c, Signer::load(&s.cert, &s.key).expect("signer loads"));
            let trust = TrustStore::load(&files.ca.cert, Some(&files.allow_list)).expect("trust");
            p.verifiers.insert(
                c,
                Verifier::new(trust, Duration::from_secs(300))
                    .with_local_identity(PeerIdentity::Node(c)),
            );
        }
        p
    }

    fn seal(&self, from: CountryCode, to: CountryCode, id: &str, ty: &str, body: &[u8]) -> Bytes {
        let fields = EnvelopeHeaderFields {
            message_id: id.into(),
            message_type: ty.into(),
            sender: PeerIdentity::Node(from),
            recipient: PeerIdentity::Node(to),
            correlation_id: None,
            mrn: Some(MRN.into()),
            prepared_at: chrono::Utc::now(),
        };
        Bytes::from(self.signers[&from].seal(&fields, body).expect("seal"))
    }

    fn open(&self, node: CountryCode, wire: &[u8]) -> Message {
        let opened = self.verifiers[&node]
            .open(wire, &PeerIdentity::Hub, chrono::Utc::now())
            .expect("the node accepts what the hub delivers");
        decode(opened.body, &Limits::default()).expect("body decodes")
    }
}

fn outbound(id: &str, wire: Bytes) -> Outbound {
    Outbound {
        message_id: id.into(),
        destination: Destination::Hub,
        partition_key: Some(MRN.into()),
        bytes: wire,
    }
}

async fn next<T: Transport>(parties: &Parties, node: CountryCode, link: &T) -> (Bytes, Message) {
    let d = tokio::time::timeout(Duration::from_secs(20), link.receive())
        .await
        .expect("a delivery arrives")
        .expect("receive");
    assert_eq!(d.from, PeerIdentity::Hub);
    let wire = d.bytes.clone();
    let m = parties.open(node, &wire);
    d.ack().await.expect("ack");
    (wire, m)
}

async fn nothing_for<T: Transport>(node: CountryCode, link: &T) {
    let got = tokio::time::timeout(Duration::from_millis(700), link.receive()).await;
    assert!(got.is_err(), "{node} received something it should not have");
}

fn functional_codes(m: &Message) -> Vec<(String, String)> {
    match m {
        Message::CD906C(n) => n
            .functional_error
            .iter()
            .map(|e| (e.error_pointer.clone(), format!("{:?}", e.error_code)))
            .collect(),
        other => panic!("expected a CD906C, got {}", other.message_type()),
    }
}

fn xml_pointers(m: &Message) -> Vec<String> {
    match m {
        Message::CD917C(n) => n
            .xml_error
            .iter()
            .filter_map(|e| e.error_pointer.clone())
            .collect(),
        other => panic!("expected a CD917C, got {}", other.message_type()),
    }
}

/// `Bearer <token>` of a fresh operator's credential at `hub`.
async fn operator(hub: &RunningHub) -> String {
    let issued = cats_hub::access::issue(
        &hub.services.store,
        cats_hub::access::Role::Operator,
        "alice",
    )
    .await
    .expect("credential");
    format!("Bearer {}", issued.token)
}

async fn get(hub: &RunningHub, path: &str) -> (u16, String) {
    let base =
        cats_hub::client::HttpBase::parse(&format!("http://{}", hub.http_addr)).expect("base URL");
    let auth = operator(hub).await;
    let (status, body) = base
        .request("GET", path, Some(&auth), None, Duration::from_secs(30))
        .await
        .expect("HTTP answer");
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn post(hub: &RunningHub, path: &str, body: &str) -> (u16, String) {
    let base =
        cats_hub::client::HttpBase::parse(&format!("http://{}", hub.http_addr)).expect("base URL");
    let auth = operator(hub).await;
    let (status, body) = base
        .request(
            "POST",
            path,
            Some(&auth),
            Some(body.as_bytes().to_vec()),
            Duration::from_secs(30),
        )
        .await
        .expect("HTTP answer");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A client with a fresh operator's credential (`operator:alice` in the audit).
async fn client(hub: &RunningHub) -> HubClient {
    let auth = operator(hub).await;
    HubClient::new(&format!("http://{}", hub.http_addr))
        .expect("client")
        .with_token(auth.trim_start_matches("Bearer "))
}

fn who(reason: &str) -> Settlement {
    Settlement {
        reason: reason.into(),
    }
}

/// Asks for the queue report until `ok` holds (the sampler and the broker settle
/// asynchronously), or fails with the last report.
async fn queues_until(hub: &RunningHub, ok: impl Fn(&QueuesReport) -> bool) -> QueuesReport {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = client(hub).await.queues().await.expect("queue report");
        if ok(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "the queue report never got there: {report:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn queue<'a>(r: &'a QueuesReport, name: &str) -> &'a cats_hub::operations::QueueStatus {
    r.queues
        .iter()
        .find(|q| q.name == name)
        .unwrap_or_else(|| panic!("no queue {name} in {r:#?}"))
}

fn node<'a>(r: &'a QueuesReport, country: &str) -> &'a cats_hub::operations::NodeStatus {
    r.nodes
        .iter()
        .find(|n| n.country == country)
        .unwrap_or_else(|| panic!("no node {country} in {r:#?}"))
}

async fn stop(trigger: ShutdownTrigger, hub: RunningHub) {
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(20), hub.stopped())
        .await
        .expect("hub stops on shutdown");
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

// ------------------------------------------------------------------------------ AMQP

async fn amqp_scenario(db: Db, management: bool) {
    init_tracing();
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(url) = database_url(db, dir.path()).await else {
        return;
    };
    let _lock = exclusive(broker).await;
    let (kz, az, ge) = (CountryCode::KZ, CountryCode::AZ, CountryCode::GE);
    let parties = Parties::new(&broker.files);

    let mut raw = RawConfig::default();
    raw.store.url = url.clone();
    raw.http.listen = "127.0.0.1:0".into();
    raw.certs.dir = broker.certs.clone();
    raw.transport.kind = "amqp".into();
    raw.transport.amqp.url = format!("amqps://localhost:{}/cats", broker.port);
    raw.transport.amqp.operation_timeout_ms = 5_000;
    raw.transport.amqp.reconnect_max_ms = 1_000;
    raw.operations.sample_interval_ms = 300;
    if management {
        raw.transport.amqp.management_url = format!("http://127.0.0.1:{}", broker.management_port);
        raw.transport.amqp.management_user = MONITOR_USER.into();
        raw.transport.amqp.management_password = MONITOR_PASSWORD.into();
    }
    let (trigger, shutdown) = shutdown::channel();
    let hub = cats_hub::start(raw.resolve().expect("config resolves"), shutdown)
        .await
        .expect("hub starts on AMQP");
    assert_eq!(hub.transport, "amqp");
    let mut links = BTreeMap::new();
    for c in COUNTRIES {
        links.insert(
            c,
            AmqpTransport::node(broker.node(c), c)
                .await
                .expect("node connects"),
        );
    }

    // Routing: KZ's AAR to GE, KZ's ATR to AZ, the very bytes KZ signed.
    let aar = body(CD001C, "KZ-AAR-1", "NTA.KZ", MRN);
    let wire = parties.seal(kz, ge, "KZ-AAR-1", "CD001C", &aar);
    links[&kz]
        .send(outbound("KZ-AAR-1", wire.clone()))
        .await
        .expect("sent");
    let (got, m) = next(&parties, ge, &links[&ge]).await;
    assert_eq!(got, wire, "the hub forwards the node's envelope unchanged");
    assert_eq!(m.message_type(), "CD001C");
    let atr = body(CD050C, "KZ-ATR-1", "NTA.KZ", MRN);
    let wire = parties.seal(kz, az, "KZ-ATR-1", "CD050C", &atr);
    links[&kz]
        .send(outbound("KZ-ATR-1", wire.clone()))
        .await
        .expect("sent");
    let (got, _) = next(&parties, az, &links[&az]).await;
    assert_eq!(got, wire);

    // Rejection with pointer: AZ claims to be GE in the body: CD906C code 14 back to AZ.
    let forged = body(CD001C, "AZ-FORGED-1", "NTA.GE", MRN);
    let wire = parties.seal(az, ge, "AZ-FORGED-1", "CD001C", &forged);
    links[&az]
        .send(outbound("AZ-FORGED-1", wire))
        .await
        .expect("sent");
    let (_, nack) = next(&parties, az, &links[&az]).await;
    let codes = functional_codes(&nack);
    assert!(
        codes
            .iter()
            .any(|(p, c)| p == "/CD001C/messageSender" && c.contains("14")),
        "{codes:?}"
    );
    // A schema error: CD917C to KZ pointing at the unknown element.
    let bad = String::from_utf8(body(CD001C, "KZ-BAD-XML", "NTA.KZ", MRN))
        .expect("utf-8")
        .replace(
            "<messageType>CD001C</messageType>",
            "<messageType>CD001C</messageType>\n  <colour>red</colour>",
        );
    let wire = parties.seal(kz, ge, "KZ-BAD-XML", "CD001C", bad.as_bytes());
    links[&kz]
        .send(outbound("KZ-BAD-XML", wire))
        .await
        .expect("sent");
    let (_, nack) = next(&parties, kz, &links[&kz]).await;
    assert!(
        xml_pointers(&nack).iter().any(|p| p.contains("colour")),
        "{:?}",
        xml_pointers(&nack)
    );

    // Duplicate: the same AAR again: acknowledged, not journalled or routed twice.
    let size = journal::size(&hub.services.store).await.expect("size");
    let wire = parties.seal(kz, ge, "KZ-AAR-1", "CD001C", &aar);
    links[&kz]
        .send(outbound("KZ-AAR-1", wire))
        .await
        .expect("sent");
    // Same id, other body: CD906C code 26 to KZ (which also proves the duplicate was handled:
    // the queue is processed in order).
    let other = String::from_utf8(aar.clone())
        .expect("utf-8")
        .replace("Seamless steel pipes", "Steel sheets");
    let wire = parties.seal(kz, ge, "KZ-AAR-1", "CD001C", other.as_bytes());
    links[&kz]
        .send(outbound("KZ-AAR-1", wire))
        .await
        .expect("sent");
    let (_, nack) = next(&parties, kz, &links[&kz]).await;
    assert!(
        functional_codes(&nack)
            .iter()
            .any(|(_, c)| c.contains("26")),
        "{:?}",
        functional_codes(&nack)
    );
    assert_eq!(
        journal::size(&hub.services.store).await.expect("size"),
        size + 2,
        "the duplicate added nothing; the code-26 refusal and its NACK did"
    );
    nothing_for(ge, &links[&ge]).await;

    // Registry.
    let detail = registry::movement(&hub.services.store, MRN)
        .await
        .expect("query")
        .expect("movement known");
    assert_eq!(detail.summary.departure_office.as_deref(), Some("KZ000101"));
    let accepted: Vec<&str> = detail
        .history
        .iter()
        .filter(|h| h.status == "accepted")
        .map(|h| h.message_type.as_str())
        .collect();
    assert_eq!(accepted, vec!["CD001C", "CD050C"]);

    // Ready: store and broker connection.
    assert_eq!(get(&hub, "/readyz").await.0, 200);

    // An unreadable envelope from KZ: journalled, dead-lettered by the hub to
    // cats.hub.in.dlq, drained into the register.
    links[&kz]
        .send(outbound(
            "KZ-GARBAGE",
            Bytes::from_static(b"not an envelope"),
        ))
        .await
        .expect("sent");
    // GE refuses a delivery: the broker's cats.node.GE.dlq, drained into the register too.
    let aar2 = body(CD001C, "KZ-AAR-2", "NTA.KZ", MRN);
    let wire2 = parties.seal(kz, ge, "KZ-AAR-2", "CD001C", &aar2);
    links[&kz]
        .send(outbound("KZ-AAR-2", wire2.clone()))
        .await
        .expect("sent");
    let d = tokio::time::timeout(Duration::from_secs(20), links[&ge].receive())
        .await
        .expect("delivery")
        .expect("receive");
    assert_eq!(d.bytes, wire2);
    d.reject("ge.test: refused on purpose")
        .await
        .expect("reject");
    let c = client(&hub).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let letters = loop {
        let letters = c.dead_letters("dead").await.expect("list");
        if letters.len() >= 2 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(letters.len(), 2, "{letters:#?}");
    let garbage = letters
        .iter()
        .find(|l| l.message_id == "KZ-GARBAGE")
        .expect("the unreadable envelope is in the register");
    assert_eq!(garbage.queue, "cats.hub.in");
    assert_eq!(garbage.sender, "urn:cats:node:KZ");
    assert!(
        garbage.reason.starts_with("envelope.malformed"),
        "{garbage:?}"
    );
    let refused = letters
        .iter()
        .find(|l| l.message_id == "KZ-AAR-2")
        .expect("GE's refusal is in the register");
    assert_eq!(refused.queue, "cats.node.GE");
    assert_eq!(refused.sender, "urn:cats:hub");
    assert_eq!(refused.reason, "ge.test: refused on purpose");

    // The queue report and the gauges.
    let report = queues_until(&hub, |r| {
        r.nodes.iter().all(|n| n.connected)
            && queue(r, "cats.hub.in").dead_letters == Some(1)
            && queue(r, "cats.node.GE").dead_letters == Some(1)
            && r.interval_seconds.is_some()
            // The management API's figures lag (statistics every few seconds).
            && queue(r, "cats.node.KZ").consumers == Some(1)
            && queue(r, "cats.hub.in").consumers == Some(1)
            && (!management || queue(r, "cats.hub.in").active_here == Some(true))
    })
    .await;
    // One partition: `cats.hub.in` is partition 0, preferred; whether this hub is its active
    // consumer is known from the management API only.
    let inbound = queue(&report, "cats.hub.in");
    assert_eq!(inbound.partition, Some(0));
    assert_eq!(inbound.preferred, Some(true));
    assert!(
        report
            .queues
            .iter()
            .all(|q| q.name == "cats.hub.in" || q.partition.is_none()),
        "{report:#?}"
    );
    if management {
        assert!(
            inbound
                .active_consumer
                .as_deref()
                .is_some_and(|c| c.starts_with("cats-hub-")),
            "{inbound:?}"
        );
    } else {
        assert_eq!(inbound.active_here, None);
        assert_eq!(inbound.active_consumer, None);
    }
    assert_eq!(report.transport, "amqp");
    assert_eq!(
        report.source,
        if management {
            "management-api"
        } else {
            "passive-declare"
        }
    );
    assert!(node(&report, "KZ").last_seen.is_some());
    let (_, text) = get(&hub, "/metrics").await;
    for line in [
        "cats_hub_dead_letters{queue=\"cats.hub.in\"} 1",
        "cats_hub_dead_letters{queue=\"cats.node.GE\"} 1",
        "cats_hub_node_connected{country=\"GE\"} 1",
        "cats_hub_queue_consumers{queue=\"cats.hub.in\"} 1",
        "cats_hub_messages_out_total{type=\"CD001C\",country=\"GE\"} 2",
        "cats_hub_messages_rejected_total{type=\"CD001C\",country=\"AZ\",code=\"14\"} 1",
        "cats_hub_messages_rejected_total{type=\"CD001C\",country=\"KZ\",code=\"26\"} 1",
        "cats_hub_messages_duplicate_total{type=\"CD001C\",country=\"KZ\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains("cats_hub_queue_depth{queue=\"cats.node.GE\"} 0"),
        "{text}"
    );

    // GE goes away: what the hub sends it waits in its queue, counted as undelivered.
    let ge_link = links.remove(&ge).expect("GE");
    ge_link.close().await;
    drop(ge_link);
    let aar3 = body(CD001C, "KZ-AAR-3", "NTA.KZ", MRN);
    let wire3 = parties.seal(kz, ge, "KZ-AAR-3", "CD001C", &aar3);
    links[&kz]
        .send(outbound("KZ-AAR-3", wire3.clone()))
        .await
        .expect("sent");
    let report = queues_until(&hub, |r| {
        !node(r, "GE").connected
            && node(r, "GE").undelivered == Some(1)
            && queue(r, "cats.node.GE").consumers == Some(0)
    })
    .await;
    assert_eq!(queue(&report, "cats.node.GE").depth, Some(1));
    let (_, text) = get(&hub, "/metrics").await;
    assert!(
        text.contains("cats_hub_node_connected{country=\"GE\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("cats_hub_node_undelivered{country=\"GE\"} 1"),
        "{text}"
    );
    let ge_link = AmqpTransport::node(broker.node(ge), ge)
        .await
        .expect("GE reconnects");
    let (got, _) = next(&parties, ge, &ge_link).await;
    assert_eq!(got, wire3, "nothing was lost while GE was away");

    // Show, discard (with the audit entry), replay GE's refused message to its queue.
    let shown = c.dead_letter(garbage.id).await.expect("show");
    assert!(shown.envelope.is_none());
    assert!(shown.envelope_error.is_some());
    let done = c
        .discard(garbage.id, &who("unreadable, the sender was told"))
        .await
        .expect("discard");
    assert_eq!(done.state, "discarded");
    let shown = c.dead_letter(refused.id).await.expect("show");
    assert_eq!(
        shown.envelope.as_ref().map(|e| e.message_type.as_str()),
        Some("CD001C")
    );
    let done = c
        .replay(refused.id, &who("GE fixed its inbox"))
        .await
        .expect("replay");
    assert_eq!(done.state, "replayed", "{done:?}");
    let (got, _) = next(&parties, ge, &ge_link).await;
    assert_eq!(got, wire2, "the refused message went to GE's queue again");
    let shown = c.dead_letter(refused.id).await.expect("show");
    assert_eq!(shown.audit.len(), 1);
    assert_eq!(shown.audit[0].operator, "operator:alice");
    assert_eq!(shown.audit[0].reason, "GE fixed its inbox");
    assert!(c.dead_letters("dead").await.expect("list").is_empty());

    // The journal chain holds.
    let chain = cats_hub::verify_journal(&url)
        .await
        .expect("journal verifies");
    assert_eq!(
        chain.entries,
        journal::size(&hub.services.store).await.expect("size")
    );

    ge_link.close().await;
    for (_, l) in links {
        l.close().await;
    }
    stop(trigger, hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_amqp_three_nodes_queues_from_passive_declares() {
    amqp_scenario(Db::Sqlite, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_amqp_three_nodes_queues_from_the_management_api() {
    amqp_scenario(Db::Postgres, true).await;
}

// ------------------------------------------------------------------------------ direct

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

async fn direct_scenario(db: Db) {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = DevPki::init(&dir.path().join("pki"), &COUNTRIES, false).expect("dev PKI");
    let Some(url) = database_url(db, dir.path()).await else {
        return;
    };
    let parties = Parties::new(&files);
    let (kz, ge) = (CountryCode::KZ, CountryCode::GE);
    let mut raw = RawConfig::default();
    raw.store.url = url.clone();
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.listen = "127.0.0.1:0".into();
    raw.certs.dir = files.dir.clone();
    raw.operations.sample_interval_ms = 300;
    let (trigger, shutdown) = shutdown::channel();
    let hub = cats_hub::start(raw.resolve().expect("config resolves"), shutdown)
        .await
        .expect("hub starts");
    assert_eq!(hub.transport, "direct");
    let connect = |c: CountryCode| {
        let node = files.nodes.get(&c).expect("node certificate");
        let mut tls = NodeTls::from_files(&files.ca.cert, &node.cert, &node.key).expect("TLS");
        tls.server_name = "localhost".into();
        let addr = hub
            .direct_addr
            .expect("the hub runs the direct link")
            .to_string();
        async move {
            let link = DirectNode::connect(addr, tls, link_config()).expect("link");
            link.wait_connected(Duration::from_secs(10))
                .await
                .expect("connects");
            link
        }
    };
    let kz_link = connect(kz).await;
    let ge_link = connect(ge).await;
    assert_eq!(get(&hub, "/readyz").await.0, 200);

    // Connected nodes; then GE leaves and the AAR for it waits, counted and aged.
    let report = queues_until(&hub, |r| node(r, "KZ").connected && node(r, "GE").connected).await;
    assert_eq!(report.source, "store");
    assert!(!node(&report, "AZ").connected);
    ge_link.shutdown().await;
    let aar = body(CD001C, "KZ-AAR-1", "NTA.KZ", MRN);
    let wire = parties.seal(kz, ge, "KZ-AAR-1", "CD001C", &aar);
    kz_link
        .send(outbound("KZ-AAR-1", wire.clone()))
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = queues_until(&hub, |r| {
        !node(r, "GE").connected && node(r, "GE").undelivered == Some(1)
    })
    .await;
    let ge_status = node(&report, "GE");
    assert!(
        ge_status
            .oldest_undelivered_age_seconds
            .is_some_and(|age| age >= 1.0),
        "{ge_status:?}"
    );
    assert_eq!(queue(&report, "cats.node.GE").depth, Some(1));
    assert!(
        node(&report, "GE").last_seen.is_some(),
        "GE was seen before"
    );
    // Rates: the hub took one message in; over the interval since the last sample it shows.
    let report = queues_until(&hub, |r| {
        queue(r, "cats.hub.in").rate_in.is_some() && r.interval_seconds.is_some()
    })
    .await;
    assert_eq!(queue(&report, "cats.hub.in").depth, None);
    let (_, text) = get(&hub, "/metrics").await;
    assert!(
        text.contains("cats_hub_node_undelivered{country=\"GE\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("cats_hub_queue_depth{queue=\"cats.node.GE\"} 1"),
        "{text}"
    );
    let ge_link = connect(ge).await;
    let (got, _) = next(&parties, ge, &ge_link).await;
    assert_eq!(got, wire);

    // An unreadable envelope: dead-lettered by the transport, in the register.
    kz_link
        .send(outbound(
            "KZ-GARBAGE",
            Bytes::from_static(b"not an envelope"),
        ))
        .await
        .expect("sent");
    // A valid AAR that was dead-lettered (as an operator would find after a store outage):
    // written where the transport keeps its dead letters.
    let aar2 = body(CD001C, "KZ-AAR-2", "NTA.KZ", MRN);
    let wire2 = parties.seal(kz, ge, "KZ-AAR-2", "CD001C", &aar2);
    let transport_store = Store::connect(&url)
        .await
        .expect("the hub's transport store");
    let mut tx = transport_store.begin().await.expect("tx");
    Store::dead_letter(
        &mut tx,
        &DeadLetter {
            sender: PeerIdentity::Node(kz).urn(),
            message_id: "KZ-AAR-2".into(),
            partition_key: Some(MRN.into()),
            reason: "hub-store.database: connection refused".into(),
            body: wire2.to_vec(),
            dead_at: chrono::Utc::now().timestamp_millis(),
            queue: None,
        },
    )
    .await
    .expect("dead letter");
    tx.commit().await.expect("commit");
    let c = client(&hub).await;
    let letters = c.dead_letters("dead").await.expect("list");
    assert_eq!(letters.len(), 2, "{letters:#?}");
    let garbage = letters
        .iter()
        .find(|l| l.message_id == "KZ-GARBAGE")
        .expect("garbage listed")
        .clone();
    let lost = letters
        .iter()
        .find(|l| l.message_id == "KZ-AAR-2")
        .expect("AAR listed")
        .clone();
    assert_eq!(garbage.queue, "cats.hub.in");
    assert!(garbage.reason.contains("envelope.malformed"), "{garbage:?}");

    // Errors of the API: stable codes, nothing changed.
    let (status, json) = post(
        &hub,
        &format!("/api/v1/dead-letters/{}/discard", garbage.id),
        r#"{}"#,
    )
    .await;
    assert_eq!(status, 400, "{json}");
    assert!(json.contains("dead-letters.bad-request"), "{json}");
    let (status, json) = post(
        &hub,
        &format!("/api/v1/dead-letters/{}/replay", garbage.id),
        "not json",
    )
    .await;
    assert_eq!(status, 400, "{json}");
    let (status, json) = get(&hub, "/api/v1/dead-letters/999999").await;
    assert_eq!(status, 404, "{json}");
    assert!(json.contains("dead-letters.not-found"), "{json}");
    assert_eq!(get(&hub, "/api/v1/dead-letters/x").await.0, 400);
    assert_eq!(get(&hub, "/api/v1/dead-letters?state=lost").await.0, 400);
    assert_eq!(c.dead_letters("dead").await.expect("list").len(), 2);

    // Replaying the unreadable envelope: refused again, still dead, the attempt audited.
    let done = c
        .replay(garbage.id, &who("try again"))
        .await
        .expect("replay answered");
    assert_eq!(done.state, "dead", "{done:?}");
    // Discard it.
    let done = c
        .discard(garbage.id, &who("unreadable"))
        .await
        .expect("discard");
    assert_eq!(done.state, "discarded");
    match c.discard(garbage.id, &who("again")).await {
        Err(ClientError::Status { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (409, "dead-letters.settled"));
        }
        other => panic!("a second discard must be refused: {other:?}"),
    }
    let shown = c.dead_letter(garbage.id).await.expect("show");
    let actions: Vec<(&str, &str)> = shown
        .audit
        .iter()
        .map(|a| (a.action.as_str(), a.reason.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![("replay", "try again"), ("discard", "unreadable")]
    );
    assert!(shown.audit.iter().all(|a| a.operator == "operator:alice"));

    // Replaying the AAR: through the pipeline as a redelivery from KZ, routed to GE.
    let done = c.replay(lost.id, &who("store back")).await.expect("replay");
    assert_eq!(done.state, "replayed", "{done:?}");
    assert!(done.outcome.starts_with("accepted"), "{done:?}");
    let (got, _) = next(&parties, ge, &ge_link).await;
    assert_eq!(got, wire2);
    let all = c.dead_letters("all").await.expect("list");
    let states: Vec<&str> = all.iter().map(|l| l.state.as_str()).collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&"replayed") && states.contains(&"discarded"));
    let report = queues_until(&hub, |r| queue(r, "cats.hub.in").dead_letters == Some(0)).await;
    assert_eq!(report.transport, "direct");
    journal::verify(&hub.services.store)
        .await
        .expect("chain verifies");

    kz_link.shutdown().await;
    ge_link.shutdown().await;
    stop(trigger, hub).await;

    // A restarted hub still knows when it last heard from KZ (from its journal), though KZ
    // is not connected; AZ, which never sent anything, was never seen.
    let mut raw = RawConfig::default();
    raw.store.url = url.clone();
    raw.http.listen = "127.0.0.1:0".into();
    raw.transport.listen = "127.0.0.1:0".into();
    raw.certs.dir = files.dir.clone();
    let (trigger, shutdown) = shutdown::channel();
    let hub = cats_hub::start(raw.resolve().expect("config resolves"), shutdown)
        .await
        .expect("hub restarts");
    let report = client(&hub).await.queues().await.expect("queue report");
    assert!(!node(&report, "KZ").connected);
    assert!(node(&report, "KZ").last_seen.is_some(), "{report:#?}");
    assert!(node(&report, "AZ").last_seen.is_none(), "{report:#?}");
    stop(trigger, hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_direct_queues_and_dead_letters() {
    direct_scenario(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_direct_queues_and_dead_letters() {
    direct_scenario(Db::Postgres).await;
}
