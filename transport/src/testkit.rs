//! The transport contract test suite, shared by every [`Transport`] implementation (feature
//! `testkit`).
//!
//! A transport's tests implement [`Harness`] (a sender, a receiver, and a way to kill and
//! restart the receiver while keeping durable state) and call each check with a fresh harness,
//! or [`run_suite`] with a factory. Every check panics with a message on failure.
//!
//! | check | guarantee (see [`crate::contract`]) |
//! | --- | --- |
//! | [`round_trip`] | send, receive, ack; sender identity from the channel; nothing more comes |
//! | [`order_per_partition`] | messages with the same key arrive in send order |
//! | [`redelivery_after_receiver_dies`] | unacked → comes again, `redelivered` set, inbox gives one effect |
//! | [`reject_dead_letters`] | reject → dead letter with the reason, not delivered again |
//! | [`send_is_durable`] | after `send` returned, a receiver crash loses nothing |
//! | [`many_with_window`] | many concurrent sends through the bounded window, each applied once |

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::contract::{Delivery, Destination, Outbound, PeerIdentity, Transport, TransportError};
use crate::store::{Accepted, Store};

/// What a transport provides to the contract suite.
pub trait Harness: Send {
    /// The sending endpoint's type.
    type Sender: Transport + 'static;
    /// The receiving endpoint's type.
    type Receiver: Transport + 'static;
    /// The sending endpoint.
    fn sender(&self) -> Arc<Self::Sender>;
    /// The receiving endpoint (a new one after [`Harness::restart_receiver`]).
    fn receiver(&self) -> Arc<Self::Receiver>;
    /// Where the sender sends to reach the receiver.
    fn destination(&self) -> Destination;
    /// The identity the receiver must report in [`Delivery::from`].
    fn sender_identity(&self) -> PeerIdentity;
    /// The receiver's store (its inbox).
    fn receiver_store(&self) -> Store;
    /// Kills the receiving side abruptly (no acks; like a process kill) and starts it again
    /// with the same durable state.
    fn restart_receiver(&mut self) -> impl Future<Output = ()> + Send;
    /// The receiver's dead letters as (message id, reason).
    fn dead_letters(&self) -> impl Future<Output = Vec<(String, String)>> + Send;
}

/// How long a check waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// How long a check waits to be sure something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(500);

/// A unique message id.
pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test message: `size` bytes of body that start with its id.
pub fn message(destination: Destination, id: &str, key: Option<&str>, size: usize) -> Outbound {
    let mut body = format!("<test id=\"{id}\"/>").into_bytes();
    body.resize(size.max(body.len()), b'.');
    Outbound {
        message_id: id.to_owned(),
        destination,
        partition_key: key.map(str::to_owned),
        bytes: Bytes::from(body),
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// What a receiver did: the effects applied per message id and every delivery seen.
#[derive(Debug, Default)]
pub struct Effects {
    /// Effects applied (inbox said New and the transaction committed), per message id.
    pub applied: HashMap<String, u32>,
    /// Every delivery as (message id, partition key, redelivered, inbox verdict).
    pub seen: Vec<(String, Option<String>, bool, Accepted)>,
}

/// Shared [`Effects`].
pub type SharedEffects = Arc<Mutex<Effects>>;

/// Applies `delivery` the way a real receiver does: inbox check and "effect" in one
/// transaction, commit, then (not here) ack. Returns the inbox verdict.
pub async fn apply(store: &Store, delivery: &Delivery, effects: &SharedEffects) -> Accepted {
    let mut tx = store.begin().await.expect("begin");
    let verdict = store
        .inbox()
        .accept(
            &mut tx,
            &delivery.from,
            &delivery.message_id,
            &sha256(&delivery.bytes),
        )
        .await
        .expect("inbox accept");
    tx.commit().await.expect("commit");
    let mut e = effects.lock().expect("effects lock");
    if verdict == Accepted::New {
        *e.applied.entry(delivery.message_id.clone()).or_default() += 1;
    }
    e.seen.push((
        delivery.message_id.clone(),
        delivery.partition_key.clone(),
        delivery.redelivered,
        verdict,
    ));
    verdict
}

/// Runs a receiver until the transport closes: apply, then ack.
pub fn spawn_consumer<R: Transport + 'static>(
    receiver: Arc<R>,
    store: Store,
    effects: SharedEffects,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match receiver.receive().await {
                Ok(delivery) => {
                    apply(&store, &delivery, &effects).await;
                    let _ = delivery.ack().await;
                }
                Err(TransportError::Closed) => break,
                Err(e) => panic!("receive failed: {e}"),
            }
        }
    })
}

/// Waits until `done` holds for the effects, or panics after `patience`.
pub async fn wait_for(
    effects: &SharedEffects,
    patience: Duration,
    what: &str,
    done: impl Fn(&Effects) -> bool,
) {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if done(&effects.lock().expect("effects lock")) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let e = effects.lock().expect("effects lock");
            panic!(
                "timed out waiting for {what}: {} applied, {} seen",
                e.applied.len(),
                e.seen.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn receive_one<R: Transport>(receiver: &R) -> Delivery {
    tokio::time::timeout(PATIENCE, receiver.receive())
        .await
        .expect("a delivery within the patience")
        .expect("receive")
}

async fn assert_nothing_more<R: Transport>(receiver: &R) {
    if let Ok(Ok(d)) = tokio::time::timeout(QUIET, receiver.receive()).await {
        panic!("unexpected extra delivery {:?}", d.message_id);
    }
}

fn spawn_send<S: Transport + 'static>(
    sender: Arc<S>,
    msg: Outbound,
) -> tokio::task::JoinHandle<Result<(), TransportError>> {
    tokio::spawn(async move { sender.send(msg).await })
}

async fn join_send(handle: tokio::task::JoinHandle<Result<(), TransportError>>) {
    tokio::time::timeout(PATIENCE, handle)
        .await
        .expect("send returns within the patience")
        .expect("send task")
        .expect("send succeeds");
}

/// Send, receive, ack: the receiver sees the sender's channel identity, the id and the exact
/// bytes, not redelivered; the send completes; nothing else arrives.
pub async fn round_trip<H: Harness>(h: &mut H) {
    let id = unique_id("round-trip");
    let msg = message(h.destination(), &id, Some("MRN-RT"), 1000);
    let bytes = msg.bytes.clone();
    let send = spawn_send(h.sender(), msg);
    let receiver = h.receiver();
    let delivery = receive_one(&*receiver).await;
    assert_eq!(delivery.message_id, id);
    assert_eq!(delivery.from, h.sender_identity());
    assert_eq!(delivery.bytes, bytes);
    assert_eq!(delivery.partition_key.as_deref(), Some("MRN-RT"));
    assert!(!delivery.redelivered, "first delivery marked redelivered");
    let effects = SharedEffects::default();
    assert_eq!(
        apply(&h.receiver_store(), &delivery, &effects).await,
        Accepted::New
    );
    delivery.ack().await.expect("ack");
    join_send(send).await;
    assert_nothing_more(&*receiver).await;
}

/// Three partitions, interleaved, sent one after the other: each partition arrives in order.
pub async fn order_per_partition<H: Harness>(h: &mut H) {
    let effects = SharedEffects::default();
    let consumer = spawn_consumer(h.receiver(), h.receiver_store(), effects.clone());
    let sender = h.sender();
    let destination = h.destination();
    let run = unique_id("order");
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..90 {
        let key = format!("{run}-MRN{}", i % 3);
        let id = format!("{run}-{i:03}");
        sender
            .send(message(destination, &id, Some(&key), 300))
            .await
            .expect("send");
        sent.entry(key).or_default().push(id);
    }
    wait_for(&effects, PATIENCE, "90 messages", |e| e.applied.len() == 90).await;
    let e = effects.lock().expect("effects lock");
    for (key, ids) in &sent {
        let got: Vec<&String> = e
            .seen
            .iter()
            .filter(|(_, k, _, v)| k.as_ref() == Some(key) && *v == Accepted::New)
            .map(|(id, ..)| id)
            .collect();
        let want: Vec<&String> = ids.iter().collect();
        assert_eq!(got, want, "order of partition {key}");
    }
    drop(e);
    consumer.abort();
}

/// The receiver commits its effect and dies before acking: the message comes again, marked
/// redelivered, and the inbox makes it a duplicate: one effect.
pub async fn redelivery_after_receiver_dies<H: Harness>(h: &mut H) {
    let id = unique_id("redelivery");
    let send = spawn_send(h.sender(), message(h.destination(), &id, None, 500));
    let effects = SharedEffects::default();
    let store = h.receiver_store();
    {
        let receiver = h.receiver();
        let first = receive_one(&*receiver).await;
        assert_eq!(first.message_id, id);
        assert_eq!(apply(&store, &first, &effects).await, Accepted::New);
        // Dies here: no ack.
        h.restart_receiver().await;
        drop(first);
    }
    let receiver = h.receiver();
    let again = loop {
        let d = receive_one(&*receiver).await;
        if d.message_id == id {
            break d;
        }
        let _ = d.ack().await;
    };
    assert!(again.redelivered, "a redelivery must be marked redelivered");
    assert_eq!(apply(&store, &again, &effects).await, Accepted::Duplicate);
    again.ack().await.expect("ack");
    join_send(send).await;
    assert_eq!(
        effects.lock().expect("effects lock").applied.get(&id),
        Some(&1)
    );
}

/// A rejected message goes to the dead letters with its reason and does not come again.
pub async fn reject_dead_letters<H: Harness>(h: &mut H) {
    let id = unique_id("poison");
    let send = spawn_send(h.sender(), message(h.destination(), &id, None, 200));
    let receiver = h.receiver();
    let delivery = receive_one(&*receiver).await;
    assert_eq!(delivery.message_id, id);
    delivery
        .reject("envelope.bad_signature: test")
        .await
        .expect("reject");
    join_send(send).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let letters = h.dead_letters().await;
        if letters
            .iter()
            .any(|(m, r)| m == &id && r == "envelope.bad_signature: test")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter for {id}: {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_nothing_more(&*receiver).await;
}

/// Once `send` returned, the message survives a receiver crash: it has its effect exactly
/// once, before or after the restart.
pub async fn send_is_durable<H: Harness>(h: &mut H) {
    let id = unique_id("durable");
    let effects = SharedEffects::default();
    let consumer = spawn_consumer(h.receiver(), h.receiver_store(), effects.clone());
    h.sender()
        .send(message(h.destination(), &id, None, 400))
        .await
        .expect("send");
    consumer.abort();
    h.restart_receiver().await;
    let consumer = spawn_consumer(h.receiver(), h.receiver_store(), effects.clone());
    // The effect is the inbox entry. The first consumer can be aborted after its commit and
    // before it notes the effect in memory: the redelivery is then rightly a duplicate, which
    // proves the entry was committed (the same race the hub-restart test met).
    let took_effect = |e: &Effects| {
        e.applied.contains_key(&id)
            || e.seen
                .iter()
                .any(|(m, _, _, v)| m == &id && *v == Accepted::Duplicate)
    };
    wait_for(&effects, PATIENCE, "the durable message", took_effect).await;
    tokio::time::sleep(QUIET).await;
    let e = effects.lock().expect("effects lock");
    assert!(
        e.applied.get(&id).is_none_or(|n| *n == 1),
        "applied more than once: {:?}",
        e.applied.get(&id)
    );
    drop(e);
    consumer.abort();
}

/// `n` messages sent 64 at a time through the bounded window: all arrive, each applied once.
pub async fn many_with_window<H: Harness>(h: &mut H, n: usize) {
    let effects = SharedEffects::default();
    let consumer = spawn_consumer(h.receiver(), h.receiver_store(), effects.clone());
    let sender = h.sender();
    let destination = h.destination();
    let run = unique_id("many");
    let results: Vec<Result<(), TransportError>> = futures::stream::iter(0..n)
        .map(|i| {
            let sender = sender.clone();
            let id = format!("{run}-{i}");
            async move { sender.send(message(destination, &id, None, 256)).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for r in results {
        r.expect("send");
    }
    wait_for(&effects, PATIENCE * 2, "all messages", |e| {
        e.applied.len() == n
    })
    .await;
    let e = effects.lock().expect("effects lock");
    assert!(
        e.applied.values().all(|c| *c == 1),
        "a message applied twice"
    );
    drop(e);
    consumer.abort();
}

/// Runs every check, each with a fresh harness from `make`.
pub async fn run_suite<H, F, Fut>(mut make: F)
where
    H: Harness,
    F: FnMut() -> Fut,
    Fut: Future<Output = H>,
{
    round_trip(&mut make().await).await;
    order_per_partition(&mut make().await).await;
    redelivery_after_receiver_dies(&mut make().await).await;
    reject_dead_letters(&mut make().await).await;
    send_is_durable(&mut make().await).await;
    many_with_window(&mut make().await, 2000).await;
}
