//! CATS transport: how signed envelopes travel between the nodes and the hub, with nothing lost
//! and nothing applied twice.
//!
//! A sender writes its state change and the message it causes in one transaction (the
//! [`store::Outbox`]); a relay sends the message through a [`contract::Transport`] until the
//! other side confirms it durably, retrying with the same message id. The receiver checks the
//! message id in its [`store::Inbox`] inside the transaction that applies the effect, commits,
//! then acknowledges: a redelivered message has its effect once.
//!
//! Modules:
//!
//! - [`contract`]: the [`Transport`](contract::Transport) trait both transports implement
//!   (direct mTLS here, AMQP in `cats-transport-amqp`) and its guarantees: durable send,
//!   at-least-once delivery with explicit acknowledgement, order per partition key, dead
//!   letters instead of poison loops, sender identity taken from the channel.
//! - [`store`]: SQL state on SQLite or PostgreSQL: outbox and relay, inbox, dead letters, the
//!   hub's per-node delivery queue.
//! - [`direct`]: the direct mutual-TLS link ([`DirectHub`](direct::DirectHub),
//!   [`DirectNode`](direct::DirectNode)); [`direct::frame`] is its wire format, without I/O.
//! - [`shutdown`]: the graceful-shutdown signal the long-running tasks watch.
//! - `testkit` (feature `testkit`): the contract test suite every transport runs.

pub mod contract;
pub mod direct;
pub mod shutdown;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
