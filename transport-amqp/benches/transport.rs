//! Node → hub throughput and latency over RabbitMQ, 5 KB messages, same durability in every
//! row (persistent messages, publisher confirms, manual acks, same prefetch and window):
//!
//! - (a) bare lapin: publish / consume / ack, nothing else;
//! - (b) `AmqpTransport`: each message sealed by the node's `Signer`, sent, received by the
//!   hub, opened by its `Verifier` against the delivering identity, acked;
//! - (c) the same over the direct mTLS link of `cats_transport::direct` (no broker).
//!
//! Run: `cargo bench -p cats-transport-amqp --bench transport` (starts the test broker with
//! `deploy/rabbitmq/start-node.sh` if it is not running). `CATS_BENCH_MESSAGES` sets the count,
//! `CATS_BENCH_ONLY=direct` (or `bare,amqp`, ...) runs only those sections, and `RUST_LOG`
//! (e.g. `cats_transport=debug`) logs to stderr.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport_amqp::AmqpTransport;
use futures::StreamExt;

#[path = "support/baseline.rs"]
mod baseline;
use baseline::{
    Figures, PAYLOAD, WINDOW, bare, certs_dir, config, purge, start_broker, started_put,
    started_ref, started_take,
};

/// (b) AmqpTransport with sealed envelopes, verified at the hub.
async fn transport(certs: &Path, n: usize, run: &str) -> Figures {
    let kz = Arc::new(
        AmqpTransport::node(config(certs, "node-kz"), CountryCode::KZ)
            .await
            .expect("node"),
    );
    let hub = Arc::new(
        AmqpTransport::hub(config(certs, "hub-client"))
            .await
            .expect("hub"),
    );
    let figures = signed(
        certs,
        kz.clone(),
        hub.clone(),
        n,
        &format!("{run}-b"),
        "(b) AmqpTransport signed+verified",
    )
    .await;
    kz.close().await;
    hub.close().await;
    figures
}

/// (c) the direct mTLS link (`cats_transport::direct`), same signed envelopes, no broker.
async fn direct(certs: &Path, n: usize, run: &str) -> Figures {
    use cats_transport::direct::{DirectHub, DirectNode, HubTls, LinkConfig, NodeTls};
    use cats_transport::store::Store;
    let files = cats_trust::DevPki::init(
        certs,
        &[CountryCode::KZ, CountryCode::AZ, CountryCode::GE],
        false,
    )
    .expect("PKI");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let link = LinkConfig {
        window: WINDOW,
        receive_buffer: 2 * WINDOW,
        ..LinkConfig::default()
    };
    let hub = Arc::new(
        DirectHub::bind(
            "127.0.0.1:0".parse().expect("address"),
            HubTls::from_files(
                &files.ca.cert,
                Some(&files.allow_list),
                &files.hub_server.cert,
                &files.hub_server.key,
            )
            .expect("hub TLS"),
            Store::connect(&url("hub.db")).await.expect("hub store"),
            link.clone(),
        )
        .await
        .expect("hub binds"),
    );
    let kz_files = files.nodes.get(&CountryCode::KZ).expect("KZ certificate");
    let node = Arc::new(
        DirectNode::connect(
            hub.local_addr().to_string(),
            NodeTls::from_files(&files.ca.cert, &kz_files.cert, &kz_files.key).expect("node TLS"),
            link,
        )
        .expect("node"),
    );
    node.wait_connected(Duration::from_secs(10))
        .await
        .expect("connected");
    signed(
        certs,
        node,
        hub,
        n,
        &format!("{run}-c"),
        "(c) direct mTLS signed+verified",
    )
    .await
}

/// Node → hub through any transport: seal at the node, send; receive, open, ack at the hub.
async fn signed<S: Transport + 'static, R: Transport + 'static>(
    certs: &Path,
    sender: Arc<S>,
    receiver: Arc<R>,
    n: usize,
    run: &str,
    name: &'static str,
) -> Figures {
    let signer = cats_trust::Signer::load(
        &certs.join("signer-kz.pem"),
        &certs.join("signer-kz.key.pem"),
    )
    .expect("KZ signer");
    let trust = cats_trust::TrustStore::load(
        &certs.join("ca.pem"),
        Some(&certs.join("fingerprints.json")),
    )
    .expect("trust store");
    let verifier = Arc::new(cats_trust::Verifier::new(trust, Duration::from_secs(300)));
    let body = vec![b'x'; PAYLOAD];
    let begin = Instant::now();
    let prefix = format!("{run}-");
    // The receiver verifies each delivery in a task of its own and acks it once verified, so
    // that verification uses every core; the prefetch bounds how many are in flight. It counts
    // distinct message ids, as an inbox would: a message that comes again (its ack was lost
    // with a connection) is counted once, and a failed ack is not an error (the contract says
    // the message comes again). Both are reported, since neither should happen in a clean run.
    let sends_over = Arc::new(tokio::sync::Notify::new());
    // The consumer gets its own handle on the receiver: the receiver must outlive every send.
    // An ack only queues a frame on the connection; dropping the direct hub aborts its
    // connections as a crash would, so dropping it as soon as the consumer has seen the last
    // message lost the last acks still queued, and their sends waited out the send timeout
    // (the "stall" of issue 3).
    let consumer = {
        let (sends_over, receiver) = (sends_over.clone(), receiver.clone());
        tokio::spawn(async move {
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
            let failed_acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut seen = std::collections::HashSet::with_capacity(n);
            let mut again = 0usize;
            let over = sends_over.notified();
            tokio::pin!(over);
            let mut sends_done = false;
            while seen.len() < n {
                let d = tokio::select! {
                    d = receiver.receive() => d.expect("receive"),
                    () = &mut over, if !sends_done => {
                        sends_done = true;
                        continue;
                    }
                    // Every send has returned (some failed) and nothing more comes.
                    () = tokio::time::sleep(Duration::from_secs(5)), if sends_done => break,
                };
                if !d.message_id.starts_with(&prefix) {
                    // Left over from an earlier run: not part of this measure.
                    let _ = d.ack().await;
                    continue;
                }
                if !seen.insert(d.message_id.clone()) {
                    again += 1;
                }
                let (verifier, done, failed_acks) =
                    (verifier.clone(), done_tx.clone(), failed_acks.clone());
                tokio::spawn(async move {
                    let from = match d.from {
                        PeerIdentity::Hub => cats_trust::PeerIdentity::Hub,
                        PeerIdentity::Node(c) => cats_trust::PeerIdentity::Node(c),
                    };
                    verifier
                        .open(&d.bytes, &from, chrono::Utc::now())
                        .expect("verified");
                    let id = d.message_id.clone();
                    if d.ack().await.is_err() {
                        failed_acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    let _ = done.send(started_take(&started_ref(), &id).map(|s| s.elapsed()));
                });
            }
            drop(done_tx);
            let mut latencies = Vec::with_capacity(n);
            while let Some(latency) = done_rx.recv().await {
                latencies.extend(latency);
            }
            let failed_acks = failed_acks.load(std::sync::atomic::Ordering::Relaxed);
            if again > 0 || failed_acks > 0 || seen.len() < n {
                eprintln!(
                    "{name}: {} of {n} received, {again} received again, {failed_acks} acks failed",
                    seen.len()
                );
            }
            latencies
        })
    };
    let sends = futures::stream::iter(0..n).map(|i| {
        let (sender, signer, body) = (&sender, &signer, &body);
        async move {
            let id = format!("{run}-{i}");
            started_put(&id);
            let envelope = signer
                .seal(
                    &cats_trust::EnvelopeHeaderFields {
                        message_id: id.clone(),
                        message_type: "CD001C".into(),
                        sender: cats_trust::PeerIdentity::Node(CountryCode::KZ),
                        recipient: cats_trust::PeerIdentity::Node(CountryCode::GE),
                        correlation_id: None,
                        mrn: Some("25KZ0001234567890".into()),
                        prepared_at: chrono::Utc::now(),
                    },
                    body,
                )
                .expect("sealed");
            sender
                .send(Outbound {
                    message_id: id.clone(),
                    destination: Destination::Hub,
                    partition_key: None,
                    bytes: Bytes::from(envelope),
                })
                .await
                .map_err(|e| format!("send {id}: {e:?}"))
        }
    });
    let failed: Vec<String> = sends
        .buffer_unordered(WINDOW)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    sends_over.notify_one();
    let latencies = consumer.await.expect("consumer");
    drop(receiver);
    // A failed send is a stall of the link: reported, and the run does not count.
    assert!(
        failed.is_empty(),
        "{name}: {} sends failed (stall), first: {}",
        failed.len(),
        failed[0]
    );
    Figures {
        name,
        messages: n,
        elapsed: begin.elapsed(),
        latencies,
    }
}

/// Which sections run: `CATS_BENCH_ONLY` is a comma-separated subset of `bare`, `amqp`,
/// `direct` (all three when unset). The ratios need `bare`.
fn sections() -> (bool, bool, bool) {
    match std::env::var("CATS_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => {
            let mut chosen = (false, false, false);
            for name in only.split(',').map(str::trim) {
                match name {
                    "bare" => chosen.0 = true,
                    "amqp" => chosen.1 = true,
                    "direct" => chosen.2 = true,
                    other => panic!(
                        "CATS_BENCH_ONLY: unknown section {other:?} (expected bare, amqp, direct)"
                    ),
                }
            }
            chosen
        }
        _ => (true, true, true),
    }
}

fn main() {
    // `RUST_LOG=cats_transport=debug` (for example) logs to stderr; nothing is logged without it.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let n: usize = std::env::var("CATS_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (run_bare, run_amqp, run_direct) = sections();
    let certs = certs_dir();
    if run_bare || run_amqp {
        start_broker(&certs);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let run = format!("bench{}", std::process::id());
        if run_bare || run_amqp {
            purge(&config(&certs, "hub-client"), "cats.hub.in").await;
            // Warm-up, then the measured runs, alternated so that neither gets a warmer broker.
            if run_bare {
                let _ = bare(&certs, 1_000.min(n), &format!("{run}w")).await;
            }
            if run_amqp {
                let _ = transport(&certs, 1_000.min(n), &format!("{run}w")).await;
            }
        }
        let a = if run_bare {
            Some(bare(&certs, n, &run).await)
        } else {
            None
        };
        let b = if run_amqp {
            Some(transport(&certs, n, &run).await)
        } else {
            None
        };
        // The direct link runs in its own task so that a failure there still prints (a), (b).
        let c = if run_direct {
            let (certs, run) = (certs.clone(), run.clone());
            Some(
                tokio::spawn(async move {
                    let _ = direct(&certs, 1_000.min(n), &format!("{run}w")).await;
                    direct(&certs, n, &run).await
                })
                .await,
            )
        } else {
            None
        };
        println!();
        println!(
            "node -> hub, {n} messages of {} KB, persistent + confirms + manual acks, window {WINDOW}",
            PAYLOAD / 1024
        );
        println!(
            "{:<36} {:>10} {:>10} {:>10}",
            "", "msg/s", "p50 ms", "p99 ms"
        );
        let mut rows: Vec<&Figures> = a.iter().chain(b.iter()).collect();
        if let Some(Ok(c)) = &c {
            rows.push(c);
        }
        for f in rows {
            println!(
                "{:<36} {:>10.0} {:>10.2} {:>10.2}",
                f.name,
                f.rate(),
                f.percentile(0.50).as_secs_f64() * 1e3,
                f.percentile(0.99).as_secs_f64() * 1e3
            );
        }
        if let (Some(a), Some(b)) = (&a, &b) {
            println!(
                "ratio (b)/(a): {:.0}% (target >= 70%)",
                100.0 * b.rate() / a.rate()
            );
        }
        match (&a, &c) {
            (Some(a), Some(Ok(c))) => println!(
                "ratio (c)/(a): {:.0}% (target >= 100%)",
                100.0 * c.rate() / a.rate()
            ),
            (_, Some(Err(error))) => println!("(c) direct mTLS: failed: {error}"),
            _ => {}
        }
    });
}
