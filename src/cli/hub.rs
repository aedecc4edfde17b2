//! `cats hub`, `cats hub verify-journal`, `cats hub issue-credential`, `cats hub
//! revoke-credential`, `cats hub credentials` and `cats config --hub`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cats_hub::RawConfig;
use cats_hub::journal::VerifyError;

/// `cats hub --config FILE`: runs the hub until Ctrl-C or SIGTERM.
pub fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the hub configuration")?;
    let resolved = raw.resolve().context("resolving the hub configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let (trigger, shutdown) = cats_transport::shutdown::channel();
        let hub = cats_hub::start(resolved, shutdown).await?;
        match hub.direct_addr {
            Some(direct) => println!(
                "hub listening: direct link {direct}, HTTP API http://{}",
                hub.http_addr
            ),
            None => println!("hub listening: AMQP, HTTP API http://{}", hub.http_addr),
        }
        wait_for_signal().await;
        tracing::info!("shutting down");
        trigger.trigger();
        hub.stopped().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `cats hub verify-journal`: walks the hash chain; exit 0 when it holds, 1 at the first broken
/// link (which it names), 2 when the database cannot be read.
pub fn verify_journal(database: Option<&str>, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let url = match database {
        Some(url) => url.to_owned(),
        None => {
            RawConfig::load(config)
                .context("reading the hub configuration")?
                .store
                .url
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    match runtime.block_on(cats_hub::verify_journal(&url)) {
        Ok(chain) => {
            println!(
                "journal OK: {} entries, head {}",
                chain.entries,
                hex(&chain.head)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyError::Broken(link)) => {
            println!("journal BROKEN at sequence {}: {}", link.sequence, link.why);
            Ok(ExitCode::from(1))
        }
        Err(VerifyError::Store(e)) => Err(e).context(format!("reading the journal at {url}")),
    }
}

fn database_url(database: Option<&str>, raw: &RawConfig) -> String {
    database.map_or_else(|| raw.store.url.clone(), str::to_owned)
}

/// `cats hub issue-credential --insurer TIN | --administrator NAME | --operator NAME`: a bearer
/// token for the hub's API, printed once on stdout (its id on stderr); exit 2 for an insurer
/// that is not approved or a name that cannot be used.
pub fn issue_credential(
    database: Option<&str>,
    config: Option<&Path>,
    insurer: Option<String>,
    administrator: Option<String>,
    operator: Option<String>,
) -> anyhow::Result<ExitCode> {
    use cats_hub::access::Role;
    use cats_hub::insurer::Principal;
    let raw = RawConfig::load(config).context("reading the hub configuration")?;
    let url = database_url(database, &raw);
    let reference = if raw.messages.reference_data.as_os_str().is_empty() {
        message_catalog::reference::ReferenceData::pilot()
    } else {
        let bytes = std::fs::read(&raw.messages.reference_data)
            .with_context(|| format!("reading {}", raw.messages.reference_data.display()))?;
        message_catalog::reference::ReferenceData::from_json(&bytes)?
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let store = cats_hub::store::HubStore::connect(&url)
            .await
            .with_context(|| format!("opening the hub's database {url}"))?;
        let issued = match (insurer, administrator, operator) {
            (Some(tin), _, _) => {
                cats_hub::insurer::issue_credential(&store, &reference, &Principal::Insurer(tin))
                    .await
                    .map_err(|e| e.to_string())
            }
            (None, Some(name), _) => cats_hub::access::issue(&store, Role::Administrator, &name)
                .await
                .map(|i| i.token)
                .map_err(|e| e.to_string()),
            (None, None, Some(name)) => cats_hub::access::issue(&store, Role::Operator, &name)
                .await
                .map(|i| i.token)
                .map_err(|e| e.to_string()),
            (None, None, None) => {
                Err("--insurer TIN, --administrator NAME or --operator NAME".into())
            }
        };
        store.close().await;
        match issued {
            Ok(token) => {
                let hash = cats_hub::access::token_hash(&token);
                eprintln!("credential {}", &hash[..16]);
                println!("{token}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        }
    })
}

/// Who runs a command-line revocation, for the record.
fn command_line_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("command-line:{user}")
}

/// `cats hub revoke-credential ID | --all-for ROLE:NAME`: exit 0 when something was revoked,
/// 2 when the id is unknown, revoked already, or the principal has no live credential.
pub fn revoke_credential(
    database: Option<&str>,
    config: Option<&Path>,
    id: Option<&str>,
    all_for: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the hub configuration")?;
    let url = database_url(database, &raw);
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let store = cats_hub::store::HubStore::connect(&url)
            .await
            .with_context(|| format!("opening the hub's database {url}"))?;
        let by = command_line_actor();
        let done = match (id, all_for) {
            (Some(id), _) => cats_hub::access::revoke(&store, id, &by)
                .await
                .map(|v| format!("credential {} ({}:{}) revoked", v.id, v.role, v.subject)),
            (None, Some(p)) => match cats_hub::access::parse_principal(p) {
                Ok((role, subject)) => {
                    cats_hub::access::revoke_all_for(&store, role, &subject, &by)
                        .await
                        .map(|n| format!("{n} credential(s) of {p} revoked"))
                }
                Err(e) => Err(e),
            },
            (None, None) => {
                store.close().await;
                anyhow::bail!("a credential id or --all-for ROLE:NAME");
            }
        };
        store.close().await;
        match done {
            Ok(text) if !text.starts_with("0 ") => {
                println!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            Ok(text) => {
                eprintln!("{text}: it has no live credential");
                Ok(ExitCode::from(2))
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        }
    })
}

/// `cats hub credentials`: one line per credential: id, role, holder, issued, revoked.
pub fn credentials(database: Option<&str>, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the hub configuration")?;
    let url = database_url(database, &raw);
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let list = runtime.block_on(async move {
        let store = cats_hub::store::HubStore::connect(&url)
            .await
            .with_context(|| format!("opening the hub's database {url}"))?;
        let list = cats_hub::access::list(&store).await;
        store.close().await;
        anyhow::Ok(list?)
    })?;
    println!(
        "{:<16}  {:<13}  {:<24}  {:<20}  revoked",
        "id", "role", "holder", "issued"
    );
    for c in list {
        let revoked = match (&c.revoked_at, &c.revoked_by) {
            (Some(at), by) => format!(
                "{} by {}",
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                by.as_deref().unwrap_or("?")
            ),
            (None, _) => "-".into(),
        };
        println!(
            "{:<16}  {:<13}  {:<24}  {:<20}  {revoked}",
            c.id,
            c.role,
            c.subject,
            c.issued_at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Turns the hub's 401 into advice: which flag or variable carries the token, and how to get
/// one. Other errors pass unchanged.
pub fn explain_refusal(e: anyhow::Error, hub: &str, token: Option<&str>) -> anyhow::Error {
    let status = e
        .chain()
        .find_map(|c| c.downcast_ref::<cats_hub::client::ClientError>())
        .and_then(|c| match c {
            cats_hub::client::ClientError::Status { status, .. } => Some(*status),
            _ => None,
        });
    match (status, token) {
        (Some(401), None) => e.context(format!(
            "the hub at {hub} needs a credential: pass --token TOKEN or set CATS_HUB_TOKEN \
             (an administrator makes one with `cats hub issue-credential --operator NAME`)"
        )),
        (Some(401), Some(_)) => e.context(format!(
            "the hub at {hub} refused the token of --token / CATS_HUB_TOKEN (unknown or revoked)"
        )),
        (Some(403), _) => e.context(format!(
            "the hub at {hub} does not let this credential's role do that"
        )),
        _ => e,
    }
}

/// `cats config --hub FILE`: the effective configuration (file < environment), as TOML.
pub fn print_config(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the hub configuration")?;
    print!("{}", toml::to_string_pretty(&raw)?);
    Ok(ExitCode::SUCCESS)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
