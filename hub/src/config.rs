//! Configuration in two stages, and the entry points of `cats hub`.
//!
//! 1. [`RawConfig`]: what the TOML file says, overridden by environment variables
//!    `CATS_HUB__<SECTION>__<KEY>` (e.g. `CATS_HUB__STORE__URL`), unknown keys refused. Every key
//!    and its default is documented in `deploy/hub.example.toml`.
//! 2. [`ResolvedConfig`]: certificates and keys loaded, addresses parsed, reference data read.
//!
//! [`start`] starts the transport (the direct link, or the AMQP link to RabbitMQ) and the HTTP
//! API, and runs the pipeline, the queue sampler and the dead-letter collector; [`run`] does the
//! same and waits for the shutdown signal; [`verify_journal`] walks the journal's hash chain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cats_transport::contract::CountryCode;
use cats_transport::direct::{DirectHub, HubTls, LinkConfig};
use cats_transport::shutdown::Shutdown;
use cats_transport_amqp::{AmqpConfig, AmqpTransport, ConfigError, RawAmqpConfig};
use cats_trust::{Signer, TrustStore, Verifier};
use message_catalog::codec::Limits;
use message_catalog::reference::ReferenceData;
use serde::{Deserialize, Serialize};

use crate::dead_letters::{DeadLetters, PipelineReplay, Replay};
use crate::http::{ApiState, router};
use crate::journal::{self, VerifiedChain, VerifyError};
use crate::metrics::Metrics;
use crate::operations::{HubTransport, ManagementApi, Operations};
use crate::pipeline::{HubServices, Pipeline};
use crate::store::HubStore;

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `sqlite://…` or `postgres://…`; the hub's tables and the transport's share it.
    pub url: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            url: "sqlite://cats-hub.db".into(),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// Address of the operations API.
    pub listen: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8480".into(),
        }
    }
}

/// `[transport]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTransport {
    /// `direct` (the embedded mutual-TLS link) or `amqp` (RabbitMQ, `[transport.amqp]`).
    pub kind: String,
    /// Address the direct mTLS link listens on (`direct` only).
    pub listen: String,
    /// `[transport.amqp]`, used when `kind = "amqp"`.
    pub amqp: RawAmqp,
}

impl Default for RawTransport {
    fn default() -> Self {
        RawTransport {
            kind: "direct".into(),
            listen: "0.0.0.0:7443".into(),
            amqp: RawAmqp::default(),
        }
    }
}

/// `[transport.amqp]`: the hub's link to RabbitMQ (`cats_transport_amqp`). Certificate files
/// are relative to `[certs] dir` unless absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAmqp {
    /// `amqps://HOST:PORT/VHOST` (TLS only; the login is the client certificate, EXTERNAL).
    pub url: String,
    /// The CA the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// The hub's TLS client certificate (CN `hub`).
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// Deliveries the broker may push before the first is acknowledged.
    pub prefetch: u16,
    /// Publishes awaiting their confirm at once.
    pub max_in_flight: usize,
    /// TCP + TLS + AMQP handshake timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Every other broker wait, milliseconds.
    pub operation_timeout_ms: u64,
    /// AMQP heartbeat, seconds.
    pub heartbeat_s: u16,
    /// First reconnection delay, milliseconds (doubled per failure).
    pub reconnect_min_ms: u64,
    /// Longest reconnection delay, milliseconds.
    pub reconnect_max_ms: u64,
    /// RabbitMQ management API (`http://HOST:PORT`) for queue rates and node connections;
    /// empty: queue depths and consumers from passive queue declarations.
    pub management_url: String,
    /// Management API user (a `monitoring` user).
    pub management_user: String,
    /// Its password (printed as `<redacted>` by `cats config`).
    #[serde(serialize_with = "redacted")]
    pub management_password: String,
    /// Partitions of the inbound queue (`cats.hub.in`, `cats.hub.in.1`, …), fed by the
    /// consistent-hash exchange on the MRN; the same in every hub process on one broker.
    pub partitions: u16,
    /// The partitions this process consumes at once, comma-separated (`"0,2"`); it stands by
    /// on the others after `standby_delay_ms`. Empty: all at once.
    pub preferred_partitions: String,
    /// Delay before standing by on the non-preferred partitions, milliseconds.
    pub standby_delay_ms: u64,
}

/// Serializes a secret as `<redacted>` (empty stays empty, so an unset secret shows as unset).
fn redacted<S: serde::Serializer>(secret: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.is_empty() { "" } else { "<redacted>" })
}

impl Default for RawAmqp {
    fn default() -> Self {
        RawAmqp {
            url: "amqps://localhost:5671/cats".into(),
            ca_file: "ca.pem".into(),
            cert_file: "hub-client.pem".into(),
            key_file: "hub-client.key.pem".into(),
            prefetch: 256,
            max_in_flight: 1024,
            connect_timeout_ms: 10_000,
            operation_timeout_ms: 30_000,
            heartbeat_s: 10,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            management_url: String::new(),
            management_user: String::new(),
            management_password: String::new(),
            partitions: 1,
            preferred_partitions: String::new(),
            standby_delay_ms: 5_000,
        }
    }
}

/// `[operations]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOperations {
    /// How often queue depths, consumers and dead letters are sampled (rates are per second
    /// over the last interval), milliseconds.
    pub sample_interval_ms: u64,
}

impl Default for RawOperations {
    fn default() -> Self {
        RawOperations {
            sample_interval_ms: 5_000,
        }
    }
}

/// `[guarantee]`: the ledger's thresholds and periods (`crate::guarantee::LedgerPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGuarantee {
    /// Percentages of the insured amount whose crossing is notified to the insurer, 1 to 100.
    pub thresholds_percent: Vec<u32>,
    /// Days after a reservation by which the movement must be discharged, at least 1.
    pub transit_days: u32,
    /// Days an enquiry stays open before it becomes a liability, at least 1.
    pub liability_after_days: u32,
    /// How often the enquiry sweep runs, seconds, at least 1.
    pub sweep_interval_seconds: u64,
}

impl Default for RawGuarantee {
    fn default() -> Self {
        RawGuarantee {
            thresholds_percent: vec![80, 100],
            transit_days: 8,
            liability_after_days: 28,
            sweep_interval_seconds: 60,
        }
    }
}

/// `[certs]`: file names, relative to `dir` unless absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCerts {
    /// Directory of the PKI (`cats certs init` writes `certs/dev`).
    pub dir: PathBuf,
    /// The CATS CA.
    pub ca: PathBuf,
    /// The allow-list of certificate fingerprints; empty for none.
    pub allow_list: PathBuf,
    /// The hub's TLS server certificate.
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// The hub's message-signing certificate (for NACKs).
    pub signer_cert: PathBuf,
    /// Its key.
    pub signer_key: PathBuf,
}

impl Default for RawCerts {
    fn default() -> Self {
        RawCerts {
            dir: "certs/dev".into(),
            ca: "ca.pem".into(),
            allow_list: "fingerprints.json".into(),
            server_cert: "hub-server.pem".into(),
            server_key: "hub-server.key.pem".into(),
            signer_cert: "signer-hub.pem".into(),
            signer_key: "signer-hub.key.pem".into(),
        }
    }
}

/// `[messages]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMessages {
    /// Accepted distance between an envelope's preparation time and now, either way.
    pub freshness_seconds: u64,
    /// Largest accepted message body.
    pub max_bytes: usize,
    /// Reference data JSON file (shape of `message-catalog/src/reference/pilot.json`); empty
    /// for the embedded pilot set.
    pub reference_data: PathBuf,
    /// Deliveries processed as one batch (checks side by side, one journal transaction; each
    /// movement's messages in order); 1: one at a time.
    pub lanes: usize,
}

impl Default for RawMessages {
    fn default() -> Self {
        RawMessages {
            freshness_seconds: 300,
            max_bytes: Limits::default().max_bytes,
            reference_data: PathBuf::new(),
            lanes: 64,
        }
    }
}

/// The configuration as written (stage 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[store]`.
    pub store: RawStore,
    /// `[http]`.
    pub http: RawHttp,
    /// `[transport]`.
    pub transport: RawTransport,
    /// `[certs]`.
    pub certs: RawCerts,
    /// `[messages]`.
    pub messages: RawMessages,
    /// `[operations]`.
    pub operations: RawOperations,
    /// `[guarantee]`.
    pub guarantee: RawGuarantee,
}

/// The configuration with everything loaded (stage 2).
#[derive(Debug)]
pub struct ResolvedConfig {
    /// Store URL.
    pub store_url: String,
    /// HTTP API address.
    pub http_listen: SocketAddr,
    /// The transport and its material.
    pub transport: ResolvedTransport,
    /// Trust store for envelopes.
    pub trust: TrustStore,
    /// The hub's signer.
    pub signer: Signer,
    /// Freshness window.
    pub freshness: Duration,
    /// Decoder limits.
    pub limits: Limits,
    /// Reference data.
    pub reference: ReferenceData,
    /// How often the operations sampler runs.
    pub sample_interval: Duration,
    /// Deliveries processed at once (`[messages] lanes`).
    pub lanes: usize,
    /// The guarantee ledger's thresholds and periods.
    pub ledger: crate::guarantee::LedgerPolicy,
    /// How often the enquiry sweep runs.
    pub sweep_interval: Duration,
}

/// The hub's transport, resolved.
#[derive(Debug)]
pub enum ResolvedTransport {
    /// The direct mutual-TLS link.
    Direct {
        /// Where nodes connect.
        listen: SocketAddr,
        /// The link's TLS material.
        tls: HubTls,
    },
    /// RabbitMQ.
    Amqp {
        /// The hub's link (certificates loaded).
        config: Box<AmqpConfig>,
        /// The management API, when configured.
        management: Option<ManagementApi>,
    },
}

/// The configuration could not be read or resolved, or the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The file or environment could not be read, or has unknown keys.
    #[error("config.read: {0}")]
    Read(String),
    /// A value is invalid (address, transport kind).
    #[error("config.invalid: {0}")]
    Invalid(String),
    /// A certificate or key could not be loaded.
    #[error("config.certs: {0}")]
    Certs(String),
    /// The hub store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The transport failed to start.
    #[error("hub.transport: {0}")]
    Transport(String),
    /// The HTTP listener failed.
    #[error("hub.http: {0}")]
    Http(#[from] std::io::Error),
}

impl HubError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            HubError::Read(_) => "config.read",
            HubError::Invalid(_) => "config.invalid",
            HubError::Certs(_) => "config.certs",
            HubError::Store(e) => e.code(),
            HubError::Transport(_) => "hub.transport",
            HubError::Http(_) => "hub.http",
        }
    }
}

impl RawConfig {
    /// Reads `file` (TOML, optional) and the `CATS_HUB__…` environment over the defaults.
    pub fn load(file: Option<&Path>) -> Result<RawConfig, HubError> {
        RawConfig::load_with_env(file, None)
    }

    /// [`RawConfig::load`] with the environment given as a map instead of the process's
    /// (`None`: the process environment).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<RawConfig, HubError> {
        let mut b = config::Config::builder();
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix("CATS_HUB")
                .prefix_separator("__")
                .separator("__")
                .source(env),
        );
        b.build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| HubError::Read(e.to_string()))
    }

    /// Loads certificates, parses addresses, reads reference data.
    pub fn resolve(self) -> Result<ResolvedConfig, HubError> {
        let addr = |name: &str, v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|e| HubError::Invalid(format!("{name} {v:?}: {e}")))
        };
        let c = &self.certs;
        let path = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                c.dir.join(p)
            }
        };
        let allow_list = (!c.allow_list.as_os_str().is_empty()).then(|| path(&c.allow_list));
        let transport = match self.transport.kind.as_str() {
            "direct" => ResolvedTransport::Direct {
                listen: addr("transport.listen", &self.transport.listen)?,
                tls: HubTls::from_files(
                    &path(&c.ca),
                    allow_list.as_deref(),
                    &path(&c.server_cert),
                    &path(&c.server_key),
                )
                .map_err(|e| HubError::Certs(e.to_string()))?,
            },
            "amqp" => resolve_amqp(&self.transport.amqp, &path)?,
            other => {
                return Err(HubError::Invalid(format!(
                    "transport.kind {other:?}: expected \"direct\" or \"amqp\""
                )));
            }
        };
        let trust = TrustStore::load(&path(&c.ca), allow_list.as_deref())
            .map_err(|e| HubError::Certs(e.to_string()))?;
        let signer = Signer::load(&path(&c.signer_cert), &path(&c.signer_key))
            .map_err(|e| HubError::Certs(e.to_string()))?;
        let reference = if self.messages.reference_data.as_os_str().is_empty() {
            ReferenceData::pilot()
        } else {
            let bytes = std::fs::read(&self.messages.reference_data).map_err(|e| {
                HubError::Invalid(format!("{}: {e}", self.messages.reference_data.display()))
            })?;
            ReferenceData::from_json(&bytes).map_err(|e| HubError::Invalid(e.to_string()))?
        };
        if !(1..=256).contains(&self.messages.lanes) {
            return Err(HubError::Invalid(format!(
                "messages.lanes {}: must be from 1 to 256",
                self.messages.lanes
            )));
        }
        if self.operations.sample_interval_ms < 100 {
            return Err(HubError::Invalid(format!(
                "operations.sample_interval_ms {}: must be at least 100",
                self.operations.sample_interval_ms
            )));
        }
        let g = &self.guarantee;
        if let Some(t) = g
            .thresholds_percent
            .iter()
            .find(|t| !(1..=100).contains(*t))
        {
            return Err(HubError::Invalid(format!(
                "guarantee.thresholds_percent {t}: each from 1 to 100"
            )));
        }
        for (key, v) in [
            ("transit_days", u64::from(g.transit_days)),
            ("liability_after_days", u64::from(g.liability_after_days)),
            ("sweep_interval_seconds", g.sweep_interval_seconds),
        ] {
            if v < 1 {
                return Err(HubError::Invalid(format!(
                    "guarantee.{key} {v}: must be at least 1"
                )));
            }
        }
        let ledger = crate::guarantee::LedgerPolicy {
            thresholds: g
                .thresholds_percent
                .iter()
                .map(|t| rust_decimal::Decimal::from(*t))
                .collect(),
            transit_days: i64::from(g.transit_days),
            liability_after_days: i64::from(g.liability_after_days),
        };
        let sweep_interval = Duration::from_secs(g.sweep_interval_seconds);
        Ok(ResolvedConfig {
            store_url: self.store.url,
            http_listen: addr("http.listen", &self.http.listen)?,
            transport,
            trust,
            signer,
            freshness: Duration::from_secs(self.messages.freshness_seconds),
            limits: Limits {
                max_bytes: self.messages.max_bytes,
                ..Limits::default()
            },
            reference,
            sample_interval: Duration::from_millis(self.operations.sample_interval_ms),
            lanes: self.messages.lanes,
            ledger,
            sweep_interval,
        })
    }
}

/// `amqps://HOST[:PORT][/VHOST]` → host, port (default 5671), vhost (percent-decoded; `/`
/// when absent, as the AMQP URI specification says).
fn parse_amqp_url(url: &str) -> Result<(String, u16, String), HubError> {
    let bad = |why: &str| HubError::Invalid(format!("transport.amqp.url {url:?}: {why}"));
    let rest = match url.split_once("://") {
        Some(("amqps", rest)) => rest,
        Some(("amqp", _)) => {
            return Err(bad(
                "plain amqp is not accepted: the hub logs in with its client certificate over amqps",
            ));
        }
        _ => return Err(bad("expected amqps://HOST:PORT/VHOST")),
    };
    let (authority, vhost) = match rest.split_once('/') {
        Some((a, v)) => (a, v),
        None => (rest, ""),
    };
    if authority.contains('@') || vhost.contains('?') {
        return Err(bad(
            "no user, password or query: the login is the client certificate (EXTERNAL)",
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))?,
        ),
        None => (authority, 5671),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let vhost = if vhost.is_empty() {
        "/".to_owned()
    } else {
        percent_decode(vhost).ok_or_else(|| bad("bad percent-encoding in the vhost"))?
    };
    Ok((host.to_owned(), port, vhost))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `"0,2"` → `[0, 2]`; empty → `[]`.
fn parse_partitions(list: &str) -> Result<Vec<u16>, HubError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u16>().map_err(|_| {
                HubError::Invalid(format!(
                    "transport.amqp.preferred_partitions {list:?}: {p:?} is not a partition number"
                ))
            })
        })
        .collect()
}

fn resolve_amqp(
    raw: &RawAmqp,
    path: &dyn Fn(&Path) -> PathBuf,
) -> Result<ResolvedTransport, HubError> {
    let (host, port, vhost) = parse_amqp_url(&raw.url)?;
    let raw_link = RawAmqpConfig {
        host,
        port,
        vhost,
        ca_file: path(&raw.ca_file),
        cert_file: path(&raw.cert_file),
        key_file: path(&raw.key_file),
        prefetch: raw.prefetch,
        max_in_flight: raw.max_in_flight,
        connect_timeout_ms: raw.connect_timeout_ms,
        operation_timeout_ms: raw.operation_timeout_ms,
        heartbeat_s: raw.heartbeat_s,
        reconnect_min_ms: raw.reconnect_min_ms,
        reconnect_max_ms: raw.reconnect_max_ms,
        partitions: raw.partitions,
        preferred_partitions: parse_partitions(&raw.preferred_partitions)?,
        standby_delay_ms: raw.standby_delay_ms,
    };
    let config = AmqpConfig::resolve(&raw_link).map_err(|e| match e {
        ConfigError::Value { key, problem } => {
            HubError::Invalid(format!("transport.amqp.{key}: {problem}"))
        }
        other => HubError::Certs(other.to_string()),
    })?;
    let management = if raw.management_url.is_empty() {
        None
    } else {
        Some(
            ManagementApi::new(
                &raw.management_url,
                &raw.management_user,
                &raw.management_password,
            )
            .map_err(|e| HubError::Invalid(format!("transport.amqp.management_url: {e}")))?,
        )
    };
    Ok(ResolvedTransport::Amqp {
        config: Box::new(config),
        management,
    })
}

/// A started hub.
#[derive(Debug)]
pub struct RunningHub {
    /// Where the direct link listens; `None` on AMQP, where there is no direct link.
    pub direct_addr: Option<SocketAddr>,
    /// `direct` or `amqp`.
    pub transport: &'static str,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The pipeline's services (store, metrics).
    pub services: Arc<HubServices>,
    /// Queues, nodes, dead letters.
    pub operations: Arc<Operations>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningHub {
    /// Waits until the hub has stopped (after the shutdown signal).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// The consumer queues whose dead letters the hub collects on AMQP: its own and every node's.
fn amqp_queues(countries: &[CountryCode]) -> Vec<String> {
    std::iter::once(crate::dead_letters::HUB_INBOUND.to_owned())
        .chain(
            countries
                .iter()
                .map(|c| crate::dead_letters::node_queue(*c)),
        )
        .collect()
}

/// Starts the transport (binds the direct link, or connects to the broker) and the HTTP API,
/// and runs the pipeline, the queue sampler and (AMQP) the dead-letter collector; everything
/// stops when `shutdown` fires.
pub async fn start(config: ResolvedConfig, shutdown: Shutdown) -> Result<RunningHub, HubError> {
    let transport_store = match &config.transport {
        ResolvedTransport::Direct { .. } => Some(
            cats_transport::store::Store::connect(&config.store_url)
                .await
                .map_err(|e| HubError::Transport(e.to_string()))?,
        ),
        ResolvedTransport::Amqp { .. } => None,
    };
    let store = HubStore::connect(&config.store_url).await?;
    let reference = crate::refdata::open(&store, &config.reference)
        .await
        .map_err(|e| HubError::Invalid(format!("reference data: {e}")))?;
    crate::guarantee::register(&store, &reference).await?;
    let metrics = Arc::new(Metrics::new());
    let countries: Vec<CountryCode> = config.reference.countries().map(|c| c.code).collect();
    let services = Arc::new(HubServices {
        store: store.clone(),
        verifier: Verifier::new(config.trust, config.freshness),
        signer: config.signer,
        reference: config.reference,
        ledger: config.ledger,
        metrics: metrics.clone(),
        limits: config.limits,
    });
    let listener = tokio::net::TcpListener::bind(config.http_listen).await?;
    let http_addr = listener.local_addr()?;
    let mut background = Vec::new();
    let lanes = config.lanes;
    let (direct_addr, transport, replay): (_, _, Arc<dyn Replay>) = match config.transport {
        ResolvedTransport::Direct { listen, tls } => {
            let transport_store = transport_store
                .ok_or_else(|| HubError::Transport("the direct link's store is not open".into()))?;
            let direct = Arc::new(
                DirectHub::bind(listen, tls, transport_store, LinkConfig::default())
                    .await
                    .map_err(|e| HubError::Transport(e.to_string()))?,
            );
            let pipeline = Arc::new(Pipeline::new(direct.clone(), services.clone()));
            let (p, d, stop) = (pipeline.clone(), direct.clone(), shutdown.clone());
            background.push(tokio::spawn(async move {
                p.run_lanes(lanes, stop).await;
                d.shutdown().await;
            }));
            (
                Some(direct.local_addr()),
                HubTransport::Direct {
                    hub: direct.clone(),
                },
                Arc::new(PipelineReplay::new(pipeline, direct)) as Arc<dyn Replay>,
            )
        }
        ResolvedTransport::Amqp { config, management } => {
            let link = Arc::new(
                AmqpTransport::hub((*config).clone())
                    .await
                    .map_err(|e| HubError::Transport(format!("{}: {e}", e.code())))?,
            );
            let pipeline = Arc::new(Pipeline::new(link.clone(), services.clone()));
            let (p, l, stop) = (pipeline.clone(), link.clone(), shutdown.clone());
            background.push(tokio::spawn(async move {
                p.run_lanes(lanes, stop).await;
                l.close().await;
            }));
            background.push(tokio::spawn(crate::dead_letters::drain_amqp(
                (*config).clone(),
                store.clone(),
                amqp_queues(&countries),
                shutdown.clone(),
            )));
            (
                None,
                HubTransport::Amqp {
                    link: link.clone(),
                    config,
                    management,
                },
                Arc::new(PipelineReplay::new(pipeline, link)) as Arc<dyn Replay>,
            )
        }
    };
    background.push(tokio::spawn(crate::refdata::run_dispatcher(
        store.clone(),
        replay.clone(),
        shutdown.clone(),
    )));
    let from_transport_table = matches!(transport, HubTransport::Direct { .. });
    let kind = transport.kind();
    let operations = Arc::new(Operations::new(
        store.clone(),
        metrics.clone(),
        transport,
        DeadLetters::new(store.clone(), from_transport_table, replay),
        countries,
        config.sample_interval,
    ));
    {
        let (o, stop) = (operations.clone(), shutdown.clone());
        background.push(tokio::spawn(async move { o.run(stop).await }));
    }
    {
        let (store, policy, stop) = (store.clone(), services.ledger.clone(), shutdown.clone());
        background.push(tokio::spawn(crate::insurer::run_sweeps(
            store,
            policy,
            config.sweep_interval,
            stop,
        )));
    }
    let insurer_api = crate::insurer::InsurerApi {
        store: store.clone(),
        reference: Arc::new(services.reference.clone()),
        answer: Some((services.clone(), operations.clone())),
    };
    let guard_store = store.clone();
    let app = router(ApiState {
        store,
        metrics,
        operations: operations.clone(),
    })
    .merge(crate::refdata::routes(services.clone()))
    .merge(crate::insurer::routes(insurer_api))
    .merge(crate::access::routes(guard_store.clone()))
    .layer(axum::middleware::from_fn_with_state(
        guard_store,
        crate::access::guard,
    ));
    let mut http_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_shutdown.wait().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "HTTP server stopped");
        }
        for task in background {
            let _ = task.await;
        }
    });
    tracing::info!(transport = kind, direct_addr = ?direct_addr, %http_addr, "hub started");
    Ok(RunningHub {
        direct_addr,
        transport: kind,
        http_addr,
        services,
        operations,
        task,
    })
}

/// Runs the hub until `shutdown` fires (`cats hub --config FILE`).
pub async fn run(config: ResolvedConfig, shutdown: Shutdown) -> Result<(), HubError> {
    start(config, shutdown).await?.stopped().await;
    Ok(())
}

/// Walks the journal at `database_url` (`cats hub verify-journal`).
pub async fn verify_journal(database_url: &str) -> Result<VerifiedChain, VerifyError> {
    let store = HubStore::connect(database_url).await?;
    let verdict = journal::verify(&store).await;
    store.close().await;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let text = include_str!("../../deploy/hub.example.toml");
        let raw: RawConfig = toml_like(text);
        assert_eq!(raw, RawConfig::default());
    }

    fn toml_like(text: &str) -> RawConfig {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("example parses")
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r = config::Config::builder()
            .add_source(config::File::from_str(
                "[store]\nurl = \"sqlite://x.db\"\nspeed = 3\n",
                config::FileFormat::Toml,
            ))
            .build()
            .and_then(|c| c.try_deserialize::<RawConfig>());
        assert!(r.is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hub.toml");
        std::fs::write(
            &file,
            "[store]\nurl = \"sqlite://from-file.db\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        )
        .expect("write");
        let env = std::collections::HashMap::from([(
            "CATS_HUB__STORE__URL".to_owned(),
            "postgres://cats@db/cats".to_owned(),
        )]);
        let raw = RawConfig::load_with_env(Some(&file), Some(env)).expect("loads");
        assert_eq!(raw.store.url, "postgres://cats@db/cats");
        assert_eq!(raw.http.listen, "127.0.0.1:1");
        assert_eq!(raw.transport, RawTransport::default());
        let bad = std::collections::HashMap::from([(
            "CATS_HUB__STORE__SPEED".to_owned(),
            "3".to_owned(),
        )]);
        assert!(RawConfig::load_with_env(None, Some(bad)).is_err());
    }

    #[test]
    fn amqp_urls() {
        assert_eq!(
            parse_amqp_url("amqps://broker.cats:5671/cats").expect("parses"),
            ("broker.cats".into(), 5671, "cats".into())
        );
        assert_eq!(
            parse_amqp_url("amqps://localhost").expect("parses"),
            ("localhost".into(), 5671, "/".into())
        );
        assert_eq!(
            parse_amqp_url("amqps://h:26710/%2F").expect("parses").2,
            "/"
        );
        for bad in [
            "amqp://h/cats",
            "amqps://u:p@h/cats",
            "amqps://h:x/cats",
            "amqps:///cats",
            "amqps://h/cats?heartbeat=1",
            "amqps://h/%zz",
            "h:5671",
        ] {
            assert!(
                matches!(parse_amqp_url(bad), Err(HubError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn amqp_config_resolves_and_refuses_bad_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files =
            cats_trust::pki::DevPki::init(&dir.path().join("pki"), &[CountryCode::KZ], false)
                .expect("dev PKI");
        let mut raw = RawConfig::default();
        raw.certs.dir = files.dir.clone();
        raw.transport.kind = "amqp".into();
        raw.transport.amqp.url = "amqps://localhost:26710/cats".into();
        let resolved = raw.clone().resolve().expect("resolves");
        match resolved.transport {
            ResolvedTransport::Amqp { config, management } => {
                assert_eq!((config.port, config.vhost.as_str()), (26710, "cats"));
                assert!(management.is_none());
            }
            other => panic!("expected AMQP, got {other:?}"),
        }
        let mut zero = raw.clone();
        zero.transport.amqp.prefetch = 0;
        assert!(matches!(zero.resolve(), Err(HubError::Invalid(m)) if m.contains("prefetch")));
        let mut no_user = raw.clone();
        no_user.transport.amqp.management_url = "http://127.0.0.1:15672".into();
        assert!(matches!(no_user.resolve(), Err(HubError::Invalid(_))));
        let mut missing = raw.clone();
        missing.transport.amqp.cert_file = "nowhere.pem".into();
        assert!(matches!(missing.resolve(), Err(HubError::Certs(_))));
        let mut partitions = raw.clone();
        partitions.transport.amqp.partitions = 4;
        partitions.transport.amqp.preferred_partitions = " 1, 3".into();
        match partitions.clone().resolve().expect("resolves").transport {
            ResolvedTransport::Amqp { config, .. } => {
                assert_eq!(config.partitions, 4);
                assert_eq!(config.preferred_partitions, vec![1, 3]);
            }
            other => panic!("expected AMQP, got {other:?}"),
        }
        partitions.transport.amqp.preferred_partitions = "1,x".into();
        assert!(
            matches!(partitions.clone().resolve(), Err(HubError::Invalid(m)) if m.contains("preferred_partitions"))
        );
        partitions.transport.amqp.preferred_partitions = "4".into();
        assert!(
            matches!(partitions.clone().resolve(), Err(HubError::Invalid(m)) if m.contains("preferred_partitions"))
        );
        partitions.transport.amqp.preferred_partitions = String::new();
        partitions.transport.amqp.partitions = 0;
        assert!(
            matches!(partitions.resolve(), Err(HubError::Invalid(m)) if m.contains("partitions"))
        );
        let mut kind = raw;
        kind.transport.kind = "carrier-pigeon".into();
        assert!(matches!(kind.resolve(), Err(HubError::Invalid(_))));
    }

    #[test]
    fn secrets_are_not_printed() {
        let mut raw = RawConfig::default();
        raw.transport.amqp.management_password = "s3cret".into();
        let text = serde_json::to_string(&raw).expect("serializes");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(HubError::Read("x".into()).code(), "config.read");
        assert_eq!(HubError::Invalid("x".into()).code(), "config.invalid");
        assert_eq!(HubError::Certs("x".into()).code(), "config.certs");
    }
}
