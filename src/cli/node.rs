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

/// `cats node --config FILE reconcile --token TOKEN`: asks the running node, through its
/// national API, to reconcile with the hub now, and prints what it started.
pub fn reconcile(config: Option<&Path>, token: &str) -> anyhow::Result<ExitCode> {
    post(config, "reconciliation", token)
}

/// `cats node --config FILE refs resync --token TOKEN`: asks the running node, through its
/// national API, to ask the hub for the whole reference data set (a copy that lost records
/// without a version gap to show for it), and prints the request.
pub fn refs_resync(config: Option<&Path>, token: &str) -> anyhow::Result<ExitCode> {
    post(config, "refdata/resync", token)
}

/// POSTs nothing to `/api/v1/{path}` of the running node of `config` and prints the JSON
/// answer.
fn post(config: Option<&Path>, path: &str, token: &str) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the node configuration")?;
    let addr: std::net::SocketAddr = raw
        .http
        .listen
        .parse()
        .with_context(|| format!("http.listen {:?}", raw.http.listen))?;
    let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    let scheme = if raw.http.tls { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{}/api/v1/{path}", addr.port());
    let ca = raw.certs.dir.join(&raw.certs.ca);
    let ca_pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
    let client = crate::cli::demo::client::http_client(&ca_pem)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let response = client
            .post(&url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !status.is_success() {
            anyhow::bail!("POST {url}: {status}: {body}");
        }
        let value: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("POST {url}: {body}"))?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `cats node status` asks.
#[derive(Debug, Clone)]
pub struct StatusArgs {
    /// The MRN.
    pub mrn: String,
    /// The country to ask.
    pub country: String,
    /// Time limit for each answer, in seconds.
    pub timeout: u64,
    /// Wait for the outcome.
    pub wait: bool,
}

/// `cats node --config FILE status MRN --country GE --token TOKEN`: asks the running node,
/// through its national API, to send a status request, then (unless `--no-wait`) follows it
/// until it ends and prints it. Exits 1 when the request ends other than `agreed` or
/// `repaired`.
pub fn status(config: Option<&Path>, args: &StatusArgs, token: &str) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(config).context("reading the node configuration")?;
    let addr: std::net::SocketAddr = raw
        .http
        .listen
        .parse()
        .with_context(|| format!("http.listen {:?}", raw.http.listen))?;
    let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    let scheme = if raw.http.tls { "https" } else { "http" };
    let base = format!("{scheme}://{host}:{}/api/v1", addr.port());
    let ca = raw.certs.dir.join(&raw.certs.ca);
    let ca_pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
    let client = crate::cli::demo::client::http_client(&ca_pem)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let wanted = args.clone();
    let state = runtime.block_on(async move {
        let url = format!("{base}/movements/{}/status-requests", wanted.mrn);
        let response = client
            .post(&url)
            .bearer_auth(token)
            .json(&serde_json::json!({"country": wanted.country, "timeout_secs": wanted.timeout}))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !status.is_success() {
            anyhow::bail!("POST {url}: {status}: {body}");
        }
        let mut value: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("POST {url}: {body}"))?;
        if wanted.wait {
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            let url = format!("{base}/status-requests/{id}");
            // Every round may take the whole time limit, plus the pause before it.
            let rounds = u64::try_from(cats_node::status::ROUNDS).unwrap_or(5);
            let limit = std::time::Duration::from_secs((wanted.timeout + 3) * rounds + 5);
            let started = std::time::Instant::now();
            while matches!(value["state"].as_str(), Some("asked" | "repairing"))
                && started.elapsed() < limit
            {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let response = client
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .with_context(|| format!("GET {url}"))?;
                let body = response
                    .text()
                    .await
                    .with_context(|| format!("GET {url}"))?;
                value =
                    serde_json::from_str(&body).with_context(|| format!("GET {url}: {body}"))?;
            }
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        anyhow::Ok(value["state"].as_str().unwrap_or_default().to_owned())
    })?;
    let ok = match state.as_str() {
        "agreed" | "repaired" => true,
        "asked" | "repairing" => !args.wait,
        _ => false,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
