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
    /// the direct link).
    pub dead_letters: Option<i64>,
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
        if status != 200 {
            return Err(OperationsError::Broker(format!(
                "management API {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body)
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
                config, management, ..
            } => match management {
                Some(api) => self.management(api, config, &dead).await?,
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
        let mut queues = vec![QueueStatus {
            name: HUB_INBOUND.into(),
            depth: None,
            consumers: Some(1),
            rate_in: None,
            rate_out: None,
            dead_letters: Some(dead.get(HUB_INBOUND).copied().unwrap_or(0)),
        }];
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
            queues.push(QueueStatus {
                name: name.clone(),
                depth: Some(t.depth),
                consumers: Some(i64::from(is_connected)),
                rate_in: None,
                rate_out: None,
                dead_letters: None,
            });
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
        let mut names = vec![HUB_INBOUND.to_owned()];
        names.extend(self.countries.iter().map(|c| node_queue(*c)));
        let mut broker_down = false;
        for name in names {
            // Once the broker cannot be reached, the other queues are not tried in this sample
            // (each attempt would wait for the connect timeout).
            let declared = if broker_down {
                Err("the broker is not reachable".to_owned())
            } else {
                declare(state, config, &name).await
            };
            broker_down = broker_down || state.channel.is_none();
            let dlq = if broker_down {
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
            let dead_letters =
                dead.get(&name).copied().unwrap_or(0) + dlq.map(|(d, _)| d).unwrap_or(0);
            let (came_in, went_out) = if name == HUB_INBOUND {
                let out = f(counters.processed);
                (depth.map(|d| out + f(d)), Some(out))
            } else {
                let country = name.strip_prefix("cats.node.").unwrap_or_default();
                let sent = f(counters.sent_to.get(country).copied().unwrap_or(0));
                (Some(sent), depth.map(|d| sent - f(d)))
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
            queues.push(QueueStatus {
                name,
                depth,
                consumers,
                rate_in: None,
                rate_out: None,
                dead_letters: Some(dead_letters),
            });
        }
        Ok(("passive-declare", queues, nodes, totals))
    }

    async fn management(
        &self,
        api: &ManagementApi,
        config: &AmqpConfig,
        dead: &BTreeMap<String, i64>,
    ) -> Result<Sampled, OperationsError> {
        let vhost = escape_path(&config.vhost);
        let listed = api
            .get(&format!(
                "/api/queues/{vhost}?columns=name,messages,consumers,message_stats"
            ))
            .await?;
        let listed = listed.as_array().cloned().unwrap_or_default();
        let by_name: BTreeMap<String, serde_json::Value> = listed
            .into_iter()
            .filter_map(|q| Some((q.get("name")?.as_str()?.to_owned(), q)))
            .collect();
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
        let mut names = vec![HUB_INBOUND.to_owned()];
        names.extend(self.countries.iter().map(|c| node_queue(*c)));
        let mut queues = Vec::new();
        let mut nodes = Vec::new();
        for name in names {
            let q = by_name.get(&name);
            let dlq = by_name.get(&topology::dead_letter_queue(&name));
            let depth = int(q, "messages");
            queues.push(QueueStatus {
                name: name.clone(),
                depth,
                consumers: int(q, "consumers"),
                rate_in: stat(q, "publish_details"),
                rate_out: stat(q, "deliver_get_details"),
                dead_letters: Some(
                    dead.get(&name).copied().unwrap_or(0) + int(dlq, "messages").unwrap_or(0),
                ),
            });
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
    fn error_codes_are_stable() {
        assert_eq!(
            OperationsError::Broker("x".into()).code(),
            "operations.broker"
        );
    }
}
