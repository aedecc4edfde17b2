//! The CATS message catalogue: pure code, no I/O runtime.
//!
//! (The module map is completed as the modules land.)
//!
//! - [`ids`]: identifiers as newtypes that cannot hold a wrong value.
//! - [`codelists`]: the code lists (NCTS P5 and CATS's own) as embedded data, and their registry.

pub mod codelists;
pub mod ids;
