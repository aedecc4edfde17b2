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

use demo::world::{TransportKind, World};

const STEP: Duration = Duration::from_secs(30);
const CONVERGE: Duration = Duration::from_secs(90);

#[path = "support/world.rs"]
mod support;

use support::Setup;

/// This binary's broker (ports 26714 / 15684 / 25684).
const BROKER: support::amqp::Spec = support::amqp::Spec {
    name: "reconcile",
    port: 26714,
    management_port: 15684,
    dist_port: 25684,
};

async fn setup(transport: TransportKind) -> Option<Setup> {
    support::setup(transport, &BROKER, 11, STEP).await
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

async fn count(url: &str, sql: &str) -> i64 {
    let pool = sqlite(url).await;
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

/// GE loses deliveries the hub had journalled (its database is put back to a copy taken
/// before them) and comes back: the resume its link's connection triggers gets them back, with
/// no reconciliation run and without waiting for the timer, and the hub re-delivers exactly
/// the ones GE lacks.
async fn resumed_on_reconnect(transport: TransportKind) {
    let Some(mut s) = setup(transport).await else {
        return;
    };
    let ge = CountryCode::parse("GE").expect("GE");
    load(&s.world, 2, 21).await;
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
    let copy_url = format!("sqlite://{}", copy.display());
    let hub_digests = |world: &World| {
        let store = world.hub().services.store.clone();
        async move {
            cats_hub::reconcile::node_digests(&store, ge, i64::MAX)
                .await
                .expect("hub digests")
        }
    };
    let at_copy = hub_digests(&s.world).await;
    let mut seed = 22;
    while hub_digests(&s.world).await == at_copy {
        load(&s.world, 2, seed).await;
        seed += 1;
    }
    // Whatever is still on its way to GE arrives before the copy is put back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs_in_copy = count(&copy_url, "SELECT COUNT(*) FROM node_reconcile_runs").await;
    let inbox_in_copy = count(&copy_url, "SELECT COUNT(*) FROM transport_inbox").await;
    let resent_before = hub_totals(&s.world, "GE").await.entries_resent;

    let node = s
        .world
        .running
        .iter_mut()
        .find(|n| n.country == "GE")
        .expect("GE");
    node.stop().await;
    let path = ge_url.trim_start_matches("sqlite://").to_owned();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    std::fs::copy(&copy, &path).expect("restore the copy");
    node.restart().await.expect("GE restarts on the old copy");
    if let Some(handle) = s.world.nodes.0.get_mut("GE") {
        handle.stream = demo::client::Stream::follow(&handle.client, 0);
    }

    // No reconciliation is started: only the resume of the new connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = differences(&s.world, "GE").await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GE did not get back what it lost on reconnecting: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = engine(&s.world, "GE").metrics();
    assert!(
        metrics.value("cats_node_reconciliation_total", "what=\"resumes\"") >= 1,
        "the connection did not resume"
    );
    assert_eq!(
        count(&ge_url, "SELECT COUNT(*) FROM node_reconcile_runs").await,
        runs_in_copy,
        "a reconciliation ran: the resume alone must do"
    );
    // Exactly what GE lacked: every re-delivered entry was new to GE's inbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resent = hub_totals(&s.world, "GE").await.entries_resent - resent_before;
        let applied = count(&ge_url, "SELECT COUNT(*) FROM transport_inbox").await - inbox_in_copy;
        if resent == applied && resent > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hub re-delivered {resent} entries; GE applied {applied} it lacked"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    nothing_twice(&s.world, "GE").await;
    // The hub's answer confirmed every delivery the resume named (the re-delivered ones wait
    // for the next resume or reconciliation).
    assert_eq!(
        count(
            &ge_url,
            "SELECT COUNT(*) FROM node_resume_pending WHERE request_id IS NOT NULL"
        )
        .await,
        0
    );
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
async fn direct_resumed_on_reconnect() {
    resumed_on_reconnect(TransportKind::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_resumed_on_reconnect() {
    resumed_on_reconnect(TransportKind::Amqp).await;
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
