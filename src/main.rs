//! `cats`: the one command line of CATS.
//!
//! Arguments are parsed in two stages (ripgrep's habit): clap turns the words into the raw
//! [`Cli`] values, then each command resolves and checks what it was given before it does
//! anything. Exit codes: 0 success, 1 "the input is not valid" (validate, mrn check), 2 a usage or
//! I/O error.

mod cli;

/// mimalloc rather than glibc's malloc: the codec allocates one `String` per text field, and
/// the allocator was ~15% of a large declaration's decode (docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// CATS, the CAREC Advanced Transit System.
#[derive(Debug, Parser)]
#[command(name = "cats", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the hub and the KZ, AZ and GE nodes on loopback and drive a movement Aktau →
    /// Alat → Red Bridge → Poti through their national APIs, printing every step (or N
    /// movements with throughput and latency figures).
    Demo {
        /// The transport between the nodes and the hub.
        #[arg(long, value_enum, default_value = "direct")]
        transport: cli::demo::TransportKind,
        /// The broker for `--transport amqp` (e.g. amqps://localhost:26710).
        #[arg(long)]
        amqp_url: Option<String>,
        /// The store of every service: SQLite files in a temporary directory, or one fresh
        /// PostgreSQL database per service.
        #[arg(long, value_enum, default_value = "sqlite")]
        store: cli::demo::StoreKind,
        /// The PostgreSQL server for `--store postgres` (a database is created per service).
        #[arg(long)]
        database_url: Option<String>,
        /// Drive N movements (varied routes, holders and goods; some controlled, some refused)
        /// and print throughput and submit-to-release latency percentiles.
        #[arg(long)]
        movements: Option<usize>,
        /// Stay up after the run, printing each node's API address and tokens, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Seed of the movements' variety and of the nodes' random sampling.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Where the development PKI is (created there when missing).
        #[arg(long, default_value = "certs/dev")]
        certs: PathBuf,
        /// Seconds any one step may take before the demo gives up and says which.
        #[arg(long, default_value_t = 30)]
        step_timeout: u64,
        /// Movements in flight at once with --movements (more than a few only queue up
        /// behind each node's single SQLite writer and raise latency).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// The conformance kit: replay message sets against a node (or a CATS it starts itself),
    /// record a live movement as a case, write the HTML certification report.
    Conformance {
        #[command(subcommand)]
        command: cli::conformance::Command,
    },
    /// Validate message files: exit 0 when every file is valid, 1 when any is not, 2 on error.
    Validate {
        /// How far to check: `xml` stops after the typed decode, `rules` adds code lists,
        /// rules and conditions.
        #[arg(long, value_enum, default_value = "rules")]
        level: cli::validate::Level,
        /// `text` (one line a file, one indented line an error), `json`, or `xml` (the NACK
        /// message itself).
        #[arg(long, value_enum, default_value = "text")]
        format: cli::validate::Format,
        /// Largest document accepted, in bytes.
        #[arg(long, default_value_t = 8 * 1024 * 1024)]
        max_bytes: usize,
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Decode a message and print its canonical re-encoding (exit 1 with the errors if it does
    /// not decode).
    Normalize {
        /// The message file.
        file: PathBuf,
    },
    /// Movement reference numbers.
    Mrn {
        #[command(subcommand)]
        command: MrnCommand,
    },
    /// Run the hub (the one place every node talks to), or check its journal.
    Hub {
        /// The configuration file (TOML; every key in deploy/hub.example.toml). Environment
        /// variables CATS_HUB__SECTION__KEY override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        #[command(subcommand)]
        command: Option<HubCommand>,
    },
    /// Run one country node: its national API, the movement life cycle at its offices, and
    /// its link to the hub.
    Node {
        /// The configuration file (TOML; every key in deploy/node.example.toml). Environment
        /// variables CATS_NODE__SECTION__KEY override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        #[command(subcommand)]
        command: Option<NodeCommand>,
    },
    /// Print the effective configuration (defaults < file < environment).
    Config {
        /// The hub's configuration file.
        #[arg(long, required_unless_present = "node", conflicts_with = "node")]
        hub: Option<PathBuf>,
        /// A node's configuration file.
        #[arg(long)]
        node: Option<PathBuf>,
    },
    /// The hub's queues and nodes (GET /api/v1/queues) as a table: depth, consumers, rates,
    /// dead letters; connected, last seen, undelivered, oldest undelivered.
    Queues {
        /// The hub's operations API.
        #[arg(long, env = "CATS_HUB_URL", default_value = "http://127.0.0.1:8480")]
        hub: String,
        /// A credential of the hub's API (an operator's or an administrator's bearer token,
        /// from `cats hub issue-credential`).
        #[arg(long, env = "CATS_HUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Refresh every --interval seconds until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 2)]
        interval: u64,
    },
    /// The hub's dead letters: list, show, replay, discard (each replay and discard is
    /// recorded by the hub with who, when and why).
    DeadLetters {
        /// The hub's operations API.
        #[arg(long, env = "CATS_HUB_URL", default_value = "http://127.0.0.1:8480")]
        hub: String,
        /// A credential of the hub's API (an operator's or an administrator's bearer token,
        /// from `cats hub issue-credential`).
        #[arg(long, env = "CATS_HUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// The hub's reference data as files: export the version in force, or import a
    /// directory as one change (checked, audited and distributed by the hub).
    Refs {
        /// The hub's API.
        #[arg(long, env = "CATS_HUB_URL", default_value = "http://127.0.0.1:8480")]
        hub: String,
        /// A credential of the hub's API (an administrator's bearer token to import, an operator's is enough to export,
        /// from `cats hub issue-credential`).
        #[arg(long, env = "CATS_HUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: RefsCommand,
    },
    /// The development PKI.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RefsCommand {
    /// Write the reference data in force into DIR.
    Export {
        /// `csv` (one file per section) or `xml` (the CA005C of the whole set).
        #[arg(long, value_enum, default_value = "csv")]
        format: cli::refs::Format,
        /// The directory.
        dir: PathBuf,
    },
    /// Send what DIR holds to the hub as one change.
    Import {
        /// `csv` or `xml`.
        #[arg(long, value_enum, default_value = "csv")]
        format: cli::refs::Format,
        /// Why.
        #[arg(long, default_value = "import")]
        reason: String,
        /// The directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum MrnCommand {
    /// Print a new, valid MRN.
    New {
        /// The customs office of departure (its country is positions 3-4 of the MRN).
        #[arg(long)]
        office: String,
        /// The procedure letter: J (transit), K (transit + exit summary), L (transit + entry
        /// summary), M (security only).
        #[arg(long, default_value = "J")]
        procedure: String,
        /// Two-digit year (default: this year).
        #[arg(long)]
        year: Option<u8>,
        /// The office's sequence number (default: derived from the clock).
        #[arg(long)]
        sequence: Option<u64>,
    },
    /// Check MRNs: exit 0 when all are valid, 1 otherwise, naming the bad ones.
    Check {
        /// The MRNs.
        mrns: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum HubCommand {
    /// Walk the journal's hash chain and report the first broken link (exit 1 if there is one).
    VerifyJournal {
        /// The hub's database (default: store.url of --config).
        #[arg(long)]
        database: Option<String>,
    },
    /// Create a bearer token for the hub's API and print it (once; the hub keeps only its
    /// SHA-256). Its id goes to stderr.
    IssueCredential {
        /// The hub's database (default: store.url of --config).
        #[arg(long)]
        database: Option<String>,
        /// For this approved insurer (its TIN).
        #[arg(long, group = "holder", required = true)]
        insurer: Option<String>,
        /// For a hub administrator (a name for the audit trail).
        #[arg(long, group = "holder")]
        administrator: Option<String>,
        /// For a hub operator (a name for the audit trail).
        #[arg(long, group = "holder")]
        operator: Option<String>,
    },
    /// Revoke a credential by its id, or every credential of one principal; refused from the
    /// next request on.
    RevokeCredential {
        /// The hub's database (default: store.url of --config).
        #[arg(long)]
        database: Option<String>,
        /// The credential's id (16 hex digits, from `cats hub credentials`).
        #[arg(group = "which", required = true)]
        id: Option<String>,
        /// Every live credential of ROLE:NAME (operator:alice, insurer:KZ990140000123).
        #[arg(long, group = "which")]
        all_for: Option<String>,
    },
    /// List the credentials (id, role, holder, issued, revoked); never a token.
    Credentials {
        /// The hub's database (default: store.url of --config).
        #[arg(long)]
        database: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum NodeRefsCommand {
    /// Ask the running node to ask the hub for the whole reference data set, although no
    /// version gap shows (a copy restored from a backup older than a record): the answer
    /// replaces the copy. Deliveries refused for a reference-data gap can then be replayed
    /// (`cats dead-letters replay ID`).
    Resync {
        /// An officer token of the node.
        #[arg(long, env = "CATS_NODE_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Ask the running node (its national API at http.listen of --config) to reconcile with
    /// the hub now: self-check of its movements, digest comparison, repair. Prints what it
    /// started; the runs are at GET /api/v1/reconciliation.
    Reconcile {
        /// An officer token of the node.
        #[arg(long, env = "CATS_NODE_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// The node's reference data.
    Refs {
        #[command(subcommand)]
        action: NodeRefsCommand,
    },
    /// Ask another country's node, through the hub, for its state of one MRN (CD094C), and
    /// wait for the outcome: the answer compared with this node's copy, what differed and
    /// what was repaired (GET /api/v1/status-requests/{id}).
    Status {
        /// The MRN.
        mrn: String,
        /// The country to ask (ISO 3166-1 alpha-2, not this node's own).
        #[arg(long)]
        country: String,
        /// Time limit for each answer, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Print the request as sent and do not wait for its outcome.
        #[arg(long)]
        no_wait: bool,
        /// A token of the node.
        #[arg(long, env = "CATS_NODE_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLettersCommand {
    /// List dead letters (oldest first).
    List {
        /// dead (not yet settled), replayed, discarded or all.
        #[arg(long, default_value = "dead")]
        state: String,
    },
    /// Show one: reason, envelope, body, audit trail.
    Show {
        /// Its id (from `list`).
        id: i64,
    },
    /// Replay one to its queue (the hub's inbound letters go through the hub's pipeline again).
    Replay {
        /// Its id.
        id: i64,
        /// Why (recorded).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Discard one: kept in the register as discarded, with the audit entry.
    Discard {
        /// Its id.
        id: i64,
        /// Why (required, recorded).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create the CATS development CA and every certificate signed by it (keeps an existing CA
    /// unless --force).
    Init {
        /// Where to write the certificates and keys (never commit it).
        #[arg(long, default_value = "certs/dev")]
        dir: PathBuf,
        /// The countries that get a node and a signing certificate.
        #[arg(long, value_delimiter = ',', default_value = "KZ,AZ,GE")]
        countries: Vec<String>,
        /// Replace the existing CA and every certificate.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cats: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo {
            transport,
            amqp_url,
            store,
            database_url,
            movements,
            keep_running,
            seed,
            certs,
            step_timeout,
            concurrency,
        } => cli::demo::run(cli::demo::RawOptions {
            transport,
            amqp_url,
            store,
            database_url,
            movements,
            keep_running,
            seed,
            certs,
            step_timeout,
            concurrency,
        }),
        Command::Conformance { command } => cli::conformance::run(command),
        Command::Validate {
            level,
            format,
            max_bytes,
            files,
        } => cli::validate::validate(&files, level, format, max_bytes),
        Command::Normalize { file } => cli::validate::normalize(&file),
        Command::Mrn { command } => match command {
            MrnCommand::New {
                office,
                procedure,
                year,
                sequence,
            } => cli::mrn::new(&office, &procedure, year, sequence),
            MrnCommand::Check { mrns } => cli::mrn::check(&mrns),
        },
        Command::Hub {
            config,
            log_json,
            command,
        } => match command {
            None => {
                init_logging(log_json);
                cli::hub::run(config.as_deref())
            }
            Some(HubCommand::VerifyJournal { database }) => {
                cli::hub::verify_journal(database.as_deref(), config.as_deref())
            }
            Some(HubCommand::IssueCredential {
                database,
                insurer,
                administrator,
                operator,
            }) => cli::hub::issue_credential(
                database.as_deref(),
                config.as_deref(),
                insurer,
                administrator,
                operator,
            ),
            Some(HubCommand::RevokeCredential {
                database,
                id,
                all_for,
            }) => cli::hub::revoke_credential(
                database.as_deref(),
                config.as_deref(),
                id.as_deref(),
                all_for.as_deref(),
            ),
            Some(HubCommand::Credentials { database }) => {
                cli::hub::credentials(database.as_deref(), config.as_deref())
            }
        },
        Command::Node {
            config,
            log_json,
            command: None,
        } => {
            init_logging(log_json);
            cli::node::run(config.as_deref())
        }
        Command::Node {
            config,
            command: Some(NodeCommand::Reconcile { token }),
            ..
        } => cli::node::reconcile(config.as_deref(), &token),
        Command::Node {
            config,
            command:
                Some(NodeCommand::Refs {
                    action: NodeRefsCommand::Resync { token },
                }),
            ..
        } => cli::node::refs_resync(config.as_deref(), &token),
        Command::Node {
            config,
            command:
                Some(NodeCommand::Status {
                    mrn,
                    country,
                    timeout,
                    no_wait,
                    token,
                }),
            ..
        } => cli::node::status(
            config.as_deref(),
            &cli::node::StatusArgs {
                mrn,
                country,
                timeout,
                wait: !no_wait,
            },
            &token,
        ),
        Command::Config { hub, node: None } => cli::hub::print_config(hub.as_deref()),
        Command::Config {
            node: Some(node), ..
        } => cli::node::print_config(Some(&node)),
        Command::Queues {
            hub,
            token,
            watch,
            interval,
        } => cli::queues::run(&hub, token.as_deref(), watch, interval),
        Command::DeadLetters {
            hub,
            token,
            command,
        } => cli::dead_letters::run(
            &hub,
            token.as_deref(),
            match command {
                DeadLettersCommand::List { state } => cli::dead_letters::Action::List { state },
                DeadLettersCommand::Show { id } => cli::dead_letters::Action::Show { id },
                DeadLettersCommand::Replay { id, reason } => {
                    cli::dead_letters::Action::Replay { id, reason }
                }
                DeadLettersCommand::Discard { id, reason } => {
                    cli::dead_letters::Action::Discard { id, reason }
                }
            },
        ),
        Command::Refs {
            hub,
            token,
            command,
        } => match command {
            RefsCommand::Export { format, dir } => cli::refs::run(
                &hub,
                token.as_deref(),
                cli::refs::Action::Export,
                format,
                &dir,
            ),
            RefsCommand::Import {
                format,
                reason,
                dir,
            } => cli::refs::run(
                &hub,
                token.as_deref(),
                cli::refs::Action::Import { reason },
                format,
                &dir,
            ),
        },
        Command::Certs { command } => match command {
            CertsCommand::Init {
                dir,
                countries,
                force,
            } => cli::certs::init(&dir, &countries, force),
        },
    }
}

/// Logs to stderr with `tracing`: text by default, JSON lines when asked; `RUST_LOG` filters
/// (default `info`).
fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
