//! Configuration in two stages, and the entry points of `cats hub`.
//!
//! 1. [`RawConfig`]: what the TOML file says, overridden by environment variables
//!    `CATS_HUB__<SECTION>__<KEY>` (e.g. `CATS_HUB__STORE__URL`), unknown keys refused. Every key
//!    and its default is documented in `deploy/hub.example.toml`.
//! 2. [`ResolvedConfig`]: certificates and keys loaded, addresses parsed, reference data read.
//!
//! [`start`] binds the direct link and the HTTP API and starts the pipeline; [`run`] does the
//! same and waits for the shutdown signal; [`verify_journal`] walks the journal's hash chain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cats_transport::direct::{DirectHub, HubTls, LinkConfig};
use cats_transport::shutdown::Shutdown;
use cats_trust::{Signer, TrustStore, Verifier};
use message_catalog::codec::Limits;
use message_catalog::reference::ReferenceData;
use serde::{Deserialize, Serialize};

use crate::http::{ApiState, router};
use crate::journal::{self, VerifiedChain, VerifyError};
use crate::metrics::Metrics;
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
    /// `direct` (the only one [`run`] wires so far).
    pub kind: String,
    /// Address the direct mTLS link listens on.
    pub listen: String,
}

impl Default for RawTransport {
    fn default() -> Self {
        RawTransport {
            kind: "direct".into(),
            listen: "0.0.0.0:7443".into(),
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
}

impl Default for RawMessages {
    fn default() -> Self {
        RawMessages {
            freshness_seconds: 300,
            max_bytes: Limits::default().max_bytes,
            reference_data: PathBuf::new(),
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
}

/// The configuration with everything loaded (stage 2).
#[derive(Debug)]
pub struct ResolvedConfig {
    /// Store URL.
    pub store_url: String,
    /// HTTP API address.
    pub http_listen: SocketAddr,
    /// Direct link address.
    pub direct_listen: SocketAddr,
    /// The direct link's TLS material.
    pub tls: HubTls,
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
        if self.transport.kind != "direct" {
            return Err(HubError::Invalid(format!(
                "transport.kind {:?}: only \"direct\" is wired in the hub so far",
                self.transport.kind
            )));
        }
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
        let tls = HubTls::from_files(
            &path(&c.ca),
            allow_list.as_deref(),
            &path(&c.server_cert),
            &path(&c.server_key),
        )
        .map_err(|e| HubError::Certs(e.to_string()))?;
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
        Ok(ResolvedConfig {
            store_url: self.store.url,
            http_listen: addr("http.listen", &self.http.listen)?,
            direct_listen: addr("transport.listen", &self.transport.listen)?,
            tls,
            trust,
            signer,
            freshness: Duration::from_secs(self.messages.freshness_seconds),
            limits: Limits {
                max_bytes: self.messages.max_bytes,
                ..Limits::default()
            },
            reference,
        })
    }
}

/// A started hub.
#[derive(Debug)]
pub struct RunningHub {
    /// Where the direct link listens.
    pub direct_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The pipeline's services (store, metrics).
    pub services: Arc<HubServices>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningHub {
    /// Waits until the hub has stopped (after the shutdown signal).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Binds the direct link and the HTTP API and starts the pipeline; everything stops when
/// `shutdown` fires.
pub async fn start(config: ResolvedConfig, shutdown: Shutdown) -> Result<RunningHub, HubError> {
    let transport_store = cats_transport::store::Store::connect(&config.store_url)
        .await
        .map_err(|e| HubError::Transport(e.to_string()))?;
    let store = HubStore::connect(&config.store_url).await?;
    crate::guarantee::register(&store, &config.reference).await?;
    let direct = Arc::new(
        DirectHub::bind(
            config.direct_listen,
            config.tls,
            transport_store,
            LinkConfig::default(),
        )
        .await
        .map_err(|e| HubError::Transport(e.to_string()))?,
    );
    let metrics = Arc::new(Metrics::new());
    let services = Arc::new(HubServices {
        store: store.clone(),
        verifier: Verifier::new(config.trust, config.freshness),
        signer: config.signer,
        reference: config.reference,
        metrics: metrics.clone(),
        limits: config.limits,
    });
    let listener = tokio::net::TcpListener::bind(config.http_listen).await?;
    let http_addr = listener.local_addr()?;
    let direct_addr = direct.local_addr();
    let pipeline = Pipeline::new(direct.clone(), services.clone());
    let app = router(ApiState { store, metrics });
    let mut http_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let http = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_shutdown.wait().await });
        let (_, served) = tokio::join!(pipeline.run(shutdown), http);
        if let Err(e) = served {
            tracing::warn!(error = %e, "HTTP server stopped");
        }
        direct.shutdown().await;
    });
    tracing::info!(%direct_addr, %http_addr, "hub started");
    Ok(RunningHub {
        direct_addr,
        http_addr,
        services,
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
    fn error_codes_are_stable() {
        assert_eq!(HubError::Read("x".into()).code(), "config.read");
        assert_eq!(HubError::Invalid("x".into()).code(), "config.invalid");
        assert_eq!(HubError::Certs("x".into()).code(), "config.certs");
    }
}
