//! The CATS hub: the one place every node talks to.
//!
//! Data flow, for every delivery from a node (see [`pipeline`]): transport identity →
//! envelope signature and sender checks (`cats_trust`) → strict decode and rules
//! (`message_catalog::rules`) → reference checks and routing ([`routing`]) → duplicate check →
//! [`journal`] → forward the same signed envelope to each recipient → acknowledge. Failures
//! become CD917C / CD906C NACKs signed by the hub, journalled as rejected, and acknowledged.
//!
//! Modules:
//!
//! - [`store`]: the hub's tables on SQLite or PostgreSQL, with their own migrations.
//! - [`journal`]: the append-only, hash-chained journal and [`journal::verify`].
//! - [`routing`]: pure routing and reference checks from a decoded message and reference data.
//! - [`pipeline`]: the inbound pipeline, generic over [`cats_transport::contract::Transport`].
//! - [`registry`]: the movement registry kept from accepted messages, and its queries.
//! - [`guarantee`]: the comprehensive-guarantee ledger (CD203C → CD205C, CD204C, CD209C) and
//!   `/api/v1/guarantees`.
//! - [`refdata`]: the master copy of the reference data (versions, audit), its distribution to
//!   the nodes (CA005C), the answer to a node that is behind (CA006C), `/api/v1/refs`.
//! - [`registrations`]: AEO, authorised trader and insurer registration (CA003C, review over
//!   `/api/v1/registrations`, CA004C).
//! - [`insurer`]: insurers and the administrator on the ledger: contract submission and
//!   approval, the insurer's view, enquiries, liabilities and their indemnity process,
//!   threshold notifications (`/api/v1/insurance-contracts`, `/api/v1/insurer/contracts`, …).
//! - [`metrics`]: counters and the latency histogram, rendered as Prometheus text.
//! - [`http`]: the operations API (`/api/v1/movements`, `/api/v1/queues`,
//!   `/api/v1/dead-letters`, `/healthz`, `/readyz`, `/metrics`).
//! - [`operations`]: what operators see of queues and nodes on either transport, sampled for
//!   `/api/v1/queues` and the queue gauges of `/metrics`; `/readyz`'s transport check.
//! - [`dead_letters`]: the register of dead letters (collected from the transport), replay and
//!   discard with an audit entry.
//! - [`reconcile`]: reconciliation with the nodes (resume by sequence, digest comparison,
//!   repair by re-delivery) and `/api/v1/reconciliation`.
//! - [`access`]: who may use the HTTP API: bearer-token credentials (administrator, operator,
//!   insurer), revocation, and the guard in front of every route but the probes.
//! - [`client`]: a small HTTP client for the hub's API (`cats queues`, `cats dead-letters`)
//!   and RabbitMQ's management API.
//! - [`config`]: configuration in two stages (raw TOML + environment, then resolved), and
//!   [`run`] / [`verify_journal`], the entry points of `cats hub`.

pub mod access;
pub mod client;
pub mod config;
pub mod dead_letters;
pub mod guarantee;
pub mod http;
pub mod insurer;
pub mod journal;
pub mod metrics;
pub mod operations;
pub mod pipeline;
pub mod reconcile;
pub mod refdata;
pub mod registrations;
pub mod registry;
pub mod routing;
pub mod store;

pub use config::{RawConfig, ResolvedConfig, RunningHub, run, start, verify_journal};
