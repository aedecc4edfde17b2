//! The CATS country node: its country's gateway between the national systems and the hub.
//!
//! Data flow:
//!
//! - **National message** (`POST /api/v1/messages`, [`http`]) → [`engine::Engine::submit`]:
//!   strict decode and rules (`message_catalog::rules::validate`; a CC917C or CC906C when they
//!   fail) → which movement (`lifecycle::reference`) → the pure life cycle
//!   (`lifecycle::apply`) → outputs composed (`lifecycle::compose`): P5 replies appended to the
//!   outbound stream, CD messages signed (`cats_trust::Signer`) into the transport's outbox →
//!   the system decisions the new state calls for (acceptance and MRN, [`selection`],
//!   write-off), all in one transaction of the [`store`].
//! - **Hub delivery** ([`engine::Engine::deliver`]): envelope verified
//!   (`Verifier::open_redelivered`) → decoded → inbox → applied in the role the message type
//!   names → committed → acknowledged.
//! - **Out to the national system**: the stream, pulled (`GET /api/v1/messages`), streamed
//!   (server-sent events) or pushed ([`webhook`], HMAC-signed), in cursor order.
//! - **Officers** act through `POST /api/v1/actions` ([`engine::Engine::act`]): who and when
//!   are recorded with every action.
//!
//! Modules:
//!
//! - [`config`]: configuration in two stages, [`start`] and [`run`].
//! - [`engine`]: the application of messages, actions and deliveries, around the life cycle.
//! - [`refdata`]: the node's copy of the reference data, CA005C updates, gaps and the CA006C
//!   that asks for what it lacks; declarations are refused while the node is behind.
//! - [`selection`]: selection for control (rules, profiles, deterministic sampling).
//! - [`store`]: the node's tables (movements, messages, history, selections, stream) in the
//!   transport's database, with their own migrations.
//! - [`http`]: the national API over HTTPS (rustls), its OpenAPI document, SSE, metrics.
//! - [`webhook`]: push of the stream with HMAC-SHA256 signatures.
//! - [`reconcile`]: reconciliation with the hub (self-check against the event log, digest
//!   comparison, resume point, repair by re-delivery).
//! - [`status`]: status requests to another country's node (CD094C/CD095C), compared with
//!   this node's copy, the side behind repaired by reconciliation.
//! - [`metrics`]: counters rendered as Prometheus text.
//! - [`time`]: UTC storage, local display in the office's time zone (chrono-tz).

pub mod config;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod refdata;
pub mod selection;
pub mod status;
pub mod store;
pub mod time;
pub mod webhook;

pub use config::{NodeError, RawConfig, ResolvedConfig, RunningNode, run, start};
