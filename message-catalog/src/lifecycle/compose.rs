//! Turning outputs into typed messages: not composed yet. The services build the messages from
//! the [`super::Output`] descriptions and the declaration they stored.
