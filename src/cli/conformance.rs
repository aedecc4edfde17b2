//! `cats conformance run|record|report`: the conformance kit (`cats-conformance`) on the
//! command line.
//!
//! The kit's [`Driver`] is implemented here with the national API client of `cats demo`
//! ([`super::demo::client`]), against either the nodes of a CATS this command starts itself
//! (`--target self`: the demo's world, [`super::demo::world`]) or a node somewhere else
//! (`--target https://... --as-country KZ`, with its tokens and CA).
//!
//! Cases that talk to the hub as a node (`hub-send`, `hub-expect`) go over the hub's direct
//! link with the kit's own connections ([`HubLink`], one per country identity): with
//! `--target self` to a hub of their own that this command starts next to the demo's world
//! (the link has one connection per country, and the world's nodes hold theirs), otherwise to
//! `--hub-link HOST:PORT` with the identities of `--hub-certs DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cats_conformance::case::{Case, load_suite};
use cats_conformance::link::{HubLink, LinkOptions};
use cats_conformance::run::{
    Delivered, DriverError, HubFilter, HubSendRequest, Received, Refusal, Reply, RunOptions,
};
use cats_conformance::{Driver, RunResults, junit, record, report, table};

use super::demo::client::{NodeClient, Stream, http_client};
use super::demo::journey::{NodeHandle, Nodes};
use super::demo::world::{self, World};

/// `cats conformance ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Replay message sets against a target; a table of results, exit 0 only when every case
    /// passed.
    Run {
        /// Suite directories (each subdirectory with a case.toml is a case), or case
        /// directories.
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        /// `self` (a hub and the KZ, AZ and GE nodes started in this process), the HTTPS
        /// address of a node's national API (with --as-country), or `CC=URL` once per node of
        /// a pilot environment (tokens from CATS_<CC>_NATIONAL_TOKEN and CATS_<CC>_OFFICER_TOKEN).
        /// May be left out with --hub-link: then only the cases that talk to the hub run.
        #[arg(long, required_unless_present = "hub_link")]
        target: Vec<String>,
        /// The country of the node at --target (a single URL target).
        #[arg(long)]
        as_country: Option<String>,
        /// The hub's API (http://...), for the cases that check the hub's registry.
        #[arg(long)]
        hub: Option<String>,
        /// An operator's (or administrator's) bearer token for the hub's API at --hub (with
        /// --target self the kit issues its own at the hubs it starts).
        #[arg(long, env = "CATS_HUB_TOKEN", hide_env_values = true)]
        hub_token: Option<String>,
        /// The hub's link, for the cases that talk to the hub as a node.
        #[command(flatten)]
        link: Box<HubLinkArgs>,
        /// The CA certificate (PEM) that the node's TLS certificate is checked against.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The national system's bearer token at the node.
        #[arg(long, env = "CATS_NATIONAL_TOKEN", hide_env_values = true)]
        national_token: Option<String>,
        /// An officer's bearer token at the node.
        #[arg(long, env = "CATS_OFFICER_TOKEN", hide_env_values = true)]
        officer_token: Option<String>,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the results (JSON, the input of `cats conformance report`) here.
        #[arg(long)]
        results: Option<PathBuf>,
        /// Run only the cases with this tag (message type, role, positive, negative, a suite
        /// or suite/case); repeat for several.
        #[arg(long)]
        filter: Vec<String>,
        /// Cases at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// With --target self: where the development PKI is (created there when missing).
        #[arg(long, default_value = "certs/dev")]
        certs: PathBuf,
    },
    /// Turn a live movement's exchange at one node into a case.
    Record {
        /// The node's national API (https://...).
        #[arg(long)]
        from: String,
        /// The movement.
        #[arg(long)]
        mrn: String,
        /// The node's country (default: the MRN's, positions 3-4).
        #[arg(long)]
        country: Option<String>,
        /// The national system's copies of what it sent (XML files; matched by message type
        /// in file-name order). Default: the node's own copies, from
        /// `GET /api/v1/movements/{mrn}/messages`.
        #[arg(long)]
        sent: Option<PathBuf>,
        /// The CA certificate (PEM) of the node's TLS certificate.
        #[arg(long)]
        ca: PathBuf,
        /// A bearer token at the node (the national system's).
        #[arg(long, env = "CATS_NATIONAL_TOKEN", hide_env_values = true)]
        token: String,
        /// Where to write the case (created; must not exist).
        out_dir: PathBuf,
    },
    /// Write the HTML certification report of a run's results.
    Report {
        /// The results (`cats conformance run --results FILE`).
        results: PathBuf,
        /// The HTML file (default: the results' name with .html).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

/// Where the hub's direct link is and whose identities the kit plays on it.
#[derive(Debug, clap::Args)]
pub struct HubLinkArgs {
    /// The hub's direct link (HOST:PORT), for the cases that send common-domain envelopes to
    /// the hub as a node (the hub suite); with --hub-certs.
    #[arg(long, requires = "hub_certs")]
    hub_link: Option<String>,
    /// The identities the kit plays on the hub's link: ca.pem, fingerprints.json, and per
    /// country node-<cc>.pem / .key.pem (TLS) and signer-<cc>.pem / .key.pem (signing).
    #[arg(long, requires = "hub_link")]
    hub_certs: Option<PathBuf>,
    /// The name the hub's TLS certificate is checked for (default: the host of --hub-link).
    #[arg(long, requires = "hub_link")]
    hub_server_name: Option<String>,
}

/// Runs one `cats conformance` command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            suites,
            target,
            as_country,
            hub,
            hub_token,
            link,
            ca,
            national_token,
            officer_token,
            junit,
            results,
            filter,
            parallel,
            certs,
        } => {
            let HubLinkArgs {
                hub_link,
                hub_certs,
                hub_server_name,
            } = *link;
            if parallel == 0 {
                bail!("--parallel must be at least 1");
            }
            let mut cases: Vec<Case> = Vec::new();
            for dir in &suites {
                let suite =
                    load_suite(dir).with_context(|| format!("loading {}", dir.display()))?;
                cases.extend(suite.cases);
            }
            let selected: Vec<&Case> = cases
                .iter()
                .filter(|c| filter.is_empty() || filter.iter().any(|t| c.has_tag(t)))
                .collect();
            let on_link = |c: &&Case| {
                c.manifest
                    .steps
                    .iter()
                    .any(|s| !s.link_identities().is_empty())
            };
            let target_spec = if target == ["self"] {
                if as_country.is_some() || ca.is_some() || hub.is_some() || hub_link.is_some() {
                    bail!(
                        "--as-country, --ca, --hub and --hub-link are for a URL target, not --target self"
                    );
                }
                TargetSpec::SelfWorld {
                    certs,
                    nodes: selected.iter().any(|c| !on_link(c)),
                    link: selected.iter().any(on_link),
                }
            } else {
                let nodes = if target.is_empty() {
                    if as_country.is_some() {
                        bail!("--as-country is for a node URL given with --target");
                    }
                    Vec::new()
                } else {
                    remote_nodes(&target, as_country, national_token, officer_token)?
                };
                let link = match (hub_link, hub_certs) {
                    (Some(addr), Some(certs)) => Some(LinkOptions {
                        server_name: match hub_server_name {
                            Some(n) => n,
                            None => link_host(&addr)?,
                        },
                        addr,
                        certs,
                    }),
                    _ => None,
                };
                let ca = match (ca, &link) {
                    (Some(ca), _) => ca,
                    (None, Some(l)) if nodes.is_empty() => l.certs.join("ca.pem"),
                    (None, _) => {
                        bail!("a URL target needs --ca (the CA of the nodes' certificates)")
                    }
                };
                TargetSpec::Remote {
                    nodes,
                    hub,
                    hub_token,
                    ca,
                    link,
                }
            };
            let runtime = runtime()?;
            let results_value = runtime.block_on(async {
                let driver = HttpTarget::start(target_spec).await?;
                let options = RunOptions {
                    parallel,
                    filter,
                    target: if target.is_empty() {
                        "the hub's link".to_owned()
                    } else {
                        target.join(" ")
                    },
                };
                let r = cats_conformance::run::run(&driver, &cases, &options).await;
                driver.stop().await;
                Ok::<RunResults, anyhow::Error>(r)
            })?;
            print!("{}", table::table(&results_value));
            if let Some(path) = junit {
                std::fs::write(&path, junit::junit(&results_value))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = results {
                let json =
                    serde_json::to_vec_pretty(&results_value).context("the results as JSON")?;
                std::fs::write(&path, json)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if results_value.cases.is_empty() {
                eprintln!("cats conformance: no case was run (check the suites and --filter)");
            }
            Ok(if results_value.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Record {
            from,
            mrn,
            country,
            sent,
            ca,
            token,
            out_dir,
        } => record_case(&from, &mrn, country, sent.as_deref(), &ca, &token, &out_dir),
        Command::Report { results, out } => {
            let text = std::fs::read_to_string(&results)
                .with_context(|| format!("reading {}", results.display()))?;
            let value: RunResults = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not the results of cats conformance run --results",
                    results.display()
                )
            })?;
            let out = out.unwrap_or_else(|| results.with_extension("html"));
            std::fs::write(&out, report::html(&value))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

enum TargetSpec {
    SelfWorld {
        certs: PathBuf,
        /// Start the demo's world (the cases talk to nodes).
        nodes: bool,
        /// Start a hub for the cases that talk to the hub as a node, and link to it.
        link: bool,
    },
    Remote {
        nodes: Vec<RemoteNode>,
        hub: Option<String>,
        hub_token: Option<String>,
        ca: PathBuf,
        link: Option<LinkOptions>,
    },
}

/// The host of `HOST:PORT` (`[::1]:7443` gives `::1`).
fn link_host(addr: &str) -> anyhow::Result<String> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("--hub-link {addr}: expected HOST:PORT"))?;
    if port.parse::<u16>().is_err() || host.is_empty() {
        bail!("--hub-link {addr}: expected HOST:PORT");
    }
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned())
}

/// The hub this command starts for the link cases of `--target self`, with its own store.
struct LinkHub {
    hub: cats_hub::RunningHub,
    trigger: cats_transport::shutdown::ShutdownTrigger,
    _dir: tempfile::TempDir,
}

impl LinkHub {
    async fn start(certs: &Path) -> anyhow::Result<LinkHub> {
        let countries = world::COUNTRIES
            .iter()
            .map(|c| message_catalog::ids::CountryCode::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .context("pilot countries")?;
        let pki = cats_trust::pki::DevPki::init(certs, &countries, false)
            .with_context(|| format!("creating the development PKI in {}", certs.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("cats-conformance-hub-")
            .tempdir()
            .context("creating the link hub's temporary directory")?;
        let mut raw = cats_hub::RawConfig::default();
        raw.store.url = format!("sqlite://{}", dir.path().join("hub.db").display());
        raw.http.listen = "127.0.0.1:0".into();
        raw.transport.listen = "127.0.0.1:0".into();
        raw.certs.dir = pki.dir.clone();
        let config = raw.resolve().context("configuring the link cases' hub")?;
        let (trigger, shutdown) = cats_transport::shutdown::channel();
        let hub = cats_hub::start(config, shutdown)
            .await
            .context("starting the link cases' hub")?;
        Ok(LinkHub {
            hub,
            trigger,
            _dir: dir,
        })
    }

    async fn stop(self) {
        self.trigger.trigger();
        self.hub.stopped().await;
    }
}

/// A node of a URL target.
struct RemoteNode {
    country: String,
    url: String,
    national_token: String,
    officer_token: String,
}

/// The nodes of a URL target: one `URL` with `--as-country` and the token flags, or `CC=URL`
/// for each node with each country's tokens from the environment.
fn remote_nodes(
    targets: &[String],
    as_country: Option<String>,
    national_token: Option<String>,
    officer_token: Option<String>,
) -> anyhow::Result<Vec<RemoteNode>> {
    if let [url] = targets
        && !url.contains('=')
    {
        if url == "self" {
            bail!("--target self cannot be combined with other targets");
        }
        let country =
            as_country.context("a URL target needs --as-country (the node's country, e.g. KZ)")?;
        return Ok(vec![RemoteNode {
            country: country.to_ascii_uppercase(),
            url: url.trim_end_matches('/').to_owned(),
            national_token: national_token
                .context("a URL target needs --national-token (or CATS_NATIONAL_TOKEN)")?,
            officer_token: officer_token
                .context("a URL target needs --officer-token (or CATS_OFFICER_TOKEN)")?,
        }]);
    }
    if as_country.is_some() {
        bail!("--as-country is for a single URL target; with several, write --target CC=URL");
    }
    let mut nodes: Vec<RemoteNode> = Vec::new();
    for t in targets {
        let (country, url) = t
            .split_once('=')
            .with_context(|| format!("--target {t}: with several targets, each is CC=URL"))?;
        let country = country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            bail!("--target {t}: {country:?} is not a two-letter country code");
        }
        if nodes.iter().any(|n| n.country == country) {
            bail!("--target {t}: {country} is given twice");
        }
        let token = |role: &str| {
            let var = format!("CATS_{country}_{role}_TOKEN");
            std::env::var(&var).with_context(|| {
                format!(
                    "--target {t}: set {var} (the node's {} token)",
                    role.to_ascii_lowercase()
                )
            })
        };
        nodes.push(RemoteNode {
            url: url.trim_end_matches('/').to_owned(),
            national_token: token("NATIONAL")?,
            officer_token: token("OFFICER")?,
            country,
        });
    }
    Ok(nodes)
}

/// The target over HTTPS: the nodes' national APIs (each with its stream followed), the hub's
/// API, and for `--target self` the world itself (to restart a node).
struct HttpTarget {
    nodes: Nodes,
    hub: Option<String>,
    /// The bearer token for `hub`'s API.
    hub_token: Option<String>,
    http: reqwest::Client,
    world: Option<tokio::sync::Mutex<World>>,
    environment: Vec<(String, String)>,
    /// The kit's connections to the hub as the countries' nodes.
    link: Option<HubLink>,
    /// The API of the hub the link talks to.
    link_hub: Option<String>,
    /// The bearer token for `link_hub`'s API.
    link_hub_token: Option<String>,
    /// That hub, when this command started it.
    link_hub_running: Option<LinkHub>,
}

impl HttpTarget {
    async fn start(spec: TargetSpec) -> anyhow::Result<HttpTarget> {
        let mut environment = vec![
            (
                "kit".to_owned(),
                format!("cats {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "machine".to_owned(),
                format!(
                    "{} {}, {} CPUs{}",
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                    std::fs::read_to_string("/proc/loadavg")
                        .ok()
                        .and_then(|l| {
                            let mut it = l.split_whitespace();
                            Some(format!(
                                ", load {} {} {}",
                                it.next()?,
                                it.next()?,
                                it.next()?
                            ))
                        })
                        .unwrap_or_default()
                ),
            ),
        ];
        match spec {
            TargetSpec::SelfWorld {
                certs,
                nodes: want_nodes,
                link: want_link,
            } => {
                let (link, link_hub, link_hub_token, link_hub_running) = if want_link {
                    let running = LinkHub::start(&certs).await?;
                    let direct_addr = running
                        .hub
                        .direct_addr
                        .ok_or_else(|| anyhow::anyhow!("the kit's hub has no direct link"))?;
                    let link = HubLink::connect(
                        &LinkOptions {
                            addr: direct_addr.to_string(),
                            server_name: "localhost".into(),
                            certs: certs.clone(),
                        },
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("linking to the hub: {e}"))?;
                    let api = format!("http://{}", running.hub.http_addr);
                    environment.push((
                        "hub for the link cases".into(),
                        format!(
                            "started by the kit: direct link {direct_addr}, API {api}, the kit playing {}",
                            link.countries().join(", ")
                        ),
                    ));
                    let token = cats_hub::access::issue(
                        &running.hub.services.store,
                        cats_hub::access::Role::Operator,
                        "conformance",
                    )
                    .await
                    .map(|i| i.token)
                    .context("issuing the kit's credential at its hub")?;
                    (Some(link), Some(api), Some(token), Some(running))
                } else {
                    (None, None, None, None)
                };
                if !want_nodes {
                    let ca_pem = std::fs::read(certs.join("ca.pem"))
                        .with_context(|| format!("reading {}", certs.join("ca.pem").display()))?;
                    environment.push((
                        "target".into(),
                        "a hub started by the kit (no node cases selected)".into(),
                    ));
                    return Ok(HttpTarget {
                        nodes: Nodes::default(),
                        hub: None,
                        hub_token: None,
                        http: http_client(&ca_pem)?,
                        world: None,
                        environment,
                        link,
                        link_hub,
                        link_hub_token,
                        link_hub_running,
                    });
                }
                let options = world::Options::resolve(&world::RawOptions {
                    transport: world::TransportKind::Direct,
                    amqp_url: None,
                    store: world::StoreKind::Sqlite,
                    database_url: None,
                    movements: None,
                    keep_running: false,
                    seed: 2026,
                    certs: certs.clone(),
                    step_timeout: 30,
                    concurrency: 1,
                })?;
                let world = World::start(&options).await?;
                let http = http_client(&world.ca_pem)?;
                environment.push((
                    "target".into(),
                    "a CATS started by the kit: hub and KZ, AZ, GE nodes in one process".into(),
                ));
                environment.push(("store".into(), options.store_label().into()));
                environment.push(("transport".into(), options.transport_label().into()));
                for n in &world.running {
                    environment.push((
                        format!("node {}", n.country),
                        format!("https://localhost:{}", n.api.port()),
                    ));
                }
                let hub = Some(format!("http://{}", world.hub_api()));
                environment.push(("hub".into(), format!("http://{}", world.hub_api())));
                let hub_token = Some(world.hub_operator_token.clone());
                Ok(HttpTarget {
                    nodes: world.nodes.clone(),
                    hub,
                    hub_token,
                    http,
                    world: Some(tokio::sync::Mutex::new(world)),
                    environment,
                    link,
                    link_hub,
                    link_hub_token,
                    link_hub_running,
                })
            }
            TargetSpec::Remote {
                nodes: remote,
                hub,
                hub_token,
                ca,
                link,
            } => {
                let ca_pem =
                    std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
                let http = http_client(&ca_pem)?;
                let mut nodes = Nodes::default();
                for n in remote {
                    let client = NodeClient::new(
                        &n.country,
                        n.url.clone(),
                        n.national_token,
                        n.officer_token,
                        http.clone(),
                    );
                    // Follow the stream from its head: only what this run causes is awaited.
                    let head = stream_head(&client)
                        .await
                        .with_context(|| format!("the {} node at {}", n.country, n.url))?;
                    let stream = Stream::follow(&client, head);
                    nodes
                        .0
                        .insert(n.country.clone(), NodeHandle { client, stream });
                    environment.push((format!("node {}", n.country), n.url));
                }
                environment.push(("CA".into(), ca.display().to_string()));
                if let Some(h) = &hub {
                    environment.push(("hub".into(), h.clone()));
                }
                let link = match link {
                    Some(options) => {
                        let link = HubLink::connect(&options, Duration::from_secs(15))
                            .await
                            .map_err(|e| anyhow::anyhow!("--hub-link {}: {e}", options.addr))?;
                        environment.push((
                            "hub link".into(),
                            format!(
                                "{} (TLS name {}), the kit playing {} from {}",
                                options.addr,
                                options.server_name,
                                link.countries().join(", "),
                                options.certs.display()
                            ),
                        ));
                        Some(link)
                    }
                    None => None,
                };
                Ok(HttpTarget {
                    nodes,
                    link_hub: hub.clone(),
                    link_hub_token: hub_token.clone(),
                    hub,
                    hub_token,
                    http,
                    world: None,
                    environment,
                    link,
                    link_hub_running: None,
                })
            }
        }
    }

    async fn stop(self) {
        if let Some(link) = self.link {
            link.close().await;
        }
        if let Some(world) = self.world {
            world.into_inner().stop().await;
        }
        if let Some(hub) = self.link_hub_running {
            hub.stop().await;
        }
    }

    fn node(&self, country: &str) -> Result<&NodeHandle, DriverError> {
        self.nodes
            .0
            .get(country)
            .ok_or_else(|| DriverError(format!("this target has no {country} node")))
    }
}

/// The cursor of the last message on a node's stream.
async fn stream_head(client: &NodeClient) -> anyhow::Result<i64> {
    let mut after = 0;
    loop {
        let (items, next) = client.pull(after, 1000).await?;
        if items.is_empty() || next <= after {
            return Ok(after);
        }
        after = next;
    }
}

fn failed(e: anyhow::Error) -> DriverError {
    DriverError(format!("{e:#}"))
}

impl Driver for HttpTarget {
    fn countries(&self) -> Vec<String> {
        self.nodes.0.keys().cloned().collect()
    }

    fn can_restart(&self) -> bool {
        self.world.is_some()
    }

    fn has_hub(&self) -> bool {
        self.hub.is_some() || self.link_hub.is_some()
    }

    fn environment(&self) -> Vec<(String, String)> {
        self.environment.clone()
    }

    async fn submit(&self, country: &str, xml: String) -> Result<Reply, DriverError> {
        let node = self.node(country)?;
        let r = node.client.submit(xml).await.map_err(failed)?;
        Ok(Reply {
            status: r.status,
            message_type: r.message_type,
            mrn: r.mrn,
            lrn: r.lrn,
            body: r.body,
        })
    }

    async fn expect(
        &self,
        country: &str,
        key: &str,
        message_type: &str,
        within: Duration,
    ) -> Result<Received, DriverError> {
        let node = self.node(country)?;
        match node.stream.wait(key, message_type, within).await {
            Ok(item) => Ok(Received {
                message_type: item.message_type.clone(),
                xml: item.xml.clone(),
            }),
            Err(e) => {
                let came: Vec<String> = node
                    .stream
                    .items(key)
                    .iter()
                    .map(|i| i.message_type.clone())
                    .collect();
                Err(DriverError(format!(
                    "{} came for {key} ({e:#})",
                    if came.is_empty() {
                        "nothing".to_owned()
                    } else {
                        came.join(", ")
                    }
                )))
            }
        }
    }

    async fn act(
        &self,
        country: &str,
        action: serde_json::Value,
    ) -> Result<Result<serde_json::Value, Refusal>, DriverError> {
        let node = self.node(country)?;
        Ok(node
            .client
            .act(action)
            .await
            .map_err(failed)?
            .map_err(|r| Refusal {
                status: r.status,
                code: r.code,
                message: r.message,
            }))
    }

    async fn movement(
        &self,
        country: &str,
        mrn: &str,
    ) -> Result<Option<serde_json::Value>, DriverError> {
        let node = self.node(country)?;
        let url = format!("{}/api/v1/movements/{mrn}", node.client.base);
        get_json(&self.http, &url, Some(&node.client.officer_token)).await
    }

    async fn hub_movement(&self, mrn: &str) -> Result<Option<serde_json::Value>, DriverError> {
        let hub = self
            .hub
            .as_deref()
            .ok_or_else(|| DriverError("no hub API given (--hub)".into()))?;
        get_json(
            &self.http,
            &format!("{hub}/api/v1/movements/{mrn}"),
            self.hub_token.as_deref(),
        )
        .await
    }

    fn link_countries(&self) -> Vec<String> {
        self.link
            .as_ref()
            .map(HubLink::countries)
            .unwrap_or_default()
    }

    async fn hub_send(&self, request: HubSendRequest) -> Result<Vec<u8>, DriverError> {
        match &self.link {
            Some(link) => link.send(request).await,
            None => Err(DriverError("no link to the hub (--hub-link)".into())),
        }
    }

    async fn hub_wait(
        &self,
        country: &str,
        filter: &HubFilter,
        skip: usize,
        within: Duration,
    ) -> Result<Option<Delivered>, DriverError> {
        match &self.link {
            Some(link) => link.wait(country, filter, skip, within).await,
            None => Err(DriverError("no link to the hub (--hub-link)".into())),
        }
    }

    fn hub_delivered(&self, country: &str) -> Vec<Delivered> {
        self.link
            .as_ref()
            .map(|l| l.delivered(country))
            .unwrap_or_default()
    }

    async fn link_hub_movement(&self, mrn: &str) -> Result<Option<serde_json::Value>, DriverError> {
        let hub = self
            .link_hub
            .as_deref()
            .ok_or_else(|| DriverError("no hub API given (--hub)".into()))?;
        get_json(
            &self.http,
            &format!("{hub}/api/v1/movements/{mrn}"),
            self.link_hub_token.as_deref(),
        )
        .await
    }

    async fn restart(&self, country: &str) -> Result<(), DriverError> {
        let Some(world) = &self.world else {
            return Err(DriverError(
                "only a CATS started with --target self can be restarted".into(),
            ));
        };
        let mut world = world.lock().await;
        let node = world
            .running
            .iter_mut()
            .find(|n| n.country == country)
            .ok_or_else(|| DriverError(format!("no {country} node")))?;
        node.restart().await.map_err(failed)
    }
}

async fn get_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<Option<serde_json::Value>, DriverError> {
    let mut request = http.get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request
        .send()
        .await
        .map_err(|e| DriverError(format!("GET {url}: {e}")))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| DriverError(format!("GET {url}: {e}")))?;
    match status {
        404 => Ok(None),
        200 => serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| DriverError(format!("GET {url}: not JSON: {e}"))),
        401 if token.is_none() => Err(DriverError(format!(
            "GET {url}: 401 {body}: pass the hub's token with --hub-token or CATS_HUB_TOKEN"
        ))),
        s => Err(DriverError(format!("GET {url}: {s} {body}"))),
    }
}

fn record_case(
    from: &str,
    mrn: &str,
    country: Option<String>,
    sent: Option<&Path>,
    ca: &Path,
    token: &str,
    out_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let country = match country {
        Some(c) => c.to_ascii_uppercase(),
        None => mrn
            .get(2..4)
            .map(str::to_owned)
            .context("--mrn is too short to hold a country; give --country")?,
    };
    if out_dir.exists() {
        bail!(
            "{} exists: record writes a new case directory",
            out_dir.display()
        );
    }
    let mut sent_messages = Vec::new();
    if let Some(dir) = sent {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        for f in files {
            let xml =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            let ty = cats_conformance::pointer::parse(&xml)
                .map(|r| r.name)
                .with_context(|| format!("{}: not XML", f.display()))?;
            sent_messages.push((ty, xml));
        }
    }
    let ca_pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let http = http_client(&ca_pem)?;
    let base = from.trim_end_matches('/').to_owned();
    let client = NodeClient::new(
        &country,
        base.clone(),
        token.to_owned(),
        token.to_owned(),
        http.clone(),
    );
    let recorded = runtime()?.block_on(async {
        let url = format!("{base}/api/v1/movements/{mrn}");
        let view = get_json(&http, &url, Some(token))
            .await
            .map_err(|e| anyhow::anyhow!(e))?
            .with_context(|| format!("the node at {base} does not hold movement {mrn}"))?;
        let lrn = view.get("lrn").and_then(|v| v.as_str()).map(str::to_owned);
        let history: Vec<record::HistoryEntry> =
            serde_json::from_value(view.get("history").cloned().unwrap_or_default())
                .context("the movement's history")?;
        let phases = view
            .get("offices")
            .and_then(|o| o.as_array())
            .map(|offices| {
                offices
                    .iter()
                    .filter_map(|o| {
                        Some((
                            o.get("office")?.as_str()?.to_owned(),
                            o.get("role")?.as_str()?.to_owned(),
                            o.get("phase")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // What the national system sent: the node's own copies, unless the caller gave theirs.
        let sent = if sent_messages.is_empty() {
            let url = format!("{base}/api/v1/movements/{mrn}/messages");
            let answer = get_json(&http, &url, Some(token))
                .await
                .map_err(|e| anyhow::anyhow!(e))?
                .with_context(|| format!("the node at {base} has no messages for {mrn}"))?;
            answer
                .get("messages")
                .and_then(|m| m.as_array())
                .with_context(|| format!("GET {url}: no `messages` array"))?
                .iter()
                .map(|m| {
                    let field = |k: &str| {
                        m.get(k)
                            .and_then(|v| v.as_str())
                            .map(str::to_owned)
                            .with_context(|| format!("GET {url}: a message without `{k}`"))
                    };
                    Ok((field("messageType")?, field("xml")?))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            sent_messages
        };
        let mut stream = Vec::new();
        let mut after = 0;
        loop {
            let (items, next) = client.pull(after, 1000).await?;
            if items.is_empty() || next <= after {
                break;
            }
            for i in items {
                let ours = i.mrn.as_deref() == Some(mrn)
                    || (lrn.is_some() && i.lrn.as_deref() == lrn.as_deref() && i.mrn.is_none());
                if ours {
                    stream.push((i.message_type, i.xml));
                }
            }
            after = next;
        }
        Ok::<_, anyhow::Error>(record::Recording {
            country: country.clone(),
            mrn: mrn.to_owned(),
            lrn,
            history,
            stream,
            phases,
            sent,
        })
    })?;
    let case = record::record(&recorded)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    std::fs::write(out_dir.join("case.toml"), &case.manifest)?;
    for (name, text) in &case.files {
        std::fs::write(out_dir.join(name), text)?;
    }
    println!(
        "recorded movement {mrn} from the {country} node into {} ({} files)",
        out_dir.display(),
        case.files.len() + 1
    );
    Ok(ExitCode::SUCCESS)
}
