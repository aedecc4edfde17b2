//! What the hub counts, rendered in the Prometheus text format (version 0.0.4) by hand.
//!
//! - `cats_hub_messages_in_total{type,country}`: deliveries received from nodes (duplicates
//!   included);
//! - `cats_hub_messages_out_total{type,country}`: envelopes the hub handed to the transport
//!   for a node (forwarded messages and NACKs);
//! - `cats_hub_messages_rejected_total{type,country,code}`: messages refused;
//! - `cats_hub_messages_duplicate_total{type,country}`: redeliveries acknowledged again;
//! - `cats_hub_processing_seconds`: histogram of the time from delivery to acknowledgement;
//! - `cats_hub_journal_entries`: the journal's size (read from the store at scrape time);
//! - `cats_hub_queue_depth{queue}`, `cats_hub_queue_consumers{queue}`,
//!   `cats_hub_dead_letters{queue}`: from the latest queue sample ([`crate::operations`]);
//! - `cats_hub_node_connected{country}`, `cats_hub_node_undelivered{country}`,
//!   `cats_hub_node_oldest_undelivered_seconds{country}`: likewise, per node.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::operations::QueuesReport;

/// Upper bounds of the latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
struct Inner {
    messages_in: BTreeMap<(String, String), u64>,
    messages_out: BTreeMap<(String, String), u64>,
    rejected: BTreeMap<(String, String, String), u64>,
    duplicates: BTreeMap<(String, String), u64>,
    buckets: [u64; LATENCY_BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    last_in: BTreeMap<String, DateTime<Utc>>,
    queues: Option<QueuesReport>,
}

/// Running totals the queue sampler turns into rates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Deliveries received from nodes.
    pub received: i64,
    /// Deliveries processed (settled or not).
    pub processed: i64,
    /// Envelopes handed to the transport, per destination country.
    pub sent_to: BTreeMap<String, i64>,
}

/// The hub's counters. Share one per process.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// The guarantee ledger's counters ([`crate::guarantee::Counters`]).
    pub guarantee: crate::guarantee::Counters,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

impl Metrics {
    /// Fresh, all zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// A delivery of `message_type` from `country`.
    pub fn message_in(&self, message_type: &str, country: &str) {
        self.with(|m| {
            bump(&mut m.messages_in, (message_type.into(), country.into()));
            m.last_in.insert(country.into(), Utc::now());
        });
    }

    /// When the last message from each country arrived (this process).
    pub fn last_message_from(&self) -> BTreeMap<String, DateTime<Utc>> {
        let mut out = BTreeMap::new();
        self.with(|m| out = m.last_in.clone());
        out
    }

    /// The running totals.
    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        self.with(|m| {
            let count = |v: &u64| i64::try_from(*v).unwrap_or(i64::MAX);
            c.received = m.messages_in.values().map(count).sum();
            c.processed = count(&m.latency_count);
            for ((_, country), v) in &m.messages_out {
                *c.sent_to.entry(country.clone()).or_insert(0) += count(v);
            }
        });
        c
    }

    /// Keeps `report` for the queue and node gauges.
    pub fn set_queues(&self, report: &QueuesReport) {
        self.with(|m| m.queues = Some(report.clone()));
    }

    /// An envelope of `message_type` sent to `country`.
    pub fn message_out(&self, message_type: &str, country: &str) {
        self.with(|m| bump(&mut m.messages_out, (message_type.into(), country.into())));
    }

    /// A message refused with `code`.
    pub fn rejected(&self, message_type: &str, country: &str, code: &str) {
        self.with(|m| {
            bump(
                &mut m.rejected,
                (message_type.into(), country.into(), code.into()),
            )
        });
    }

    /// A redelivery acknowledged again.
    pub fn duplicate(&self, message_type: &str, country: &str) {
        self.with(|m| bump(&mut m.duplicates, (message_type.into(), country.into())));
    }

    /// One delivery processed in `seconds`.
    pub fn observe_latency(&self, seconds: f64) {
        self.with(|m| {
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                if seconds <= *bound
                    && let Some(b) = m.buckets.get_mut(i)
                {
                    *b += 1;
                }
            }
            m.latency_count += 1;
            m.latency_sum += seconds;
        });
    }

    /// The Prometheus text exposition, with the journal size read by the caller.
    pub fn render(&self, journal_entries: i64) -> String {
        let mut out = String::new();
        self.with(|m| {
            let two = |out: &mut String,
                       name: &str,
                       help: &str,
                       map: &BTreeMap<(String, String), u64>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for ((t, c), v) in map {
                    let _ = writeln!(
                        out,
                        "{name}{{type=\"{}\",country=\"{}\"}} {v}",
                        esc(t),
                        esc(c)
                    );
                }
            };
            two(
                &mut out,
                "cats_hub_messages_in_total",
                "Messages received from nodes.",
                &m.messages_in,
            );
            two(
                &mut out,
                "cats_hub_messages_out_total",
                "Envelopes sent to nodes (forwarded and NACKs).",
                &m.messages_out,
            );
            two(
                &mut out,
                "cats_hub_messages_duplicate_total",
                "Redeliveries acknowledged again without effect.",
                &m.duplicates,
            );
            let name = "cats_hub_messages_rejected_total";
            let _ = writeln!(
                out,
                "# HELP {name} Messages refused, by error code.\n# TYPE {name} counter"
            );
            for ((t, c, code), v) in &m.rejected {
                let _ = writeln!(
                    out,
                    "{name}{{type=\"{}\",country=\"{}\",code=\"{}\"}} {v}",
                    esc(t),
                    esc(c),
                    esc(code)
                );
            }
            let name = "cats_hub_processing_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time from delivery to acknowledgement.\n# TYPE {name} histogram"
            );
            for (bound, count) in LATENCY_BUCKETS.iter().zip(m.buckets.iter()) {
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", m.latency_count);
            let _ = writeln!(out, "{name}_sum {}", m.latency_sum);
            let _ = writeln!(out, "{name}_count {}", m.latency_count);
            if let Some(report) = &m.queues {
                render_queues(&mut out, report);
            }
        });
        let name = "cats_hub_journal_entries";
        let _ = writeln!(
            out,
            "# HELP {name} Entries in the hub journal.\n# TYPE {name} gauge\n{name} {journal_entries}"
        );
        self.guarantee.render(&mut out);
        out
    }
}

fn render_queues(out: &mut String, report: &QueuesReport) {
    let mut gauge = |name: &str, help: &str, label: &str, rows: Vec<(&str, Option<f64>)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (key, value) in rows {
            if let Some(v) = value {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", esc(key));
            }
        }
    };
    let q = &report.queues;
    let n = &report.nodes;
    let count = |v: Option<i64>| v.map(|v| v as f64);
    gauge(
        "cats_hub_queue_depth",
        "Messages in the queue.",
        "queue",
        q.iter()
            .map(|q| (q.name.as_str(), count(q.depth)))
            .collect(),
    );
    gauge(
        "cats_hub_queue_consumers",
        "Consumers of the queue.",
        "queue",
        q.iter()
            .map(|q| (q.name.as_str(), count(q.consumers)))
            .collect(),
    );
    gauge(
        "cats_hub_dead_letters",
        "Dead letters of the queue not yet replayed or discarded.",
        "queue",
        q.iter()
            .map(|q| (q.name.as_str(), count(q.dead_letters)))
            .collect(),
    );
    gauge(
        "cats_hub_node_connected",
        "1 when the node is connected.",
        "country",
        n.iter()
            .map(|n| {
                (
                    n.country.as_str(),
                    Some(if n.connected { 1.0 } else { 0.0 }),
                )
            })
            .collect(),
    );
    gauge(
        "cats_hub_node_undelivered",
        "Messages the node is owed.",
        "country",
        n.iter()
            .map(|n| (n.country.as_str(), count(n.undelivered)))
            .collect(),
    );
    gauge(
        "cats_hub_node_oldest_undelivered_seconds",
        "Age of the oldest message the node is owed.",
        "country",
        n.iter()
            .map(|n| (n.country.as_str(), n.oldest_undelivered_age_seconds))
            .collect(),
    );
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new();
        m.message_in("CD001C", "KZ");
        m.message_in("CD001C", "KZ");
        m.rejected("CD001C", "AZ", "14");
        m.observe_latency(0.003);
        let text = m.render(7);
        assert!(
            text.contains("cats_hub_messages_in_total{type=\"CD001C\",country=\"KZ\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "cats_hub_messages_rejected_total{type=\"CD001C\",country=\"AZ\",code=\"14\"} 1"
        ));
        assert!(text.contains("cats_hub_processing_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("cats_hub_processing_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("cats_hub_processing_seconds_count 1"));
        assert!(text.contains("cats_hub_journal_entries 7"));
    }
}
