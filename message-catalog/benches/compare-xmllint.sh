#!/usr/bin/env bash
# Compares, on the same bytes, the codec's typed decode (criterion), a bare quick-xml event scan
# (criterion) and `xmllint --noout --schema` (libxml2), over a typical (~5 KB) and a large
# (~1 MB) CC015C. Prints MB/s for each (criterion medians) and the ratios.
#
#   message-catalog/benches/compare-xmllint.sh [--instructions]
#
# --instructions also counts, with `valgrind --tool=callgrind`, the instructions each of the
# three spends on one document (differences of runs doing N and 0 decodes, or 11 and 1 xmllint
# validations, so start-up and schema parsing drop out) and prints those ratios: figures that do
# not depend on the machine's load.
#
# xmllint is run once per size over many copies of the document in one process, so its schema
# is parsed once and the figure is its validation throughput, not its start-up time.
set -euo pipefail

instructions=false
for arg in "$@"; do
    case "$arg" in
        --instructions) instructions=true ;;
        *) echo "usage: $0 [--instructions]" >&2; exit 2 ;;
    esac
done

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

$instructions || exit 0
command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install -y valgrind" >&2; exit 2; }
bench="$(cargo bench -p cats-message-catalog --bench decode --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$bench" ] || { echo "cannot find the decode bench executable" >&2; exit 1; }
collected() { # the instructions of the largest process valgrind reports on (the bench itself)
    grep -o 'Collected : [0-9]*' | awk '{ if ($3 > m) m = $3 } END { print m }'
}
cg_bench() { # CATS_BENCH_RUN value -> instructions
    CATS_BENCH_RUN="$1" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bench" --bench 2>&1 | collected
}
cg_xmllint() { # files... -> instructions
    valgrind --tool=callgrind --callgrind-out-file=/dev/null xmllint --noout --schema schemas/ncts/cc015c.xsd "$@" 2>&1 | collected
}
echo
echo "instructions per document (callgrind); the ratios are speed ratios: the other's instructions over the codec's"
printf '%-8s %14s %14s %14s %14s %12s\n' size "codec instr" "scan instr" "xmllint instr" "codec/xmllint" "codec/scan"
for size in typical large; do
    if [ "$size" = typical ]; then n=200; else n=4; fi
    codec=$(( ($(cg_bench "$size:$n") - $(cg_bench "$size:0")) / n ))
    scan=$(( ($(cg_bench "scan-$size:$n") - $(cg_bench "scan-$size:0")) / n ))
    one=$(cg_xmllint "$tmp/$size/1.xml")
    eleven=$(cg_xmllint $(for i in $(seq 1 11); do echo "$tmp/$size/$i.xml"; done))
    xmllint=$(( (eleven - one) / 10 ))
    python3 -c 'import sys; s, c, sc, x = sys.argv[1], *map(int, sys.argv[2:]); print(f"{s:<8} {c:>14,} {sc:>14,} {x:>14,} {x / c:>13.2f}x {100 * sc / c:>11.0f}%")' "$size" "$codec" "$scan" "$xmllint"
done
