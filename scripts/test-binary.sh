#!/usr/bin/env bash
# Cargo's runner for test binaries under scripts/test.sh: each test binary runs with a time
# limit, so that one that hangs fails with its name and the run goes on to the next binary
# (`cargo test --no-fail-fast`) instead of holding CI until its own time is up.
#
# `timeout` runs the binary in a process group of its own and signals the whole group, so the
# processes a test started (a `cats hub`, a browser) go with it.
#
#   CATS_TEST_BINARY_LIMIT   seconds a test binary may run (default 900)
limit=${CATS_TEST_BINARY_LIMIT:-900}
timeout --kill-after=30 "$limit" "$@"
rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
  echo "!!!!! $(basename "$1") ran longer than $limit s and was stopped (exit $rc)" >&2
fi
exit "$rc"
