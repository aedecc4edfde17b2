//! CATS transport: how signed envelopes travel between the nodes and the hub, with nothing lost
//! and nothing applied twice.
//!
//! - [`contract`]: the [`Transport`](contract::Transport) trait both transports implement
//!   (direct mTLS here, AMQP in `cats-transport-amqp`), with its guarantees: durable send,
//!   at-least-once delivery with explicit acknowledgement, order per partition key, dead letters
//!   instead of poison loops, sender identity taken from the channel.
pub mod contract;
pub mod direct;
pub mod shutdown;
pub mod store;
