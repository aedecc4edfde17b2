//! Reconciliation with the databases (issue 7): 100,000 movements on the GE node, 1% of them
//! missing one hub delivery. One run is the whole exchange as the node and the hub carry it out,
//! with the production functions and real stores, without the transport and the signatures:
//!
//! 1. the node reads its per-movement digests from `node_reconcile_received` and builds the
//!    request (bucket hashes);
//! 2. the hub reads what it forwarded to GE from its journal and answers the differing buckets
//!    (`cats_hub::reconcile::differences`);
//! 3. the node reads its digests again and names the movements it lacks (repair request);
//! 4. the hub finds those movements and reads every journal entry of each forwarded to GE
//!    (`cats_hub::reconcile::repair_entries`);
//! 5. the node takes the re-sent entries in one transaction: the inbox turns the ones it holds
//!    into duplicates, the others are recorded (`cats_node::reconcile::record_received`).
//!
//! Printed: each run's time and the median, the bytes of the three control bodies beside the
//! bytes of sending the full state (every movement's MRN and digest), and the bytes of the
//! re-sent envelopes (the same whichever way the differences are found). Not included: signing
//! and verifying the envelopes, the transport, and applying the re-sent messages to the
//! movements (the engine's work per message, as for any delivery).
//!
//! `cargo bench -p cats-node --bench reconcile` (SQLite, in the target directory); set
//! `CATS_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/test` to also run on PostgreSQL
//! (two databases are created and dropped). `CATS_BENCH_MOVEMENTS` and `CATS_BENCH_RUNS`
//! change the size (100,000) and the number of runs (5).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use cats_hub::journal::{self, NewEntry, Status};
use cats_hub::store::HubStore;
use cats_node::reconcile;
use cats_transport::store::{Store, Tx};
use cats_trust::{EnvelopeHeaderFields, PeerIdentity};
use chrono::Utc;
use message_catalog::ids::CountryCode;
use message_catalog::lifecycle::reconcile::{
    self as rc, Buckets, DIGEST_LEN, Differences, RepairRequest, Request,
};

/// Hub deliveries per movement (as a departure–destination journey gives a destination node).
const PER_MOVEMENT: usize = 3;
/// Envelope bytes of each journal entry (a signed CD message with its signer certificate is
/// larger: the re-sent bytes scale with it).
const ENVELOPE: usize = 512;
/// One movement in this many misses a delivery.
const DIFFERING_EVERY: usize = 100;

fn mrn(i: usize) -> String {
    format!("26KZ000101{i:06}J{}", i % 10)
}

fn message_id(i: usize, k: usize) -> String {
    format!("KZ{i:08X}{k}")
}

fn differs(i: usize) -> bool {
    i.is_multiple_of(DIFFERING_EVERY)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The hub's journal: every delivery of every movement, forwarded to GE.
async fn fill_hub(hub: &HubStore, movements: usize) {
    let envelope = vec![b'x'; ENVELOPE];
    let sha = journal::sha256(&envelope);
    for chunk in (0..movements).collect::<Vec<_>>().chunks(5_000) {
        let mut tx = hub.begin().await.expect("hub tx");
        journal::lock(&mut tx).await.expect("lock");
        for &i in chunk {
            for k in 0..PER_MOVEMENT {
                journal::append(
                    &mut tx,
                    NewEntry {
                        message_id: message_id(i, k),
                        message_type: "CD001C".into(),
                        sender: "urn:cats:node:KZ".into(),
                        recipients: vec!["node:GE".into()],
                        mrn: Some(mrn(i)),
                        correlation_id: None,
                        prepared_at: None,
                        recorded_at: Utc::now(),
                        body_sha256: sha,
                        envelope: envelope.clone(),
                        signer: Some("urn:cats:signer:KZ".into()),
                        status: Status::Accepted,
                    },
                )
                .await
                .expect("append");
            }
        }
        tx.commit().await.expect("commit");
    }
}

fn fields(id: &str, mrn: &str) -> EnvelopeHeaderFields {
    EnvelopeHeaderFields {
        message_id: id.to_owned(),
        message_type: "CD001C".into(),
        sender: PeerIdentity::Node(CountryCode::KZ),
        recipient: PeerIdentity::Node(CountryCode::GE),
        correlation_id: None,
        mrn: Some(mrn.to_owned()),
        prepared_at: Utc::now(),
    }
}

/// Takes one delivery as the engine does: inbox, then the reconciliation record.
async fn take(tx: &mut Tx<'_>, node: &Store, id: &str, mrn: &str, sha: &[u8]) -> bool {
    let sender = PeerIdentity::Node(CountryCode::KZ);
    let accepted = node
        .inbox()
        .accept(tx, &sender, id, sha)
        .await
        .expect("inbox");
    if accepted != cats_transport::store::Accepted::New {
        return false;
    }
    reconcile::record_received(tx, CountryCode::GE, &fields(id, mrn))
        .await
        .expect("record");
    true
}

/// The node: every delivery, but the last of each differing movement.
async fn fill_node(node: &Store, movements: usize) {
    let sha = journal::sha256(&vec![b'x'; ENVELOPE]);
    for chunk in (0..movements).collect::<Vec<_>>().chunks(5_000) {
        let mut tx = node.begin().await.expect("node tx");
        for &i in chunk {
            let held = if differs(i) {
                PER_MOVEMENT - 1
            } else {
                PER_MOVEMENT
            };
            for k in 0..held {
                take(&mut tx, node, &message_id(i, k), &mrn(i), &sha).await;
            }
        }
        tx.commit().await.expect("commit");
    }
}

/// Puts the node back as it was before a run's repair.
async fn unrepair(node: &Store, movements: usize) {
    let mut tx = node.begin().await.expect("tx");
    let ids: Vec<String> = (0..movements)
        .filter(|i| differs(*i))
        .map(|i| message_id(i, PER_MOVEMENT - 1))
        .collect();
    for id in ids {
        for sql in [
            "DELETE FROM node_reconcile_received WHERE message_id = $1",
            "DELETE FROM node_resume_pending WHERE message_id = $1",
            "DELETE FROM transport_inbox WHERE message_id = $1",
        ] {
            match &mut tx {
                Tx::Sqlite(t) => {
                    sqlx::query(sql)
                        .bind(&id)
                        .execute(&mut **t)
                        .await
                        .expect("undo");
                }
                Tx::Postgres(t) => {
                    sqlx::query(sql)
                        .bind(&id)
                        .execute(&mut **t)
                        .await
                        .expect("undo");
                }
            }
        }
    }
    tx.commit().await.expect("commit");
}

async fn node_leaves(node: &Store) -> Vec<(String, [u8; DIGEST_LEN])> {
    let mut tx = node.begin().await.expect("tx");
    let leaves = reconcile::digests(&mut tx).await.expect("digests");
    tx.commit().await.expect("commit");
    leaves
}

struct Run {
    elapsed: Duration,
    request: usize,
    differences: usize,
    repair: usize,
    found: usize,
    resent_entries: usize,
    resent_bytes: usize,
    applied: usize,
}

async fn one_run(hub: &HubStore, node: &Store) -> Run {
    let ge = CountryCode::GE;
    let started = Instant::now();
    // 1. The node's request.
    let leaves = node_leaves(node).await;
    let count = rc::bucket_count(leaves.len());
    let request = Request {
        resume_after: 0,
        buckets: Buckets::new(count, leaves).hashes(),
    }
    .encode();
    // 2. The hub's differences.
    let req = Request::decode(&request).expect("request");
    let through = journal::size(hub).await.expect("size");
    let answer = cats_hub::reconcile::differences(hub, ge, &req.buckets, through, 0)
        .await
        .expect("differences")
        .encode();
    // 3. The node's repair request.
    let diff = Differences::decode(&answer).expect("differences");
    let mine = Buckets::new(diff.bucket_count, node_leaves(node).await);
    let repair = RepairRequest {
        fingerprints: rc::to_repair(&mine, &diff),
    }
    .encode();
    // 4. The hub's re-sent entries.
    let wanted = RepairRequest::decode(&repair).expect("repair");
    let entries = cats_hub::reconcile::repair_entries(hub, ge, &wanted.fingerprints, through)
        .await
        .expect("repair entries");
    // 5. The node takes them.
    let mut tx = node.begin().await.expect("tx");
    let mut applied = 0;
    let mut resent_entries = 0;
    let mut resent_bytes = 0;
    for (mrn, owed) in &entries {
        for e in owed {
            resent_entries += 1;
            resent_bytes += e.envelope.len();
            let sha = journal::sha256(&e.envelope);
            if take(&mut tx, node, &e.message_id, mrn, &sha).await {
                applied += 1;
            }
        }
    }
    tx.commit().await.expect("commit");
    Run {
        elapsed: started.elapsed(),
        request: request.len(),
        differences: answer.len(),
        repair: repair.len(),
        found: wanted.fingerprints.len(),
        resent_entries,
        resent_bytes,
        applied,
    }
}

async fn bench(label: &str, hub_url: &str, node_url: &str, movements: usize, runs: usize) {
    let hub = HubStore::connect(hub_url).await.expect("hub store");
    let node = Store::connect(node_url).await.expect("node store");
    cats_node::store::migrate(&node)
        .await
        .expect("node migrations");
    let t = Instant::now();
    fill_hub(&hub, movements).await;
    fill_node(&node, movements).await;
    println!(
        "{label}: {movements} movements, {} journal entries, filled in {:.1} s",
        movements * PER_MOVEMENT,
        t.elapsed().as_secs_f64()
    );
    let differing = (0..movements).filter(|i| differs(*i)).count();
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for n in 0..runs {
        let run = one_run(&hub, &node).await;
        assert_eq!(run.found, differing, "every differing movement is found");
        assert_eq!(run.applied, differing, "each lacked exactly one delivery");
        // After the repair the node holds what the hub forwarded.
        let hub_leaves = cats_hub::reconcile::node_digests(&hub, CountryCode::GE, i64::MAX)
            .await
            .expect("hub digests");
        assert_eq!(
            node_leaves(&node).await,
            hub_leaves,
            "in step after the repair"
        );
        println!(
            "{label}: run {}: {:.0} ms",
            n + 1,
            run.elapsed.as_secs_f64() * 1000.0
        );
        times.push(run.elapsed);
        unrepair(&node, movements).await;
        last = Some(run);
    }
    times.sort();
    let run = last.expect("at least one run");
    let full_state = movements * (mrn(0).len() + DIGEST_LEN);
    let control = run.request + run.differences + run.repair;
    println!(
        "{label}: median {:.0} ms (min {:.0}, max {:.0}, {runs} runs) to detect and repair {} \
         of {movements} movements",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        run.found,
    );
    println!(
        "{label}: bytes to find the differences: request {} + differences {} + repair {} = {} \
         = {:.2}% of the full state ({} bytes: every MRN and digest)",
        run.request,
        run.differences,
        run.repair,
        control,
        control as f64 * 100.0 / full_state as f64,
        full_state,
    );
    println!(
        "{label}: re-sent: {} entries, {} envelope bytes ({} applied, the rest duplicates)",
        run.resent_entries, run.resent_bytes, run.applied
    );
    node.close().await;
}

/// A fresh PostgreSQL database named `name` on the server of `base`; its URL.
async fn fresh_postgres(base: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(base).await.expect("PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create");
    admin.close().await.expect("close");
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("{base} names no database"),
    }
}

async fn drop_postgres(base: &str, name: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(base).await.expect("PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop");
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it small, as a check.
    let quick = !std::env::args().any(|a| a == "--bench");
    let movements = env_usize("CATS_BENCH_MOVEMENTS", if quick { 2_000 } else { 100_000 });
    let runs = env_usize("CATS_BENCH_RUNS", if quick { 1 } else { 5 });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let hub = format!("sqlite://{}", dir.path().join("hub.db").display());
        let node = format!("sqlite://{}", dir.path().join("node.db").display());
        bench("sqlite", &hub, &node, movements, runs).await;
        drop(dir);
        if let Ok(base) = std::env::var("CATS_BENCH_POSTGRES") {
            let hub = fresh_postgres(&base, "cats_bench_reconcile_hub").await;
            let node = fresh_postgres(&base, "cats_bench_reconcile_node").await;
            bench("postgres", &hub, &node, movements, runs).await;
            drop_postgres(&base, "cats_bench_reconcile_hub").await;
            drop_postgres(&base, "cats_bench_reconcile_node").await;
        }
    });
}
