//! Node → hub throughput and latency over RabbitMQ, 5 KB messages, same durability in every
//! row (persistent messages, publisher confirms, manual acks, same prefetch and window):
//!
//! - (a) bare lapin: publish / consume / ack, nothing else;
//! - (b) `AmqpTransport`: each message sealed by the node's `Signer`, sent, received by the
//!   hub, opened by its `Verifier` against the delivering identity, acked;
//! - (c) the same over the direct mTLS link of `cats_transport::direct` (no broker).
//!
//! Run: `cargo bench -p cats-transport-amqp --bench transport` (starts the test broker with
//! `deploy/rabbitmq/start-node.sh` if it is not running). `CATS_BENCH_MESSAGES` sets the count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport_amqp::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueuePurgeOptions,
};
use cats_transport_amqp::lapin::types::FieldTable;
use cats_transport_amqp::lapin::{BasicProperties, Confirmation};
use cats_transport_amqp::{AmqpConfig, AmqpTransport, TlsIdentity, raw_connection};
use futures::StreamExt;

const PAYLOAD: usize = 5 * 1024;
const WINDOW: usize = 256;
const PORT: u16 = 56710;

type Started = Arc<Mutex<HashMap<String, Instant>>>;

struct Figures {
    name: &'static str,
    messages: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }
}

fn certs_dir() -> PathBuf {
    std::env::var_os("CATS_AMQP_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cats-amqp-test"))
        .join("certs")
}

fn start_broker(certs: &Path) {
    cats_trust::DevPki::init(
        certs,
        &[CountryCode::KZ, CountryCode::AZ, CountryCode::GE],
        false,
    )
    .expect("test PKI");
    let state = certs
        .parent()
        .expect("certs has a parent")
        .join("cats-test");
    let status = Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rabbitmq/start-node.sh"),
    )
    .arg("--certs")
    .arg(certs)
    .arg("--state")
    .arg(state)
    .env("CATS_RABBITMQ_AMQPS_PORT", PORT.to_string())
    .status()
    .expect("start-node.sh runs");
    assert!(status.success(), "the broker did not start");
}

fn config(certs: &Path, party: &str) -> AmqpConfig {
    let mut config = AmqpConfig::new(
        "localhost",
        PORT,
        TlsIdentity::from_pki_dir(certs, party).expect("certificates"),
    );
    config.prefetch = WINDOW as u16;
    config.max_in_flight = WINDOW;
    config
}

async fn purge(config: &AmqpConfig) {
    let connection = raw_connection(config, "bench-purge")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_purge("cats.hub.in".into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    let _ = connection.close(200, "done".into()).await;
}

/// (a) bare lapin, same broker, same durability.
async fn bare(certs: &Path, n: usize, run: &str) -> Figures {
    let node = raw_connection(&config(certs, "node-kz"), "bench-bare-node")
        .await
        .expect("node");
    let hub = raw_connection(&config(certs, "hub-client"), "bench-bare-hub")
        .await
        .expect("hub");
    let publisher = node.create_channel().await.expect("channel");
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let consumer_channel = hub.create_channel().await.expect("channel");
    consumer_channel
        .basic_qos(WINDOW as u16, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consumer_channel
        .basic_consume(
            "cats.hub.in".into(),
            "bench-bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let payload = vec![b'x'; PAYLOAD];
    let begin = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let Some(Ok(d)) = consumer.next().await else {
                break;
            };
            let id = d.properties.message_id().as_ref().map(|m| m.to_string());
            d.ack(BasicAckOptions::default()).await.expect("ack");
            if let Some(start) = id.and_then(|id| started_take(&started_ref(), &id)) {
                latencies.push(start.elapsed());
            }
        }
        latencies
    });
    let sends = futures::stream::iter(0..n).map(|i| {
        let publisher = publisher.clone();
        let payload = &payload;
        async move {
            let id = format!("{run}-a-{i}");
            started_put(&id);
            let confirm = publisher
                .basic_publish(
                    "cats.hub.in".into(),
                    id.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    payload,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_message_id(id.as_str().into())
                        .with_user_id("node-kz".into()),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert!(matches!(confirm, Confirmation::Ack(None)));
        }
    });
    sends.buffer_unordered(WINDOW).collect::<Vec<()>>().await;
    let latencies = receiver.await.expect("receiver");
    let elapsed = begin.elapsed();
    let _ = node.close(200, "done".into()).await;
    let _ = hub.close(200, "done".into()).await;
    Figures {
        name: "(a) bare lapin",
        messages: n,
        elapsed,
        latencies,
    }
}

// The start times of the bare run are kept in one global map so that the consumer task can
// read them without sharing the stream's lifetime.
fn started_ref() -> Started {
    static STARTED: std::sync::OnceLock<Started> = std::sync::OnceLock::new();
    STARTED.get_or_init(Started::default).clone()
}
fn started_put(id: &str) {
    if let Ok(mut map) = started_ref().lock() {
        map.insert(id.to_owned(), Instant::now());
    }
}
fn started_take(started: &Started, id: &str) -> Option<Instant> {
    started.lock().ok().and_then(|mut map| map.remove(id))
}

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
            Store::connect(&url("node.db")).await.expect("node store"),
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
    let consumer = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let d = receiver.receive().await.expect("receive");
            if !d.message_id.starts_with(&prefix) {
                // Left over from an earlier run: not part of this measure.
                d.ack().await.expect("ack");
                continue;
            }
            let from = match d.from {
                PeerIdentity::Hub => cats_trust::PeerIdentity::Hub,
                PeerIdentity::Node(c) => cats_trust::PeerIdentity::Node(c),
            };
            verifier
                .open(&d.bytes, &from, chrono::Utc::now())
                .expect("verified");
            let id = d.message_id.clone();
            d.ack().await.expect("ack");
            if let Some(start) = started_take(&started_ref(), &id) {
                latencies.push(start.elapsed());
            }
        }
        latencies
    });
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
                    message_id: id,
                    destination: Destination::Hub,
                    partition_key: None,
                    bytes: Bytes::from(envelope),
                })
                .await
                .expect("send");
        }
    });
    sends.buffer_unordered(WINDOW).collect::<Vec<()>>().await;
    let latencies = consumer.await.expect("consumer");
    Figures {
        name,
        messages: n,
        elapsed: begin.elapsed(),
        latencies,
    }
}

fn main() {
    let n: usize = std::env::var("CATS_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let certs = certs_dir();
    start_broker(&certs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        purge(&config(&certs, "hub-client")).await;
        let run = format!("bench{}", std::process::id());
        // Warm-up, then the measured runs, alternated so that neither gets a warmer broker.
        let _ = bare(&certs, 1_000.min(n), &format!("{run}w")).await;
        let _ = transport(&certs, 1_000.min(n), &format!("{run}w")).await;
        let a = bare(&certs, n, &run).await;
        let b = transport(&certs, n, &run).await;
        // The direct link runs in its own task so that a failure there still prints (a), (b).
        let c = {
            let (certs, run) = (certs.clone(), run.clone());
            tokio::spawn(async move {
                let _ = direct(&certs, 1_000.min(n), &format!("{run}w")).await;
                direct(&certs, n, &run).await
            })
            .await
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
        let mut rows = vec![&a, &b];
        if let Ok(c) = &c {
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
        println!(
            "ratio (b)/(a): {:.0}% (target >= 70%)",
            100.0 * b.rate() / a.rate()
        );
        match &c {
            Ok(c) => println!(
                "ratio (c)/(a): {:.0}% (target >= 100%)",
                100.0 * c.rate() / a.rate()
            ),
            Err(error) => println!("(c) direct mTLS: failed: {error}"),
        }
    });
}
