//! Scaling out: two hubs share one RabbitMQ and one PostgreSQL journal.
//!
//! The hub's inbound queue is partitioned by MRN (`[transport.amqp] partitions = 4`: the
//! consistent-hash exchange `cats.hub.in` over `cats.hub.in`, `cats.hub.in.1` … `.3`, each with a
//! single active consumer). Hub A prefers partitions 0 and 1, hub B 2 and 3; each stands by on
//! the others. Each hub has its own database pool, its own broker connection and its own
//! pipeline: all they share is what two hub processes share, the broker and the database.
//!
//! Three node identities send many movements' messages, each movement in its life-cycle order
//! (KZ's AAR and ATR, AZ's entry notification, GE's arrival advice; each sent once the broker
//! confirmed the one before). The test then reads the journal: every message journalled once,
//! accepted, each movement's messages in the order they were sent, both hubs did work, and the
//! hash chain verifies as one chain (`cats hub verify-journal`).
//!
//! This binary's RabbitMQ node: ports 56716 / 15686 / 25686, node `cats-scale@localhost`, state
//! `/tmp/cats-scale-test`. Under `CI=true` a missing RabbitMQ or PostgreSQL fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cats_hub::{RawConfig, RunningHub, journal};
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_transport_amqp::lapin::options::QueuePurgeOptions;
use cats_transport_amqp::{AmqpConfig, AmqpTransport, TlsIdentity, raw_connection};
use cats_trust::pki::{DevPki, DevPkiFiles};
use cats_trust::{EnvelopeHeaderFields, Signer};
use futures::StreamExt;
use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};
use sqlx::Connection;

const CD001C: &str = include_str!("data/cd001c.xml");
const CD050C: &str = include_str!("data/cd050c.xml");
const CD118C: &str = include_str!("../../message-catalog/tests/data/cd118c/valid-minimal.xml");
const CD006C: &str = include_str!("../../message-catalog/tests/data/cd006c/valid-minimal.xml");
const TEMPLATE_MRN: &str = "26KZ000101000001J0";
const COUNTRIES: [CountryCode; 3] = [CountryCode::KZ, CountryCode::AZ, CountryCode::GE];
const PORT: u16 = 56716;
const PARTITIONS: u16 = 4;
const MOVEMENTS: usize = 120;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A fresh PostgreSQL database for this run, or `None` (skipped loudly; a failure in CI).
async fn postgres_url() -> Option<String> {
    let base = std::env::var("CATS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) => {
            assert!(!in_ci(), "PostgreSQL at {base} is unreachable in CI: {e}");
            eprintln!("\n!!!!! SKIPPED: PostgreSQL at {base} is unreachable ({e}) !!!!!\n");
            return None;
        }
    };
    let name = format!("cats_scale_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create database");
    let i = base.rfind('/').expect("database URL has a path");
    Some(format!("{}/{name}", &base[..i]))
}

/// This binary's RabbitMQ node, started with `deploy/rabbitmq/start-node.sh`.
fn start_broker() -> Option<(PathBuf, DevPkiFiles)> {
    let state = PathBuf::from("/tmp/cats-scale-test");
    let certs = state.join("certs");
    let files = DevPki::init(&certs, &COUNTRIES, false).expect("test PKI");
    let output = Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rabbitmq/start-node.sh"),
    )
    .args(["--amqps-port", &PORT.to_string()])
    .args(["--management-port", "15686", "--dist-port", "25686"])
    .args(["--node-name", "cats-scale@localhost"])
    .arg("--state")
    .arg(&state)
    .arg("--certs")
    .arg(&certs)
    .output();
    match output {
        Ok(o) if o.status.success() => Some((certs, files)),
        other => {
            let why = match other {
                Ok(o) => format!(
                    "start-node.sh failed: {}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => format!("cannot run start-node.sh: {e}"),
            };
            assert!(!in_ci(), "RabbitMQ is required under CI=true: {why}");
            eprintln!("\n!!!!! SKIPPED: no RabbitMQ for the scaling test: {why} !!!!!\n");
            None
        }
    }
}

fn amqp(certs: &Path, party: &str) -> AmqpConfig {
    let tls = TlsIdentity::from_pki_dir(certs, party).expect("the test PKI exists");
    let mut config = AmqpConfig::new("localhost", PORT, tls);
    config.operation_timeout = Duration::from_secs(10);
    config.connect_timeout = Duration::from_secs(10);
    config.reconnect_max = Duration::from_secs(1);
    config
}

/// Empties the hub's partition queues (left over from an earlier run, they would be processed
/// by this one); a queue that does not exist yet is fine.
async fn purge_partitions(certs: &Path) {
    let connection = raw_connection(&amqp(certs, "hub-client"), "test-purge")
        .await
        .expect("connect");
    for p in 0..PARTITIONS {
        let queue = cats_transport_amqp::topology::hub_partition_queue(p);
        let channel = connection.create_channel().await.expect("channel");
        let _ = channel
            .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}

fn hub_config(certs: &Path, url: &str, preferred: &str) -> RawConfig {
    let mut raw = RawConfig::default();
    raw.store.url = url.to_owned();
    raw.http.listen = "127.0.0.1:0".into();
    raw.certs.dir = certs.to_owned();
    raw.transport.kind = "amqp".into();
    raw.transport.amqp.url = format!("amqps://localhost:{PORT}/cats");
    raw.transport.amqp.operation_timeout_ms = 10_000;
    raw.transport.amqp.reconnect_max_ms = 1_000;
    raw.transport.amqp.prefetch = 32;
    raw.transport.amqp.partitions = PARTITIONS;
    raw.transport.amqp.preferred_partitions = preferred.into();
    raw.transport.amqp.standby_delay_ms = 10_000;
    raw
}

async fn stop(trigger: ShutdownTrigger, hub: RunningHub) {
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(30), hub.stopped())
        .await
        .expect("hub stops on shutdown");
}

/// One message of a movement: who sends it, to whom, and its body.
struct Step {
    from: CountryCode,
    to: CountryCode,
    message_type: &'static str,
    id: String,
    body: Vec<u8>,
}

/// The four messages of movement `mrn`, in life-cycle order.
fn life_cycle(run: &str, mrn: &str) -> Vec<Step> {
    let (kz, az, ge) = (CountryCode::KZ, CountryCode::AZ, CountryCode::GE);
    [
        (kz, ge, "CD001C", CD001C, "CD001C-MESS-0001"),
        (kz, az, "CD050C", CD050C, "CD050C-MESS-0001"),
        (az, kz, "CD118C", CD118C, "CD118C-MESS-0001"),
        (ge, kz, "CD006C", CD006C, "CD006C-MESS-0001"),
    ]
    .into_iter()
    .map(|(from, to, message_type, template, template_id)| {
        let id = format!("{run}-{message_type}-{mrn}");
        let body = template
            .replace(template_id, &id)
            .replace(TEMPLATE_MRN, mrn)
            .replace(
                "<messageSender>NTA.KZ</messageSender>",
                &format!("<messageSender>NTA.{from}</messageSender>"),
            )
            .replace(
                "<messageRecipient>NTA.GE</messageRecipient>",
                &format!("<messageRecipient>NTA.{to}</messageRecipient>"),
            )
            .replace(
                "<messageRecipient>NTA.AZ</messageRecipient>",
                &format!("<messageRecipient>NTA.{to}</messageRecipient>"),
            )
            .into_bytes();
        Step {
            from,
            to,
            message_type,
            id,
            body,
        }
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hubs_keep_each_movement_in_order_and_journal_each_message_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some((certs, files)) = start_broker() else {
        return;
    };
    let Some(url) = postgres_url().await else {
        return;
    };
    purge_partitions(&certs).await;

    let (trigger_a, shutdown_a) = shutdown::channel();
    let hub_a = cats_hub::start(
        hub_config(&certs, &url, "0,1")
            .resolve()
            .expect("config resolves"),
        shutdown_a,
    )
    .await
    .expect("hub A starts");
    let (trigger_b, shutdown_b) = shutdown::channel();
    let hub_b = cats_hub::start(
        hub_config(&certs, &url, "2,3")
            .resolve()
            .expect("config resolves"),
        shutdown_b,
    )
    .await
    .expect("hub B starts");
    assert_eq!(hub_a.direct_addr, None, "no direct link on AMQP");

    let mut signers = BTreeMap::new();
    let mut links = BTreeMap::new();
    for c in COUNTRIES {
        let s = files.signers.get(&c).expect("signer");
        signers.insert(c, Signer::load(&s.cert, &s.key).expect("signer loads"));
        let node = format!("node-{}", c.as_str().to_ascii_lowercase());
        links.insert(
            c,
            AmqpTransport::node(amqp(&certs, &node), c)
                .await
                .expect("node connects"),
        );
    }
    let (signers, links) = (Arc::new(signers), Arc::new(links));

    let run = format!("S{:08x}", rand::random::<u32>());
    let office = CustomsOfficeRef::parse("KZ000101").expect("office");
    let mrns: Vec<String> = (0..MOVEMENTS)
        .map(|i| {
            Mrn::generate(26, &office, 10_000 + i as u64, ProcedureLetter::J)
                .expect("MRN")
                .as_str()
                .to_owned()
        })
        .collect();
    // Movements concurrently; within one movement, each message once the one before is
    // confirmed by the broker (so it is in its partition queue before the next).
    futures::stream::iter(mrns.clone())
        .map(|mrn| {
            let (signers, links, run) = (signers.clone(), links.clone(), run.clone());
            async move {
                for step in life_cycle(&run, &mrn) {
                    let fields = EnvelopeHeaderFields {
                        message_id: step.id.clone(),
                        message_type: step.message_type.into(),
                        sender: PeerIdentity::Node(step.from),
                        recipient: PeerIdentity::Node(step.to),
                        correlation_id: None,
                        mrn: Some(mrn.clone()),
                        prepared_at: chrono::Utc::now(),
                    };
                    let wire = signers[&step.from].seal(&fields, &step.body).expect("seal");
                    links[&step.from]
                        .send(Outbound {
                            message_id: step.id,
                            destination: Destination::Hub,
                            partition_key: Some(mrn.clone()),
                            bytes: Bytes::from(wire),
                        })
                        .await
                        .expect("the broker confirms");
                }
            }
        })
        .buffer_unordered(24)
        .collect::<Vec<()>>()
        .await;

    let expected = i64::try_from(4 * MOVEMENTS).expect("small");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let size = journal::size(&hub_a.services.store).await.expect("size");
        if size >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hubs journalled {size} of {expected} messages in time"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Anything journalled late (a message processed twice) would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let entries = journal::entries_after(&hub_a.services.store, 0, 10 * expected)
        .await
        .expect("journal");
    assert_eq!(
        entries.len(),
        4 * MOVEMENTS,
        "one entry per message, none twice"
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut per_mrn: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for e in &entries {
        assert_eq!(
            e.entry.status,
            journal::Status::Accepted,
            "entry {} ({} {}) was not accepted",
            e.sequence,
            e.entry.message_type,
            e.entry.message_id
        );
        assert!(
            seen.insert((e.entry.sender.clone(), e.entry.message_id.clone())),
            "{} from {} journalled twice",
            e.entry.message_id,
            e.entry.sender
        );
        let mrn = e.entry.mrn.clone().expect("every message has an MRN");
        per_mrn
            .entry(mrn)
            .or_default()
            .push((e.sequence, e.entry.message_type.clone()));
    }
    assert_eq!(per_mrn.len(), MOVEMENTS);
    for (mrn, journalled) in &per_mrn {
        let types: Vec<&str> = journalled.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            types,
            ["CD001C", "CD050C", "CD118C", "CD006C"],
            "movement {mrn} was processed out of order: {journalled:?}"
        );
    }

    // Both hubs did work, and between them received each message once.
    let (a, b) = (
        hub_a.services.metrics.counters().received,
        hub_b.services.metrics.counters().received,
    );
    assert!(a > 0 && b > 0, "both hubs process messages: A {a}, B {b}");
    assert!(a + b >= expected, "A {a} + B {b} deliveries");

    // One chain, whoever appended.
    let verified = cats_hub::verify_journal(&url)
        .await
        .expect("the journal verifies");
    assert_eq!(verified.entries, expected);

    for link in links.values() {
        link.close().await;
    }
    stop(trigger_a, hub_a).await;
    stop(trigger_b, hub_b).await;
}
