//! Configuration in two stages, and the entry points of `cats node`.
//!
//! 1. [`RawConfig`]: the TOML file, overridden by environment variables
//!    `CATS_NODE__<SECTION>__<KEY>` (e.g. `CATS_NODE__STORE__URL`), unknown keys refused. Every
//!    key and its default is documented in `deploy/node.example.toml`.
//! 2. [`ResolvedConfig`]: certificates and keys loaded, addresses parsed, tokens decoded,
//!    selection rules checked, reference data read.
//!
//! [`start`] connects the store and the transport, starts the outbox relay, the inbound
//! pipeline, the webhook and the HTTP API, and returns a [`RunningNode`] with the bound API
//! address; [`run`] waits for the shutdown signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cats_transport::contract::{Delivery, Outbound, Transport, TransportError};
use cats_transport::direct::{DirectNode, LinkConfig, NodeTls};
use cats_transport::shutdown::Shutdown;
use cats_transport::store::{Outbox, RelayConfig, Store};
use cats_transport_amqp::{AmqpConfig, AmqpTransport, TlsIdentity};
use cats_trust::{PeerIdentity, Signer, TrustStore, Verifier};
use message_catalog::codec::Limits;
use message_catalog::ids::CountryCode;
use message_catalog::reference::ReferenceData;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::engine::{DeparturePolicy, Engine};
use crate::http::{ApiState, TlsListener, Token, TokenRole, router};
use crate::metrics::Metrics;
use crate::selection::{SelectionConfig, Selector};
use crate::webhook::Webhook;

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNode {
    /// The country this node serves (ISO 3166-1 alpha-2).
    pub country: String,
    /// Seconds between reconciliations with the hub (the first one this long after start: a
    /// starting node resumes as its link comes up); 0: only on demand.
    pub reconcile_interval_secs: u64,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            country: "KZ".into(),
            reconcile_interval_secs: 300,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `sqlite://…` or `postgres://…`; the node's tables and the transport's share it.
    pub url: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            url: "sqlite://cats-node.db".into(),
        }
    }
}

/// One `[[http.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Who (recorded with officer actions).
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// `national-system` or `officer`.
    pub role: String,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// Address of the national API.
    pub listen: String,
    /// Serve HTTPS (the certificate below); `false` serves plain HTTP.
    pub tls: bool,
    /// Server certificate (relative to `certs.dir`); empty: `node-api-<cc>.pem`.
    pub cert: PathBuf,
    /// Its key; empty: `node-api-<cc>.key.pem`.
    pub key: PathBuf,
    /// CA whose client certificates are required (mutual TLS); empty: none required.
    pub client_ca: PathBuf,
    /// Largest message body accepted (413 above).
    pub max_bytes: usize,
    /// Bearer tokens.
    pub tokens: Vec<RawToken>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8443".into(),
            tls: true,
            cert: PathBuf::new(),
            key: PathBuf::new(),
            client_ca: PathBuf::new(),
            max_bytes: Limits::default().max_bytes,
            tokens: Vec::new(),
        }
    }
}

/// `[transport.amqp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAmqp {
    /// Broker host (and the name its certificate carries).
    pub host: String,
    /// Broker AMQPS port.
    pub port: u16,
    /// Virtual host.
    pub vhost: String,
}

impl Default for RawAmqp {
    fn default() -> Self {
        RawAmqp {
            host: "localhost".into(),
            port: 5671,
            vhost: "cats".into(),
        }
    }
}

/// `[transport]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTransport {
    /// `direct` (the mTLS link to the hub) or `amqp`.
    pub kind: String,
    /// The hub's direct link address.
    pub hub: String,
    /// The name the hub's certificate must carry.
    pub server_name: String,
    /// The broker, for `kind = "amqp"`.
    pub amqp: RawAmqp,
}

impl Default for RawTransport {
    fn default() -> Self {
        RawTransport {
            kind: "direct".into(),
            hub: "127.0.0.1:7443".into(),
            server_name: "hub.cats.internal".into(),
            amqp: RawAmqp::default(),
        }
    }
}

/// `[certs]`: file names relative to `dir` unless absolute; empty names follow the country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCerts {
    /// Directory of the PKI (`cats certs init` writes `certs/dev`).
    pub dir: PathBuf,
    /// The CATS CA.
    pub ca: PathBuf,
    /// The allow-list of fingerprints; empty for none.
    pub allow_list: PathBuf,
    /// The node's TLS certificate for the hub link; empty: `node-<cc>.pem`.
    pub node_cert: PathBuf,
    /// Its key; empty: `node-<cc>.key.pem`.
    pub node_key: PathBuf,
    /// The message-signing certificate; empty: `signer-<cc>.pem`.
    pub signer_cert: PathBuf,
    /// Its key; empty: `signer-<cc>.key.pem`.
    pub signer_key: PathBuf,
}

impl Default for RawCerts {
    fn default() -> Self {
        RawCerts {
            dir: "certs/dev".into(),
            ca: "ca.pem".into(),
            allow_list: "fingerprints.json".into(),
            node_cert: PathBuf::new(),
            node_key: PathBuf::new(),
            signer_cert: PathBuf::new(),
            signer_key: PathBuf::new(),
        }
    }
}

/// `[messages]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMessages {
    /// Largest message the decoder accepts.
    pub max_bytes: usize,
    /// Reference data JSON file; empty for the embedded pilot set.
    pub reference_data: PathBuf,
}

impl Default for RawMessages {
    fn default() -> Self {
        RawMessages {
            max_bytes: Limits::default().max_bytes,
            reference_data: PathBuf::new(),
        }
    }
}

/// `[departure]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDeparture {
    /// An officer accepts declarations instead of the system.
    pub manual_acceptance: bool,
    /// HS code prefixes of goods refused at acceptance.
    pub prohibited_hs_prefixes: Vec<String>,
}

/// `[national.webhook]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhook {
    /// Where to POST; empty: no webhook.
    pub url: String,
    /// HMAC-SHA256 secret.
    pub secret: String,
}

/// `[national]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNational {
    /// The webhook.
    pub webhook: RawWebhook,
}

/// The configuration as written (stage 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[node]`.
    pub node: RawNode,
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
    /// `[departure]`.
    pub departure: RawDeparture,
    /// `[selection]`.
    pub selection: SelectionConfig,
    /// `[national]`.
    pub national: RawNational,
}

/// The transport, resolved.
#[derive(Debug)]
pub enum TransportConfig {
    /// The direct mTLS link.
    Direct {
        /// The hub's address.
        hub: String,
        /// TLS material.
        tls: NodeTls,
    },
    /// AMQP.
    Amqp(AmqpConfig),
}

/// The HTTP server's TLS.
pub struct HttpTls {
    /// Certificate chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// Key.
    pub key: PrivateKeyDer<'static>,
    /// Client CA (mutual TLS).
    pub client_ca: Option<Vec<CertificateDer<'static>>>,
}

impl std::fmt::Debug for HttpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTls")
            .field("chain", &self.chain.len())
            .field("mutual", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

/// The configuration with everything loaded (stage 2).
#[derive(Debug)]
pub struct ResolvedConfig {
    /// The country.
    pub country: CountryCode,
    /// Store URL.
    pub store_url: String,
    /// API address.
    pub http_listen: SocketAddr,
    /// API TLS (`None`: plain HTTP).
    pub http_tls: Option<HttpTls>,
    /// Largest API body.
    pub http_max_bytes: usize,
    /// Tokens.
    pub tokens: Vec<Token>,
    /// The transport.
    pub transport: TransportConfig,
    /// Trust store for envelopes.
    pub trust: TrustStore,
    /// The CA certificates (webhook over HTTPS).
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// The node's signer.
    pub signer: Signer,
    /// Decoder limits.
    pub limits: Limits,
    /// Reference data.
    pub reference: ReferenceData,
    /// Departure policy.
    pub departure: DeparturePolicy,
    /// Selection rules.
    pub selector: Selector,
    /// Webhook.
    pub webhook: Option<Webhook>,
    /// Time between reconciliations with the hub (`None`: only on demand).
    pub reconcile_interval: Option<Duration>,
}

/// The configuration could not be read or resolved, or the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The file or environment could not be read, or has unknown keys.
    #[error("config.read: {0}")]
    Read(String),
    /// A value is invalid.
    #[error("config.invalid: {0}")]
    Invalid(String),
    /// A certificate or key could not be loaded.
    #[error("config.certs: {0}")]
    Certs(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The transport failed to start.
    #[error("node.transport: {0}")]
    Transport(String),
    /// The HTTP listener failed.
    #[error("node.http: {0}")]
    Http(#[from] std::io::Error),
}

impl NodeError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Read(_) => "config.read",
            NodeError::Invalid(_) => "config.invalid",
            NodeError::Certs(_) => "config.certs",
            NodeError::Store(e) => e.code(),
            NodeError::Transport(_) => "node.transport",
            NodeError::Http(_) => "node.http",
        }
    }
}

impl RawConfig {
    /// Reads `file` (TOML, optional) and the `CATS_NODE__…` environment over the defaults.
    pub fn load(file: Option<&Path>) -> Result<RawConfig, NodeError> {
        RawConfig::load_with_env(file, None)
    }

    /// [`RawConfig::load`] with the environment given as a map (`None`: the process's).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<RawConfig, NodeError> {
        let mut b = config::Config::builder();
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix("CATS_NODE")
                .prefix_separator("__")
                .separator("__")
                .source(env),
        );
        b.build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| NodeError::Read(e.to_string()))
    }

    /// Loads certificates, parses addresses and tokens, checks the rules.
    pub fn resolve(self) -> Result<ResolvedConfig, NodeError> {
        let invalid = NodeError::Invalid;
        let country = CountryCode::parse(&self.node.country)
            .map_err(|e| invalid(format!("node.country: {e}")))?;
        let cc = country.as_str().to_ascii_lowercase();
        let c = &self.certs;
        let path = |p: &Path, default: String| {
            let p = if p.as_os_str().is_empty() {
                PathBuf::from(default)
            } else {
                p.to_owned()
            };
            if p.is_absolute() { p } else { c.dir.join(p) }
        };
        let certs_err = |e: &dyn std::fmt::Display| NodeError::Certs(e.to_string());
        let ca = path(&c.ca, "ca.pem".into());
        let allow_list =
            (!c.allow_list.as_os_str().is_empty()).then(|| path(&c.allow_list, String::new()));
        let trust = TrustStore::load(&ca, allow_list.as_deref()).map_err(|e| certs_err(&e))?;
        let ca_certs = cats_trust::load_certs(&ca).map_err(|e| certs_err(&e))?;
        let signer = Signer::load(
            &path(&c.signer_cert, format!("signer-{cc}.pem")),
            &path(&c.signer_key, format!("signer-{cc}.key.pem")),
        )
        .map_err(|e| certs_err(&e))?;
        let node_cert = path(&c.node_cert, format!("node-{cc}.pem"));
        let node_key = path(&c.node_key, format!("node-{cc}.key.pem"));
        let transport = match self.transport.kind.as_str() {
            "direct" => {
                let mut tls =
                    NodeTls::from_files(&ca, &node_cert, &node_key).map_err(|e| certs_err(&e))?;
                tls.server_name = self.transport.server_name.clone();
                TransportConfig::Direct {
                    hub: self.transport.hub.clone(),
                    tls,
                }
            }
            "amqp" => {
                let a = &self.transport.amqp;
                let identity = TlsIdentity::from_files(&ca, &node_cert, &node_key)
                    .map_err(|e| certs_err(&e))?;
                let mut config = AmqpConfig::new(a.host.clone(), a.port, identity);
                config.vhost = a.vhost.clone();
                TransportConfig::Amqp(config)
            }
            other => {
                return Err(invalid(format!(
                    "transport.kind {other:?}: expected \"direct\" or \"amqp\""
                )));
            }
        };
        let http_tls = if self.http.tls {
            let chain =
                cats_trust::load_certs(&path(&self.http.cert, format!("node-api-{cc}.pem")))
                    .map_err(|e| certs_err(&e))?;
            let key = cats_trust::load_private_key(&path(
                &self.http.key,
                format!("node-api-{cc}.key.pem"),
            ))
            .map_err(|e| certs_err(&e))?;
            let client_ca = if self.http.client_ca.as_os_str().is_empty() {
                None
            } else {
                Some(
                    cats_trust::load_certs(&path(&self.http.client_ca, String::new()))
                        .map_err(|e| certs_err(&e))?,
                )
            };
            Some(HttpTls {
                chain,
                key,
                client_ca,
            })
        } else {
            None
        };
        let mut tokens = Vec::new();
        for t in &self.http.tokens {
            let bytes = hex::decode(t.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "http.tokens {:?}: sha256 must be 64 hex digits",
                        t.name
                    ))
                })?;
            let role = match t.role.as_str() {
                "national-system" => TokenRole::NationalSystem,
                "officer" => TokenRole::Officer,
                other => {
                    return Err(invalid(format!(
                        "http.tokens {:?}: role {other:?}: expected national-system or officer",
                        t.name
                    )));
                }
            };
            tokens.push(Token {
                name: t.name.clone(),
                sha256: bytes,
                role,
            });
        }
        let reference = if self.messages.reference_data.as_os_str().is_empty() {
            ReferenceData::pilot()
        } else {
            let bytes = std::fs::read(&self.messages.reference_data)
                .map_err(|e| invalid(format!("{}: {e}", self.messages.reference_data.display())))?;
            ReferenceData::from_json(&bytes).map_err(|e| invalid(e.to_string()))?
        };
        let selector = Selector::new(self.selection).map_err(|e| invalid(e.to_string()))?;
        let webhook = if self.national.webhook.url.is_empty() {
            None
        } else {
            Some(
                Webhook::new(
                    &self.national.webhook.url,
                    &self.national.webhook.secret,
                    &ca_certs,
                )
                .map_err(|e| invalid(e.to_string()))?,
            )
        };
        Ok(ResolvedConfig {
            country,
            reconcile_interval: (self.node.reconcile_interval_secs > 0)
                .then(|| Duration::from_secs(self.node.reconcile_interval_secs)),
            store_url: self.store.url,
            http_listen: self
                .http
                .listen
                .parse()
                .map_err(|e| invalid(format!("http.listen {:?}: {e}", self.http.listen)))?,
            http_tls,
            http_max_bytes: self.http.max_bytes,
            tokens,
            transport,
            trust,
            ca_certs,
            signer,
            limits: Limits {
                max_bytes: self.messages.max_bytes,
                ..Limits::default()
            },
            reference,
            departure: DeparturePolicy {
                manual_acceptance: self.departure.manual_acceptance,
                prohibited_hs_prefixes: self.departure.prohibited_hs_prefixes,
            },
            selector,
            webhook,
        })
    }
}

/// The link to the hub, whichever transport it is.
#[derive(Debug)]
pub enum Link {
    /// Direct mTLS.
    Direct(DirectNode),
    /// AMQP.
    Amqp(AmqpTransport),
}

impl Link {
    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        match self {
            Link::Direct(d) => d.is_connected(),
            Link::Amqp(a) => a.is_connected(),
        }
    }

    /// How many times the link has come up (first connection and reconnections).
    pub fn connections(&self) -> u64 {
        match self {
            Link::Direct(d) => d.connections(),
            Link::Amqp(a) => a.links_opened(),
        }
    }

    async fn close(&self) {
        match self {
            Link::Direct(d) => d.shutdown().await,
            Link::Amqp(a) => a.close().await,
        }
    }
}

impl Transport for Link {
    async fn send(&self, msg: Outbound) -> Result<(), TransportError> {
        match self {
            Link::Direct(d) => d.send(msg).await,
            Link::Amqp(a) => a.send(msg).await,
        }
    }

    async fn receive(&self) -> Result<Delivery, TransportError> {
        match self {
            Link::Direct(d) => d.receive().await,
            Link::Amqp(a) => a.receive().await,
        }
    }
}

/// A started node.
#[derive(Debug)]
pub struct RunningNode {
    /// Where the national API listens.
    pub http_addr: SocketAddr,
    /// Whether it serves HTTPS.
    pub https: bool,
    /// The engine (store, metrics).
    pub engine: Arc<Engine>,
    /// The link to the hub.
    pub link: Arc<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// Waits until the node has stopped (after the shutdown signal).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }

    /// The API's base URL.
    pub fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.http_addr)
    }
}

/// Starts the node: store, transport, outbox relay, inbound pipeline, webhook, HTTP API;
/// everything stops when `shutdown` fires.
pub async fn start(config: ResolvedConfig, shutdown: Shutdown) -> Result<RunningNode, NodeError> {
    let store = Store::connect(&config.store_url)
        .await
        .map_err(|e| NodeError::Store(crate::store::StoreError::Transport(e)))?;
    crate::store::migrate(&store).await?;
    let outbox = Outbox::new(store.clone());
    let link = Arc::new(match config.transport {
        TransportConfig::Direct { hub, tls } => Link::Direct(
            DirectNode::connect(hub, tls, LinkConfig::default())
                .map_err(|e| NodeError::Transport(e.to_string()))?,
        ),
        TransportConfig::Amqp(amqp) => Link::Amqp(
            AmqpTransport::node(amqp, config.country)
                .await
                .map_err(|e| NodeError::Transport(e.to_string()))?,
        ),
    });
    let metrics = Arc::new(Metrics::new());
    let verifier = Verifier::new(config.trust, Duration::from_secs(300))
        .with_local_identity(PeerIdentity::Node(config.country));
    let engine = Arc::new(Engine::new(
        store.clone(),
        outbox.clone(),
        config.country,
        config.signer,
        verifier,
        config.reference,
        config.limits,
        config.selector,
        config.departure,
        metrics,
    ));
    engine.refdata.load(&store).await?;
    engine
        .announce_stream()
        .await
        .map_err(|e| NodeError::Transport(e.to_string()))?;

    let listener = tokio::net::TcpListener::bind(config.http_listen).await?;
    let http_addr = listener.local_addr()?;
    let link_for_ready = link.clone();
    let state = ApiState {
        engine: engine.clone(),
        tokens: Arc::new(config.tokens),
        link_up: Arc::new(move || link_for_ready.is_connected()),
        shutdown: shutdown.clone(),
    };
    let app = router(state, config.http_max_bytes);
    let https = config.http_tls.is_some();
    let acceptor = match config.http_tls {
        Some(tls) => Some(tls_acceptor(tls)?),
        None => None,
    };

    let relay = {
        let outbox = outbox.clone();
        let link = link.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            outbox
                .run_relay(link.as_ref(), &RelayConfig::default(), shutdown)
                .await;
        })
    };
    let inbound = {
        let engine = engine.clone();
        let link = link.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { engine.run_inbound(link.as_ref(), shutdown).await })
    };
    let resume = {
        let engine = engine.clone();
        let link = link.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            engine
                .run_resume_on_connect(move || link.connections(), shutdown)
                .await
        })
    };
    let reconciliation = config.reconcile_interval.map(|period| {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { engine.run_reconciliation(period, shutdown).await })
    });
    let status_requests = {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { engine.run_status_requests(shutdown).await })
    };
    let webhook = config.webhook.map(|w| {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { w.run(engine, shutdown).await })
    });
    let link_for_task = link.clone();
    let mut http_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = match acceptor {
            Some(acceptor) => match TlsListener::new(listener, acceptor, shutdown.clone()) {
                Ok(tls) => {
                    axum::serve(tls, app)
                        .with_graceful_shutdown(async move { http_shutdown.wait().await })
                        .await
                }
                Err(e) => Err(e),
            },
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { http_shutdown.wait().await })
                    .await
            }
        };
        if let Err(e) = served {
            tracing::warn!(error = %e, "HTTP server stopped");
        }
        let _ = relay.await;
        let _ = inbound.await;
        let _ = resume.await;
        if let Some(r) = reconciliation {
            let _ = r.await;
        }
        let _ = status_requests.await;
        if let Some(w) = webhook {
            let _ = w.await;
        }
        link_for_task.close().await;
        store.close().await;
    });
    tracing::info!(country = %engine.country(), %http_addr, https, "node started");
    Ok(RunningNode {
        http_addr,
        https,
        engine,
        link,
        task,
    })
}

fn tls_acceptor(tls: HttpTls) -> Result<tokio_rustls::TlsAcceptor, NodeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = |e: rustls::Error| NodeError::Certs(format!("HTTP TLS: {e}"));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(certs)?;
    let builder = match tls.client_ca {
        Some(cas) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in cas {
                roots.add(c).map_err(certs)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| NodeError::Certs(format!("HTTP client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(tls.chain, tls.key)
        .map_err(certs)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Runs the node until `shutdown` fires (`cats node --config FILE`).
pub async fn run(config: ResolvedConfig, shutdown: Shutdown) -> Result<(), NodeError> {
    start(config, shutdown).await?.stopped().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RawConfig, config::ConfigError> {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
    }

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let raw = parse(include_str!("../../deploy/node.example.toml")).expect("example parses");
        assert_eq!(raw, RawConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("[store]\nurl = \"sqlite://x.db\"\nspeed = 3\n").is_err());
        assert!(parse("[selection]\nrandomness = 3\n").is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "[node]\ncountry = \"GE\"\n[store]\nurl = \"sqlite://from-file.db\"\n",
        )
        .expect("write");
        let env = std::collections::HashMap::from([(
            "CATS_NODE__STORE__URL".to_owned(),
            "postgres://cats@db/cats".to_owned(),
        )]);
        let raw = RawConfig::load_with_env(Some(&file), Some(env)).expect("loads");
        assert_eq!(raw.store.url, "postgres://cats@db/cats");
        assert_eq!(raw.node.country, "GE");
        let bad = std::collections::HashMap::from([(
            "CATS_NODE__STORE__SPEED".to_owned(),
            "3".to_owned(),
        )]);
        assert!(RawConfig::load_with_env(None, Some(bad)).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let mut raw = RawConfig::default();
        raw.node.country = "Kazakhstan".into();
        let e = raw.resolve().expect_err("bad country");
        assert_eq!(e.code(), "config.invalid");
        assert!(e.to_string().contains("node.country"), "{e}");
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(NodeError::Read("x".into()).code(), "config.read");
        assert_eq!(NodeError::Invalid("x".into()).code(), "config.invalid");
        assert_eq!(NodeError::Certs("x".into()).code(), "config.certs");
        assert_eq!(NodeError::Transport("x".into()).code(), "node.transport");
    }
}
