#!/usr/bin/env bash
# The main job, the seed's demo end to end on local servers: PostgreSQL, a broker, order-service, the relay
# and invoice-service; one order created and confirmed over HTTP, its invoice printed, everything stopped.
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
# The demo runs the relay and both services from the target dir, next to its own binary.
echo "Building the relay and both services (a first build takes 10 to 15 minutes on 2 cores; later ones, seconds)..." >&2
cargo build --workspace --bins
# exec (and cargo run execs too): the demo itself is the process that gets Ctrl-C, stops what it
# started, and exits with the status the caller sees.
exec cargo run -q -p demo -- --broker "$broker"
