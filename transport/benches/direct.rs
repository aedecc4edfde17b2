//! Benchmark: 5 KB signed messages node → hub over the direct mTLS link on loopback.
//!
//! The node seals each message with its signing certificate (`cats_trust::Signer`) and sends
//! it; the hub verifies it (`cats_trust::Verifier`: chain, allow-list, sender = transport
//! identity, body hash, time window), records it in its inbox inside a transaction, commits and
//! acks; the node's `send` returns on that ack. Reported: messages per second and the p50/p99
//! latency of `send` (seal excluded), first one message at a time, then 64 concurrent sends.
//! A second run without signing, verification or inbox shows what the link alone costs.
//!
//! `cargo bench -p cats-transport --bench direct` (SQLite); `CATS_BENCH_DB=postgres://…` for a
//! PostgreSQL hub store (the database must exist and be empty or ours). `CATS_BENCH_N` sets the
//! number of messages of the concurrent run (default 20,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport::direct::{DirectHub, DirectNode, HubTls, LinkConfig, NodeTls};
use cats_transport::store::Store;
use cats_trust::envelope::{EnvelopeHeaderFields, Signer, Verifier};
use cats_trust::identity::TrustStore;
use cats_trust::pki::DevPki;
use futures::StreamExt;

const BODY_SIZE: usize = 5 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Signed,
    Bare,
}

fn main() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), BoxError> {
    let n: usize = std::env::var("CATS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!("direct mTLS link, node KZ → hub, {BODY_SIZE}-byte bodies, loopback");
    for mode in [Mode::Signed, Mode::Bare] {
        let label = match mode {
            Mode::Signed => "signed + verified + inbox commit",
            Mode::Bare => "link only (no signature, no store)",
        };
        let (rate1, p50_1, p99_1) = bench(mode, 1, 2_000).await?;
        let (rate, p50, p99) = bench(mode, 64, n).await?;
        println!(
            "{label:<38} 1 in flight: {rate1:>8.0} msg/s p50 {p50_1:>7.3} ms p99 {p99_1:>7.3} ms | \
             64 in flight: {rate:>8.0} msg/s p50 {p50:>7.3} ms p99 {p99:>7.3} ms"
        );
    }
    Ok(())
}

/// The hub's inbox row for `delivery`, committed.
async fn commit(
    store: &Store,
    delivery: &cats_transport::contract::Delivery,
    digest: &[u8],
) -> Result<(), cats_transport::store::StoreError> {
    let mut tx = store.begin().await?;
    store
        .inbox()
        .accept(&mut tx, &delivery.from, &delivery.message_id, digest)
        .await?;
    tx.commit().await
}

/// Sends `n` messages with `concurrency` sends in flight; returns (msg/s, p50 ms, p99 ms).
async fn bench(mode: Mode, concurrency: usize, n: usize) -> Result<(f64, f64, f64), BoxError> {
    let dir = tempfile::tempdir()?;
    let files = DevPki::init(dir.path(), &[CountryCode::KZ], false)?;
    let url = match std::env::var("CATS_BENCH_DB") {
        Ok(url) => url,
        Err(_) => format!("sqlite://{}", dir.path().join("hub.db").display()),
    };
    let hub_store = Store::connect(&url).await?;
    let config = LinkConfig {
        window: 256,
        receive_buffer: 512,
        ..LinkConfig::default()
    };
    let hub = Arc::new(
        DirectHub::bind(
            "127.0.0.1:0".parse()?,
            HubTls::from_files(
                &files.ca.cert,
                Some(&files.allow_list),
                &files.hub_server.cert,
                &files.hub_server.key,
            )?,
            hub_store.clone(),
            config.clone(),
        )
        .await?,
    );
    let kz = files.nodes.get(&CountryCode::KZ).ok_or("no KZ node")?;
    let node = Arc::new(DirectNode::connect(
        hub.local_addr().to_string(),
        NodeTls::from_files(&files.ca.cert, &kz.cert, &kz.key)?,
        config,
    )?);
    node.wait_connected(Duration::from_secs(10)).await?;
    let signing = files.signers.get(&CountryCode::KZ).ok_or("no KZ signer")?;
    let signer = Arc::new(Signer::load(&signing.cert, &signing.key)?);
    let verifier = Arc::new(Verifier::new(
        TrustStore::load(&files.ca.cert, Some(&files.allow_list))?,
        Duration::from_secs(300),
    ));

    // The hub's receiver: verify, inbox, commit, ack.
    let consumer = {
        let (hub, store, verifier) = (hub.clone(), hub_store.clone(), verifier.clone());
        tokio::spawn(async move {
            while let Ok(delivery) = hub.receive().await {
                if mode == Mode::Signed {
                    let opened =
                        match verifier.open(&delivery.bytes, &delivery.from, chrono::Utc::now()) {
                            Ok(opened) => opened,
                            Err(e) => {
                                eprintln!("verification failed: {e}");
                                let _ = delivery.reject(e.code()).await;
                                continue;
                            }
                        };
                    let digest = ring::digest::digest(&ring::digest::SHA256, opened.body);
                    // A store error must not end this consumer quietly (every send after it
                    // would then wait for the hub's ack until `send_timeout`): say so and
                    // commit the delivery again.
                    while let Err(e) = commit(&store, &delivery, digest.as_ref()).await {
                        eprintln!("hub store: {e}; trying {} again", delivery.message_id);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                let _ = delivery.ack().await;
            }
        })
    };

    let body = {
        let mut b = b"<CD001C xmlns=\"urn:cats:cd\">".to_vec();
        b.resize(BODY_SIZE - 10, b'x');
        b.extend_from_slice(b"</CD001C>\n");
        b
    };
    let started = Instant::now();
    let latencies: Vec<Result<Duration, String>> = futures::stream::iter(0..n)
        .map(|i| {
            let (node, signer, body) = (node.clone(), signer.clone(), body.clone());
            async move {
                let id = format!("KZ-BENCH-{concurrency}-{i}");
                let bytes = match mode {
                    Mode::Signed => {
                        let fields = EnvelopeHeaderFields {
                            message_id: id.clone(),
                            message_type: "CD001C".to_owned(),
                            sender: PeerIdentity::Node(CountryCode::KZ),
                            recipient: PeerIdentity::Node(CountryCode::AZ),
                            correlation_id: None,
                            mrn: Some(format!("26KZ0001{:010}", i % 1000)),
                            prepared_at: chrono::Utc::now(),
                        };
                        signer.seal(&fields, &body).map_err(|e| e.to_string())?
                    }
                    Mode::Bare => body,
                };
                let msg = Outbound {
                    message_id: id,
                    destination: Destination::Hub,
                    partition_key: Some(format!("MRN{}", i % 1000)),
                    bytes: Bytes::from(bytes),
                };
                let t = Instant::now();
                node.send(msg).await.map_err(|e| e.to_string())?;
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut lat = latencies.into_iter().collect::<Result<Vec<_>, _>>()?;
    lat.sort();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let result = (n as f64 / elapsed.as_secs_f64(), pct(0.50), pct(0.99));
    consumer.abort();
    hub.abort();
    node.abort();
    Ok(result)
}
