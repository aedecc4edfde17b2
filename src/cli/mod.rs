//! The commands of `cats`, one module each.

pub mod certs;
pub mod mrn;
pub mod validate;
