//! `cats hub`, `cats hub verify-journal`, `cats hub issue-credential` and `cats config --hub`.

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

/// `cats hub issue-credential --insurer TIN | --administrator NAME`: a bearer token for the
/// insurer and administrator API, printed once; exit 2 for an insurer that is not approved.
pub fn issue_credential(
    database: Option<&str>,
    config: Option<&Path>,
    insurer: Option<String>,
    administrator: Option<String>,
) -> anyhow::Result<ExitCode> {
    use cats_hub::insurer::Principal;
    let raw = RawConfig::load(config).context("reading the hub configuration")?;
    let url = database.map_or_else(|| raw.store.url.clone(), str::to_owned);
    let reference = if raw.messages.reference_data.as_os_str().is_empty() {
        message_catalog::reference::ReferenceData::pilot()
    } else {
        let bytes = std::fs::read(&raw.messages.reference_data)
            .with_context(|| format!("reading {}", raw.messages.reference_data.display()))?;
        message_catalog::reference::ReferenceData::from_json(&bytes)?
    };
    let principal = match (insurer, administrator) {
        (Some(tin), _) => Principal::Insurer(tin),
        (None, Some(name)) => Principal::Administrator(name),
        (None, None) => anyhow::bail!("--insurer TIN or --administrator NAME"),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let store = cats_hub::store::HubStore::connect(&url)
            .await
            .with_context(|| format!("opening the hub's database {url}"))?;
        let issued = cats_hub::insurer::issue_credential(&store, &reference, &principal).await;
        store.close().await;
        match issued {
            Ok(token) => {
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
