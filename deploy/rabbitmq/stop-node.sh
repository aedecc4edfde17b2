#!/usr/bin/env bash
# Stop the RabbitMQ node started by start-node.sh (its data stays in --state).
#
#   stop-node.sh [--state DIR] [--node-name NAME]
#
# Idempotent: if the node is not running it says so and exits 0.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${CATS_RABBITMQ_STATE:-/tmp/cats-rabbitmq}"
AMQPS_PORT="${CATS_RABBITMQ_AMQPS_PORT:-26710}"
DIST_PORT="${CATS_RABBITMQ_DIST_PORT:-25680}"
NODE_NAME="${CATS_RABBITMQ_NODE_NAME:-cats-test@localhost}"
SBIN="${RABBITMQ_SBIN:-}"

while [ $# -gt 0 ]; do
  case "$1" in
    --state) STATE="$2"; shift 2 ;;
    --node-name) NODE_NAME="$2"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stop-node.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ -z "$SBIN" ]; then
  SBIN="$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
# shellcheck source=/dev/null
. "$HERE/node-env.sh"

if ! "$SBIN/rabbitmqctl" -q -n "$NODE_NAME" ping >/dev/null 2>&1; then
  echo "stop-node.sh: $NODE_NAME is not running"
  exit 0
fi
"$SBIN/rabbitmqctl" -q -n "$NODE_NAME" stop "$RABBITMQ_PID_FILE"
echo "stop-node.sh: $NODE_NAME stopped"
