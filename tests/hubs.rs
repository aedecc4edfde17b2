//! Two `cats hub` processes share one RabbitMQ and one PostgreSQL journal, as they would in
//! production: the real binary, started with `cats hub --config FILE`, stopped with SIGTERM,
//! killed with SIGKILL.
//!
//! The hub's inbound queue has 4 partitions (`cats.hub.in`, `cats.hub.in.1` … `.3`, fed by the
//! consistent-hash exchange on the MRN, each with a single active consumer). Hub A prefers
//! partitions 0 and 1, hub B 2 and 3; each stands by on the others. Three node identities send
//! many movements, each in life-cycle order (`hub/tests/support/movements.rs`, shared with
//! `hub/tests/scale.rs`, which runs two hubs inside one process).
//!
//! - [`two_hub_processes_share_the_partitions`]: every message journalled once and accepted,
//!   each movement in send order, both processes worked (their `/metrics`), each routed message
//!   reached its recipient, `GET /api/v1/queues` of each process lists the four partitions with
//!   its preferred ones and the ones it is the active consumer of, `cats hub verify-journal`
//!   passes, and SIGTERM stops each process cleanly.
//! - [`a_killed_hub_process_is_replaced_by_the_other_and_rejoins`]: while traffic flows, hub B
//!   is killed with SIGKILL; hub A takes over B's partitions (its standby consumers become
//!   active) and finishes, the redelivered messages B had journalled but not acknowledged are
//!   absorbed by the duplicate check (every message still journalled once, in order). B is
//!   started again and rejoins behind A; once A is stopped, B becomes the active consumer of
//!   every partition and processes new movements.
//!
//! This binary's RabbitMQ node: ports 26719 / 15689 / 25689, node `cats-hubs@localhost`, state
//! under `$TMPDIR/cats-hubs-test`, a `monitoring` user for the management API. Each case has its
//! own PostgreSQL database (`CATS_TEST_POSTGRES`). Under `CI=true` a missing RabbitMQ or
//! PostgreSQL fails the test; otherwise it is skipped loudly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cats_hub::client::HttpBase;
use cats_hub::journal;
use cats_hub::operations::{QueueStatus, QueuesReport};
use cats_hub::store::HubStore;
use cats_transport::contract::{CountryCode, Transport};
use cats_transport_amqp::lapin::options::QueuePurgeOptions;
use cats_transport_amqp::{AmqpConfig, TlsIdentity, raw_connection, topology};
use cats_trust::pki::{DevPki, DevPkiFiles};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};

#[path = "../hub/tests/support/movements.rs"]
mod movements;

use movements::{COUNTRIES, Senders};

const PORT: u16 = 26719;
const MANAGEMENT_PORT: u16 = 15689;
const DIST_PORT: u16 = 25689;
const NODE_NAME: &str = "cats-hubs@localhost";
const MONITOR_USER: &str = "cats-monitor";
const MONITOR_PASSWORD: &str = "cats-monitor-hubs-test";
const PARTITIONS: u16 = 4;
/// How long a hub waits before standing by on the partitions it does not prefer: longer than
/// it takes to start the other process, so that each becomes active on its own partitions.
const STANDBY_DELAY_MS: u64 = 8_000;
/// Generous: the machine may be shared and loaded.
const DEADLINE: Duration = Duration::from_secs(300);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

// ------------------------------------------------------------------------------ services

/// This binary's RabbitMQ node.
struct Broker {
    certs: PathBuf,
    state: PathBuf,
    files: DevPkiFiles,
}

fn rabbitmqctl() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/rabbitmq/lib")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("sbin/rabbitmqctl"))
        .find(|p| p.exists())
}

impl Broker {
    fn start() -> Result<Broker, String> {
        let root = std::env::temp_dir().join("cats-hubs-test");
        let certs = root.join("certs");
        let files = DevPki::init(&certs, &COUNTRIES, false)
            .map_err(|e| format!("cannot create the test PKI: {e}"))?;
        let broker = Broker {
            certs,
            state: root.join("rabbitmq"),
            files,
        };
        // A node left running by an earlier run is stopped first, so each run starts a fresh
        // one: RabbitMQ 3.10's management API can keep answering HTTP 500 (`badkey` in
        // `rabbit_mgmt_db:list_queue_stats`) for a quorum queue deleted and declared again by
        // an earlier run, and every queue report then fails. (Not running: nothing to stop.)
        // With its pid file, `stop` returns once the node's process has exited.
        let pid_file = broker.state.join(format!("{NODE_NAME}.pid"));
        let _ = broker.ctl(&["stop", &pid_file.to_string_lossy()]);
        let output = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rabbitmq/start-node.sh"),
        )
        .env("CATS_RABBITMQ_NODE_NAME", NODE_NAME)
        .env("CATS_RABBITMQ_AMQPS_PORT", PORT.to_string())
        .env("CATS_RABBITMQ_MANAGEMENT_PORT", MANAGEMENT_PORT.to_string())
        .env("CATS_RABBITMQ_DIST_PORT", DIST_PORT.to_string())
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
        // The management API needs a user with a password (the CATS users have certificates).
        for args in [
            vec!["add_user", MONITOR_USER, MONITOR_PASSWORD],
            vec!["set_user_tags", MONITOR_USER, "monitoring"],
            vec![
                "set_permissions",
                "-p",
                "cats",
                MONITOR_USER,
                "^$",
                "^$",
                "^$",
            ],
        ] {
            // add_user fails when the user is left from an earlier run: that is fine.
            let _ = broker.ctl(&args);
        }
        broker
            .ctl(&["list_users"])
            .filter(|out| out.contains(MONITOR_USER))
            .ok_or("the monitoring user could not be created")?;
        Ok(broker)
    }

    fn ctl(&self, args: &[&str]) -> Option<String> {
        // Under `timeout`: a node that does not answer (or a `stop` that waits for a process
        // that never exits) fails the call instead of holding the test.
        let output = Command::new("timeout")
            .arg("120")
            .arg(rabbitmqctl()?)
            .env("HOME", &self.state)
            .args(["-q", "-n", NODE_NAME])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Consumers on the `cats` queues (`None` if the node cannot be asked).
    fn consumers(&self) -> Option<u64> {
        Some(
            self.ctl(&["list_queues", "-p", "cats", "consumers"])?
                .lines()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .sum(),
        )
    }

    fn amqp(&self, party: &str) -> AmqpConfig {
        let tls = TlsIdentity::from_pki_dir(&self.certs, party).expect("the test PKI exists");
        let mut config = AmqpConfig::new("localhost", PORT, tls);
        config.operation_timeout = Duration::from_secs(20);
        config.connect_timeout = Duration::from_secs(10);
        config.reconnect_max = Duration::from_secs(1);
        config
    }
}

fn broker() -> Option<&'static Broker> {
    static BROKER: OnceLock<Option<Broker>> = OnceLock::new();
    BROKER
        .get_or_init(|| match Broker::start() {
            Ok(b) => Some(b),
            Err(e) => {
                assert!(!in_ci(), "RabbitMQ is required under CI=true: {e}");
                eprintln!("\n!!!!! SKIPPED: no RabbitMQ for the two-hub tests: {e}\n");
                None
            }
        })
        .as_ref()
}

/// The cases share the broker's queues: one at a time, from empty queues, with no consumer of
/// the previous case left.
async fn exclusive(broker: &Broker) -> tokio::sync::SemaphorePermit<'static> {
    static LOCK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let permit = LOCK.acquire().await.expect("never closed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && broker.consumers().is_some_and(|n| n > 0) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hub = broker.amqp("hub-client");
    let mut queues: Vec<(AmqpConfig, String)> = (0..PARTITIONS)
        .map(|p| (hub.clone(), topology::hub_partition_queue(p)))
        .collect();
    queues.push((hub.clone(), topology::dead_letter_queue("cats.hub.in")));
    for c in COUNTRIES {
        let node = broker.amqp(&format!("node-{}", c.as_str().to_ascii_lowercase()));
        queues.push((node, format!("cats.node.{c}")));
    }
    for (config, queue) in queues {
        // A queue that does not exist yet (first run) is fine.
        let Ok(connection) = raw_connection(&config, "test-purge").await else {
            continue;
        };
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
    permit
}

/// A fresh PostgreSQL database for one case, or `None` (skipped loudly; a failure in CI).
async fn postgres_url() -> Option<String> {
    let base = std::env::var("CATS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) => {
            assert!(!in_ci(), "PostgreSQL at {base} is unreachable in CI: {e}");
            eprintln!("\n!!!!! SKIPPED: PostgreSQL at {base} is unreachable ({e}) !!!!!\n");
            return None;
        }
    };
    let name = format!("cats_hubs_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create database");
    let i = base.rfind('/').expect("database URL has a path");
    Some(format!("{}/{name}", &base[..i]))
}

// ------------------------------------------------------------------------------ hub processes

/// One `cats hub --config FILE` child process.
struct HubProcess {
    name: &'static str,
    child: tokio::process::Child,
    /// Its HTTP API, as it printed it.
    http: String,
    /// An operator's bearer token for the API (`cats hub issue-credential`).
    token: String,
    log: PathBuf,
}

/// Writes hub `name`'s configuration (in `dir`): AMQP with the test PKI, the PostgreSQL store
/// `url`, 4 partitions, `preferred` first, the management API, an HTTP port of its choosing.
fn write_config(dir: &Path, name: &str, broker: &Broker, url: &str, preferred: &str) -> PathBuf {
    let text = format!(
        r#"[store]
url = "{url}"

[http]
listen = "127.0.0.1:0"

[transport]
kind = "amqp"

[transport.amqp]
url = "amqps://localhost:{PORT}/cats"
prefetch = 32
operation_timeout_ms = 20000
reconnect_max_ms = 1000
management_url = "http://127.0.0.1:{MANAGEMENT_PORT}"
management_user = "{MONITOR_USER}"
management_password = "{MONITOR_PASSWORD}"
partitions = {PARTITIONS}
preferred_partitions = "{preferred}"
standby_delay_ms = {STANDBY_DELAY_MS}

[certs]
dir = "{certs}"

[messages]
lanes = 4

[operations]
sample_interval_ms = 500
"#,
        certs = broker.certs.display()
    );
    let file = dir.join(format!("hub-{name}.toml"));
    std::fs::write(&file, text).expect("write the hub's configuration");
    file
}

impl HubProcess {
    /// Starts `cats hub --config config` and waits until it prints where its API listens.
    async fn start(name: &'static str, config: &Path, dir: &Path) -> HubProcess {
        step(&format!("starting hub {name}"));
        let log = dir.join(format!("hub-{name}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the log");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cats"))
            .arg("hub")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,cats_hub=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("cats hub starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let read = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(url) = line.strip_prefix("hub listening: AMQP, HTTP API ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await;
        let Ok(Some(http)) = read else {
            panic!(
                "hub {name} did not say where it listens ({read:?}); its log:\n{}",
                tail(&log)
            );
        };
        // The rest of stdout is not needed, but must be read so the process never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let issued = tokio::process::Command::new(env!("CARGO_BIN_EXE_cats"))
            .arg("hub")
            .arg("--config")
            .arg(config)
            .args(["issue-credential", "--operator", "hubs-test"])
            .output()
            .await
            .expect("cats hub issue-credential runs");
        assert!(
            issued.status.success(),
            "{}",
            String::from_utf8_lossy(&issued.stderr)
        );
        let token = String::from_utf8_lossy(&issued.stdout).trim().to_owned();
        let hub = HubProcess {
            name,
            child,
            http,
            token,
            log,
        };
        hub.until_ready().await;
        hub
    }

    /// `GET path` on the hub's HTTP API: the status and the body. (The one place that talks to
    /// the API: a bearer token, when the API asks for one, goes here.)
    async fn api(&self, path: &str) -> Result<(u16, String), String> {
        let base = HttpBase::parse(&self.http).map_err(|e| e.to_string())?;
        let auth = format!("Bearer {}", self.token);
        let (status, body) = base
            .request("GET", path, Some(&auth), None, Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.api("/readyz").await;
            if matches!(answer, Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hub {} is not ready: {answer:?}; its log:\n{}",
                self.name,
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn queues(&self) -> Result<QueuesReport, String> {
        let (status, body) = self.api("/api/v1/queues").await?;
        if status != 200 {
            return Err(format!("HTTP {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    /// The first queue report of this hub that satisfies `ok` (fails after a minute).
    async fn queues_until(&self, what: &str, ok: impl Fn(&QueuesReport) -> bool) -> QueuesReport {
        step(&format!("hub {}: waiting until {what}", self.name));
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let report = self.queues().await;
            if let Ok(r) = &report
                && ok(r)
            {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "hub {}: {what}: never; last report {report:#?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deliveries this process received from the nodes (`cats_hub_messages_in_total`, over
    /// every type and country).
    async fn messages_in(&self) -> u64 {
        self.counter("cats_hub_messages_in_total").await
    }

    /// The sum of the counter `name` of `/metrics` over all its labels.
    async fn counter(&self, name: &str) -> u64 {
        let (status, text) = self.api("/metrics").await.expect("GET /metrics");
        assert_eq!(status, 200, "{text}");
        let prefix = format!("{name}{{");
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    /// SIGTERM, and the exit status (fails if it takes longer than 30 s).
    async fn terminate(mut self) -> ExitStatus {
        step(&format!("stopping hub {} with SIGTERM", self.name));
        let pid = self.child.id().expect("the process is running");
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to hub {}", self.name);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!(
                "hub {} did not stop within 30 s of SIGTERM; its log:\n{}",
                self.name,
                tail(&self.log)
            ),
        }
    }

    /// SIGKILL: gone at once, nothing cleaned up.
    async fn kill(mut self) {
        step(&format!("killing hub {}", self.name));
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("wait");
        assert!(!status.success(), "a killed process does not succeed");
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- hub {} log -----\n{}", self.name, tail(&self.log));
        }
    }
}

/// The last lines of a log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Partition `p` of a report.
fn partition(report: &QueuesReport, p: u16) -> Option<&QueueStatus> {
    report.queues.iter().find(|q| q.partition == Some(p))
}

/// Whether the report lists every partition, each with two consumers (one hub active, the
/// other standing by), and this hub active exactly on `active_here`.
fn settled(report: &QueuesReport, active_here: &[u16]) -> bool {
    (0..PARTITIONS).all(|p| {
        partition(report, p).is_some_and(|q| {
            q.consumers == Some(2)
                && q.active_here == Some(active_here.contains(&p))
                && q.active_consumer.is_some()
        })
    })
}

/// Reads the node links' deliveries (what the hubs routed), acknowledging each; counts them per
/// recipient and message identification.
type Routed = Arc<Mutex<BTreeMap<(CountryCode, String), usize>>>;

fn collect_routed(senders: &Arc<Senders>) -> Routed {
    let routed: Routed = Arc::default();
    for c in COUNTRIES {
        let (senders, routed) = (senders.clone(), routed.clone());
        tokio::spawn(async move {
            while let Ok(d) = senders.links[&c].receive().await {
                let id = d.message_id.clone();
                if d.ack().await.is_ok() {
                    *routed
                        .lock()
                        .expect("not poisoned")
                        .entry((c, id))
                        .or_default() += 1;
                }
            }
        });
    }
    routed
}

/// Waits until every message of `mrns` reached its recipient at least once; returns how many
/// reached it more than once (allowed after a failover: at-least-once delivery).
async fn until_routed(routed: &Routed, run: &str, mrns: &[String]) -> usize {
    let expected: BTreeSet<(CountryCode, String)> = mrns
        .iter()
        .flat_map(|mrn| movements::life_cycle(run, mrn))
        .map(|step| (step.to, step.id))
        .collect();
    step(&format!(
        "waiting until {} messages reach their recipients",
        expected.len()
    ));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (missing, twice) = {
            let got = routed.lock().expect("not poisoned");
            (
                expected.iter().filter(|k| !got.contains_key(*k)).count(),
                expected
                    .iter()
                    .filter(|k| got.get(*k).is_some_and(|n| *n > 1))
                    .count(),
            )
        };
        if missing == 0 {
            return twice;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} routed messages never reached their recipient",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the journal holds `expected` entries (never more), then a little longer, so
/// that a message journalled twice would show.
async fn until_journalled(store: &HubStore, expected: usize) -> Vec<journal::Entry> {
    let expected = i64::try_from(expected).expect("small");
    step(&format!(
        "waiting until the journal holds {expected} entries"
    ));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let size = journal::size(store).await.expect("size");
        if size >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hubs journalled {size} of {expected} messages in time"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    journal::entries_after(store, 0, 10 * expected)
        .await
        .expect("journal")
}

/// `cats hub verify-journal --database url`: exit 0 and the entry count.
fn verify_journal(url: &str, entries: usize) {
    step("cats hub verify-journal");
    let out = Command::new(env!("CARGO_BIN_EXE_cats"))
        .args(["hub", "verify-journal", "--database", url])
        .output()
        .expect("cats runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify-journal: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("journal OK: {entries} entries")),
        "{stdout}"
    );
}

/// What each case needs: the broker, a database, a directory for configurations and logs.
struct Case {
    broker: &'static Broker,
    url: String,
    dir: tempfile::TempDir,
    _lock: tokio::sync::SemaphorePermit<'static>,
}

async fn case() -> Option<Case> {
    step("starting the broker");
    let broker = broker()?;
    step("creating the database");
    let url = postgres_url().await?;
    step("waiting for the other case and emptying the queues");
    let lock = exclusive(broker).await;
    Some(Case {
        broker,
        url,
        dir: tempfile::tempdir().expect("tempdir"),
        _lock: lock,
    })
}

impl Case {
    fn config(&self, name: &str, preferred: &str) -> PathBuf {
        write_config(self.dir.path(), name, self.broker, &self.url, preferred)
    }

    async fn senders(&self) -> Arc<Senders> {
        step("connecting the node identities");
        Arc::new(Senders::connect(&self.broker.files, |party| self.broker.amqp(party)).await)
    }
}

/// How long one case may take in all (it normally takes about a minute).
const CASE_LIMIT: Duration = Duration::from_secs(600);

/// Runs a case, failing it with what it was doing if it takes longer than [`CASE_LIMIT`]: a
/// case that waits forever on the broker fails here, with its steps, rather than holding the
/// run (`scripts/test-binary.sh` stops a whole binary that hangs, without its output).
async fn within_time_limit(case: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(CASE_LIMIT, case).await.is_err() {
        panic!(
            "the case did not finish within {} s; its last step was: {}",
            CASE_LIMIT.as_secs(),
            LAST_STEP.lock().expect("not poisoned")
        );
    }
}

static LAST_STEP: Mutex<String> = Mutex::new(String::new());

/// Notes what a case is doing (printed with the test's output if it fails).
fn step(what: &str) {
    static START: OnceLock<Instant> = OnceLock::new();
    let at = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{at:7.1} s] {what}");
    *LAST_STEP.lock().expect("not poisoned") = format!("{what} (at {at:.1} s)");
}

// ------------------------------------------------------------------------------ cases

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hub_processes_share_the_partitions() {
    within_time_limit(two_hub_processes_share_the_partitions_steps()).await;
}

async fn two_hub_processes_share_the_partitions_steps() {
    let Some(case) = case().await else { return };
    let (config_a, config_b) = (case.config("a", "0,1"), case.config("b", "2,3"));
    // Both at once, as an operator would start them (they migrate the one database together).
    let (a, b) = tokio::join!(
        HubProcess::start("a", &config_a, case.dir.path()),
        HubProcess::start("b", &config_b, case.dir.path())
    );

    // Each is the active consumer of its preferred partitions and stands by on the others.
    let report_a = a
        .queues_until("active on 0 and 1, standing by on 2 and 3", |r| {
            settled(r, &[0, 1])
        })
        .await;
    let report_b = b
        .queues_until("active on 2 and 3, standing by on 0 and 1", |r| {
            settled(r, &[2, 3])
        })
        .await;
    for p in 0..PARTITIONS {
        let (qa, qb) = (
            partition(&report_a, p).expect("listed"),
            partition(&report_b, p).expect("listed"),
        );
        assert_eq!(qa.name, topology::hub_partition_queue(p));
        assert_eq!(qa.preferred, Some(p < 2));
        assert_eq!(qb.preferred, Some(p >= 2));
        assert_eq!(
            qa.active_consumer, qb.active_consumer,
            "both see the same active consumer"
        );
        assert_eq!(
            qa.dead_letters,
            (p == 0).then_some(0),
            "the partitions share cats.hub.in's dead letters"
        );
    }
    assert_eq!(report_a.source, "management-api");

    let senders = case.senders().await;
    let routed = collect_routed(&senders);
    let run = movements::run_id();
    let mrns = movements::mrns(150, 20_000);
    step("sending mrns");
    senders.send_all(&run, &mrns, 24).await;

    let store = HubStore::connect(&case.url).await.expect("the journal");
    let entries = until_journalled(&store, 4 * mrns.len()).await;
    movements::check_journal(&entries, &mrns);
    let twice = until_routed(&routed, &run, &mrns).await;
    assert_eq!(twice, 0, "with no failure, each message is routed once");

    // Both did work, and between them received each message once.
    let (in_a, in_b) = (a.messages_in().await, b.messages_in().await);
    assert!(
        in_a > 0 && in_b > 0,
        "both hubs process: A {in_a}, B {in_b}"
    );
    assert_eq!(in_a + in_b, 4 * 150, "A {in_a} + B {in_b} deliveries");
    // The queues drain (the management API's figures lag by a few seconds).
    a.queues_until("every partition empty", |r| {
        (0..PARTITIONS).all(|p| partition(r, p).is_some_and(|q| q.depth == Some(0)))
    })
    .await;

    verify_journal(&case.url, entries.len());
    senders.close().await;
    store.close().await;
    for hub in [a, b] {
        let name = hub.name;
        let status = hub.terminate().await;
        assert!(
            status.success(),
            "hub {name} exits cleanly on SIGTERM: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_hub_process_is_replaced_by_the_other_and_rejoins() {
    within_time_limit(a_killed_hub_process_is_replaced_by_the_other_and_rejoins_steps()).await;
}

async fn a_killed_hub_process_is_replaced_by_the_other_and_rejoins_steps() {
    let Some(case) = case().await else { return };
    let (config_a, config_b) = (case.config("a", "0,1"), case.config("b", "2,3"));
    let (a, b) = tokio::join!(
        HubProcess::start("a", &config_a, case.dir.path()),
        HubProcess::start("b", &config_b, case.dir.path())
    );
    // A's standby consumers must be registered before B goes, or nobody takes B's partitions.
    a.queues_until("active on 0 and 1, standing by on 2 and 3", |r| {
        settled(r, &[0, 1])
    })
    .await;

    let senders = case.senders().await;
    let routed = collect_routed(&senders);
    let store = HubStore::connect(&case.url).await.expect("the journal");
    let run = movements::run_id();
    let mrns = movements::mrns(200, 30_000);
    let sending = {
        let (senders, run, mrns) = (senders.clone(), run.clone(), mrns.clone());
        tokio::spawn(async move { senders.send_all(&run, &mrns, 8).await })
    };

    // Kill B in the middle of the traffic, once it has done some of the work.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let size = journal::size(&store).await.expect("size");
        if size >= 200 && b.messages_in().await > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no traffic: {size} journalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let in_b_before = b.messages_in().await;
    b.kill().await;
    let killed_at = journal::size(&store).await.expect("size");

    sending.await.expect("every message sent");
    let entries = until_journalled(&store, 4 * mrns.len()).await;
    movements::check_journal(&entries, &mrns);
    let twice = until_routed(&routed, &run, &mrns).await;
    assert!(
        killed_at < 4 * 200,
        "B was killed while traffic flowed ({killed_at} journalled then)"
    );
    // A message B journalled but had not acknowledged comes to A again: A's duplicate check
    // acknowledges it without a second entry (and forwards it if B had not marked it sent).
    let redelivered = a.counter("cats_hub_messages_duplicate_total").await;
    eprintln!(
        "B had received {in_b_before} deliveries when killed at {killed_at} journal entries; \
         A took {redelivered} of them again as duplicates; {twice} messages were routed twice"
    );

    // A took over every partition.
    a.queues_until("active on every partition", |r| {
        (0..PARTITIONS).all(|p| partition(r, p).is_some_and(|q| q.active_here == Some(true)))
    })
    .await;

    // B rejoins: ready, and standing by behind A everywhere.
    let config_b = case.config("b", "2,3");
    let b = HubProcess::start("b", &config_b, case.dir.path()).await;
    b.queues_until("standing by on every partition behind A", |r| {
        settled(r, &[])
    })
    .await;

    // A stops: B becomes the active consumer of every partition and does the work.
    let status = a.terminate().await;
    assert!(status.success(), "hub A exits cleanly on SIGTERM: {status}");
    b.queues_until("active on every partition once A is gone", |r| {
        (0..PARTITIONS).all(|p| {
            partition(r, p).is_some_and(|q| q.consumers == Some(1) && q.active_here == Some(true))
        })
    })
    .await;
    let more = movements::mrns(20, 40_000);
    step("sending more");
    senders.send_all(&run, &more, 8).await;
    let all: Vec<String> = mrns.iter().chain(&more).cloned().collect();
    let entries = until_journalled(&store, 4 * all.len()).await;
    movements::check_journal(&entries, &all);
    until_routed(&routed, &run, &more).await;
    assert_eq!(
        b.messages_in().await,
        4 * 20,
        "the restarted B received exactly the new movements"
    );

    verify_journal(&case.url, entries.len());
    senders.close().await;
    store.close().await;
    let status = b.terminate().await;
    assert!(status.success(), "hub B exits cleanly on SIGTERM: {status}");
}
