#!/usr/bin/env bash
# Runs every CATS test, the way CI does: installs and starts what the tests need when it is
# missing (Debian packages via apt-get, as root), checks formatting and lints, then runs the
# whole workspace test suite against real services: PostgreSQL, a RabbitMQ node configured with
# the project's own TLS + SASL EXTERNAL configuration, real TLS and real sockets.
#
#   bash scripts/test.sh            # everything
#   CATS_SKIP_LINT=1 bash scripts/test.sh   # tests only (faster local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# 1. Packages the tests use. Nothing is skipped when a tool is missing: it is installed.
# ---------------------------------------------------------------------------------------------
need_pkgs=()
command -v xmllint >/dev/null 2>&1 || need_pkgs+=(libxml2-utils)
command -v rabbitmq-server >/dev/null 2>&1 || need_pkgs+=(rabbitmq-server)
command -v pg_ctlcluster >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
# tests/conformance.rs regenerates the conformance suites with make_suites.py and compares.
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
# The conformance report and the web pages are checked in a real headless browser.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing packages (${need_pkgs[*]}) and not root: install them with apt-get" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------------------------
# 2. PostgreSQL on 127.0.0.1:5432 (trust auth on the machines CATS is developed on).
# ---------------------------------------------------------------------------------------------
if [[ " ${need_pkgs[*]-} " == *" postgresql "* ]]; then
  # A PostgreSQL installed just now: the tests connect over loopback as `postgres` without a
  # password, as on the machines CATS is developed on (trust auth on 127.0.0.1 only).
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  done
  for v in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main restart || true
  done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL"
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
# The tests create a fresh database per test from this connection.
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres
export CATS_TEST_POSTGRES=${CATS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
# Each PostgreSQL test makes its own database, named cats_<suite>_<16 hex digits> (a random
# suffix, so parallel tests never share one). They are dropped before the run (what an earlier,
# interrupted run left) and after it. Nothing else matches that pattern.
drop_test_databases() {
  local n=0 db
  for db in $(psql -h 127.0.0.1 -U postgres -tAc \
    "SELECT datname FROM pg_database WHERE datname ~ '^cats_[a-z_]+_[0-9a-f]{16}$'" postgres); do
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" postgres && n=$((n + 1))
  done
  echo "dropped $n test databases"
}
drop_test_databases || true
trap 'drop_test_databases || true' EXIT

# ---------------------------------------------------------------------------------------------
# 3. Formatting and lints.
# ---------------------------------------------------------------------------------------------
if [[ -z ${CATS_SKIP_LINT:-} ]]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets --all-features -- -D warnings
fi

# ---------------------------------------------------------------------------------------------
# 4. Build. The AMQP tests start their own RabbitMQ node with the project's configuration
#    (deploy/rabbitmq/start-node.sh: TLS + EXTERNAL, its own node name and ports, so the machine's
#    RabbitMQ is left as it is) and generate their own development PKI.
# ---------------------------------------------------------------------------------------------
log "building"
cargo build --workspace --all-targets --all-features

# ---------------------------------------------------------------------------------------------
# 5. Every test of the workspace, ignored ones included.
# ---------------------------------------------------------------------------------------------
log "cargo test"
# Each test binary runs under scripts/test-binary.sh: a binary that hangs is stopped after
# CATS_TEST_BINARY_LIMIT seconds and reported by name, and the others still run.
host=$(rustc -vV | sed -n 's/^host: //p')
runner_var="CARGO_TARGET_$(echo "$host" | tr '[:lower:]-' '[:upper:]_')_RUNNER"
export "$runner_var=$root/scripts/test-binary.sh"
cargo test --workspace --all-features --no-fail-fast -- --include-ignored
unset "$runner_var"

# ---------------------------------------------------------------------------------------------
# 6. The schemas: regenerated output equals what is committed, and our external-domain XSDs
#    accept exactly what the P5 XSDs accept (corpus, samples and ~25,000 mutants compared).
# ---------------------------------------------------------------------------------------------
log "schema checks (tools/schemagen/check.sh)"
bash tools/schemagen/check.sh

