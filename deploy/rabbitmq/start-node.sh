#!/usr/bin/env bash
# Start a RabbitMQ node with the CATS configuration, for local use and tests.
#
# It runs beside any RabbitMQ already on this machine (it never touches the
# system node): its own node name, ports, state directory and Erlang cookie.
#
#   start-node.sh --certs DIR [--state DIR] [--amqps-port N] [--management-port N]
#                 [--dist-port N] [--node-name NAME]
#
# DIR holds the development PKI (`cats certs init`): ca.pem,
# rabbitmq-server.pem, rabbitmq-server.key.pem. Idempotent: if the node is
# already running it says so and exits 0. Waits until the node accepts
# connections on the AMQPS port and its definitions are loaded.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CERTS=""
STATE="${CATS_RABBITMQ_STATE:-/tmp/cats-rabbitmq}"
AMQPS_PORT="${CATS_RABBITMQ_AMQPS_PORT:-26710}"
MGMT_PORT="${CATS_RABBITMQ_MANAGEMENT_PORT:-15680}"
DIST_PORT="${CATS_RABBITMQ_DIST_PORT:-25680}"
NODE_NAME="${CATS_RABBITMQ_NODE_NAME:-cats-test@localhost}"
SBIN="${RABBITMQ_SBIN:-}"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --certs) CERTS="$2"; shift 2 ;;
    --state) STATE="$2"; shift 2 ;;
    --amqps-port) AMQPS_PORT="$2"; shift 2 ;;
    --management-port) MGMT_PORT="$2"; shift 2 ;;
    --dist-port) DIST_PORT="$2"; shift 2 ;;
    --node-name) NODE_NAME="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "start-node.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

[ -n "$CERTS" ] || { echo "start-node.sh: --certs DIR is required" >&2; exit 2; }
CERTS="$(cd "$CERTS" && pwd)"
for f in ca.pem rabbitmq-server.pem rabbitmq-server.key.pem; do
  [ -r "$CERTS/$f" ] || { echo "start-node.sh: missing $CERTS/$f (run: cats certs init --dir $CERTS)" >&2; exit 2; }
done

# The scripts of the installed server, called directly (not through the
# Debian wrapper, which switches to the rabbitmq user and its cookie).
if [ -z "$SBIN" ]; then
  SBIN="$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
[ -x "$SBIN/rabbitmq-server" ] || { echo "start-node.sh: rabbitmq-server not found (set RABBITMQ_SBIN)" >&2; exit 2; }

mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
# shellcheck source=/dev/null
. "$HERE/node-env.sh"

# RabbitMQ imports definitions.json at boot but keeps an exchange or queue that already exists
# as it is (a fanout `cats.hub.in` stays fanout): a node whose state was made with other
# definitions is stopped and its state cleared, so that it runs the checked-in topology.
DEFS_SUM="$(sha256sum "$HERE/definitions.json" | cut -d' ' -f1)"
if [ -d "$STATE/mnesia" ] && [ "$(cat "$STATE/definitions.sha256" 2>/dev/null || true)" != "$DEFS_SUM" ]; then
  echo "start-node.sh: $STATE was made with other definitions; clearing it"
  if "$SBIN/rabbitmqctl" -q -n "$NODE_NAME" ping >/dev/null 2>&1; then
    timeout 120 "$SBIN/rabbitmqctl" -q -n "$NODE_NAME" stop "$RABBITMQ_PID_FILE" || true
  fi
  rm -rf "$STATE/mnesia"
fi

if "$SBIN/rabbitmqctl" -q -n "$NODE_NAME" ping >/dev/null 2>&1; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$AMQPS_PORT") 2>/dev/null; then
    echo "start-node.sh: $NODE_NAME is already running (amqps://127.0.0.1:$AMQPS_PORT, state $STATE)"
    exit 0
  fi
  # Running, but not listening where asked: started with other ports, or its listener failed
  # (eaddrinuse when another socket held the port at boot). Stopped and started again.
  echo "start-node.sh: $NODE_NAME runs but does not answer on $AMQPS_PORT; restarting it"
  timeout 120 "$SBIN/rabbitmqctl" -q -n "$NODE_NAME" stop "$RABBITMQ_PID_FILE" || true
fi
echo "$DEFS_SUM" > "$STATE/definitions.sha256"

# The node's configuration: the checked-in files with this machine's paths and ports.
sed -e "s#/etc/cats/certs#$CERTS#g" \
    -e "s#/etc/cats/rabbitmq/definitions.json#$HERE/definitions.json#" \
    -e "s#^listeners.ssl.default = .*#listeners.ssl.1 = 127.0.0.1:$AMQPS_PORT#" \
    -e "s#^management.tcp.port = .*#management.tcp.port = $MGMT_PORT#" \
    -e "s#^disk_free_limit.absolute = .*#disk_free_limit.absolute = 50MB#" \
    "$HERE/rabbitmq.conf" > "$STATE/rabbitmq.conf"
cp "$HERE/enabled_plugins" "$STATE/enabled_plugins"
: > "$STATE/rabbitmq-env.conf"
if [ ! -f "$STATE/.erlang.cookie" ]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/.erlang.cookie"
  chmod 400 "$STATE/.erlang.cookie"
fi

echo "start-node.sh: starting $NODE_NAME (amqps 127.0.0.1:$AMQPS_PORT, management 127.0.0.1:$MGMT_PORT, state $STATE)"
"$SBIN/rabbitmq-server" -detached >"$STATE/startup.log" 2>&1 || true

# Wait for the node to boot, then for the AMQPS listener.
for _ in $(seq 1 120); do
  if "$SBIN/rabbitmqctl" -q -n "$NODE_NAME" await_startup --timeout 1 >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
if ! "$SBIN/rabbitmqctl" -q -n "$NODE_NAME" await_startup --timeout 60 >/dev/null 2>&1; then
  echo "start-node.sh: $NODE_NAME did not start; see $STATE/log and $STATE/startup.log" >&2
  tail -n 30 "$STATE/startup.log" >&2 || true
  exit 1
fi
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$AMQPS_PORT") 2>/dev/null; then
    echo "start-node.sh: $NODE_NAME is ready"
    exit 0
  fi
  sleep 0.5
done
echo "start-node.sh: $NODE_NAME started but port $AMQPS_PORT does not answer" >&2
exit 1
