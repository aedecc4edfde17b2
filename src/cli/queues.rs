//! `cats queues [--hub URL] [--watch]`: the hub's `GET /api/v1/queues` as a table.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cats_hub::client::HubClient;
use cats_hub::operations::QueuesReport;
use cats_hub::reconcile::NodeReconciliation;

/// Prints the table once, or every `interval` seconds with `watch` until Ctrl-C.
pub fn run(hub: &str, watch: bool, interval: u64) -> anyhow::Result<ExitCode> {
    if watch && interval == 0 {
        anyhow::bail!("--interval must be at least 1 second");
    }
    let client = HubClient::new(hub).context("--hub")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        if !watch {
            let report = client
                .queues()
                .await
                .with_context(|| format!("asking {hub} for its queues"))?;
            print!("{}", table(&report));
            print!("{}", reconciliation_section(&client).await);
            return anyhow::Ok(ExitCode::SUCCESS);
        }
        loop {
            // Clear the screen, cursor home.
            let text = match client.queues().await {
                Ok(report) => table(&report) + &reconciliation_section(&client).await,
                Err(e) => format!("asking {hub} for its queues: {e}\n"),
            };
            print!("\x1b[2J\x1b[H{hub}  (every {interval} s, Ctrl-C to stop)\n\n{text}");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                _ = tokio::time::sleep(Duration::from_secs(interval)) => {}
            }
        }
    })
}

fn num(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn per_second(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn age(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.0}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

async fn reconciliation_section(client: &HubClient) -> String {
    match client.reconciliation().await {
        Ok(nodes) => reconciliation_table(&nodes),
        Err(e) => format!("\nreconciliation: unavailable ({e})\n"),
    }
}

/// Each node's reconciliation with the hub: when it last ran, the movements found different
/// (last run and in total), repaired, the journal entries re-delivered and the bytes exchanged.
pub fn reconciliation_table(nodes: &[NodeReconciliation]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<4}  {:<24}  {:>5}  {:>9}  {:>11}  {:>8}  {:>7}  {:>10}  {:>10}",
        "NODE",
        "LAST RECONCILIATION",
        "RUNS",
        "LAST DIFF",
        "DIFFERENCES",
        "REPAIRED",
        "RESENT",
        "BYTES IN",
        "BYTES OUT"
    );
    if nodes.is_empty() {
        let _ = writeln!(out, "(no node has reconciled yet)");
    }
    for n in nodes {
        let _ = writeln!(
            out,
            "{:<4}  {:<24}  {:>5}  {:>9}  {:>11}  {:>8}  {:>7}  {:>10}  {:>10}",
            n.country,
            n.last_at,
            n.runs,
            n.last_differences,
            n.differences_found,
            n.movements_repaired,
            n.entries_resent,
            n.bytes_in,
            n.bytes_out
        );
    }
    out
}

/// The report as aligned columns: one table of queues, one of nodes.
pub fn table(report: &QueuesReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "transport {} ({})  sampled {}  rates over {}",
        report.transport,
        report.source,
        report.sampled_at.format("%Y-%m-%d %H:%M:%SZ"),
        report
            .interval_seconds
            .map_or_else(|| "- (first sample)".into(), |s| format!("{s:.1} s"))
    );
    let width = report
        .queues
        .iter()
        .map(|q| q.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "\n{:<width$}  {:>7}  {:>9}  {:>8}  {:>8}  {:>6}",
        "QUEUE", "DEPTH", "CONSUMERS", "IN/s", "OUT/s", "DEAD"
    );
    for q in &report.queues {
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>9}  {:>8}  {:>8}  {:>6}",
            q.name,
            num(q.depth),
            num(q.consumers),
            per_second(q.rate_in),
            per_second(q.rate_out),
            num(q.dead_letters)
        );
    }
    let _ = writeln!(
        out,
        "\n{:<4}  {:<9}  {:<20}  {:>11}  {:>6}",
        "NODE", "CONNECTED", "LAST SEEN", "UNDELIVERED", "OLDEST"
    );
    for n in &report.nodes {
        let _ = writeln!(
            out,
            "{:<4}  {:<9}  {:<20}  {:>11}  {:>6}",
            n.country,
            if n.connected { "yes" } else { "no" },
            n.last_seen.map_or_else(
                || "never".into(),
                |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()
            ),
            num(n.undelivered),
            age(n.oldest_undelivered_age_seconds)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cats_hub::operations::{NodeStatus, QueueStatus};

    #[test]
    fn renders_reconciliation_per_node() {
        let text = reconciliation_table(&[NodeReconciliation {
            country: "GE".into(),
            runs: 3,
            last_at: "2026-11-21T12:00:00.000Z".into(),
            last_through: 900,
            last_differences: 2,
            differences_found: 5,
            movements_repaired: 5,
            entries_resent: 17,
            bytes_in: 4_100,
            bytes_out: 61_000,
        }]);
        let row = text.lines().nth(2).expect("a row");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "GE",
                "2026-11-21T12:00:00.000Z",
                "3",
                "2",
                "5",
                "5",
                "17",
                "4100",
                "61000"
            ]
        );
        assert!(reconciliation_table(&[]).contains("no node has reconciled yet"));
    }

    #[test]
    fn renders_queues_and_nodes() {
        let at = chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("time");
        let report = QueuesReport {
            transport: "direct".into(),
            source: "store".into(),
            sampled_at: at,
            interval_seconds: Some(5.0),
            queues: vec![
                QueueStatus {
                    name: "cats.hub.in".into(),
                    depth: None,
                    consumers: Some(1),
                    rate_in: Some(2.5),
                    rate_out: Some(2.5),
                    dead_letters: Some(1),
                },
                QueueStatus {
                    name: "cats.node.KZ".into(),
                    depth: Some(3),
                    consumers: Some(0),
                    rate_in: Some(0.0),
                    rate_out: None,
                    dead_letters: None,
                },
            ],
            nodes: vec![NodeStatus {
                country: "KZ".into(),
                connected: false,
                last_seen: None,
                undelivered: Some(3),
                oldest_undelivered_age_seconds: Some(300.0),
            }],
        };
        let text = table(&report);
        assert!(text.contains("transport direct (store)"), "{text}");
        assert!(
            text.contains("cats.hub.in         -          1       2.5       2.5       1"),
            "{text}"
        );
        assert!(
            text.contains("cats.node.KZ        3          0       0.0         -       -"),
            "{text}"
        );
        assert!(
            text.contains("KZ    no         never                           3      5m"),
            "{text}"
        );
    }
}
