//! Benchmark of the direct link (being written).
fn main() {}
