//! What operators see of the queues and the nodes: `GET /api/v1/queues`, the queue gauges of
//! `/metrics`, and `/readyz`'s transport check.
//!
//! [`Operations::sample`] takes one [`QueuesReport`]: per queue its depth, consumers, rates in
//! and out (messages per second since the previous background sample) and dead letters; per
//! node whether it is connected, when it was last seen, how many messages it is owed and how old
//! the oldest one is. Where the numbers come from depends on the transport:
//!
//! | | direct link | AMQP, management API | AMQP, passive declares |
//! | --- | --- | --- | --- |
//! | node queue depth | `transport_node_queue` | `messages` | `message_count` |
//! | consumers | connected or not | `consumers` | `consumer_count` |
//! | rates | per-node sequence and acks | `message_stats` | hub counters and depth change |
//! | connected | the link's connection table | connections of the node's user | a consumer on its queue |
//! | oldest undelivered | `enqueued_at` | not known | not known |
//! | dead letters | the register ([`crate::dead_letters`]) | register + `.dlq` depth | register + `.dlq` depth |
//!
//! With passive declares, the rates are derived: what the hub published to a node queue (its
//! own counters) minus the growth of the queue is what left it; what the hub processed plus the
//! growth of its inbound queue is what came in (counting this hub process only).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use cats_transport::contract::CountryCode;
use cats_transport::direct::DirectHub;
use cats_transport_amqp::{AmqpConfig, AmqpTransport, lapin, topology};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::client::{ClientError, HttpBase};
use crate::dead_letters::{DeadLetters, HUB_INBOUND, node_queue};
use crate::metrics::Metrics;
use crate::store::{HubStore, StoreError, on_pool};

/// One queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// `cats.hub.in`, `cats.node.KZ`.
    pub name: String,
    /// Messages in it (`None`: not known, e.g. the direct link's inbound side, which is held in
    /// the nodes' outboxes).
    pub depth: Option<i64>,
    /// Consumers.
    pub consumers: Option<i64>,
    /// Messages per second in.
    pub rate_in: Option<f64>,
    /// Messages per second out (delivered and acknowledged).
    pub rate_out: Option<f64>,
    /// Dead letters not yet replayed or discarded (`None`: kept elsewhere, e.g. by the node on
    /// the direct link, or counted on `cats.hub.in` for the other partitions of the hub's
    /// inbound queue, which share its dead-letter queue).
    pub dead_letters: Option<i64>,
    /// The partition of the hub's inbound queue this queue holds (`cats.hub.in` is 0,
    /// `cats.hub.in.1` is 1, …); `None` for the other queues and on the direct link.
    #[serde(default)]
    pub partition: Option<u16>,
    /// For a partition: whether this hub process consumes it at once (`preferred_partitions`)
    /// rather than standing by on it.
    #[serde(default)]
    pub preferred: Option<bool>,
    /// For a partition: whether this hub process's consumer is the partition's single active
    /// consumer. Known from the management API only; `None` with passive declares.
    #[serde(default)]
    pub active_here: Option<bool>,
    /// For a partition: the connection name of its active consumer (`cats-hub-<pid>-…`, see
    /// `AmqpTransport::connection_name`), from the management API; `None` when no consumer is
    /// active or it is not known.
    #[serde(default)]
    pub active_consumer: Option<String>,
}

impl QueueStatus {
    /// A queue with nothing known of partitions.
    fn plain(
        name: String,
        depth: Option<i64>,
        consumers: Option<i64>,
        dead_letters: Option<i64>,
    ) -> QueueStatus {
        QueueStatus {
            name,
            depth,
            consumers,
            rate_in: None,
            rate_out: None,
            dead_letters,
            partition: None,
            preferred: None,
            active_here: None,
            active_consumer: None,
        }
    }
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its country.
    pub country: String,
    /// Connected now.
    pub connected: bool,
    /// When this hub process last saw it (connected, or a message from it).
    pub last_seen: Option<DateTime<Utc>>,
    /// Messages it is owed.
    pub undelivered: Option<i64>,
    /// Age of the oldest of them, seconds.
    pub oldest_undelivered_age_seconds: Option<f64>,
}

/// `GET /api/v1/queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuesReport {
    /// `direct` or `amqp`.
    pub transport: String,
    /// Where the numbers come from: `store`, `management-api` or `passive-declare`.
    pub source: String,
    /// When.
    pub sampled_at: DateTime<Utc>,
    /// The interval the rates are computed over, seconds (`None` before a second sample).
    pub interval_seconds: Option<f64>,
    /// The queues.
    pub queues: Vec<QueueStatus>,
    /// The nodes.
    pub nodes: Vec<NodeStatus>,
}

/// Sampling failed.
#[derive(Debug, thiserror::Error)]
pub enum OperationsError {
    /// The hub store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker or its management API failed.
    #[error("operations.broker: {0}")]
    Broker(String),
}

impl OperationsError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            OperationsError::Store(e) => e.code(),
            OperationsError::Broker(_) => "operations.broker",
        }
    }
}

/// RabbitMQ's management API (plain HTTP, basic authentication).
#[derive(Clone)]
pub struct ManagementApi {
    base: HttpBase,
    authorization: String,
}

impl std::fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementApi")
            .field("base", &self.base)
            .field("authorization", &"<redacted>")
            .finish()
    }
}

impl ManagementApi {
    /// The API at `url` (`http://127.0.0.1:15672`) as `user`.
    pub fn new(url: &str, user: &str, password: &str) -> Result<ManagementApi, ClientError> {
        if user.is_empty() {
            return Err(ClientError::Url(
                "management_user is required with management_url".into(),
            ));
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(ManagementApi {
            base: HttpBase::parse(url)?,
            authorization: format!("Basic {token}"),
        })
    }

    async fn get(&self, path: &str) -> Result<serde_json::Value, OperationsError> {
        self.get_optional(path).await?.ok_or_else(|| {
            OperationsError::Broker(format!("management API {path}: HTTP 404: not found"))
        })
    }

    /// `GET path`; `None` when the API answers 404 (a queue that does not exist).
    async fn get_optional(&self, path: &str) -> Result<Option<serde_json::Value>, OperationsError> {
        let (status, body) = self
            .base
            .request(
                "GET",
                path,
                Some(&self.authorization),
                None,
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| OperationsError::Broker(format!("management API: {e}")))?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(OperationsError::Broker(format!(
                "management API {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| OperationsError::Broker(format!("management API {path}: {e}")))
    }
}

/// The hub's transport, as operations see it.
#[derive(Debug, Clone)]
pub enum HubTransport {
    /// The direct link.
    Direct {
        /// The link.
        hub: Arc<DirectHub>,
    },
    /// RabbitMQ.
    Amqp {
        /// The hub's link.
        link: Arc<AmqpTransport>,
        /// Its configuration (for the operations connection).
        config: Box<AmqpConfig>,
        /// The management API, when configured.
        management: Option<ManagementApi>,
    },
}

impl HubTransport {
    /// `direct` or `amqp`.
    pub fn kind(&self) -> &'static str {
        match self {
            HubTransport::Direct { .. } => "direct",
            HubTransport::Amqp { .. } => "amqp",
        }
    }

    /// Whether the transport can take messages: the direct link's listener accepts a TCP
    /// connection; the AMQP link's connection is open.
    pub async fn ready(&self) -> Result<(), String> {
        match self {
            HubTransport::Direct { hub } => {
                let mut addr: SocketAddr = hub.local_addr();
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::net::TcpStream::connect(addr),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("the direct link's listener on {addr}: {e}")),
                    Err(_) => Err(format!("the direct link's listener on {addr}: no answer")),
                }
            }
            HubTransport::Amqp { link, .. } => {
                if link.is_connected() {
                    Ok(())
                } else {
                    Err("no open connection to the broker".into())
                }
            }
        }
    }
}

/// Cumulative counts of one queue at one instant, for rates.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    came_in: Option<f64>,
    went_out: Option<f64>,
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    totals: BTreeMap<String, Totals>,
}

#[derive(Default)]
struct SamplerState {
    previous: Option<Sample>,
    last_connected: BTreeMap<CountryCode, DateTime<Utc>>,
    /// The last journalled message per sending country, read once (so that a restarted hub
    /// still knows when it last heard from each node).
    last_journalled: Option<BTreeMap<String, DateTime<Utc>>>,
    channel: Option<(lapin::Connection, lapin::Channel)>,
}

/// Takes queue reports; one per hub process.
pub struct Operations {
    store: HubStore,
    metrics: Arc<Metrics>,
    transport: HubTransport,
    dead_letters: DeadLetters,
    countries: Vec<CountryCode>,
    interval: Duration,
    state: tokio::sync::Mutex<SamplerState>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations")
            .field("transport", &self.transport.kind())
            .field("countries", &self.countries)
            .finish()
    }
}

/// What the direct link's per-node queue tables say of one node.
#[derive(Debug, Default, Clone, Copy)]
struct DirectQueue {
    depth: i64,
    oldest: Option<i64>,
    last_seq: i64,
}

fn rate(now: Option<f64>, before: Option<f64>, seconds: f64) -> Option<f64> {
    let (now, before) = (now?, before?);
    (seconds > 0.0).then(|| ((now - before) / seconds).max(0.0))
}

fn f(n: i64) -> f64 {
    // Counts stay far below 2^53.
    n as f64
}

impl Operations {
    /// Operations over `transport`, for the nodes of `countries`, sampling every `interval`.
    pub fn new(
        store: HubStore,
        metrics: Arc<Metrics>,
        transport: HubTransport,
        dead_letters: DeadLetters,
        countries: Vec<CountryCode>,
        interval: Duration,
    ) -> Operations {
        Operations {
            store,
            metrics,
            transport,
            dead_letters,
            countries,
            interval,
            state: tokio::sync::Mutex::new(SamplerState::default()),
        }
    }

    /// The transport.
    pub fn transport(&self) -> &HubTransport {
        &self.transport
    }

    /// The dead-letter register.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    /// Samples every `interval` until `shutdown` fires (keeps the rates and the gauges fresh).
    pub async fn run(&self, mut shutdown: cats_transport::shutdown::Shutdown) {
        loop {
            if let Err(e) = self.sample().await {
                tracing::warn!(code = e.code(), error = %e, "queue sample failed");
            }
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
        let mut state = self.state.lock().await;
        if let Some((connection, _)) = state.channel.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                connection.close(200, "hub stopping".into()),
            )
            .await;
        }
    }

    /// Takes a report now (rates over the time since the last background sample) and updates
    /// the queue gauges of the metrics.
    pub async fn sample(&self) -> Result<QueuesReport, OperationsError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let sampled_at = Utc::now();
        let dead = self.dead_letters.pending_per_queue().await?;
        let dead: BTreeMap<String, i64> = dead.into_iter().collect();
        let (source, mut queues, mut nodes, totals) = match &self.transport {
            HubTransport::Direct { hub } => self.direct(hub, &dead, sampled_at).await?,
            HubTransport::Amqp {
                link,
                config,
                management,
            } => match management {
                Some(api) => {
                    self.management(api, config, link.connection_name(), &dead)
                        .await?
                }
                None => self.passive(&mut state, config, &dead).await?,
            },
        };
        let seconds = state
            .previous
            .as_ref()
            .map(|p| now.duration_since(p.at).as_secs_f64());
        if let Some(previous) = &state.previous {
            let secs = seconds.unwrap_or(0.0);
            for q in queues.iter_mut() {
                let (Some(now_t), Some(before)) =
                    (totals.get(&q.name), previous.totals.get(&q.name))
                else {
                    continue;
                };
                if q.rate_in.is_none() {
                    q.rate_in = rate(now_t.came_in, before.came_in, secs);
                }
                if q.rate_out.is_none() {
                    q.rate_out = rate(now_t.went_out, before.went_out, secs);
                }
            }
        }
        if state.last_journalled.is_none() {
            state.last_journalled = Some(self.last_journalled().await?);
        }
        let last_messages = self.metrics.last_message_from();
        for n in nodes.iter_mut() {
            let Ok(country) = CountryCode::parse(&n.country) else {
                continue;
            };
            if n.connected {
                state.last_connected.insert(country, sampled_at);
            }
            n.last_seen = [
                state.last_connected.get(&country).copied(),
                last_messages.get(n.country.as_str()).copied(),
                state
                    .last_journalled
                    .as_ref()
                    .and_then(|j| j.get(n.country.as_str()).copied()),
            ]
            .into_iter()
            .flatten()
            .max();
        }
        let advance = match (&state.previous, seconds) {
            (None, _) => true,
            (Some(_), Some(s)) => s >= self.interval.as_secs_f64() * 0.9,
            (Some(_), None) => true,
        };
        if advance {
            state.previous = Some(Sample { at: now, totals });
        }
        let report = QueuesReport {
            transport: self.transport.kind().into(),
            source: source.into(),
            sampled_at,
            interval_seconds: seconds,
            queues,
            nodes,
        };
        self.metrics.set_queues(&report);
        Ok(report)
    }

    async fn last_journalled(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        Ok(on_pool!(self.store, |p| {
            sqlx::query(
                "SELECT sender, MAX(recorded_at) AS last FROM hub_journal \
                 WHERE sender LIKE 'urn:cats:node:%' GROUP BY sender",
            )
            .fetch_all(p)
            .await?
            .into_iter()
            .filter_map(|row| {
                let sender: String = row.try_get("sender").ok()?;
                let last: Option<i64> = row.try_get("last").ok()?;
                Some((
                    sender.strip_prefix("urn:cats:node:")?.to_owned(),
                    DateTime::from_timestamp_millis(last?)?,
                ))
            })
            .collect()
        }))
    }

    fn countries_and(&self, more: impl IntoIterator<Item = CountryCode>) -> Vec<CountryCode> {
        let set: BTreeSet<CountryCode> = self.countries.iter().copied().chain(more).collect();
        set.into_iter().collect()
    }

    async fn direct(
        &self,
        hub: &DirectHub,
        dead: &BTreeMap<String, i64>,
        now: DateTime<Utc>,
    ) -> Result<Sampled, OperationsError> {
        let mut tables: BTreeMap<String, DirectQueue> = BTreeMap::new();
        on_pool!(self.store, |p| {
            for row in sqlx::query(
                "SELECT node, COUNT(*) AS depth, MIN(enqueued_at) AS oldest \
                 FROM transport_node_queue GROUP BY node",
            )
            .fetch_all(p)
            .await
            .map_err(StoreError::from)?
            {
                let node: String = row.try_get("node").map_err(StoreError::from)?;
                let q = tables.entry(node).or_default();
                q.depth = row.try_get("depth").map_err(StoreError::from)?;
                q.oldest = row.try_get("oldest").map_err(StoreError::from)?;
            }
            for row in sqlx::query("SELECT node, last_seq FROM transport_node_cursor")
                .fetch_all(p)
                .await
                .map_err(StoreError::from)?
            {
                let node: String = row.try_get("node").map_err(StoreError::from)?;
                tables.entry(node).or_default().last_seq =
                    row.try_get("last_seq").map_err(StoreError::from)?;
            }
        });
        let connected: BTreeSet<CountryCode> = hub.connected_nodes().into_iter().collect();
        let countries =
            self.countries_and(tables.keys().filter_map(|c| CountryCode::parse(c).ok()));
        let counters = self.metrics.counters();
        let mut queues = vec![QueueStatus::plain(
            HUB_INBOUND.into(),
            None,
            Some(1),
            Some(dead.get(HUB_INBOUND).copied().unwrap_or(0)),
        )];
        let mut totals = BTreeMap::from([(
            HUB_INBOUND.to_owned(),
            Totals {
                came_in: Some(f(counters.received)),
                went_out: Some(f(counters.processed)),
            },
        )]);
        let mut nodes = Vec::new();
        for country in countries {
            let t = tables.get(country.as_str()).copied().unwrap_or_default();
            let name = node_queue(country);
            let is_connected = connected.contains(&country);
            queues.push(QueueStatus::plain(
                name.clone(),
                Some(t.depth),
                Some(i64::from(is_connected)),
                None,
            ));
            totals.insert(
                name,
                Totals {
                    came_in: Some(f(t.last_seq)),
                    went_out: Some(f(t.last_seq - t.depth)),
                },
            );
            nodes.push(NodeStatus {
                country: country.to_string(),
                connected: is_connected,
                last_seen: None,
                undelivered: Some(t.depth),
                oldest_undelivered_age_seconds: t
                    .oldest
                    .map(|ms| (f(now.timestamp_millis() - ms) / 1000.0).max(0.0)),
            });
        }
        Ok(("store", queues, nodes, totals))
    }

    async fn passive(
        &self,
        state: &mut SamplerState,
        config: &AmqpConfig,
        dead: &BTreeMap<String, i64>,
    ) -> Result<Sampled, OperationsError> {
        let counters = self.metrics.counters();
        let mut queues = Vec::new();
        let mut nodes = Vec::new();
        let mut totals = BTreeMap::new();
        let mut broker_down = false;
        for (name, partition) in self.amqp_queues(config) {
            // Once the broker cannot be reached, the other queues are not tried in this sample
            // (each attempt would wait for the connect timeout).
            let declared = if broker_down {
                Err("the broker is not reachable".to_owned())
            } else {
                declare(state, config, &name).await
            };
            broker_down = broker_down || state.channel.is_none();
            // The partitions after the first share `cats.hub.in.dlq` (counted on `cats.hub.in`).
            let has_dlq = partition.is_none_or(|p| p == 0);
            let dlq = if broker_down || !has_dlq {
                Err("the broker is not reachable".to_owned())
            } else {
                declare(state, config, &topology::dead_letter_queue(&name)).await
            };
            let (depth, consumers) = match declared {
                Ok((d, c)) => (Some(d), Some(c)),
                Err(e) => {
                    tracing::debug!(queue = name, error = %e, "passive declare failed");
                    (None, None)
                }
            };
            let dead_letters = has_dlq
                .then(|| dead.get(&name).copied().unwrap_or(0) + dlq.map(|(d, _)| d).unwrap_or(0));
            let (came_in, went_out) = match partition {
                // One inbound queue: what this hub processed plus the queue's growth came in.
                Some(_) if config.partitions <= 1 => {
                    let out = f(counters.processed);
                    (depth.map(|d| out + f(d)), Some(out))
                }
                // Several: this hub's counters do not say which partition a message came from.
                Some(_) => (None, None),
                None => {
                    let country = name.strip_prefix("cats.node.").unwrap_or_default();
                    let sent = f(counters.sent_to.get(country).copied().unwrap_or(0));
                    (Some(sent), depth.map(|d| sent - f(d)))
                }
            };
            totals.insert(name.clone(), Totals { came_in, went_out });
            if let Some(country) = name.strip_prefix("cats.node.") {
                nodes.push(NodeStatus {
                    country: country.to_owned(),
                    connected: consumers.is_some_and(|c| c > 0),
                    last_seen: None,
                    undelivered: depth,
                    oldest_undelivered_age_seconds: None,
                });
            }
            let mut status = QueueStatus::plain(name, depth, consumers, dead_letters);
            if let Some(p) = partition {
                status.partition = Some(p);
                status.preferred = Some(preferred(config, p));
            }
            queues.push(status);
        }
        Ok(("passive-declare", queues, nodes, totals))
    }

    /// The queues an AMQP report covers: every partition of the hub's inbound queue (with its
    /// number), then each node's queue.
    fn amqp_queues(&self, config: &AmqpConfig) -> Vec<(String, Option<u16>)> {
        (0..config.partitions.max(1))
            .map(|p| (topology::hub_partition_queue(p), Some(p)))
            .chain(self.countries.iter().map(|c| (node_queue(*c), None)))
            .collect()
    }

    async fn management(
        &self,
        api: &ManagementApi,
        config: &AmqpConfig,
        me: &str,
        dead: &BTreeMap<String, i64>,
    ) -> Result<Sampled, OperationsError> {
        let vhost = escape_path(&config.vhost);
        let by_name = match api
            .get(&format!(
                "/api/queues/{vhost}?columns=name,messages,consumers,message_stats"
            ))
            .await
        {
            Ok(listed) => listed
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|q| Some((q.get("name")?.as_str()?.to_owned(), q)))
                .collect(),
            // One queue the broker cannot describe fails the whole list (RabbitMQ 3.10 answers
            // HTTP 500, `badkey` in `list_queue_stats`, for a quorum queue deleted and declared
            // again): the report then asks queue by queue, and only that queue goes unknown.
            Err(e) => {
                tracing::warn!(error = %e, "the broker's queue list failed; asking queue by queue");
                let mut names = Vec::new();
                for (name, _) in self.amqp_queues(config) {
                    names.push(topology::dead_letter_queue(&name));
                    names.push(name);
                }
                describe_one_by_one(api, &vhost, names).await?
            }
        };
        let connections = api.get("/api/connections?columns=user,vhost").await?;
        let users: BTreeSet<String> = connections
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|c| c.get("vhost").and_then(|v| v.as_str()) == Some(&config.vhost))
                    .filter_map(|c| c.get("user")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let active = active_consumers(&api.get(&format!("/api/consumers/{vhost}")).await?);
        let int = |q: Option<&serde_json::Value>, k: &str| q?.get(k)?.as_i64();
        let stat = |q: Option<&serde_json::Value>, k: &str| {
            Some(
                q?.get("message_stats")
                    .and_then(|s| s.get(k))
                    .and_then(|d| d.get("rate"))
                    .and_then(|r| r.as_f64())
                    .unwrap_or(0.0),
            )
        };
        let mut queues = Vec::new();
        let mut nodes = Vec::new();
        for (name, partition) in self.amqp_queues(config) {
            let q = by_name.get(&name);
            let dlq = by_name.get(&topology::dead_letter_queue(&name));
            let depth = int(q, "messages");
            // The partitions after the first share `cats.hub.in.dlq` (counted on `cats.hub.in`).
            let has_dlq = partition.is_none_or(|p| p == 0);
            let mut status = QueueStatus::plain(
                name.clone(),
                depth,
                int(q, "consumers"),
                has_dlq.then(|| {
                    dead.get(&name).copied().unwrap_or(0) + int(dlq, "messages").unwrap_or(0)
                }),
            );
            status.rate_in = stat(q, "publish_details");
            status.rate_out = stat(q, "deliver_get_details");
            if let Some(p) = partition {
                let holder = active.get(&name);
                status.partition = Some(p);
                status.preferred = Some(preferred(config, p));
                status.active_here = Some(holder.is_some_and(|tag| consumer_of(tag, me)));
                status.active_consumer = holder.map(|tag| connection_of(tag, &name));
            }
            queues.push(status);
            if let Some(country) = name.strip_prefix("cats.node.") {
                let user = CountryCode::parse(country)
                    .map(|c| topology::user_name(cats_transport::contract::PeerIdentity::Node(c)))
                    .unwrap_or_default();
                nodes.push(NodeStatus {
                    country: country.to_owned(),
                    connected: users.contains(&user),
                    last_seen: None,
                    undelivered: depth,
                    oldest_undelivered_age_seconds: None,
                });
            }
        }
        Ok(("management-api", queues, nodes, BTreeMap::new()))
    }
}

/// `GET /api/queues/{vhost}/{name}` for each of `names`: the queues the broker describes, by
/// name. A queue that does not exist (HTTP 404) or that the broker cannot describe is left out
/// (its figures are unknown); only a broker that answers none of them is an error.
async fn describe_one_by_one(
    api: &ManagementApi,
    vhost: &str,
    mut names: Vec<String>,
) -> Result<BTreeMap<String, serde_json::Value>, OperationsError> {
    names.sort();
    names.dedup();
    let mut found = BTreeMap::new();
    let mut last_error = None;
    let mut answered = 0usize;
    for name in names {
        let path = format!(
            "/api/queues/{vhost}/{}?columns=name,messages,consumers,message_stats",
            escape_path(&name)
        );
        match api.get_optional(&path).await {
            Ok(Some(q)) => {
                answered += 1;
                found.insert(name, q);
            }
            Ok(None) => answered += 1,
            Err(e) => {
                tracing::warn!(queue = name, error = %e, "the broker cannot describe a queue");
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) if answered == 0 => Err(e),
        _ => Ok(found),
    }
}

/// Whether this hub process consumes partition `p` at once.
fn preferred(config: &AmqpConfig, p: u16) -> bool {
    config.preferred_partitions.is_empty() || config.preferred_partitions.contains(&p)
}

/// The management API's `GET /api/consumers/{vhost}`: per queue, the tag of its active
/// consumer. A consumer of a single-active-consumer queue is `active` only while it is the one
/// the broker delivers to; on other queues every consumer is active (the first one is kept).
fn active_consumers(listed: &serde_json::Value) -> BTreeMap<String, String> {
    let mut active = BTreeMap::new();
    for c in listed.as_array().map(Vec::as_slice).unwrap_or_default() {
        let is_active = c
            .get("active")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let queue = c
            .get("queue")
            .and_then(|q| q.get("name"))
            .and_then(serde_json::Value::as_str);
        let tag = c.get("consumer_tag").and_then(serde_json::Value::as_str);
        if let (true, Some(queue), Some(tag)) = (is_active, queue, tag) {
            active
                .entry(queue.to_owned())
                .or_insert_with(|| tag.to_owned());
        }
    }
    active
}

/// Whether consumer `tag` belongs to the transport whose connections are named `connection`
/// (its tags are `<connection>-<generation>-<queue>`).
fn consumer_of(tag: &str, connection: &str) -> bool {
    tag.strip_prefix(connection)
        .is_some_and(|rest| rest.starts_with('-'))
}

/// The connection name in consumer `tag` of `queue` (`<connection>-<generation>-<queue>`); the
/// whole tag when it has another shape.
fn connection_of(tag: &str, queue: &str) -> String {
    tag.strip_suffix(queue)
        .and_then(|t| t.strip_suffix('-'))
        .and_then(|t| t.rsplit_once('-'))
        .filter(|(_, generation)| generation.bytes().all(|b| b.is_ascii_digit()))
        .map_or_else(|| tag.to_owned(), |(connection, _)| connection.to_owned())
}

type Sampled = (
    &'static str,
    Vec<QueueStatus>,
    Vec<NodeStatus>,
    BTreeMap<String, Totals>,
);

fn escape_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Passive declaration of `queue` on the operations channel (opened on demand, reopened after
/// the broker closed it): its message and consumer counts.
async fn declare(
    state: &mut SamplerState,
    config: &AmqpConfig,
    queue: &str,
) -> Result<(i64, i64), String> {
    use lapin::options::QueueDeclareOptions;
    let op = config.operation_timeout;
    let usable = state
        .channel
        .as_ref()
        .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected());
    if !usable {
        let connection = match state.channel.take() {
            Some((c, _)) if c.status().connected() => c,
            _ => cats_transport_amqp::raw_connection(config, "cats-hub-operations")
                .await
                .map_err(|e| e.to_string())?,
        };
        let channel = tokio::time::timeout(op, connection.create_channel())
            .await
            .map_err(|_| "timed out opening a channel".to_owned())?
            .map_err(|e| e.to_string())?;
        state.channel = Some((connection, channel));
    }
    let Some((_, channel)) = state.channel.as_ref() else {
        return Err("no channel".into());
    };
    let declared = tokio::time::timeout(
        op,
        channel.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        ),
    )
    .await
    .map_err(|_| format!("timed out declaring {queue}"))?
    .map_err(|e| e.to_string())?;
    Ok((
        i64::from(declared.message_count()),
        i64::from(declared.consumer_count()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_and_never_negative() {
        assert_eq!(rate(Some(30.0), Some(10.0), 2.0), Some(10.0));
        assert_eq!(rate(Some(5.0), Some(10.0), 2.0), Some(0.0));
        assert_eq!(rate(None, Some(10.0), 2.0), None);
        assert_eq!(rate(Some(1.0), Some(0.0), 0.0), None);
    }

    #[test]
    fn vhosts_are_escaped_in_paths() {
        assert_eq!(escape_path("cats"), "cats");
        assert_eq!(escape_path("/"), "%2F");
    }

    #[test]
    fn the_active_consumer_of_each_queue_and_whose_it_is() {
        let listed = serde_json::json!([
            {"queue": {"name": "cats.hub.in.1"}, "consumer_tag": "cats-hub-41-1-9a0b-1-cats.hub.in.1",
             "active": false, "activity_status": "waiting"},
            {"queue": {"name": "cats.hub.in.1"}, "consumer_tag": "cats-hub-7-1-0c1d-3-cats.hub.in.1",
             "active": true, "activity_status": "single_active"},
            {"queue": {"name": "cats.node.KZ"}, "consumer_tag": "cats-node-kz-9-1-0001-1-cats.node.KZ"},
            {"queue": {"name": "cats.hub.in.2"}, "consumer_tag": "x", "active": false}
        ]);
        let active = active_consumers(&listed);
        assert_eq!(
            active.get("cats.hub.in.1").map(String::as_str),
            Some("cats-hub-7-1-0c1d-3-cats.hub.in.1")
        );
        assert!(active.contains_key("cats.node.KZ"), "no `active`: active");
        assert!(
            !active.contains_key("cats.hub.in.2"),
            "only a waiting consumer"
        );
        let tag = &active["cats.hub.in.1"];
        assert!(consumer_of(tag, "cats-hub-7-1-0c1d"));
        assert!(
            !consumer_of(tag, "cats-hub-7-1-0c1"),
            "a prefix of another name"
        );
        assert!(!consumer_of(tag, "cats-hub-41-1-9a0b"));
        assert_eq!(connection_of(tag, "cats.hub.in.1"), "cats-hub-7-1-0c1d");
        assert_eq!(
            connection_of("amq.ctag-abc", "cats.hub.in.1"),
            "amq.ctag-abc"
        );
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            OperationsError::Broker("x".into()).code(),
            "operations.broker"
        );
    }

    /// A management API on a local port: `answer(path)` gives the status and body of each
    /// request; the paths asked are recorded.
    async fn fake_api(
        answer: fn(&str) -> (u16, &'static str),
    ) -> (ManagementApi, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let asked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let log = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
                log.lock().expect("not poisoned").push(path.clone());
                let (status, body) = answer(&path);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (
            ManagementApi::new(&url, "monitor", "secret").expect("api"),
            asked,
        )
    }

    #[tokio::test]
    async fn queues_the_broker_cannot_list_are_asked_one_by_one() {
        let (api, asked) = fake_api(|path| {
            if path.starts_with("/api/queues/cats/cats.hub.in?") {
                (200, r#"{"name":"cats.hub.in","messages":3,"consumers":1}"#)
            } else if path.starts_with("/api/queues/cats/cats.node.GE?") {
                (500, r#"{"error":"badkey"}"#)
            } else {
                (404, r#"{"error":"Object Not Found"}"#)
            }
        })
        .await;
        let names = vec![
            "cats.hub.in".to_owned(),
            "cats.node.GE".to_owned(),
            "cats.hub.in.dlq".to_owned(),
            "cats.hub.in".to_owned(),
        ];
        let found = describe_one_by_one(&api, "cats", names)
            .await
            .expect("some queues answer");
        assert_eq!(found.keys().collect::<Vec<_>>(), ["cats.hub.in"]);
        assert_eq!(found["cats.hub.in"]["messages"], 3);
        // Each queue asked once, in name order.
        let asked = asked.lock().expect("not poisoned").clone();
        let queues: Vec<&str> = asked
            .iter()
            .map(|p| {
                p.trim_start_matches("/api/queues/cats/")
                    .split('?')
                    .next()
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(queues, ["cats.hub.in", "cats.hub.in.dlq", "cats.node.GE"]);
    }

    #[tokio::test]
    async fn a_broker_that_describes_no_queue_is_an_error() {
        let (api, _) = fake_api(|_| (500, r#"{"error":"badkey"}"#)).await;
        let err = describe_one_by_one(&api, "cats", vec!["cats.hub.in".to_owned()])
            .await
            .expect_err("nothing answered");
        assert_eq!(err.code(), "operations.broker");
        assert!(err.to_string().contains("HTTP 500"), "{err}");
    }
}
