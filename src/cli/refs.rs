//! `cats refs [--hub URL] export|import --format csv|xml DIR`: the hub's reference data as
//! files, over the hub's API.
//!
//! `export` writes the version in force (`GET /api/v1/refs`) into DIR: one CSV file per
//! section, or `reference-data.xml` (the CA005C of the whole set), as
//! `message_catalog::reference::files` describes. `import` reads DIR, checks the set (a bad
//! field is refused with its file, line and field, and nothing is sent), works out what differs
//! from the hub's version in force and posts that as one change (`POST /api/v1/refs/changes`,
//! with `--actor` and `--reason`): the hub checks it again, makes the next version, audits it
//! record by record and distributes it to every node. An import that changes nothing says so.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cats_hub::client::HttpBase;
use message_catalog::reference::ReferenceSet;
use message_catalog::reference::files::{self, CSV_FILES, XML_FILE};

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One CSV file per section.
    Csv,
    /// One CA005C (XML) with the whole set.
    Xml,
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write the hub's reference data into a directory.
    Export,
    /// Send what the directory holds to the hub as one change.
    Import {
        /// Who.
        actor: Option<String>,
        /// Why.
        reason: String,
    },
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn current(base: &HttpBase) -> anyhow::Result<ReferenceSet> {
    let (status, body) = base
        .request("GET", "/api/v1/refs", None, None, TIMEOUT)
        .await
        .context("GET /api/v1/refs")?;
    if status != 200 {
        bail!(
            "GET /api/v1/refs: {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("the hub's answer")?;
    serde_json::from_value(v["data"].clone()).context("the hub's reference data")
}

/// Reads DIR in `format` into a set (checked).
pub fn read_dir(dir: &Path, format: Format) -> anyhow::Result<ReferenceSet> {
    match format {
        Format::Xml => {
            let path = dir.join(XML_FILE);
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files::from_xml(&bytes).map_err(|e| anyhow::anyhow!("{e}"))
        }
        Format::Csv => {
            let mut texts = BTreeMap::new();
            for name in CSV_FILES {
                let path = dir.join(name);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                texts.insert(name.to_owned(), text);
            }
            files::from_csv(&texts, 0).map_err(|e| anyhow::anyhow!("{e}"))
        }
    }
}

/// Writes `set` into DIR in `format`; the files written.
pub fn write_dir(dir: &Path, format: Format, set: &ReferenceSet) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let out: Vec<(String, Vec<u8>)> = match format {
        Format::Xml => {
            use chrono::Timelike;
            let now = chrono::Utc::now();
            let now = now.with_nanosecond(0).unwrap_or(now).naive_utc();
            vec![(XML_FILE.to_owned(), files::to_xml(set, now))]
        }
        Format::Csv => files::to_csv(set)
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t.into_bytes()))
            .collect(),
    };
    let mut written = Vec::new();
    for (name, bytes) in out {
        let path = dir.join(&name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// Runs `action` against the hub at `hub`.
pub fn run(hub: &str, action: Action, format: Format, dir: &Path) -> anyhow::Result<ExitCode> {
    let base = HttpBase::parse(hub).map_err(|e| anyhow::anyhow!("--hub: {e}"))?;
    match action {
        Action::Export => {
            let set = runtime()?.block_on(current(&base))?;
            for f in write_dir(dir, format, &set)? {
                println!("{f}");
            }
            println!("version {}", set.version);
            Ok(ExitCode::SUCCESS)
        }
        Action::Import { actor, reason } => {
            let actor = actor
                .or_else(|| std::env::var("USER").ok())
                .filter(|a| !a.trim().is_empty())
                .context("--actor: say who you are (it goes into the audit; $USER is not set)")?;
            // Checked before anything is asked of the hub.
            let wanted = match read_dir(dir, format) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("refused: {e:#}");
                    return Ok(ExitCode::from(1));
                }
            };
            runtime()?.block_on(async {
                let held = current(&base).await?;
                let change = held
                    .diff(&ReferenceSet {
                        version: held.version,
                        ..wanted
                    })
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if change.is_empty() {
                    println!(
                        "nothing to import: the hub's version {} is the same",
                        held.version
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                let body = serde_json::to_vec(&serde_json::json!({
                    "actor": actor, "reason": reason, "change": change,
                }))?;
                let (status, answer) = base
                    .request("POST", "/api/v1/refs/changes", None, Some(body), TIMEOUT)
                    .await
                    .context("POST /api/v1/refs/changes")?;
                let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
                if status != 201 {
                    eprintln!(
                        "refused by the hub: {} {}",
                        v["code"].as_str().unwrap_or("?"),
                        v["error"].as_str().unwrap_or("")
                    );
                    return Ok(ExitCode::from(1));
                }
                println!(
                    "version {} (from {}): {} records changed, sent to {}",
                    v["version"],
                    v["previous"],
                    v["changes"].as_array().map_or(0, Vec::len),
                    v["sent_to"]
                );
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
