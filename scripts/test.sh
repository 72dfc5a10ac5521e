#!/usr/bin/env bash
# The whole check, as CI runs it: formatting, clippy, and every crate's tests against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_BIN="$(scripts/install-tansu.sh | tail -n 1)"
export TANSU_BIN
scripts/services.sh
# The PostgreSQL majors the tests run against besides the system's (harness/src/postgres/installation.rs).
for major in 13 17; do
  bin="$(scripts/install-postgres.sh "$major" | tail -n 1)"
  export "PG${major}_BIN=$bin"
done

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The relay's optional trace export is compiled and tested too.
cargo clippy -p outbox-relay --all-targets --features otlp -- -D warnings

# The benchmarks at a tiny size in debug builds, so that they keep working: they check what arrives,
# but their numbers mean nothing (docs/BENCHMARKS.md has the real ones). About 30 s.
BENCH_EVENTS=2000 BENCH_TARGETS=pg_recvlogical,redis,polling-redis \
  cargo test -p outbox-relay --bench throughput
BENCH_RATES=500 BENCH_POLLING_RATES=500 BENCH_SECONDS=2 cargo test -p outbox-relay --bench latency

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
