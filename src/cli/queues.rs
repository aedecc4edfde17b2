//! `cats queues [--hub URL] [--token T] [--watch]`: the hub's `GET /api/v1/queues` as a table
//! (an operator's or administrator's token, `--token` or `CATS_HUB_TOKEN`).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cats_hub::client::HubClient;
use cats_hub::operations::QueuesReport;
use cats_hub::reconcile::NodeReconciliation;

/// Prints the table once, or every `interval` seconds with `watch` until Ctrl-C.
pub fn run(hub: &str, token: Option<&str>, watch: bool, interval: u64) -> anyhow::Result<ExitCode> {
    if watch && interval == 0 {
        anyhow::bail!("--interval must be at least 1 second");
    }
    let mut client = HubClient::new(hub).context("--hub")?;
    if let Some(t) = token {
        client = client.with_token(t);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let done = runtime.block_on(async move {
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
    });
    done.map_err(|e| super::hub::explain_refusal(e, hub, token))
}

fn num(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
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
    // The partition columns only when the hub's inbound queue is partitioned.
    let partitioned = report
        .queues
        .iter()
        .any(|q| q.partition.is_some_and(|p| p > 0));
    let _ = write!(
        out,
        "\n{:<width$}  {:>7}  {:>9}  {:>8}  {:>8}  {:>6}",
        "QUEUE", "DEPTH", "CONSUMERS", "IN/s", "OUT/s", "DEAD"
    );
    if partitioned {
        let _ = write!(
            out,
            "  {:<4}  {:<9}  {:<6}  ACTIVE CONSUMER",
            "PART", "PREFERRED", "ACTIVE"
        );
    }
    let _ = writeln!(out);
    for q in &report.queues {
        let _ = write!(
            out,
            "{:<width$}  {:>7}  {:>9}  {:>8}  {:>8}  {:>6}",
            q.name,
            num(q.depth),
            num(q.consumers),
            per_second(q.rate_in),
            per_second(q.rate_out),
            num(q.dead_letters)
        );
        if partitioned && let Some(p) = q.partition {
            let _ = write!(
                out,
                "  {:<4}  {:<9}  {:<6}  {}",
                p,
                yes_no(q.preferred),
                match q.active_here {
                    Some(true) => "here",
                    Some(false) => "other",
                    None => "-",
                },
                q.active_consumer.as_deref().unwrap_or("-")
            );
        }
        let _ = writeln!(out);
    }
    if partitioned {
        let _ = writeln!(
            out,
            "(PREFERRED: this hub consumes the partition at once, else it stands by; ACTIVE: \
             whether this hub's consumer is the one the broker delivers to. The partitions \
             share cats.hub.in's dead letters.)"
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

    fn partition(p: u16, preferred: bool, active_here: Option<bool>) -> QueueStatus {
        QueueStatus {
            name: if p == 0 {
                "cats.hub.in".into()
            } else {
                format!("cats.hub.in.{p}")
            },
            depth: Some(i64::from(p)),
            consumers: Some(2),
            rate_in: Some(1.0),
            rate_out: Some(1.0),
            dead_letters: (p == 0).then_some(0),
            partition: Some(p),
            preferred: Some(preferred),
            active_here,
            active_consumer: active_here.map(|here| {
                if here {
                    "cats-hub-10-1-00aa"
                } else {
                    "cats-hub-20-1-00bb"
                }
                .to_owned()
            }),
        }
    }

    #[test]
    fn renders_every_partition_with_its_active_consumer() {
        let report = QueuesReport {
            transport: "amqp".into(),
            source: "management-api".into(),
            sampled_at: chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("time"),
            interval_seconds: None,
            queues: vec![
                partition(0, true, Some(true)),
                partition(1, true, Some(true)),
                partition(2, false, Some(false)),
                partition(3, false, None),
            ],
            nodes: Vec::new(),
        };
        let text = table(&report);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with("cats.hub.in"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec![
                    "cats.hub.in",
                    "0",
                    "2",
                    "1.0",
                    "1.0",
                    "0",
                    "0",
                    "yes",
                    "here",
                    "cats-hub-10-1-00aa"
                ],
                vec![
                    "cats.hub.in.1",
                    "1",
                    "2",
                    "1.0",
                    "1.0",
                    "-",
                    "1",
                    "yes",
                    "here",
                    "cats-hub-10-1-00aa"
                ],
                vec![
                    "cats.hub.in.2",
                    "2",
                    "2",
                    "1.0",
                    "1.0",
                    "-",
                    "2",
                    "no",
                    "other",
                    "cats-hub-20-1-00bb"
                ],
                vec![
                    "cats.hub.in.3",
                    "3",
                    "2",
                    "1.0",
                    "1.0",
                    "-",
                    "3",
                    "no",
                    "-",
                    "-"
                ],
            ],
            "{text}"
        );
        assert!(
            text.contains("PART  PREFERRED  ACTIVE  ACTIVE CONSUMER"),
            "{text}"
        );
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
                    partition: None,
                    preferred: None,
                    active_here: None,
                    active_consumer: None,
                },
                QueueStatus {
                    name: "cats.node.KZ".into(),
                    depth: Some(3),
                    consumers: Some(0),
                    rate_in: Some(0.0),
                    rate_out: None,
                    dead_letters: None,
                    partition: None,
                    preferred: None,
                    active_here: None,
                    active_consumer: None,
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
