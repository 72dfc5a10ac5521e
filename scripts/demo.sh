#!/usr/bin/env bash
# The main job: a relay run from an outbox table to a broker on local servers, printing what it relayed.
# Usage: scripts/demo.sh [--broker kafka|rabbitmq|redis]   (default kafka)
set -euo pipefail
cd "$(dirname "$0")/.."

broker=kafka
for arg in "$@"; do
  case "$arg" in
    --broker=*) broker="${arg#--broker=}" ;;
    --broker) ;;
    kafka|rabbitmq|redis) broker="$arg" ;;
    *) echo "usage: scripts/demo.sh [--broker kafka|rabbitmq|redis]" >&2; exit 2 ;;
  esac
done

if [ "$broker" = kafka ]; then
  TANSU_BIN="$(scripts/install-tansu.sh | tail -n 1)"
  export TANSU_BIN
fi
scripts/services.sh
cargo build -q -p outbox-relay --bins
cargo run -q -p outbox-relay --example demo -- --broker "$broker"
