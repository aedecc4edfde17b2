//! The CATS message catalogue: pure code, no I/O runtime.
//!
//! (The module map is completed as the modules land.)
//!
//! - [`ids`]: identifiers as newtypes that cannot hold a wrong value.

pub mod ids;
