//! Placeholder until the envelope lands.
fn main() {}
