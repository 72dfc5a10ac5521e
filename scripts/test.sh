#!/usr/bin/env bash
# The whole check, as CI runs it: formatting, clippy, and every crate's tests against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_BIN="$(scripts/install-tansu.sh | tail -n 1)"
export TANSU_BIN
# A Python with kafka-python, the Java-partitioning client the partitioning cutover test writes with.
KAFKA_PYTHON="$(scripts/install-kafka-python.sh | tail -n 1)"
export KAFKA_PYTHON
scripts/services.sh
# The PostgreSQL majors the tests run against besides the system's (harness/src/postgres/installation.rs).
for major in 13 17; do
  bin="$(scripts/install-postgres.sh "$major" | tail -n 1)"
  export "PG${major}_BIN=$bin"
done

# The tests' streams, exchanges and queues go to a Redis server and a RabbitMQ vhost of this run's
# own, removed when it ends, so that the machine's Redis and RabbitMQ keep nothing of them.
run_dir="$(mktemp -d)"
TEST_REDIS_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TEST_RABBITMQ_VHOST="outbox-relay-tests-$$"
export TEST_REDIS_PORT TEST_RABBITMQ_VHOST
cleanup() {
  if [ -f "$run_dir/redis.pid" ]; then kill "$(cat "$run_dir/redis.pid")" 2>/dev/null || true; fi
  rabbitmqctl -q delete_vhost "$TEST_RABBITMQ_VHOST" >/dev/null 2>&1 || true
  rm -rf "$run_dir"
}
trap cleanup EXIT
redis-server --bind 127.0.0.1 --port "$TEST_REDIS_PORT" --save "" --appendonly no --dir "$run_dir" \
  --logfile "$run_dir/redis.log" --pidfile "$run_dir/redis.pid" --daemonize yes
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$TEST_REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
rabbitmqctl -q add_vhost "$TEST_RABBITMQ_VHOST" >/dev/null
rabbitmqctl -q set_permissions -p "$TEST_RABBITMQ_VHOST" guest '.*' '.*' '.*' >/dev/null

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The relay's optional trace export is compiled and tested too.
cargo clippy -p outbox-relay --all-targets --features otlp -- -D warnings

# The benchmarks at a tiny size in debug builds, so that they keep working: they check what arrives,
# but their numbers mean nothing (docs/BENCHMARKS.md has the real ones). About 30 s.
BENCH_EVENTS=2000 BENCH_TARGETS=pg_recvlogical,redis,polling-redis \
  cargo test -p outbox-relay --bench throughput
BENCH_RATES=500 BENCH_POLLING_RATES=500 BENCH_SECONDS=2 cargo test -p outbox-relay --bench latency
BENCH_MEMORY_SCALE=100 cargo test -p outbox-relay --bench memory

if cargo nextest --version >/dev/null 2>&1; then
  # nextest runs no doctests.
  cargo test --workspace --doc
  cargo nextest run -p outbox-relay --features otlp --test it otlp::
  # Each test in a process of its own, with the timeouts of .config/nextest.toml; last, so that its
  # summary closes the output.
  cargo nextest run --workspace
else
  cargo test -p outbox-relay --features otlp --test it otlp::
  cargo test --workspace
fi
