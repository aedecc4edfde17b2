//! The commands of `cats`, one module each.

pub mod certs;
pub mod conformance;
pub mod dead_letters;
pub mod demo;
pub mod hub;
pub mod mrn;
pub mod node;
pub mod queues;
pub mod refs;
pub mod validate;
