//! Reconciliation between the nodes and the hub (issue 7), end to end: the hub and the KZ, AZ
//! and GE nodes started in this process as `cats demo` starts them (real sockets, mutual TLS,
//! signatures, SQLite), movements driven through the national APIs by the demo's own driver,
//! on each transport.
//!
//! "Agree" below means: for every MRN, the node's digest of the hub deliveries it holds equals
//! the hub's digest of the journal entries it forwarded to that node, and every movement's
//! stored state equals the state re-folded from its own event log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use message_catalog::ids::CountryCode;

#[path = "../src/cli/demo"]
#[allow(dead_code)]
mod demo {
    pub mod client;
    pub mod journey;
    pub mod load;
    pub mod messages;
    pub mod world;
}

use demo::world::{Options, RawOptions, StoreKind, TransportKind, World};

const STEP: Duration = Duration::from_secs(30);
const CONVERGE: Duration = Duration::from_secs(90);

struct Setup {
    world: World,
    _certs: tempfile::TempDir,
    _broker: Option<tokio::sync::SemaphorePermit<'static>>,
}

async fn setup(transport: TransportKind) -> Option<Setup> {
    let certs = tempfile::tempdir().expect("tempdir");
    let (pki, amqp_url, permit) = match transport {
        TransportKind::Direct => (certs.path().join("dev"), None, None),
        TransportKind::Amqp => {
            let broker = amqp::broker()?;
            let permit = amqp::exclusive(broker).await;
            (
                broker.certs.clone(),
                Some(format!("amqps://localhost:{}/cats", broker.port)),
                Some(permit),
            )
        }
    };
    let raw = RawOptions {
        transport,
        amqp_url,
        store: StoreKind::Sqlite,
        database_url: None,
        movements: None,
        keep_running: false,
        seed: 11,
        certs: pki,
        step_timeout: STEP.as_secs(),
        concurrency: 1,
    };
    let options = Options::resolve(&raw).expect("options");
    let world = World::start(&options).await.expect("the world starts");
    Some(Setup {
        world,
        _certs: certs,
        _broker: permit,
    })
}

fn running<'a>(world: &'a World, country: &str) -> &'a demo::world::RunningNode {
    world
        .running
        .iter()
        .find(|n| n.country == country)
        .expect("a pilot country")
}

fn engine<'a>(world: &'a World, country: &str) -> &'a cats_node::engine::Engine {
    &running(world, country)
        .node()
        .expect("the node is running")
        .engine
}

async fn sqlite(url: &str) -> sqlx::SqlitePool {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .expect("a SQLite URL")
        .busy_timeout(Duration::from_secs(10));
    sqlx::SqlitePool::connect_with(options)
        .await
        .expect("the node's database opens")
}

/// The MRNs on which `country`'s node and the hub disagree.
async fn differences(world: &World, country: &str) -> Vec<String> {
    let cc = CountryCode::parse(country).expect("country");
    let hub: BTreeMap<String, _> =
        cats_hub::reconcile::node_digests(&world.hub().services.store, cc, i64::MAX)
            .await
            .expect("hub digests")
            .into_iter()
            .collect();
    let engine = engine(world, country);
    let mut tx = engine.store().begin().await.expect("node store");
    let node: BTreeMap<String, _> = cats_node::reconcile::digests(&mut tx)
        .await
        .expect("node digests")
        .into_iter()
        .collect();
    tx.commit().await.expect("commit");
    let keys: BTreeSet<&String> = hub.keys().chain(node.keys()).collect();
    keys.into_iter()
        .filter(|k| hub.get(*k) != node.get(*k))
        .cloned()
        .collect()
}

/// Reconciles `country` until it agrees with the hub; panics with the differences otherwise.
async fn converge(world: &World, country: &str) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let left = differences(world, country).await;
        if left.is_empty() {
            let corrupt = engine(world, country)
                .self_check()
                .await
                .expect("self-check");
            assert!(
                corrupt.is_empty(),
                "{country}: states off their log: {corrupt:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{country} still differs from the hub on {} movements: {left:?}",
            left.len()
        );
        engine(world, country)
            .reconcile()
            .await
            .expect("reconciliation starts");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// No hub delivery was applied twice on the node, and its national stream holds each message
/// identification once.
async fn nothing_twice(world: &World, country: &str) {
    let pool = sqlite(&running(world, country).store_url).await;
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT message_id, COUNT(*) FROM node_messages WHERE direction = 'in' \
         GROUP BY party, message_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .expect("messages");
    assert!(twice.is_empty(), "{country}: applied twice: {twice:?}");
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT message_id, COUNT(*) FROM node_stream GROUP BY message_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .expect("stream");
    assert!(twice.is_empty(), "{country}: stream repeats: {twice:?}");
    pool.close().await;
}

async fn journal_size(world: &World) -> i64 {
    cats_hub::journal::size(&world.hub().services.store)
        .await
        .expect("journal size")
}

async fn load(world: &World, count: usize, seed: u64) {
    let report = demo::load::run(&world.nodes, count, seed, 3, STEP).await;
    assert!(
        report.failures.is_empty(),
        "movements failed: {:?}",
        report.failures
    );
}

async fn hub_totals(world: &World, country: &str) -> cats_hub::reconcile::NodeReconciliation {
    cats_hub::reconcile::report(&world.hub().services.store)
        .await
        .expect("report")
        .into_iter()
        .find(|n| n.country == country)
        .expect("the node reconciled with the hub")
}

async fn restored_from_an_older_copy(transport: TransportKind) {
    let Some(mut s) = setup(transport).await else {
        return;
    };
    load(&s.world, 3, 1).await;
    // The copy: a consistent snapshot of GE's database while it runs.
    let backup = tempfile::tempdir().expect("tempdir");
    let copy = backup.path().join("ge.db");
    let ge_url = running(&s.world, "GE").store_url.clone();
    {
        let pool = sqlite(&ge_url).await;
        sqlx::query("VACUUM INTO $1")
            .bind(copy.display().to_string())
            .execute(&pool)
            .await
            .expect("snapshot");
        pool.close().await;
    }
    let at_copy = journal_size(&s.world).await;
    // At least 500 journal entries later...
    let mut seed = 2;
    while journal_size(&s.world).await - at_copy < 500 {
        load(&s.world, 12, seed).await;
        seed += 1;
    }
    // The movements GE holds from other countries (the ones GE's own offices declared start
    // from national messages the hub never sees: a restore loses those after the copy).
    let foreign = |url: String| async move {
        let pool = sqlite(&url).await;
        let mrns: Vec<String> =
            sqlx::query_scalar("SELECT mrn FROM node_movements WHERE mrn IS NOT NULL")
                .fetch_all(&pool)
                .await
                .expect("MRNs");
        pool.close().await;
        mrns.into_iter()
            .filter(|m| m.get(2..4) != Some("GE"))
            .collect::<BTreeSet<String>>()
    };
    let before = foreign(ge_url.clone()).await;
    // ... GE's database is replaced by the copy while traffic continues.
    let nodes = s.world.nodes.clone();
    let traffic = tokio::spawn(async move { demo::load::run(&nodes, 6, 99, 2, STEP).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ge = s
        .world
        .running
        .iter_mut()
        .find(|n| n.country == "GE")
        .expect("GE");
    ge.stop().await;
    let path = ge_url.trim_start_matches("sqlite://").to_owned();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    std::fs::copy(&copy, &path).expect("restore the copy");
    ge.restart().await.expect("GE restarts on the old copy");
    // The national system follows GE's stream again from the start: the restored stream's
    // cursor is behind the one it had reached (its identifications tell repetitions apart).
    if let Some(handle) = s.world.nodes.0.get_mut("GE") {
        handle.stream = demo::client::Stream::follow(&handle.client, 0);
    }
    // Movements in flight at GE lose what GE's officers did after the copy (the hub never saw
    // it): those journeys may stop; the others go on.
    let report = traffic.await.expect("traffic task");
    eprintln!(
        "traffic during the restore: {} failed of 6",
        report.failures.len()
    );

    converge(&s.world, "GE").await;
    nothing_twice(&s.world, "GE").await;
    let after = foreign(ge_url.clone()).await;
    let missing: Vec<&String> = before.difference(&after).collect();
    assert!(
        missing.is_empty(),
        "GE lost movements the hub re-delivers: {missing:?}"
    );
    let totals = hub_totals(&s.world, "GE").await;
    assert!(
        totals.entries_resent > 0,
        "the hub re-delivered nothing: {totals:?}"
    );
    for country in ["KZ", "AZ"] {
        converge(&s.world, country).await;
    }
    // GE allocates MRNs after those it had allocated since the copy (learnt from the
    // re-delivered entries): new movements from its offices go through.
    load(&s.world, 6, 77).await;
    converge(&s.world, "GE").await;
    nothing_twice(&s.world, "GE").await;
    s.world.stop().await;
}

async fn cut_off_under_load(transport: TransportKind) {
    let Some(mut s) = setup(transport).await else {
        return;
    };
    let nodes = s.world.nodes.clone();
    let traffic = tokio::spawn(async move { demo::load::run(&nodes, 12, 5, 3, STEP).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let az = s
        .world
        .running
        .iter_mut()
        .find(|n| n.country == "AZ")
        .expect("AZ");
    az.stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    az.restart().await.expect("AZ comes back");
    // The node is down, not only its link: a national system that posted to it meanwhile was
    // refused (and would post again); every other journey goes through the cut.
    let report = traffic.await.expect("traffic task");
    let failed: Vec<_> = report
        .failures
        .iter()
        .filter(|(_, why)| !why.contains("Connection refused"))
        .collect();
    assert!(
        failed.is_empty(),
        "movements failed across the cut: {failed:?}"
    );
    assert!(
        report.failures.len() < 6,
        "most journeys must cross the cut: {:?}",
        report.failures
    );
    for country in ["KZ", "AZ", "GE"] {
        converge(&s.world, country).await;
        nothing_twice(&s.world, country).await;
    }
    s.world.stop().await;
}

async fn corrupted_by_hand(transport: TransportKind) {
    let Some(s) = setup(transport).await else {
        return;
    };
    load(&s.world, 2, 3).await;
    converge(&s.world, "GE").await;
    let url = running(&s.world, "GE").store_url.clone();
    let pool = sqlite(&url).await;
    let (id, mrn, state): (i64, String, String) = sqlx::query_as(
        "SELECT id, mrn, state FROM node_movements WHERE mrn IS NOT NULL ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a GE movement");
    // By hand: the destination's state is thrown back and the event count changed.
    let mut json: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
    json["applied"] = serde_json::json!(999);
    if let Some(d) = json.get_mut("destination").filter(|d| d.is_object()) {
        d["phase"] = serde_json::json!("Anticipated");
    }
    sqlx::query("UPDATE node_movements SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(json.to_string())
        .execute(&pool)
        .await
        .expect("corrupt it");

    let started = engine(&s.world, "GE")
        .reconcile()
        .await
        .expect("reconciliation");
    assert_eq!(started.corrupt_repaired, vec![mrn.clone()]);
    let repaired: String = sqlx::query_scalar("SELECT state FROM node_movements WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("state");
    let repaired: serde_json::Value = serde_json::from_str(&repaired).expect("JSON");
    let original: serde_json::Value = serde_json::from_str(&state).expect("JSON");
    assert_eq!(
        repaired, original,
        "the movement is back to its folded state"
    );
    pool.close().await;
    // Reported: metrics and the node's reconciliation runs.
    let metrics = engine(&s.world, "GE").metrics();
    assert_eq!(
        metrics.value(
            "cats_node_reconciliation_total",
            "what=\"corrupt_repaired\""
        ),
        1
    );
    let mut tx = engine(&s.world, "GE").store().begin().await.expect("tx");
    let runs = cats_node::reconcile::runs(&mut tx, 1).await.expect("runs");
    tx.commit().await.expect("commit");
    assert_eq!(runs.first().map(|r| r.corrupt_repaired), Some(1));
    converge(&s.world, "GE").await;
    s.world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_restored_from_an_older_copy() {
    restored_from_an_older_copy(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_cut_off_under_load() {
    cut_off_under_load(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_corrupted_by_hand() {
    corrupted_by_hand(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_restored_from_an_older_copy() {
    restored_from_an_older_copy(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_cut_off_under_load() {
    cut_off_under_load(TransportKind::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_corrupted_by_hand() {
    corrupted_by_hand(TransportKind::Amqp).await;
}

/// The project's TLS RabbitMQ node for these tests, started by `deploy/rabbitmq/start-node.sh`
/// on this binary's own ports (56714 / 15684 / 25684), with the PKI the world uses.
mod amqp {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use cats_transport_amqp::lapin::options::QueuePurgeOptions;
    use cats_transport_amqp::{AmqpConfig, TlsIdentity, raw_connection};
    use message_catalog::ids::CountryCode;

    #[derive(Debug)]
    pub struct Broker {
        pub certs: PathBuf,
        pub port: u16,
        state: PathBuf,
        node_name: String,
    }

    fn start() -> Result<Broker, String> {
        let root = std::env::temp_dir().join("cats-reconcile-test");
        let broker = Broker {
            certs: root.join("certs"),
            port: 56714,
            state: root.join("rabbitmq"),
            node_name: "cats-reconcile@localhost".into(),
        };
        cats_trust::pki::DevPki::init(
            &broker.certs,
            &[CountryCode::KZ, CountryCode::AZ, CountryCode::GE],
            false,
        )
        .map_err(|e| format!("cannot create the test PKI: {e}"))?;
        let output = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rabbitmq/start-node.sh"),
        )
        .env("CATS_RABBITMQ_NODE_NAME", &broker.node_name)
        .env("CATS_RABBITMQ_AMQPS_PORT", broker.port.to_string())
        .env("CATS_RABBITMQ_MANAGEMENT_PORT", "15684")
        .env("CATS_RABBITMQ_DIST_PORT", "25684")
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
        Ok(broker)
    }

    /// Starts the broker once per test binary.
    pub fn broker() -> Option<&'static Broker> {
        static BROKER: OnceLock<Option<Broker>> = OnceLock::new();
        BROKER
            .get_or_init(|| match start() {
                Ok(b) => Some(b),
                Err(e) => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "RabbitMQ is required under CI=true: {e}"
                    );
                    eprintln!("\n!!!!! SKIPPED: no RabbitMQ for the AMQP reconciliation: {e}\n");
                    None
                }
            })
            .as_ref()
    }

    fn consumers(broker: &Broker) -> Option<u64> {
        let ctl = std::fs::read_dir("/usr/lib/rabbitmq/lib")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("sbin/rabbitmqctl"))
            .find(|p| p.exists())?;
        let output = Command::new(ctl)
            .env("HOME", &broker.state)
            .args([
                "-q",
                "-n",
                &broker.node_name,
                "list_queues",
                "-p",
                "cats",
                "consumers",
            ])
            .output()
            .ok()?;
        output.status.success().then(|| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .sum()
        })
    }

    /// The cases share the broker's queues: one at a time, from empty queues, with no consumer
    /// of the previous one left.
    pub async fn exclusive(broker: &Broker) -> tokio::sync::SemaphorePermit<'static> {
        static LOCK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let permit = LOCK.acquire().await.expect("never closed");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && consumers(broker).is_some_and(|n| n > 0) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let party = |name: &str| {
            let tls = TlsIdentity::from_pki_dir(&broker.certs, name).expect("the test PKI");
            AmqpConfig::new("localhost", broker.port, tls)
        };
        let hub = party("hub-client");
        purge(&hub, "cats.hub.in").await;
        for c in ["KZ", "AZ", "GE"] {
            purge(
                &party(&format!("node-{}", c.to_ascii_lowercase())),
                &format!("cats.node.{c}"),
            )
            .await;
        }
        permit
    }

    async fn purge(config: &AmqpConfig, queue: &str) {
        let Ok(connection) = raw_connection(config, "reconcile-purge").await else {
            return;
        };
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_purge(queue.into(), QueuePurgeOptions::default())
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}
