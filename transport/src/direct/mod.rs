//! The direct mutual-TLS link: the embedded default transport, with no broker.
//!
//! Each node keeps one TLS connection to the hub ([`DirectNode`]); the hub ([`DirectHub`])
//! accepts only client certificates that chain to the CATS CA, are valid now and are on the
//! allow-list, and takes the node's identity from that certificate.
//!
//! - node → hub: the node writes `Message` frames (at most [`LinkConfig::window`] unacked);
//!   the hub hands each to its receiver and sends `Ack` only after the receiver acked (or
//!   rejected into the hub's dead letters). Unacked messages are written again after a
//!   reconnect, marked redelivered.
//! - hub → node: [`DirectHub`]'s `send` appends to the node's durable queue (a table in the
//!   hub's [`Store`](crate::store::Store)) and returns; while the node is connected the hub
//!   delivers the queue in sequence order, at most `window` unacked, and deletes each message
//!   when the node acks it. On connect the node says the last sequence it applied, and the hub
//!   resumes after it.
//!
//! Modules: [`frame`] (the wire format, no I/O), `connection` (frames over a stream),
//! `tls` (rustls configurations and the allow-list check), `hub`, `node`.

mod connection;
pub mod frame;
mod hub;
mod node;
mod tls;

use std::time::Duration;

pub use hub::{DirectHub, HubTls};
pub use node::{DirectNode, NodeTls};

/// Tuning of the direct link; the defaults suit production and tests alike.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Messages in flight without an ack, per direction and connection (backpressure).
    pub window: usize,
    /// Largest frame accepted or sent (bytes).
    pub max_frame: usize,
    /// TCP connect plus TLS handshake plus `Hello`.
    pub handshake_timeout: Duration,
    /// Writing one batch of frames.
    pub write_timeout: Duration,
    /// Silence after which a heartbeat is sent; three times this without a frame drops the link.
    pub heartbeat: Duration,
    /// How long a node's `send` waits for the hub's ack (across reconnects) before giving up.
    pub send_timeout: Duration,
    /// First reconnect delay of a node; doubles per failure up to `max_backoff`, with jitter.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Capacity of the channel between the link and `Transport::receive`.
    pub receive_buffer: usize,
    /// How long a graceful shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            window: 256,
            max_frame: 16 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            send_timeout: Duration::from_secs(60),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            receive_buffer: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The reconnect delay before attempt `attempt` (0-based): `min · 2^attempt`, capped at
/// `max`, then scaled by `jitter` in `[0.5, 1.0]` so that nodes cut off together do not all
/// come back at the same instant.
pub fn backoff_delay(attempt: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = min.saturating_mul(1u32 << attempt.min(20));
    exp.min(max).mul_f64(jitter.clamp(0.5, 1.0))
}

/// A jitter factor in `[0.5, 1.0]` from the clock (good enough to spread reconnects).
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    0.5 + f64::from(nanos % 1000) / 2000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        assert_eq!(backoff_delay(0, min, max, 1.0), min);
        assert_eq!(backoff_delay(3, min, max, 1.0), Duration::from_millis(800));
        assert_eq!(backoff_delay(30, min, max, 1.0), max);
        assert_eq!(backoff_delay(30, min, max, 0.0), max / 2);
        let j = jitter();
        assert!((0.5..=1.0).contains(&j));
    }
}
