//! Rendering a [`super::Rejection`] as a NACK message (placeholder, filled below).
