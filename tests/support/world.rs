//! What the end-to-end test binaries share (`tests/journey.rs`, `tests/reconcile.rs`): the hub
//! and the KZ, AZ and GE nodes started as `cats demo` starts them, on either transport, and the
//! binary's own RabbitMQ node. Each binary includes this file (`#[path]`) beside its `demo`
//! module and names its broker's ports.

use std::time::Duration;

use crate::demo::world::{Options, RawOptions, StoreKind, TransportKind, World};

/// A running world and what must live as long as it.
pub struct Setup {
    /// The hub and the three nodes.
    pub world: World,
    _certs: tempfile::TempDir,
    _broker: Option<tokio::sync::SemaphorePermit<'static>>,
}

/// The hub and the three nodes on `transport`; `None` when AMQP is asked for and no broker
/// can be started (outside CI only: under `CI=true` that fails the test).
pub async fn setup(
    transport: TransportKind,
    broker: &amqp::Spec,
    seed: u64,
    step: Duration,
) -> Option<Setup> {
    let certs = tempfile::tempdir().expect("tempdir");
    let (pki, amqp_url, permit) = match transport {
        TransportKind::Direct => (certs.path().join("dev"), None, None),
        TransportKind::Amqp => {
            let broker = amqp::broker(broker)?;
            let permit = amqp::exclusive(broker).await;
            (
                broker.certs.clone(),
                Some(format!("amqps://localhost:{}/cats", broker.port)),
                Some(permit),
            )
        }
    };
    let raw = RawOptions {
        transport,
        amqp_url,
        store: StoreKind::Sqlite,
        database_url: None,
        movements: None,
        keep_running: false,
        seed,
        certs: pki,
        step_timeout: step.as_secs(),
        concurrency: 1,
    };
    let options = Options::resolve(&raw).expect("options");
    let world = World::start(&options).await.expect("the world starts");
    Some(Setup {
        world,
        _certs: certs,
        _broker: permit,
    })
}

/// The project's TLS RabbitMQ node for one test binary, started by
/// `deploy/rabbitmq/start-node.sh` on that binary's own ports (as transport-amqp/tests/amqp.rs
/// does), with the PKI the world uses.
pub mod amqp {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use cats_transport_amqp::lapin::options::QueuePurgeOptions;
    use cats_transport_amqp::{AmqpConfig, TlsIdentity, raw_connection};
    use message_catalog::ids::CountryCode;

    /// A test binary's broker: its name (node `cats-<name>@localhost`, state under
    /// `$TMPDIR/cats-<name>-test`) and its ports.
    #[derive(Debug)]
    pub struct Spec {
        /// The binary's name.
        pub name: &'static str,
        /// AMQPS.
        pub port: u16,
        /// Management (HTTP).
        pub management_port: u16,
        /// Erlang distribution.
        pub dist_port: u16,
    }

    #[derive(Debug)]
    pub struct Broker {
        pub certs: PathBuf,
        pub port: u16,
        state: PathBuf,
        node_name: String,
    }

    fn start(spec: &Spec) -> Result<Broker, String> {
        let root = std::env::temp_dir().join(format!("cats-{}-test", spec.name));
        let broker = Broker {
            certs: root.join("certs"),
            port: spec.port,
            state: root.join("rabbitmq"),
            node_name: format!("cats-{}@localhost", spec.name),
        };
        cats_trust::pki::DevPki::init(
            &broker.certs,
            &[CountryCode::KZ, CountryCode::AZ, CountryCode::GE],
            false,
        )
        .map_err(|e| format!("cannot create the test PKI: {e}"))?;
        let output = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rabbitmq/start-node.sh"),
        )
        .env("CATS_RABBITMQ_NODE_NAME", &broker.node_name)
        .env("CATS_RABBITMQ_AMQPS_PORT", broker.port.to_string())
        .env(
            "CATS_RABBITMQ_MANAGEMENT_PORT",
            spec.management_port.to_string(),
        )
        .env("CATS_RABBITMQ_DIST_PORT", spec.dist_port.to_string())
        .arg("--state")
        .arg(&broker.state)
        .arg("--certs")
        .arg(&broker.certs)
        .output()
        .map_err(|e| format!("cannot run start-node.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "start-node.sh failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(broker)
    }

    /// Starts the broker once per test binary (each binary has one `spec`).
    pub fn broker(spec: &Spec) -> Option<&'static Broker> {
        static BROKER: OnceLock<Option<Broker>> = OnceLock::new();
        BROKER
            .get_or_init(|| match start(spec) {
                Ok(b) => Some(b),
                Err(e) => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "RabbitMQ is required under CI=true: {e}"
                    );
                    eprintln!("\n!!!!! SKIPPED: no RabbitMQ for the AMQP cases: {e}\n");
                    None
                }
            })
            .as_ref()
    }

    fn consumers(broker: &Broker) -> Option<u64> {
        let ctl = std::fs::read_dir("/usr/lib/rabbitmq/lib")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("sbin/rabbitmqctl"))
            .find(|p| p.exists())?;
        let output = Command::new(ctl)
            .env("HOME", &broker.state)
            .args([
                "-q",
                "-n",
                &broker.node_name,
                "list_queues",
                "-p",
                "cats",
                "consumers",
            ])
            .output()
            .ok()?;
        output.status.success().then(|| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .sum()
        })
    }

    /// The cases share the broker's queues: one at a time, from empty queues, with no
    /// consumer of the previous one left.
    pub async fn exclusive(broker: &Broker) -> tokio::sync::SemaphorePermit<'static> {
        static LOCK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let permit = LOCK.acquire().await.expect("never closed");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && consumers(broker).is_some_and(|n| n > 0) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let party = |name: &str| {
            let tls = TlsIdentity::from_pki_dir(&broker.certs, name).expect("the test PKI");
            AmqpConfig::new("localhost", broker.port, tls)
        };
        let hub = party("hub-client");
        purge(&hub, "cats.hub.in").await;
        for c in ["KZ", "AZ", "GE"] {
            purge(
                &party(&format!("node-{}", c.to_ascii_lowercase())),
                &format!("cats.node.{c}"),
            )
            .await;
        }
        permit
    }

    /// Empties `queue` if it exists (the transports declare it on their first connection).
    async fn purge(config: &AmqpConfig, queue: &str) {
        let Ok(connection) = raw_connection(config, "test-purge").await else {
            return;
        };
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_purge(queue.into(), QueuePurgeOptions::default())
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}
