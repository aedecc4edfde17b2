//! `cats demo`: the hub and the KZ, AZ and GE nodes on loopback, and one movement (or many)
//! driven through the nodes' national APIs.
//!
//! - [`messages`]: the P5 messages the national systems send (CC015C, CC013C, CC014C, CC007C).
//! - [`client`]: a node's HTTPS API as a national system and an officer use it, and its SSE
//!   stream of messages to the national system.
//! - [`world`]: the development PKI, the hub and the three nodes started in this process.
//! - [`journey`]: one movement driven from declaration to write-off, and the trail it prints.
//! - [`load`]: `--movements N`, with throughput and latency figures.

// tests/journey.rs includes these files as they are and uses parts of them that the command
// does not (the pull API, fields of the views it asserts on).
#[allow(dead_code)]
pub mod client;
#[allow(dead_code)]
pub mod journey;
pub mod load;
pub mod messages;
#[allow(dead_code)]
pub mod world;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use journey::{Plan, Trail};
pub use world::{RawOptions, StoreKind, TransportKind};

/// Checks the options, then starts the world and runs the demo.
pub fn run(raw: RawOptions) -> anyhow::Result<ExitCode> {
    let options = world::Options::resolve(&raw)?;
    if raw.movements == Some(0) {
        bail!("--movements must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let world = world::World::start(&options).await?;
        let outcome = match raw.movements {
            None => one_movement(&world, &options).await,
            Some(n) => many(&world, &options, n).await,
        };
        if raw.keep_running {
            world.print_endpoints();
            println!("running; ctrl-c to stop");
            let _ = tokio::signal::ctrl_c().await;
        }
        world.stop().await;
        outcome
    })
}

async fn one_movement(world: &world::World, options: &world::Options) -> anyhow::Result<ExitCode> {
    let lrn = format!("DEMO{}", chrono::Utc::now().format("%y%m%d%H%M%S%3f"));
    let plan = Plan::pilot(&lrn);
    println!(
        "driving movement LRN {lrn}: Aktau KZ000101 → exit KZ000101 → entry Alat AZ000101 → exit Red Bridge AZ000201 → entry Red Bridge GE000101 → Poti GE000201"
    );
    let mrn_cell = journey::MrnCell::default();
    let nodes = world.nodes.clone();
    let trail_nodes = nodes.clone();
    let trail_cell = mrn_cell.clone();
    let trail_lrn = lrn.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let printer = tokio::spawn(async move {
        let mut trail = Trail::default();
        loop {
            let mrn = trail_cell.lock().ok().and_then(|m| m.clone());
            trail.poll(&trail_nodes, &trail_lrn, mrn.as_deref()).await;
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
        }
        // Whatever came after the last poll.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mrn = trail_cell.lock().ok().and_then(|m| m.clone());
        trail.poll(&trail_nodes, &trail_lrn, mrn.as_deref()).await;
    });
    let result = journey::drive(&nodes, &plan, options.step_timeout, Some(&mrn_cell)).await;
    let _ = stop_tx.send(());
    let _ = printer.await;
    let outcome = result?;
    let mrn = outcome.mrn.unwrap_or_default();
    if let Some(l) = outcome.submit_to_release {
        println!("submit to release: {} ms", l.as_millis());
    }
    println!("movement {mrn} written off");
    Ok(ExitCode::SUCCESS)
}

async fn many(
    world: &world::World,
    options: &world::Options,
    n: usize,
) -> anyhow::Result<ExitCode> {
    println!(
        "driving {n} movements (seed {}, {} at a time) on {} + {}",
        options.seed,
        options.concurrency,
        options.store_label(),
        options.transport_label()
    );
    let report = load::run(
        &world.nodes,
        n,
        options.seed,
        options.concurrency,
        options.step_timeout,
    )
    .await;
    let secs = report.total.as_secs_f64();
    let ms = |d: Option<Duration>| {
        d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    for (ending, count) in &report.endings {
        println!("  {:<18} {count}", ending.label());
    }
    println!("  controls recorded  {}", report.controls);
    println!("  failed             {}", report.failures.len());
    println!(
        "throughput: {:.1} movements/s ({n} in {secs:.2} s)",
        n as f64 / secs.max(f64::EPSILON)
    );
    println!(
        "submit-to-release latency: p50 {}, p90 {}, p99 {} ({} released)",
        ms(report.percentile(50.0)),
        ms(report.percentile(90.0)),
        ms(report.percentile(99.0)),
        report.latencies.len()
    );
    println!("total time: {secs:.2} s");
    if report.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for (lrn, why) in report.failures.iter().take(10) {
            eprintln!("cats demo: LRN {lrn}: {why}");
        }
        if report.failures.len() > 10 {
            eprintln!("cats demo: ... and {} more", report.failures.len() - 10);
        }
        Ok(ExitCode::from(1))
    }
}
