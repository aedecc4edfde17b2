//! Counters of the node, rendered as Prometheus text at `/metrics` together with two gauges
//! read at scrape time (outbox depth, stream cursor).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// The node's counters. Shared (`Arc`) by the engine, the HTTP API and the webhook.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn add(&self, name: &'static str, label: String) {
        self.add_n(name, label, 1);
    }

    fn add_n(&self, name: &'static str, label: String, n: u64) {
        let mut c = match self.counters.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *c.entry((name, label)).or_insert(0) += n;
    }

    /// Reconciliation totals, by what is counted (`runs`, `differences`, `corrupt_repaired`,
    /// `bytes_in`, `bytes_out`).
    pub fn reconciliation(&self, what: &str, n: u64) {
        self.add_n(
            "cats_node_reconciliation_total",
            format!("what=\"{what}\""),
            n,
        );
    }

    /// A message received (national API or hub).
    pub fn message_in(&self, message_type: &str) {
        self.add(
            "cats_node_messages_in_total",
            format!("type=\"{message_type}\""),
        );
    }

    /// A message sent (to the national system or to the hub).
    pub fn message_out(&self, message_type: &str) {
        self.add(
            "cats_node_messages_out_total",
            format!("type=\"{message_type}\""),
        );
    }

    /// A message or action rejected, by code (`92`, `xml.syntax`, `envelope.signature` ...).
    pub fn rejected(&self, code: &str) {
        self.add("cats_node_rejections_total", format!("code=\"{code}\""));
    }

    /// A webhook delivery attempt, by outcome (`ok`, `failed`).
    pub fn webhook(&self, outcome: &str) {
        self.add(
            "cats_node_webhook_deliveries_total",
            format!("outcome=\"{outcome}\""),
        );
    }

    /// The value of one counter (tests).
    pub fn value(&self, name: &str, label: &str) -> u64 {
        let c = match self.counters.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        c.iter()
            .find(|((n, l), _)| *n == name && l == label)
            .map_or(0, |(_, v)| *v)
    }

    /// Prometheus text with the gauges given.
    pub fn render(&self, outbox_depth: i64, stream_cursor: i64) -> String {
        let c = match self.counters.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = String::new();
        let mut last = "";
        for ((name, label), value) in c.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{{{label}}} {value}");
        }
        let _ = writeln!(out, "# TYPE cats_node_outbox_depth gauge");
        let _ = writeln!(out, "cats_node_outbox_depth {outbox_depth}");
        let _ = writeln!(out, "# TYPE cats_node_stream_cursor gauge");
        let _ = writeln!(out, "cats_node_stream_cursor {stream_cursor}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.message_in("CC015C");
        m.message_in("CC015C");
        m.message_out("CC928C");
        m.rejected("92");
        let text = m.render(3, 17);
        assert!(
            text.contains("cats_node_messages_in_total{type=\"CC015C\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("cats_node_messages_out_total{type=\"CC928C\"} 1\n"));
        assert!(text.contains("cats_node_rejections_total{code=\"92\"} 1\n"));
        assert!(text.contains("cats_node_outbox_depth 3\n"));
        assert!(text.contains("cats_node_stream_cursor 17\n"));
        assert_eq!(m.value("cats_node_messages_in_total", "type=\"CC015C\""), 2);
    }
}
