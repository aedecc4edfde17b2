//! The CATS conformance kit: message sets that say how a node (and the national system behind
//! it) must answer, a runner that replays them, and the reports a customs IT team certifies
//! with.
//!
//! A **case** is a directory with a `case.toml` manifest and the XML files it sends; a **suite**
//! is a directory of cases (`suites/<suite>/<case>/case.toml`). The data flows:
//!
//! - [`case`]: the manifest format (steps: send, expect, action, state, hub, restart), loading
//!   suites from disk, tags and `--filter`.
//! - [`template`]: `{{lrn}}`, `{{mrn}}`, `{{now}}`, `{{uuid}}`, `{{now+1d}}` and captured
//!   variables in the XML files and the manifest's values.
//! - [`pointer`]: XPath-like pointers (`/CC029C/TransitOperation/MRN`) into a message and the
//!   assertions on them (equals, present, absent, matches).
//! - [`run`]: the [`run::Driver`] a target implements (a node's national API over HTTPS, or an
//!   in-process CATS), and the runner that plays every case against it, in parallel, into
//!   [`run::RunResults`] with the first difference of each failed case.
//! - [`junit`], [`table`], [`report`]: JUnit XML, the terminal table, the self-contained HTML
//!   certification report.
//! - [`record`]: a live movement's exchange turned into a case.
//! - [`link`]: the hub's direct mTLS link played by the kit, one connection per country
//!   identity, for the cases that send signed common-domain envelopes to the hub as a node
//!   would (`hub-send`, `hub-expect`).
//!
//! The crate does no HTTP itself: the `cats` command line implements [`run::Driver`] with the
//! national API client the demo uses, so the kit and the demo drive nodes the same way, and
//! with [`link::HubLink`] for the hub's common-domain side.

pub mod case;
pub mod junit;
pub mod link;
pub mod pointer;
pub mod record;
pub mod report;
pub mod run;
pub mod table;
pub mod template;

pub use case::{Case, Step, Suite};
pub use run::{CaseOutcome, CaseResult, Driver, RunResults};
