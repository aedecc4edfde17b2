//! The demo's world: the development PKI (made when missing, as `cats certs init` does), the
//! hub and the KZ, AZ and GE nodes started in this process on loopback (port 0), each with its
//! own store (SQLite files in a temporary directory, or a fresh PostgreSQL database), linked
//! by the direct mutual-TLS transport or by RabbitMQ, each node's national API on HTTPS with
//! a national-system token and an officer token made for this run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use cats_transport::shutdown::{self, ShutdownTrigger};
use cats_trust::pki::DevPki;
use message_catalog::ids::CountryCode;

use super::client::{NodeClient, Stream, http_client};
use super::journey::{NodeHandle, Nodes};

/// The transport between the nodes and the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    /// The direct mutual-TLS link (no broker).
    Direct,
    /// RabbitMQ over AMQPS with client certificates.
    Amqp,
}

/// The store of every service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// SQLite files in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database per service.
    Postgres,
}

/// `cats demo` as given on the command line (stage 1).
#[derive(Debug, Clone)]
pub struct RawOptions {
    /// `--transport`.
    pub transport: TransportKind,
    /// `--amqp-url`.
    pub amqp_url: Option<String>,
    /// `--store`.
    pub store: StoreKind,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--movements`.
    pub movements: Option<usize>,
    /// `--keep-running`.
    pub keep_running: bool,
    /// `--seed`.
    pub seed: u64,
    /// `--certs`.
    pub certs: PathBuf,
    /// `--step-timeout` in seconds.
    pub step_timeout: u64,
    /// `--concurrency`.
    pub concurrency: usize,
}

/// The countries of the pilot, each with a node.
pub const COUNTRIES: [&str; 3] = ["KZ", "AZ", "GE"];

/// The demo's options, checked (stage 2).
#[derive(Debug, Clone)]
pub struct Options {
    /// The transport.
    pub transport: TransportKind,
    /// The broker, for AMQP.
    pub amqp_url: Option<String>,
    /// The store.
    pub store: StoreKind,
    /// The PostgreSQL server, for `--store postgres`.
    pub database_url: Option<String>,
    /// The seed of the load run and of the nodes' random sampling.
    pub seed: u64,
    /// Where the development PKI is (made there when missing).
    pub certs: PathBuf,
    /// How long any one step may take.
    pub step_timeout: Duration,
    /// Movements in flight at once in a load run.
    pub concurrency: usize,
    /// Whether this is a load run (random sampling on) or the one pilot movement.
    pub load: bool,
}

impl Options {
    /// Checks the command line's options together.
    pub fn resolve(raw: &RawOptions) -> anyhow::Result<Options> {
        if raw.transport == TransportKind::Amqp && raw.amqp_url.is_none() {
            bail!("--transport amqp needs --amqp-url (e.g. amqps://localhost:26710)");
        }
        if let Some(url) = &raw.amqp_url {
            amqp_url(url)?;
        }
        if raw.transport == TransportKind::Direct && raw.amqp_url.is_some() {
            bail!("--amqp-url is only used with --transport amqp");
        }
        if raw.store == StoreKind::Postgres && raw.database_url.is_none() {
            bail!(
                "--store postgres needs --database-url (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            );
        }
        if raw.store == StoreKind::Sqlite && raw.database_url.is_some() {
            bail!("--database-url is only used with --store postgres");
        }
        if raw.step_timeout == 0 {
            bail!("--step-timeout must be at least 1 second");
        }
        if raw.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        Ok(Options {
            transport: raw.transport,
            amqp_url: raw.amqp_url.clone(),
            store: raw.store,
            database_url: raw.database_url.clone(),
            seed: raw.seed,
            certs: raw.certs.clone(),
            step_timeout: Duration::from_secs(raw.step_timeout),
            concurrency: raw.concurrency,
            load: raw.movements.is_some(),
        })
    }

    /// `SQLite` or `PostgreSQL`.
    pub fn store_label(&self) -> &'static str {
        match self.store {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres => "PostgreSQL",
        }
    }

    /// `direct mTLS` or `AMQP`.
    pub fn transport_label(&self) -> &'static str {
        match self.transport {
            TransportKind::Direct => "direct mTLS",
            TransportKind::Amqp => "AMQP",
        }
    }
}

/// One node of the world.
#[derive(Debug)]
pub struct RunningNode {
    /// Its country.
    pub country: String,
    /// Its API address.
    pub api: SocketAddr,
    /// The national system's token.
    pub national_token: String,
    /// The officer's token.
    pub officer_token: String,
    /// Its store.
    pub store_url: String,
    config: cats_node::RawConfig,
    node: Option<cats_node::RunningNode>,
    trigger: ShutdownTrigger,
}

impl RunningNode {
    /// The reference data version the node holds (`None` while it is stopped).
    pub fn refdata_version(&self) -> Option<u64> {
        self.node.as_ref().map(|n| n.engine.refdata.versions().held)
    }

    /// Stops the node (gracefully: what it accepted is in its store).
    pub async fn stop(&mut self) {
        self.trigger.trigger();
        if let Some(node) = self.node.take() {
            node.stopped().await;
        }
    }

    /// The running node (engine, link), between a start and a stop.
    pub fn node(&self) -> Option<&cats_node::RunningNode> {
        self.node.as_ref()
    }

    /// Starts it again with the same configuration, store and API address.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.restart_with(|_| {}).await
    }

    /// Starts it again with its configuration changed by `change` (kept for later restarts),
    /// the same store and API address.
    pub async fn restart_with(
        &mut self,
        change: impl FnOnce(&mut cats_node::RawConfig),
    ) -> anyhow::Result<()> {
        self.stop().await;
        change(&mut self.config);
        let mut raw = self.config.clone();
        raw.http.listen = self.api.to_string();
        let (node, trigger) = launch(raw, &self.country).await?;
        self.node = Some(node);
        self.trigger = trigger;
        Ok(())
    }
}

/// The hub and the nodes, running.
#[derive(Debug)]
pub struct World {
    /// The nodes as the journeys see them.
    pub nodes: Nodes,
    /// Each node's process-side handle.
    pub running: Vec<RunningNode>,
    /// The CATS CA certificate (PEM) that the nodes' API certificates chain to.
    pub ca_pem: Vec<u8>,
    /// An operator's bearer token for the hub's API, issued by the demo to itself.
    pub hub_operator_token: String,
    /// An administrator's bearer token for the hub's API, issued by the demo to itself.
    pub hub_administrator_token: String,
    hub: cats_hub::RunningHub,
    hub_trigger: ShutdownTrigger,
    _dir: tempfile::TempDir,
}

/// A fresh random token (256 bits, hex).
fn token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// SHA-256 of a token, hex: what the node's configuration holds.
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Creates a fresh database `name` on the PostgreSQL server of `base` and returns its URL.
pub async fn fresh_postgres(base: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(base)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {base}"))?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating database {name}"))?;
    let _ = admin.close().await;
    let (head, _) = base
        .rsplit_once('/')
        .filter(|(h, _)| h.contains("://") && h.len() > h.find("://").unwrap_or(0) + 3)
        .with_context(|| format!("--database-url {base} has no database part"))?;
    Ok(format!("{head}/{name}"))
}

impl World {
    /// The hub (its API address, its store and reference data).
    pub fn hub(&self) -> &cats_hub::RunningHub {
        &self.hub
    }

    /// Makes the PKI if missing, then starts the hub and the nodes.
    pub async fn start(options: &Options) -> anyhow::Result<World> {
        let countries = COUNTRIES
            .iter()
            .map(|c| CountryCode::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .context("pilot countries")?;
        let pki = DevPki::init(&options.certs, &countries, false).with_context(|| {
            format!(
                "creating the development PKI in {}",
                options.certs.display()
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("cats-demo-")
            .tempdir()
            .context("creating the demo's temporary directory")?;
        let run = format!("{:08x}", rand::random::<u32>());
        let store_url = |service: &str| {
            let dir = dir.path().to_owned();
            let run = run.clone();
            let service = service.to_owned();
            let options = options.clone();
            async move {
                match options.store {
                    StoreKind::Sqlite => Ok(format!(
                        "sqlite://{}",
                        dir.join(format!("{service}.db")).display()
                    )),
                    StoreKind::Postgres => {
                        let base = options.database_url.clone().unwrap_or_default();
                        fresh_postgres(&base, &format!("cats_demo_{run}_{service}")).await
                    }
                }
            }
        };

        let hub_store = store_url("hub").await?;
        let mut raw = cats_hub::RawConfig::default();
        raw.store.url = hub_store.clone();
        raw.http.listen = "127.0.0.1:0".into();
        raw.transport.listen = "127.0.0.1:0".into();
        raw.certs.dir = pki.dir.clone();
        if let Some(url) = &options.amqp_url {
            raw.transport.kind = "amqp".into();
            raw.transport.amqp.url = url.clone();
            raw.transport.amqp.operation_timeout_ms = 5_000;
            raw.transport.amqp.reconnect_max_ms = 1_000;
        }
        let hub_config = raw.resolve().context("configuring the hub")?;
        let (hub_trigger, hub_shutdown) = shutdown::channel();
        let hub = cats_hub::start(hub_config, hub_shutdown)
            .await
            .context("starting the hub")?;
        match &options.amqp_url {
            Some(url) => println!(
                "hub      AMQP {url}  API http://{}  store {hub_store}",
                hub.http_addr
            ),
            None => println!(
                "hub      direct link {}  API http://{}  store {hub_store}",
                hub.direct_addr
                    .map_or_else(|| "-".to_owned(), |a| a.to_string()),
                hub.http_addr
            ),
        }

        let issue = |role| {
            let store = hub.services.store.clone();
            async move {
                cats_hub::access::issue(&store, role, "demo")
                    .await
                    .map(|i| i.token)
                    .context("issuing the demo's credential at the hub")
            }
        };
        let hub_operator_token = issue(cats_hub::access::Role::Operator).await?;
        let hub_administrator_token = issue(cats_hub::access::Role::Administrator).await?;

        let ca_pem = std::fs::read(&pki.ca.cert)
            .with_context(|| format!("reading {}", pki.ca.cert.display()))?;
        let http = http_client(&ca_pem)?;
        let mut nodes = Nodes::default();
        let mut running = Vec::new();
        for country in COUNTRIES {
            let url = store_url(&country.to_ascii_lowercase()).await?;
            let node = start_node(options, country, &pki.dir, &url, hub.direct_addr).await?;
            println!(
                "node {country}  API https://{}  store {}",
                node.api, node.store_url
            );
            let client = NodeClient::new(
                country,
                format!("https://localhost:{}", node.api.port()),
                node.national_token.clone(),
                node.officer_token.clone(),
                http.clone(),
            );
            let stream = Stream::follow(&client, 0);
            nodes
                .0
                .insert(country.to_owned(), NodeHandle { client, stream });
            running.push(node);
        }
        Ok(World {
            nodes,
            running,
            ca_pem,
            hub_operator_token,
            hub_administrator_token,
            hub,
            hub_trigger,
            _dir: dir,
        })
    }

    /// The hub's HTTP API address.
    pub fn hub_api(&self) -> SocketAddr {
        self.hub.http_addr
    }

    /// Prints each node's API address and tokens (`--keep-running`).
    pub fn print_endpoints(&self) {
        println!(
            "hub API http://{}  operator token {}  administrator token {}",
            self.hub.http_addr, self.hub_operator_token, self.hub_administrator_token
        );
        for n in &self.running {
            println!(
                "node {} API https://localhost:{}  national-system token {}  officer token {}",
                n.country,
                n.api.port(),
                n.national_token,
                n.officer_token
            );
        }
    }

    /// Stops the nodes, then the hub.
    pub async fn stop(self) {
        for mut n in self.running {
            n.stop().await;
        }
        self.hub_trigger.trigger();
        self.hub.stopped().await;
    }
}

/// The selection rules of the demo's nodes: rifles are controlled at departure in KZ, cars at
/// the office of transit in AZ, cognac at destination in GE; in a load run, random sampling
/// too (lower for the AEO holders).
pub fn selection(options: &Options, country: &str) -> cats_node::selection::SelectionConfig {
    use cats_node::selection::{Profile, SelectionConfig};
    let profile = |name: &str, role: &str, hs: &str| Profile {
        name: name.into(),
        role: Some(role.into()),
        hs_prefix: Some(hs.into()),
        ..Profile::default()
    };
    let profiles = match country {
        "KZ" => vec![profile("KZ firearms at departure", "departure", "9303")],
        "AZ" => vec![profile("AZ vehicles at entry", "transit", "8703")],
        _ => vec![profile("GE spirits at destination", "destination", "2208")],
    };
    SelectionConfig {
        seed: options.seed,
        rate: if options.load { 0.02 } else { 0.0 },
        aeo_rate: if options.load { 0.005 } else { 0.0 },
        aeo: vec!["KZ123456789012".into(), "AZ1234567890".into()],
        profiles,
        ..SelectionConfig::default()
    }
}

/// Starts one node (see `deploy/node.example.toml` for every key).
async fn start_node(
    options: &Options,
    country: &str,
    pki: &Path,
    store_url: &str,
    hub: Option<SocketAddr>,
) -> anyhow::Result<RunningNode> {
    use cats_node::config::RawToken;
    let national_token = token();
    let officer_token = token();
    let lower = country.to_ascii_lowercase();
    let mut raw = cats_node::RawConfig::default();
    raw.node.country = country.to_owned();
    raw.store.url = store_url.to_owned();
    raw.http.listen = "127.0.0.1:0".into();
    raw.http.tls = true;
    raw.http.tokens = vec![
        RawToken {
            name: format!("{lower}-national-system"),
            sha256: token_hash(&national_token),
            role: "national-system".into(),
        },
        RawToken {
            name: format!("{lower}-officer"),
            sha256: token_hash(&officer_token),
            role: "officer".into(),
        },
    ];
    match &options.amqp_url {
        Some(url) => {
            let (host, port, vhost) = amqp_url(url)?;
            raw.transport.kind = "amqp".into();
            raw.transport.amqp.host = host;
            raw.transport.amqp.port = port;
            raw.transport.amqp.vhost = vhost;
        }
        None => {
            raw.transport.kind = "direct".into();
            raw.transport.hub = hub.context("the hub runs no direct link")?.to_string();
            raw.transport.server_name = "localhost".into();
        }
    }
    raw.certs.dir = pki.to_owned();
    raw.selection = selection(options, country);
    let (node, trigger) = launch(raw.clone(), country).await?;
    Ok(RunningNode {
        country: country.to_owned(),
        api: node.http_addr,
        national_token,
        officer_token,
        store_url: store_url.to_owned(),
        config: raw,
        node: Some(node),
        trigger,
    })
}

/// `amqps://HOST[:PORT][/VHOST]` → host, port (default 5671), vhost (default `cats`).
pub fn amqp_url(url: &str) -> anyhow::Result<(String, u16, String)> {
    let rest = url.strip_prefix("amqps://").with_context(|| {
        format!("--amqp-url {url}: expected amqps://HOST[:PORT][/VHOST] (TLS only)")
    })?;
    let (authority, vhost) = rest.split_once('/').unwrap_or((rest, "cats"));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .with_context(|| format!("--amqp-url {url}: port {p:?}"))?,
        ),
        None => (authority, 5671),
    };
    if host.is_empty() {
        bail!("--amqp-url {url}: no host");
    }
    let vhost = if vhost.is_empty() { "cats" } else { vhost };
    Ok((host.to_owned(), port, vhost.to_owned()))
}

async fn launch(
    raw: cats_node::RawConfig,
    country: &str,
) -> anyhow::Result<(cats_node::RunningNode, ShutdownTrigger)> {
    let config = raw
        .resolve()
        .with_context(|| format!("configuring the {country} node"))?;
    let (trigger, shutdown) = shutdown::channel();
    let node = cats_node::start(config, shutdown)
        .await
        .with_context(|| format!("starting the {country} node"))?;
    Ok((node, trigger))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_urls_give_host_port_and_vhost() {
        assert_eq!(
            amqp_url("amqps://localhost:26710/cats").expect("valid"),
            ("localhost".into(), 26710, "cats".into())
        );
        assert_eq!(
            amqp_url("amqps://broker").expect("valid"),
            ("broker".into(), 5671, "cats".into())
        );
        assert!(amqp_url("amqp://localhost:5672").is_err());
        assert!(amqp_url("amqps://localhost:x/cats").is_err());
    }

    #[test]
    fn tokens_are_stored_as_their_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(token(), token());
    }
}
