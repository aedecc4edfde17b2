//! What the hub counts, rendered in the Prometheus text format (version 0.0.4) by hand.
//!
//! - `cats_hub_messages_in_total{type,country}`: deliveries received from nodes (duplicates
//!   included);
//! - `cats_hub_messages_out_total{type,country}`: envelopes the hub handed to the transport
//!   for a node (forwarded messages and NACKs);
//! - `cats_hub_messages_rejected_total{type,country,code}`: messages refused;
//! - `cats_hub_messages_duplicate_total{type,country}`: redeliveries acknowledged again;
//! - `cats_hub_processing_seconds`: histogram of the time from delivery to acknowledgement;
//! - `cats_hub_journal_entries`: the journal's size (read from the store at scrape time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

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
        self.with(|m| bump(&mut m.messages_in, (message_type.into(), country.into())));
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
