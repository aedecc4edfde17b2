//! `cats refs [--hub URL] export|import --format csv|xml DIR`: the hub's reference data as
//! files, over the hub's API.
//!
//! `export` writes the version in force (`GET /api/v1/refs`) into DIR: one CSV file per
//! section, or `reference-data.xml` (the CA005C of the whole set), as
//! `message_catalog::reference::files` describes. `import` reads DIR, checks the set (a bad
//! field is refused with its file, line and field, and nothing is sent), works out what differs
//! from the hub's version in force and posts that as one change (`POST /api/v1/refs/changes`,
//! with `--reason`; the hub records the administrator of the token as who made it): the hub
//! checks it again, makes the next version, audits it
//! record by record and distributes it to every node. An import that changes nothing says so.
//!
//! The token (`--token` or `CATS_HUB_TOKEN`) is an operator's or administrator's credential to
//! export, an administrator's to import.

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

/// What the hub's refusal of the credential means for the user (401, 403), if it was that.
fn credential_refused(status: u16, token: Option<&str>) -> Option<&'static str> {
    match (status, token) {
        (401, None) => Some(
            "the hub needs a credential: pass --token TOKEN or set CATS_HUB_TOKEN \
             (an administrator makes one with `cats hub issue-credential`)",
        ),
        (401, Some(_)) => Some("the hub refused the token (unknown or revoked)"),
        (403, _) => {
            Some("this credential's role may not do that (importing needs an administrator)")
        }
        _ => None,
    }
}

async fn current(base: &HttpBase, token: Option<&str>) -> anyhow::Result<ReferenceSet> {
    let auth = token.map(|t| format!("Bearer {}", t.trim()));
    let (status, body) = base
        .request("GET", "/api/v1/refs", auth.as_deref(), None, TIMEOUT)
        .await
        .context("GET /api/v1/refs")?;
    if status != 200 {
        let hint = credential_refused(status, token)
            .map(|h| format!("{h}\n"))
            .unwrap_or_default();
        bail!(
            "{hint}GET /api/v1/refs: {status}: {}",
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
pub fn run(
    hub: &str,
    token: Option<&str>,
    action: Action,
    format: Format,
    dir: &Path,
) -> anyhow::Result<ExitCode> {
    let base = HttpBase::parse(hub).map_err(|e| anyhow::anyhow!("--hub: {e}"))?;
    match action {
        Action::Export => {
            let set = runtime()?.block_on(current(&base, token))?;
            for f in write_dir(dir, format, &set)? {
                println!("{f}");
            }
            println!("version {}", set.version);
            Ok(ExitCode::SUCCESS)
        }
        Action::Import { reason } => {
            // Checked before anything is asked of the hub.
            let wanted = match read_dir(dir, format) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("refused: {e:#}");
                    return Ok(ExitCode::from(1));
                }
            };
            runtime()?.block_on(async {
                let held = current(&base, token).await?;
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
                    "reason": reason, "change": change,
                }))?;
                let auth = token.map(|t| format!("Bearer {}", t.trim()));
                let (status, answer) = base
                    .request(
                        "POST",
                        "/api/v1/refs/changes",
                        auth.as_deref(),
                        Some(body),
                        TIMEOUT,
                    )
                    .await
                    .context("POST /api/v1/refs/changes")?;
                let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
                if status != 201 {
                    if let Some(hint) = credential_refused(status, token) {
                        eprintln!("{hint}");
                    }
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
