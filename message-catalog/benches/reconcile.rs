//! Reconciliation's comparison at scale (issue 7): 100,000 movements on a node, 1% of them
//! different from the hub (their digests changed, as when a delivery is missing), compared
//! through the MRN-bucket hash tree: the node's request, the hub's differences, the node's
//! repair request. Measures the compute of the three steps and prints the bytes of the three
//! bodies next to the full state (every movement's MRN and digest, which is what a comparison
//! without the tree would send), once, before criterion's samples.
//!
//! Not included: reading the digests from the databases, the signed envelope around each body
//! (about 1 KB each: header and signer certificate), and the re-delivery of the differing
//! movements' journal entries (the repair itself, the same whatever the comparison).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use message_catalog::lifecycle::reconcile::{
    Buckets, DIGEST_LEN, Differences, RepairRequest, Request, bucket_count, movement_digest,
    to_repair,
};

const MOVEMENTS: usize = 100_000;
const DIFFERING_EVERY: usize = 100;

type Leaves = Vec<(String, [u8; DIGEST_LEN])>;

fn leaves() -> (Leaves, Leaves) {
    let mut hub = Vec::with_capacity(MOVEMENTS);
    let mut node = Vec::with_capacity(MOVEMENTS);
    for i in 0..MOVEMENTS {
        let mrn = format!("26KZ000101{i:06}J{}", i % 10);
        let ids: Vec<String> = (0..4).map(|k| format!("KZ{i:08X}{k}")).collect();
        let full = movement_digest(ids.iter().map(String::as_str));
        hub.push((mrn.clone(), full));
        let held = if i % DIFFERING_EVERY == 0 {
            movement_digest(ids.iter().take(3).map(String::as_str))
        } else {
            full
        };
        node.push((mrn, held));
    }
    (hub, node)
}

/// The three steps; returns the bodies' sizes and the MRNs to repair.
fn exchange(hub: &Leaves, node: &Leaves) -> (usize, usize, usize, usize) {
    let count = bucket_count(node.len());
    let mine = Buckets::new(count, node.iter().cloned());
    let request = Request {
        resume_after: 0,
        buckets: mine.hashes(),
    }
    .encode();
    let decoded = Request::decode(&request).expect("request");
    let theirs = Buckets::new(count, hub.iter().cloned());
    let differing = theirs.differing(&decoded.buckets);
    let diff = Differences {
        through: 1,
        bucket_count: count,
        resumed: 0,
        buckets: differing
            .iter()
            .map(|b| (*b, theirs.fingerprints(*b)))
            .collect(),
    }
    .encode();
    let answer = Differences::decode(&diff).expect("differences");
    let repair = to_repair(&mine, &answer);
    let body = RepairRequest {
        fingerprints: repair.clone(),
    }
    .encode();
    (request.len(), diff.len(), body.len(), repair.len())
}

fn full_state_bytes(node: &Leaves) -> usize {
    // Every movement's MRN (length-prefixed) and digest: the comparison without the tree.
    node.iter().map(|(m, _)| 1 + m.len() + DIGEST_LEN).sum()
}

fn bench(c: &mut Criterion) {
    let (hub, node) = leaves();
    let started = Instant::now();
    let (request, diff, repair, found) = exchange(&hub, &node);
    let took = started.elapsed();
    let full = full_state_bytes(&node);
    let tree = request + diff + repair;
    assert_eq!(
        found,
        MOVEMENTS / DIFFERING_EVERY,
        "every differing movement found"
    );
    eprintln!(
        "reconcile: {MOVEMENTS} movements, {found} differing: compare {:.0} ms; bytes request \
         {request} + differences {diff} + repair {repair} = {tree} vs full state {full} \
         ({:.1}%)",
        took.as_secs_f64() * 1000.0,
        100.0 * tree as f64 / full as f64
    );
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    group.bench_function("compare_100k_1pct", |b| {
        b.iter(|| black_box(exchange(black_box(&hub), black_box(&node))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
