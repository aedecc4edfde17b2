//! Typed decode at schema level against a bare quick-xml event scan of the same bytes, over a
//! typical (~5 KB) and a large (~1 MB, hundreds of consignment items) CC015C, both built from
//! the valid corpus files by repeating consignment items (within maxOccurs).
//!
//! `CATS_BENCH_WRITE=DIR cargo bench --bench decode` writes the two documents into DIR and exits
//! (used by `compare-xmllint.sh`, which times xmllint on the same bytes).
//!
//! `CATS_BENCH_RUN=typical|large|scan-typical|scan-large[:N]` decodes (or scans) that document
//! N times (default 100) and exits, without criterion: a fixed amount of work for
//! `valgrind --tool=callgrind`, whose instruction counts do not depend on the machine's load.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use message_catalog::{Limits, decode};

/// The allocator of the `cats` binary, so the figures are those of `cats validate`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn corpus(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cc015c")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Repeats the first `<ConsignmentItem>` of the document until it reaches `target` bytes
/// (at most 999 items per house consignment, the schema's maxOccurs).
fn grow(doc: &str, target: usize) -> String {
    let start = doc.find("<ConsignmentItem>").expect("a consignment item");
    let end = doc[start..].find("</ConsignmentItem>").expect("its end")
        + start
        + "</ConsignmentItem>".len();
    let item = &doc[start..end];
    let mut out = String::with_capacity(target + doc.len());
    out.push_str(&doc[..end]);
    let mut n = doc.matches("<ConsignmentItem>").count();
    while out.len() + (doc.len() - end) < target && n < 999 {
        out.push_str("\n      ");
        out.push_str(item);
        n += 1;
    }
    out.push_str(&doc[end..]);
    out
}

pub fn documents() -> Vec<(&'static str, Vec<u8>)> {
    let typical = grow(&corpus("valid-minimal.xml"), 5 * 1024).into_bytes();
    let large = grow(&corpus("valid-full.xml"), 1024 * 1024).into_bytes();
    for (name, d) in [("typical", &typical), ("large", &large)] {
        if let Err(r) = decode(d, &Limits::default()) {
            panic!("the {name} benchmark document does not decode: {r}");
        }
    }
    vec![("typical", typical), ("large", large)]
}

fn scan(bytes: &[u8]) -> usize {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut n = 0;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) | Err(_) => return n,
            Ok(_) => n += 1,
        }
    }
}

fn bench(c: &mut Criterion) {
    let docs = documents();
    if let Ok(dir) = std::env::var("CATS_BENCH_WRITE") {
        for (name, d) in &docs {
            std::fs::write(PathBuf::from(&dir).join(format!("{name}.xml")), d).unwrap();
        }
        eprintln!("wrote the benchmark documents into {dir}");
        std::process::exit(0);
    }
    let limits = Limits::default();
    if let Ok(what) = std::env::var("CATS_BENCH_RUN") {
        let (what, n) = what.split_once(':').unwrap_or((&what, "100"));
        let n: usize = n.parse().expect("CATS_BENCH_RUN=name:count");
        let (scan_only, name) = match what.strip_prefix("scan-") {
            Some(name) => (true, name),
            None => (false, what),
        };
        let (_, d) = docs
            .iter()
            .find(|(d, _)| *d == name)
            .expect("CATS_BENCH_RUN names typical or large");
        for _ in 0..n {
            if scan_only {
                black_box(scan(black_box(d)));
            } else {
                assert!(decode(black_box(d), &limits).is_ok());
            }
        }
        std::process::exit(0);
    }
    for (name, d) in &docs {
        let mut g = c.benchmark_group(format!("cc015c-{name}"));
        g.throughput(Throughput::Bytes(d.len() as u64));
        g.bench_function("codec", |b| {
            b.iter(|| decode(black_box(d), &limits).is_ok())
        });
        g.bench_function("scan", |b| b.iter(|| scan(black_box(d))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
