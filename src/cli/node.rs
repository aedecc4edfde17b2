//! `cats node --config FILE` and `cats config --node FILE`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cats_node::RawConfig;

/// `cats node --config FILE`: runs one country node until Ctrl-C or SIGTERM.
pub fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the node configuration")?;
    let resolved = raw.resolve().context("resolving the node configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let (trigger, shutdown) = cats_transport::shutdown::channel();
        let node = cats_node::start(resolved, shutdown).await?;
        println!(
            "node {} listening: national API {}",
            node.engine.country(),
            node.base_url()
        );
        wait_for_signal().await;
        tracing::info!("shutting down");
        trigger.trigger();
        node.stopped().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `cats config --node FILE`: the effective configuration (defaults < file < environment),
/// as TOML.
pub fn print_config(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the node configuration")?;
    print!("{}", toml::to_string_pretty(&raw)?);
    Ok(ExitCode::SUCCESS)
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
