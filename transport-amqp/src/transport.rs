//! [`AmqpTransport`]: the CATS transport contract over RabbitMQ.
//!
//! A supervisor task owns the [`Link`] (connection and channels). It opens one, publishes it to
//! the senders through a watch channel, pumps the consumer's deliveries into a bounded queue
//! that [`AmqpTransport::receive`] reads, and as soon as the link fails (connection or channel
//! closed, consumer ended, an operation failed on it) drops it and opens a new one with
//! exponential backoff. Deliveries from a dead link are never handed out: their broker
//! delivery tags died with the channel and the broker delivers those messages again.
//!
//! Sending: many `send` calls may be in flight at once on the one publisher channel (up to
//! `max_in_flight`), each resolving when the broker's confirm for its own message arrives.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cats_transport::contract::{
    Acknowledger, Delivery, Destination, Outbound, PeerIdentity, Transport, TransportError,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, SelectAll};
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation, Consumer};
use tokio::sync::{Mutex, Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::AmqpConfig;
use crate::link::{Link, timed};
use crate::topology;

/// AMQP delivery mode of a message that survives a broker restart.
const PERSISTENT: u8 = 2;

/// One party's link to the broker: a node (sends to the hub, receives from its own queue) or
/// the hub (sends to the nodes, receives from the hub's inbound queue).
pub struct AmqpTransport {
    shared: Arc<Shared>,
    deliveries: Mutex<mpsc::Receiver<Pending>>,
    supervisor: JoinHandle<()>,
}

impl fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("me", &self.shared.me)
            .field("host", &self.shared.config.host)
            .field("port", &self.shared.config.port)
            .finish()
    }
}

/// What the supervisor, the senders and the ackers share.
struct Shared {
    config: AmqpConfig,
    me: PeerIdentity,
    /// The broker user (the CN of our certificate), set as `user_id` on everything we publish.
    user: String,
    /// The name of this transport's connections (see [`AmqpTransport::connection_name`]).
    name: String,
    /// The queue we consume from, if we receive (for the hub, `cats.hub.in`, the base name of
    /// its partitions, which is also the dead-letter routing key of all of them).
    queue: Option<String>,
    /// The queues consumed from as soon as a link opens.
    consume_now: Vec<String>,
    /// The queues consumed from `config.standby_delay` after a link opens (the hub's
    /// non-preferred partitions, where it stands by behind another hub's active consumer).
    standby: Vec<String>,
    link: watch::Sender<Option<Arc<Link>>>,
    /// Raised by whoever sees the current link fail; the supervisor replaces it.
    broken: Notify,
    in_flight: Semaphore,
    shutdown: AtomicBool,
    shutdown_signal: Notify,
    generations: AtomicU64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("me", &self.me)
            .field("queue", &self.queue)
            .finish()
    }
}

/// Whether a transport consumes from its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends and receives (the normal case).
    SendAndReceive,
    /// Only sends (a publisher that must not take deliveries meant for another process).
    SendOnly,
}

impl AmqpTransport {
    /// The link of the node of `country`: publishes to the hub's inbound exchange, consumes
    /// `cats.node.<country>`. `config.tls` must hold that node's certificate (CN `node-xx`).
    ///
    /// Returns once the first connection is open, or its error (a refused certificate is
    /// [`TransportError::Tls`]); later failures are repaired in the background.
    pub async fn node(
        config: AmqpConfig,
        country: cats_transport::contract::CountryCode,
    ) -> Result<AmqpTransport, TransportError> {
        AmqpTransport::connect(config, PeerIdentity::Node(country), Role::SendAndReceive).await
    }

    /// The hub's link: publishes to `cats.nodes` by country, consumes `cats.hub.in`.
    /// `config.tls` must hold the hub's client certificate (CN `hub`).
    pub async fn hub(config: AmqpConfig) -> Result<AmqpTransport, TransportError> {
        AmqpTransport::connect(config, PeerIdentity::Hub, Role::SendAndReceive).await
    }

    /// The link of `me` with an explicit [`Role`].
    pub async fn connect(
        config: AmqpConfig,
        me: PeerIdentity,
        role: Role,
    ) -> Result<AmqpTransport, TransportError> {
        let user = topology::user_name(me);
        let queue = match role {
            Role::SendAndReceive => Some(topology::consumer_queue(me)),
            Role::SendOnly => None,
        };
        let (consume_now, standby) = match role {
            Role::SendOnly => (Vec::new(), Vec::new()),
            Role::SendAndReceive => consumer_queues(&config, me),
        };
        let capacity = usize::from(config.prefetch).max(1);
        let (link_tx, _) = watch::channel(None);
        let name = unique_connection_name(&user);
        let shared = Arc::new(Shared {
            in_flight: Semaphore::new(config.max_in_flight),
            config,
            me,
            user,
            name,
            queue,
            consume_now,
            standby,
            link: link_tx,
            broken: Notify::new(),
            shutdown: AtomicBool::new(false),
            shutdown_signal: Notify::new(),
            generations: AtomicU64::new(0),
        });
        // The first link is opened here so that a misconfiguration is reported to the caller.
        let first = open_link(&shared).await?;
        let (tx, rx) = mpsc::channel(capacity);
        let supervisor = tokio::spawn(
            supervise(shared.clone(), first, tx).instrument(info_span!("amqp", me = %shared.user)),
        );
        Ok(AmqpTransport {
            shared,
            deliveries: Mutex::new(rx),
            supervisor,
        })
    }

    /// Who this transport speaks for.
    pub fn identity(&self) -> PeerIdentity {
        self.shared.me
    }

    /// The client-provided name of this transport's connections, `cats-<user>-<pid>-<n>-<t>`
    /// (process id, transport number in the process, start-time bits): the same across its
    /// reconnections, different for every transport, so that the broker's management API
    /// tells apart two hub processes (both log in as `hub`). Its consumer tags start with it
    /// followed by `-`.
    pub fn connection_name(&self) -> &str {
        &self.shared.name
    }

    /// How many links (connections) this transport has opened: 1 + the reconnections.
    pub fn links_opened(&self) -> u64 {
        self.shared.generations.load(Ordering::SeqCst)
    }

    /// Whether a link to the broker is currently open.
    pub fn is_connected(&self) -> bool {
        self.shared
            .link
            .borrow()
            .as_ref()
            .is_some_and(|link| link.healthy())
    }

    /// Closes the link and stops reconnecting; `receive` then returns [`TransportError::Closed`].
    /// Deliveries not yet acked are given back to the broker.
    pub async fn close(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.shutdown_signal.notify_waiters();
        let link = self.shared.link.send_replace(None);
        if let Some(link) = link {
            link.close(&self.shared.config).await;
        }
        self.supervisor.abort();
    }

    async fn current_link(&self) -> Result<Arc<Link>, TransportError> {
        let mut rx = self.shared.link.subscribe();
        let wait = rx.wait_for(|link| link.as_ref().is_some_and(|l| l.healthy()));
        match tokio::time::timeout(self.shared.config.operation_timeout, wait).await {
            Err(_) => Err(TransportError::Disconnected(
                "no link to the broker within the operation timeout".into(),
            )),
            Ok(Err(_)) => Err(TransportError::Closed),
            Ok(Ok(link)) => link.clone().ok_or(TransportError::Closed),
        }
    }

    fn route(
        &self,
        destination: Destination,
        partition_key: &str,
    ) -> Result<(&'static str, String), TransportError> {
        match (self.shared.me, destination) {
            (PeerIdentity::Node(_), Destination::Hub) => {
                Ok((topology::HUB_INBOUND_EXCHANGE, partition_key.to_owned()))
            }
            (PeerIdentity::Hub, Destination::Node(country)) => {
                Ok((topology::NODES_EXCHANGE, country.as_str().to_owned()))
            }
            _ => Err(TransportError::Unroutable(destination)),
        }
    }
}

impl Drop for AmqpTransport {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.shutdown_signal.notify_waiters();
        self.supervisor.abort();
        // Close the connection now rather than when the last delivery referring to it is
        // dropped, so that its consumer stops taking messages; unacked ones are requeued.
        if let Some(link) = self.shared.link.send_replace(None)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let config = self.shared.config.clone();
            runtime.spawn(async move { link.close(&config).await });
        }
    }
}

impl Transport for AmqpTransport {
    async fn send(&self, msg: Outbound) -> Result<(), TransportError> {
        if self.shared.shutdown.load(Ordering::SeqCst) {
            return Err(TransportError::Closed);
        }
        let key = msg.partition_key.as_deref().unwrap_or(&msg.message_id);
        let (exchange, routing_key) = self.route(msg.destination, key)?;
        let op = self.shared.config.operation_timeout;
        let _permit = tokio::time::timeout(op, self.shared.in_flight.acquire())
            .await
            .map_err(|_| TransportError::Timeout("waiting for a free publish slot"))?
            .map_err(|_| TransportError::Closed)?;
        let link = self.current_link().await?;
        let mut headers = FieldTable::default();
        if let Some(partition_key) = &msg.partition_key {
            headers.insert(
                topology::PARTITION_KEY_HEADER.into(),
                AMQPValue::LongString(LongString::from(partition_key.as_bytes())),
            );
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_message_id(ShortString::from(msg.message_id.as_str()))
            .with_user_id(ShortString::from(self.shared.user.as_str()))
            .with_app_id("cats".into())
            .with_content_type("application/vnd.cats.envelope".into())
            .with_timestamp(unix_now())
            .with_headers(headers);
        let result =
            publish_confirmed(&link, op, exchange, &routing_key, &msg.bytes, properties).await;
        match result {
            Err(PublishFailure::Link(e)) => {
                self.shared.broken.notify_one();
                Err(e)
            }
            Err(PublishFailure::Returned) => Err(TransportError::Unroutable(msg.destination)),
            Err(PublishFailure::Nacked) => Err(TransportError::Broker(format!(
                "the broker refused message {}",
                msg.message_id
            ))),
            Ok(()) => Ok(()),
        }
    }

    async fn receive(&self) -> Result<Delivery, TransportError> {
        if self.shared.queue.is_none() {
            return Err(TransportError::Config(
                "this transport was opened send-only".into(),
            ));
        }
        let mut rx = self.deliveries.lock().await;
        loop {
            if self.shared.shutdown.load(Ordering::SeqCst) {
                return Err(TransportError::Closed);
            }
            let closed = self.shared.shutdown_signal.notified();
            tokio::select! {
                pending = rx.recv() => match pending {
                    // A delivery from a link that has died since: its tag is void and the
                    // broker delivers the message again on the new link.
                    Some(pending) if !pending.acker.usable() => {
                        debug!(message_id = %pending.delivery.message_id, "dropping a stale delivery");
                    }
                    Some(pending) => return Ok(pending.delivery),
                    None => return Err(TransportError::Closed),
                },
                () = closed => return Err(TransportError::Closed),
            }
        }
    }
}

/// The queues `me` consumes from at once, and those it stands by on (see [`Shared::standby`]).
fn consumer_queues(config: &AmqpConfig, me: PeerIdentity) -> (Vec<String>, Vec<String>) {
    match me {
        PeerIdentity::Node(_) => (vec![topology::consumer_queue(me)], Vec::new()),
        PeerIdentity::Hub => {
            let preferred = &config.preferred_partitions;
            let (now, later): (Vec<u16>, Vec<u16>) =
                (0..config.partitions).partition(|p| preferred.is_empty() || preferred.contains(p));
            let names = |v: Vec<u16>| v.into_iter().map(topology::hub_partition_queue).collect();
            (names(now), names(later))
        }
    }
}

/// A delivery waiting for `receive`, with a handle to tell whether its link is still alive.
struct Pending {
    delivery: Delivery,
    acker: lapin::Acker,
}

enum PublishFailure {
    /// The link failed (or timed out): the outcome is unknown.
    Link(TransportError),
    /// The broker could not route the message (mandatory publish returned).
    Returned,
    /// The broker nacked the message.
    Nacked,
}

async fn publish_confirmed(
    link: &Link,
    op: Duration,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishFailure> {
    let confirm = timed(
        op,
        "publishing",
        link.publisher.basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload,
            properties,
        ),
    )
    .await
    .map_err(PublishFailure::Link)?;
    let confirmation = timed(op, "waiting for the publisher confirm", confirm)
        .await
        .map_err(PublishFailure::Link)?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(PublishFailure::Returned),
        Confirmation::Nack(_) => Err(PublishFailure::Nacked),
        Confirmation::NotRequested => Err(PublishFailure::Link(TransportError::Protocol(
            "publisher confirms are not enabled on the channel".into(),
        ))),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn open_link(shared: &Arc<Shared>) -> Result<(Arc<Link>, Vec<Consumer>), TransportError> {
    let generation = shared.generations.fetch_add(1, Ordering::SeqCst) + 1;
    let name = connection_name(shared);
    let receiving = shared.queue.is_some();
    let declare = receiving && shared.me == PeerIdentity::Hub;
    let (link, consumer) = Link::open(
        &shared.config,
        &name,
        receiving.then_some(shared.consume_now.as_slice()),
        declare,
        generation,
    )
    .await?;
    let link = Arc::new(link);
    shared.link.send_replace(Some(link.clone()));
    info!(generation, "connected to the broker");
    Ok((link, consumer))
}

fn connection_name(shared: &Shared) -> String {
    shared.name.clone()
}

/// See [`AmqpTransport::connection_name`].
fn unique_connection_name(user: &str) -> String {
    static TRANSPORTS: AtomicU64 = AtomicU64::new(0);
    let n = TRANSPORTS.fetch_add(1, Ordering::Relaxed) + 1;
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() & 0xffff);
    format!("cats-{user}-{}-{n}-{t:04x}", std::process::id())
}

/// Keeps a link open for as long as the transport lives.
async fn supervise(
    shared: Arc<Shared>,
    first: (Arc<Link>, Vec<Consumer>),
    deliveries: mpsc::Sender<Pending>,
) {
    let mut current = Some(first);
    let mut backoff = shared.config.reconnect_min;
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let (link, consumer) = match current.take() {
            Some(open) => open,
            None => match open_link(&shared).await {
                Ok(open) => {
                    backoff = shared.config.reconnect_min;
                    open
                }
                Err(error) => {
                    warn!(%error, retry_in = ?backoff, "cannot connect to the broker");
                    let closed = shared.shutdown_signal.notified();
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = closed => return,
                    }
                    backoff = (backoff * 2).min(shared.config.reconnect_max);
                    continue;
                }
            },
        };
        run_link(&shared, &link, consumer, &deliveries).await;
        shared.link.send_replace(None);
        warn!(
            generation = link.generation,
            "link to the broker lost; reconnecting"
        );
        link.close(&shared.config).await;
    }
}

/// Pumps deliveries from one link until it fails or the transport shuts down. Its consumers
/// (one per queue) are merged; one that ends ends the link. The standby consumers are started
/// `config.standby_delay` after the link opened.
async fn run_link(
    shared: &Arc<Shared>,
    link: &Arc<Link>,
    consumers: Vec<Consumer>,
    deliveries: &mpsc::Sender<Pending>,
) {
    let ended = || futures::stream::once(async { None });
    let mut merged: SelectAll<BoxStream<'static, Option<lapin::Result<lapin::message::Delivery>>>> =
        SelectAll::new();
    for consumer in consumers {
        merged.push(consumer.map(Some).chain(ended()).boxed());
    }
    let mut standby = (!shared.standby.is_empty())
        .then(|| Box::pin(tokio::time::sleep(shared.config.standby_delay)));
    let mut health = tokio::time::interval(Duration::from_millis(250));
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let next = async {
            if merged.is_empty() {
                futures::future::pending().await
            } else {
                merged.next().await
            }
        };
        let standby_due = async {
            match standby.as_mut() {
                Some(sleep) => sleep.await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            () = standby_due => {
                standby = None;
                let name = connection_name(shared);
                for queue in &shared.standby {
                    match link.consume(&shared.config, queue, &name).await {
                        Ok(consumer) => merged.push(consumer.map(Some).chain(ended()).boxed()),
                        Err(error) => {
                            warn!(%error, queue, "cannot stand by on a partition");
                            return;
                        }
                    }
                }
                info!(queues = ?shared.standby, "standing by on the other partitions");
            }
            item = next => match item {
                Some(Some(Ok(delivery))) => {
                    let acker = delivery.acker.clone();
                    match incoming(shared, link, delivery) {
                        Ok(delivery) => {
                            if deliveries.send(Pending { delivery, acker }).await.is_err() {
                                return;
                            }
                        }
                        Err(bad) => {
                            tokio::spawn(async move {
                                let Invalid { acker, reason } = *bad;
                                if let Err(error) = Box::new(acker).reject(reason).await {
                                    warn!(%error, "could not dead-letter an invalid delivery");
                                }
                            });
                        }
                    }
                }
                Some(Some(Err(error))) => {
                    warn!(%error, "consumer failed");
                    return;
                }
                Some(None) | None => {
                    warn!("consumer ended");
                    return;
                }
            },
            () = shared.broken.notified() => {
                if !link.healthy() {
                    return;
                }
                debug!("a failure was reported but the link looks healthy; keeping it");
            }
            _ = health.tick() => {
                if !link.healthy() {
                    return;
                }
            }
            () = shared.shutdown_signal.notified() => return,
        }
    }
}

/// A delivery that cannot be handed out (no valid sender or message id).
struct Invalid {
    acker: AmqpAcker,
    reason: String,
}

/// Turns a broker delivery into a contract delivery.
fn incoming(
    shared: &Arc<Shared>,
    link: &Arc<Link>,
    delivery: lapin::message::Delivery,
) -> Result<Delivery, Box<Invalid>> {
    let properties = delivery.properties.clone();
    let user = properties.user_id().as_ref().map(|u| u.as_str().to_owned());
    let message_id = properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_owned());
    let partition_key = properties.headers().as_ref().and_then(|h| {
        match h.inner().get(topology::PARTITION_KEY_HEADER) {
            Some(AMQPValue::LongString(s)) => String::from_utf8(s.as_bytes().to_vec()).ok(),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
            _ => None,
        }
    });
    let acker = AmqpAcker {
        shared: shared.clone(),
        link: link.clone(),
        acker: delivery.acker,
        properties,
        payload: Bytes::from(delivery.data),
    };
    let from = match user.as_deref().and_then(topology::identity_of_user) {
        Some(from) => from,
        None => {
            return Err(Box::new(Invalid {
                acker,
                reason: format!(
                    "transport.no_sender: user_id {:?} is not a CATS party",
                    user.unwrap_or_default()
                ),
            }));
        }
    };
    let Some(message_id) = message_id.filter(|m| !m.is_empty()) else {
        return Err(Box::new(Invalid {
            acker,
            reason: "transport.no_message_id: the message has no message_id".into(),
        }));
    };
    let bytes = acker.payload.clone();
    Ok(Delivery::new(
        from,
        message_id,
        partition_key,
        bytes,
        delivery.redelivered,
        Box::new(acker),
    ))
}

/// Settles one broker delivery.
struct AmqpAcker {
    shared: Arc<Shared>,
    /// The link the delivery came on: its tag means nothing on any other.
    link: Arc<Link>,
    acker: lapin::Acker,
    properties: BasicProperties,
    payload: Bytes,
}

impl fmt::Debug for AmqpAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpAcker")
            .field("generation", &self.link.generation)
            .field("message_id", self.properties.message_id())
            .finish()
    }
}

impl AmqpAcker {
    async fn ack_now(&self) -> Result<(), TransportError> {
        let done = timed(
            self.shared.config.operation_timeout,
            "acknowledging",
            self.acker.ack(BasicAckOptions::default()),
        )
        .await
        .inspect_err(|_| self.shared.broken.notify_one())?;
        if done {
            Ok(())
        } else {
            Err(TransportError::Disconnected(
                "the delivery's channel is gone; the broker will deliver it again".into(),
            ))
        }
    }
}

impl Drop for AmqpAcker {
    /// A delivery dropped without ack or reject goes back to its queue now (not when the
    /// connection closes), marked redelivered; the quorum queue counts it, and the
    /// `delivery-limit` policy dead-letters a message that is dropped again and again.
    fn drop(&mut self) {
        if !self.acker.usable() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let acker = self.acker.clone();
            let limit = self.shared.config.operation_timeout;
            runtime.spawn(async move {
                let requeue = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                let _ = tokio::time::timeout(limit, acker.nack(requeue)).await;
            });
        }
    }
}

impl Acknowledger for AmqpAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move { self.ack_now().await })
    }

    fn reject(self: Box<Self>, reason: String) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            if !self.acker.usable() {
                return Err(TransportError::Disconnected(
                    "the delivery's channel is gone; the broker will deliver it again".into(),
                ));
            }
            let queue = self.shared.queue.clone().unwrap_or_default();
            // The dead letter keeps the original properties except `user_id` (the broker only
            // accepts our own user there), which moves to a header with the reason.
            let mut headers = self.properties.headers().clone().unwrap_or_default();
            let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes()));
            headers.insert(topology::REASON_HEADER.into(), text(&reason));
            headers.insert(topology::REJECTED_BY_HEADER.into(), text(&self.shared.user));
            headers.insert(topology::ORIGINAL_QUEUE_HEADER.into(), text(&queue));
            if let Some(user) = self.properties.user_id() {
                headers.insert(topology::ORIGINAL_USER_HEADER.into(), text(user.as_str()));
            }
            let mut properties = BasicProperties::default()
                .with_delivery_mode(PERSISTENT)
                .with_headers(headers)
                .with_timestamp(unix_now());
            if let Some(id) = self.properties.message_id() {
                properties = properties.with_message_id(id.clone());
            }
            if let Some(content_type) = self.properties.content_type() {
                properties = properties.with_content_type(content_type.clone());
            }
            let published = publish_confirmed(
                &self.link,
                self.shared.config.operation_timeout,
                topology::DEAD_LETTER_EXCHANGE,
                &queue,
                &self.payload,
                properties,
            )
            .await;
            match published {
                Ok(()) => {}
                Err(PublishFailure::Link(e)) => {
                    self.shared.broken.notify_one();
                    return Err(e);
                }
                Err(PublishFailure::Returned) => {
                    return Err(TransportError::Broker(format!(
                        "no dead-letter queue is bound for {queue}"
                    )));
                }
                Err(PublishFailure::Nacked) => {
                    return Err(TransportError::Broker(
                        "the broker refused the dead letter".into(),
                    ));
                }
            }
            warn!(
                message_id = ?self.properties.message_id(),
                %reason,
                "message dead-lettered"
            );
            self.ack_now().await
        })
    }
}
