//! Hub throughput and latency through the whole pipeline, on AMQP and PostgreSQL, side by side
//! in the same run with the bare lapin baseline of the transport benchmark (same broker, same
//! 5 KB payload size, same durability: persistent messages, publisher confirms, manual acks).
//!
//! - (a) bare lapin: node → `cats.hub.in` → consumer, ack (`transport-amqp/benches/support`);
//! - (h) the hub: node KZ seals a 5 KB CD001C (one movement each) and sends it; the hub
//!   verifies the envelope, decodes strictly, runs the rules and reference checks, checks for a
//!   duplicate, journals (hash chain, PostgreSQL), forwards the same envelope to GE and acks;
//!   node GE receives and acks. Latency: from the node's send to GE's receipt.
//!
//! (h) runs once per journal size (`CATS_BENCH_JOURNAL`, default `10000,1000000`): a fresh
//! PostgreSQL database whose journal, duplicate index and recipient index are pre-filled by
//! bulk SQL (small envelopes; hashes that chain into a valid head, so appends continue the
//! chain, but the pre-filled part is not a verifiable chain), to show whether throughput stays
//! flat as the journal grows.
//!
//! Run: `cargo bench -p cats-hub --bench hub`. `CATS_BENCH_MESSAGES` (default 5000),
//! `CATS_BENCH_LANES` (the hub's `[messages] lanes`, the batch bound, default 128),
//! `CATS_TEST_POSTGRES`;
//! `RUST_LOG=cats_hub::pipeline=debug` logs the time of each phase of every batch (stderr).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cats_hub::RawConfig;
use cats_hub::store::HubStore;
use cats_transport::contract::{CountryCode, Destination, Outbound, Transport};
use cats_transport_amqp::AmqpTransport;
use futures::StreamExt;
use message_catalog::ids::{CustomsOfficeRef, Mrn, ProcedureLetter};
use sqlx::Connection;

#[path = "../../transport-amqp/benches/support/baseline.rs"]
mod baseline;
use baseline::{
    Figures, PAYLOAD, PORT, WINDOW, bare, bare_relay, certs_dir, config, purge, start_broker,
    started_put, started_ref, started_take,
};

const CD001C: &str = include_str!("../tests/data/cd001c.xml");
const TEMPLATE_MRN: &str = "26KZ000101000001J0";

/// A CD001C of about `PAYLOAD` bytes: the test template with goods items added.
fn aar(id: &str, mrn: &str) -> Vec<u8> {
    let item = |n: usize| {
        format!(
            "      <ConsignmentItem>\n        <goodsItemNumber>{n}</goodsItemNumber>\n        \
             <declarationGoodsItemNumber>{n}</declarationGoodsItemNumber>\n        <Commodity>\n          \
             <descriptionOfGoods>Seamless steel pipes, hot rolled, grade {n}</descriptionOfGoods>\n        \
             </Commodity>\n        <Packaging>\n          <sequenceNumber>1</sequenceNumber>\n          \
             <typeOfPackages>CT</typeOfPackages>\n        </Packaging>\n      </ConsignmentItem>\n"
        )
    };
    let mut text = CD001C
        .replace("CD001C-MESS-0001", id)
        .replace(TEMPLATE_MRN, mrn);
    let close = "    </HouseConsignment>";
    let mut items = String::new();
    let mut n = 2;
    while text.len() + items.len() < PAYLOAD {
        items.push_str(&item(n));
        n += 1;
    }
    if let Some(at) = text.find(close) {
        text.insert_str(at, &items);
    }
    text.into_bytes()
}

async fn fresh_database(tag: &str) -> String {
    let base = std::env::var("CATS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("PostgreSQL is reachable");
    let name = format!("cats_bench_{tag}_{:08x}", std::process::id());
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
        .execute(&mut admin)
        .await;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create database");
    let i = base.rfind('/').expect("database URL has a path");
    format!("{}/{name}", &base[..i])
}

/// Pre-fills the journal, the duplicate index and the recipient index with `entries` rows, in
/// batches.
async fn prefill(url: &str, entries: i64) {
    let store = HubStore::connect(url).await.expect("migrates");
    store.close().await;
    let mut db = sqlx::PgConnection::connect(url).await.expect("connect");
    let batch = 100_000;
    let mut from = 1;
    while from <= entries {
        let to = (from + batch - 1).min(entries);
        sqlx::query(
            "INSERT INTO hub_journal (sequence, message_id, message_type, sender, recipients, \
             mrn, correlation_id, prepared_at, recorded_at, body_sha256, envelope, signer, \
             status, error_code, error_reason, prev_hash, entry_hash) \
             SELECT g, 'PREFILL-' || g, 'CD001C', 'urn:cats:node:KZ', 'node:GE', \
             'PREFILL' || g, NULL, 0, 0, sha256(convert_to('b' || g, 'UTF8')), \
             decode(repeat('00', 256), 'hex'), 'urn:cats:signer:KZ', 'accepted', NULL, NULL, \
             CASE WHEN g = 1 THEN decode(repeat('00', 32), 'hex') \
                  ELSE sha256(convert_to('e' || (g - 1), 'UTF8')) END, \
             sha256(convert_to('e' || g, 'UTF8')) \
             FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(from)
        .bind(to)
        .execute(&mut db)
        .await
        .expect("journal pre-fill");
        sqlx::query(
            "INSERT INTO hub_seen (sender, message_id, body_sha256, sequence) \
             SELECT 'urn:cats:node:KZ', 'PREFILL-' || g, sha256(convert_to('b' || g, 'UTF8')), g \
             FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(from)
        .bind(to)
        .execute(&mut db)
        .await
        .expect("duplicate index pre-fill");
        sqlx::query(
            "INSERT INTO hub_journal_recipients (recipient, sequence) \
             SELECT 'node:GE', g FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(from)
        .bind(to)
        .execute(&mut db)
        .await
        .expect("recipient index pre-fill");
        from = to + 1;
    }
    sqlx::query("ANALYZE")
        .execute(&mut db)
        .await
        .expect("analyze");
    let _ = db.close().await;
}

/// (h) node KZ → hub (whole pipeline, journal pre-filled with `journal` entries) → node GE.
async fn hub(
    certs: &Path,
    n: usize,
    journal: i64,
    lanes: usize,
    run: &str,
    name: &'static str,
) -> Figures {
    let url = fresh_database(&format!("j{journal}")).await;
    let filled = Instant::now();
    prefill(&url, journal).await;
    eprintln!(
        "journal pre-filled with {journal} entries in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let mut raw = RawConfig::default();
    raw.store.url = url;
    raw.http.listen = "127.0.0.1:0".into();
    raw.certs.dir = certs.to_owned();
    raw.transport.kind = "amqp".into();
    raw.transport.amqp.url = format!("amqps://localhost:{PORT}/cats");
    raw.transport.amqp.prefetch = WINDOW as u16;
    raw.transport.amqp.max_in_flight = WINDOW;
    raw.messages.lanes = lanes;
    raw.operations.sample_interval_ms = 60_000;
    let (trigger, shutdown) = cats_transport::shutdown::channel();
    let running = cats_hub::start(raw.resolve().expect("hub config"), shutdown)
        .await
        .expect("hub starts");
    purge(&config(certs, "node-ge"), "cats.node.GE").await;
    let kz = Arc::new(
        AmqpTransport::node(config(certs, "node-kz"), CountryCode::KZ)
            .await
            .expect("node KZ"),
    );
    let ge = Arc::new(
        AmqpTransport::node(config(certs, "node-ge"), CountryCode::GE)
            .await
            .expect("node GE"),
    );
    let signer = cats_trust::Signer::load(
        &certs.join("signer-kz.pem"),
        &certs.join("signer-kz.key.pem"),
    )
    .expect("KZ signer");
    let office = CustomsOfficeRef::parse("KZ000101").expect("office");
    let prefix = format!("{run}-");
    let begin = Instant::now();
    let receiver = {
        let ge = ge.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            while latencies.len() < n {
                let d = tokio::time::timeout(Duration::from_secs(60), ge.receive())
                    .await
                    .expect("GE receives within 60 s (is the hub refusing the messages?)")
                    .expect("receive");
                let id = d.message_id.clone();
                d.ack().await.expect("ack");
                if !id.starts_with(&prefix) {
                    continue;
                }
                if let Some(start) = started_take(&started_ref(), &id) {
                    latencies.push(start.elapsed());
                }
            }
            latencies
        })
    };
    let sends = futures::stream::iter(0..n).map(|i| {
        let (kz, signer, office) = (&kz, &signer, &office);
        async move {
            let id = format!("{run}-{i}");
            let mrn = Mrn::generate(26, office, (i as u64) + 1, ProcedureLetter::J)
                .expect("MRN")
                .as_str()
                .to_owned();
            started_put(&id);
            let body = aar(&id, &mrn);
            let envelope = signer
                .seal(
                    &cats_trust::EnvelopeHeaderFields {
                        message_id: id.clone(),
                        message_type: "CD001C".into(),
                        sender: cats_trust::PeerIdentity::Node(CountryCode::KZ),
                        recipient: cats_trust::PeerIdentity::Node(CountryCode::GE),
                        correlation_id: None,
                        mrn: Some(mrn.clone()),
                        prepared_at: chrono::Utc::now(),
                    },
                    &body,
                )
                .expect("sealed");
            kz.send(Outbound {
                message_id: id,
                destination: Destination::Hub,
                partition_key: Some(mrn),
                bytes: Bytes::from(envelope),
            })
            .await
            .expect("send");
        }
    });
    sends.buffer_unordered(WINDOW).collect::<Vec<()>>().await;
    let latencies = receiver.await.expect("receiver");
    let elapsed = begin.elapsed();
    let accepted = running.services.metrics.counters().received;
    assert!(accepted >= n as i64, "the hub received {accepted} of {n}");
    kz.close().await;
    ge.close().await;
    trigger.trigger();
    running.stopped().await;
    Figures {
        name,
        messages: n,
        elapsed,
        latencies,
    }
}

fn main() {
    let n: usize = std::env::var("CATS_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let lanes: usize = std::env::var("CATS_BENCH_LANES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let journals: Vec<i64> = std::env::var("CATS_BENCH_JOURNAL")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    if std::env::var_os("RUST_LOG").is_some() {
        // `RUST_LOG=cats_hub::pipeline=debug` prints the time of each phase of every batch.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let certs = certs_dir();
    start_broker(&certs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        purge(&config(&certs, "hub-client"), "cats.hub.in").await;
        let run = format!("hubbench{}", std::process::id());
        let _ = bare(&certs, 1_000.min(n), &format!("{run}w")).await;
        let _ = hub(&certs, 500.min(n), 0, lanes, &format!("{run}w"), "warm-up").await;
        let a = bare(&certs, n, &run).await;
        let r = bare_relay(&certs, n, &format!("{run}r")).await;
        let mut rows = Vec::new();
        for (k, journal) in journals.iter().enumerate() {
            let name: &'static str = Box::leak(
                format!("(h) hub pipeline, journal {journal}").into_boxed_str(),
            );
            rows.push((
                *journal,
                hub(&certs, n, *journal, lanes, &format!("{run}-{k}"), name).await,
            ));
        }
        let a2 = bare(&certs, n, &format!("{run}-again")).await;
        println!();
        println!(
            "node -> hub -> node, {n} messages of {} KB, persistent + confirms + manual acks, \
             window {WINDOW}, hub lanes {lanes}, PostgreSQL",
            PAYLOAD / 1024
        );
        println!(
            "{:<40} {:>10} {:>10} {:>10}",
            "", "msg/s", "p50 ms", "p99 ms"
        );
        let print = |f: &Figures| {
            println!(
                "{:<40} {:>10.0} {:>10.2} {:>10.2}",
                f.name,
                f.rate(),
                f.percentile(0.50).as_secs_f64() * 1e3,
                f.percentile(0.99).as_secs_f64() * 1e3
            )
        };
        print(&a);
        print(&r);
        for (_, h) in &rows {
            print(h);
        }
        print(&a2);
        let bare_rate = (a.rate() + a2.rate()) / 2.0;
        for (journal, h) in &rows {
            println!(
                "ratio hub (journal {journal}) / bare (mean of both bare runs): {:.0}% (target >= 50%)",
                100.0 * h.rate() / bare_rate
            );
        }
        println!(
            "ratio bare relay (two hops, no work) / bare: {:.0}%: the most any hub could reach \
             against the one-hop baseline on this broker",
            100.0 * r.rate() / bare_rate
        );
        for (journal, h) in &rows {
            println!(
                "ratio hub (journal {journal}) / bare relay: {:.0}%",
                100.0 * h.rate() / r.rate()
            );
        }
        if let (Some((_, first)), Some((_, last))) = (rows.first(), rows.last()) {
            println!(
                "throughput at the largest journal / the smallest: {:.0}% (target: within 20%)",
                100.0 * last.rate() / first.rate()
            );
        }
    });
}
