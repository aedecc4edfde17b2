//! The commands of `cats`, one module each.

pub mod certs;
pub mod demo;
pub mod hub;
pub mod mrn;
pub mod validate;
