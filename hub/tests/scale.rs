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
//! This binary's RabbitMQ node: ports 26716 / 15686 / 25686, node `cats-scale@localhost`, state
//! `/tmp/cats-scale-test`. Under `CI=true` a missing RabbitMQ or PostgreSQL fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cats_hub::{RawConfig, RunningHub, journal};
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_transport_amqp::lapin::options::QueuePurgeOptions;
use cats_transport_amqp::{AmqpConfig, TlsIdentity, raw_connection};
use cats_trust::pki::{DevPki, DevPkiFiles};
use sqlx::Connection;

#[path = "support/movements.rs"]
mod movements;

use movements::{COUNTRIES, Senders};

const PORT: u16 = 26716;
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

    let senders = Arc::new(Senders::connect(&files, |party| amqp(&certs, party)).await);
    let run = movements::run_id();
    let mrns = movements::mrns(MOVEMENTS, 10_000);
    // Movements concurrently; within one movement, each message once the one before is
    // confirmed by the broker (so it is in its partition queue before the next).
    senders.send_all(&run, &mrns, 24).await;

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
    movements::check_journal(&entries, &mrns);

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

    senders.close().await;
    stop(trigger_a, hub_a).await;
    stop(trigger_b, hub_b).await;
}
