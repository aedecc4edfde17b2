#!/bin/sh
# Schema checks: run from anywhere; exits non-zero on any failure.
#   - the committed schemas are what tools/schemagen/schemagen.py generates;
#   - every corpus case gets its .expect verdict (and pointer) from xmllint;
#   - our external-domain schemas and the P5 XSDs agree on the P5 samples, on
#     the external-domain corpus and on mutants of every valid document.
# Needs python3 (stdlib only) and xmllint (installed here when missing).
set -eu
cd "$(dirname "$0")/../.."
if ! command -v xmllint >/dev/null 2>&1; then
    echo "xmllint missing: installing libxml2-utils" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq libxml2-utils
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq libxml2-utils
    fi
fi
: "${P5_REF:=$(cd .. && pwd)/shared/reference/ncts-p5}"
if [ ! -d "$P5_REF/xsd" ]; then
    echo "P5 reference not found at $P5_REF (set P5_REF)" >&2
    exit 2
fi
export P5_REF
exec python3 tools/schemagen/check.py "$@"
