#!/usr/bin/env bash
# Compares, on the same bytes, the codec's typed decode (criterion), a bare quick-xml event scan
# (criterion) and `xmllint --noout --schema` (libxml2), over a typical (~5 KB) and a large
# (~1 MB) CC015C. Prints MB/s for each (criterion medians) and the ratios.
#
#   message-catalog/benches/compare-xmllint.sh
#
# xmllint is run once per size over many copies of the document in one process, so its schema
# is parsed once and the figure is its validation throughput, not its start-up time.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
command -v xmllint >/dev/null || { echo "xmllint missing: apt-get install -y libxml2-utils" >&2; exit 2; }
target="${CARGO_TARGET_DIR:-$repo/target}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

CATS_BENCH_WRITE="$tmp" cargo bench -q -p cats-message-catalog --bench decode >/dev/null 2>&1
cargo bench -q -p cats-message-catalog --bench decode -- --warm-up-time 1 --measurement-time 5 --noplot >/dev/null 2>&1

median_ns() { # criterion group/function -> median time per iteration in ns
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' \
        "$target/criterion/$1/$2/new/estimates.json"
}

printf '%-8s %10s %12s %12s %12s %14s %12s\n' size bytes "codec MB/s" "scan MB/s" "xmllint MB/s" "codec/xmllint" "codec/scan"
for size in typical large; do
    file="$tmp/$size.xml"
    bytes=$(stat -c %s "$file")
    if [ "$size" = typical ]; then copies=2000; else copies=20; fi
    mkdir -p "$tmp/$size"
    for i in $(seq 1 "$copies"); do ln -f "$file" "$tmp/$size/$i.xml"; done
    start=$(date +%s.%N)
    xmllint --noout --schema schemas/ncts/cc015c.xsd "$tmp/$size"/*.xml 2>"$tmp/$size.log" || true
    end=$(date +%s.%N)
    ok=$(grep -c ' validates$' "$tmp/$size.log" || true)
    [ "$ok" = "$copies" ] || { echo "xmllint rejected the $size document:" >&2; head -5 "$tmp/$size.log" >&2; exit 1; }
    codec=$(median_ns "cc015c-$size" codec)
    scan=$(median_ns "cc015c-$size" scan)
    python3 - "$size" "$bytes" "$copies" "$start" "$end" "$codec" "$scan" <<'EOF'
import sys
size, b, n, s, e, codec, scan = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *map(float, sys.argv[4:])
mbs = lambda bytes_, secs: bytes_ / secs / 1e6
c, sc, x = mbs(b, codec * 1e-9), mbs(b, scan * 1e-9), mbs(b * n, e - s)
print(f"{size:<8} {b:>10} {c:>12.1f} {sc:>12.1f} {x:>12.1f} {c / x:>13.1f}x {100 * c / sc:>11.0f}%")
EOF
done
