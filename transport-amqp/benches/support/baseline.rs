//! What the transport benchmark and the hub benchmark share: the test broker (started with
//! `deploy/rabbitmq/start-node.sh` on 127.0.0.1:26710 if it is not running), the connection
//! settings, the figures, and (a) the bare lapin baseline: publish with confirms, consume,
//! ack, nothing else, on the same broker with the same durability as the measured rows.
//!
//! Included by `transport-amqp/benches/transport.rs` and `hub/benches/hub.rs` with `#[path]`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cats_transport::contract::CountryCode;
use cats_transport_amqp::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueuePurgeOptions,
};
use cats_transport_amqp::lapin::types::FieldTable;
use cats_transport_amqp::lapin::{BasicProperties, Confirmation};
use cats_transport_amqp::{AmqpConfig, TlsIdentity, raw_connection};
use futures::StreamExt;

pub const PAYLOAD: usize = 5 * 1024;
pub const WINDOW: usize = 256;
pub const PORT: u16 = 26710;

pub type Started = Arc<Mutex<HashMap<String, Instant>>>;

pub struct Figures {
    pub name: &'static str,
    pub messages: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }
}

pub fn certs_dir() -> PathBuf {
    std::env::var_os("CATS_AMQP_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cats-amqp-test"))
        .join("certs")
}

pub fn start_broker(certs: &Path) {
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

pub fn config(certs: &Path, party: &str) -> AmqpConfig {
    let mut config = AmqpConfig::new(
        "localhost",
        PORT,
        TlsIdentity::from_pki_dir(certs, party).expect("certificates"),
    );
    config.prefetch = WINDOW as u16;
    config.max_in_flight = WINDOW;
    config
}

pub async fn purge(config: &AmqpConfig, queue: &str) {
    let connection = raw_connection(config, "bench-purge")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    let _ = connection.close(200, "done".into()).await;
}

/// (a) bare lapin, same broker, same durability.
pub async fn bare(certs: &Path, n: usize, run: &str) -> Figures {
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
    let consumer = consumer_channel
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
    let receiver = tokio::spawn(receive_and_ack(consumer, n));
    send_from_kz(&publisher, &format!("{run}-a"), n, &payload).await;
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

/// (r) a bare relay, the most any hub could do on this broker: node KZ publishes to
/// `cats.hub.in`; a relay (the hub's identity) consumes each message, publishes the same bytes to
/// GE's queue (`cats.nodes`, routing key `GE`) with a confirm and then acks; node GE consumes
/// and acks. The two hops of the hub's path with no work in between: same durability, same
/// window. Latency: from KZ's send to GE's receipt.
pub async fn bare_relay(certs: &Path, n: usize, run: &str) -> Figures {
    purge(&config(certs, "node-ge"), "cats.node.GE").await;
    let node = raw_connection(&config(certs, "node-kz"), "bench-relay-node")
        .await
        .expect("node");
    let hub = raw_connection(&config(certs, "hub-client"), "bench-relay-hub")
        .await
        .expect("hub");
    let ge = raw_connection(&config(certs, "node-ge"), "bench-relay-ge")
        .await
        .expect("GE");
    let publisher = node.create_channel().await.expect("channel");
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let relay_in = hub.create_channel().await.expect("channel");
    relay_in
        .basic_qos(WINDOW as u16, BasicQosOptions::default())
        .await
        .expect("qos");
    let relay_out = hub.create_channel().await.expect("channel");
    relay_out
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let mut relay = relay_in
        .basic_consume(
            "cats.hub.in".into(),
            "bench-relay".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let ge_channel = ge.create_channel().await.expect("channel");
    ge_channel
        .basic_qos(WINDOW as u16, BasicQosOptions::default())
        .await
        .expect("qos");
    let ge_consumer = ge_channel
        .basic_consume(
            "cats.node.GE".into(),
            "bench-relay-ge".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let payload = vec![b'x'; PAYLOAD];
    let begin = Instant::now();
    // The relay: each delivery forwarded (confirm awaited) then acked, up to WINDOW at once.
    let relaying = tokio::spawn(async move {
        let forwarded = relay.by_ref().take(n).map(|d| {
            let relay_out = relay_out.clone();
            async move {
                let d = d.expect("delivery");
                let id = d
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let confirm = relay_out
                    .basic_publish(
                        "cats.nodes".into(),
                        "GE".into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &d.data,
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_message_id(id.as_str().into())
                            .with_user_id("hub".into()),
                    )
                    .await
                    .expect("publish")
                    .await
                    .expect("confirm");
                assert!(matches!(confirm, Confirmation::Ack(None)), "{confirm:?}");
                d.ack(BasicAckOptions::default()).await.expect("ack");
            }
        });
        forwarded
            .buffer_unordered(WINDOW)
            .collect::<Vec<()>>()
            .await;
    });
    let receiver = tokio::spawn(receive_and_ack(ge_consumer, n));
    send_from_kz(&publisher, &format!("{run}-r"), n, &payload).await;
    relaying.await.expect("relay");
    let latencies = receiver.await.expect("receiver");
    let elapsed = begin.elapsed();
    for c in [node, hub, ge] {
        let _ = c.close(200, "done".into()).await;
    }
    Figures {
        name: "(r) bare relay (two hops)",
        messages: n,
        elapsed,
        latencies,
    }
}

/// Publishes `n` messages of `payload` as node KZ to `cats.hub.in` (ids `{prefix}-{i}`, start
/// times recorded), up to `WINDOW` awaiting their confirms at once.
async fn send_from_kz(
    publisher: &cats_transport_amqp::lapin::Channel,
    prefix: &str,
    n: usize,
    payload: &[u8],
) {
    let sends = futures::stream::iter(0..n).map(|i| async move {
        let id = format!("{prefix}-{i}");
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
    });
    sends.buffer_unordered(WINDOW).collect::<Vec<()>>().await;
}

/// Takes `n` deliveries from `consumer`, acks each, and gives the latency of each one whose
/// start time was recorded.
async fn receive_and_ack(
    mut consumer: cats_transport_amqp::lapin::Consumer,
    n: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    let mut received = 0;
    while received < n {
        let Some(Ok(d)) = consumer.next().await else {
            break;
        };
        received += 1;
        let id = d.properties.message_id().as_ref().map(|m| m.to_string());
        d.ack(BasicAckOptions::default()).await.expect("ack");
        if let Some(start) = id.and_then(|id| started_take(&started_ref(), &id)) {
            latencies.push(start.elapsed());
        }
    }
    latencies
}

// The start times of the bare run are kept in one global map so that the consumer task can
// read them without sharing the stream's lifetime.
pub fn started_ref() -> Started {
    static STARTED: std::sync::OnceLock<Started> = std::sync::OnceLock::new();
    STARTED.get_or_init(Started::default).clone()
}
pub fn started_put(id: &str) {
    if let Ok(mut map) = started_ref().lock() {
        map.insert(id.to_owned(), Instant::now());
    }
}
pub fn started_take(started: &Started, id: &str) -> Option<Instant> {
    started.lock().ok().and_then(|mut map| map.remove(id))
}
