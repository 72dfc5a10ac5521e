#!/usr/bin/env bash
# The benchmark pack of docs/BENCHMARKS.md in one command: a 1,000,000-event backlog drained by
# pg_recvlogical and by the relay to every sink and in polling mode, then commit-to-ack latency at
# 1k, 5k and 10k events/s, then peak memory on large events. Release builds; about 15 minutes on 2
# cores. Any BENCH_* variable the benchmarks read can be set to override these sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_BIN="$(scripts/install-tansu.sh | tail -n 1)"
export TANSU_BIN
scripts/services.sh

BENCH_EVENTS="${BENCH_EVENTS:-1000000}" \
  BENCH_TARGETS="${BENCH_TARGETS:-pg_recvlogical,redis,rabbitmq,kafka,polling-redis}" \
  cargo bench -p outbox-relay --bench throughput
BENCH_RATES="${BENCH_RATES:-1000,5000,10000}" cargo bench -p outbox-relay --bench latency
cargo bench -p outbox-relay --bench memory
