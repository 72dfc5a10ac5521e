#!/usr/bin/env bash
# Makes sure that what the tests need besides Tansu is on this machine and running: the Debian packages
# the harness runs (PostgreSQL server binaries, redis-server, RabbitMQ, sqlite3, openssl, socat as the
# TLS front of Kafka, npm and jq to install other PostgreSQL majors) and the machine's shared Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672).
set -euo pipefail

# command, or file glob, -> the Debian package that provides it
declare -A packages=(
  ['/usr/lib/postgresql/*/bin/initdb']=postgresql
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [/usr/lib/rabbitmq/bin/rabbitmq-server]=rabbitmq-server
  [sqlite3]=sqlite3
  [openssl]=openssl
  [socat]=socat
  [/usr/include/openssl/ssl.h]=libssl-dev
  # scripts/install-postgres.sh: other PostgreSQL majors from the npm registry.
  [npm]=npm
  [jq]=jq
)
missing=()
for thing in "${!packages[@]}"; do
  if [[ $thing == /* ]]; then
    compgen -G "$thing" >/dev/null || missing+=("${packages[$thing]}")
  else
    command -v "$thing" >/dev/null || missing+=("${packages[$thing]}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]}..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for SECONDS WHAT COMMAND...
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    "$@" && return 0
    sleep 0.2
  done
  echo "$what did not come up within ${seconds}s" >&2
  return 1
}

redis_up() {
  [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]
}

if ! redis_up; then
  echo "Starting Redis on 127.0.0.1:6379..." >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 30 Redis redis_up
fi

if ! port_open 5672; then
  echo "Starting RabbitMQ on 127.0.0.1:5672..." >&2
  # Fails harmlessly when the node is up but still booting; the wait below covers both cases.
  rabbitmq-server -detached || true
  wait_for 120 RabbitMQ port_open 5672
fi

echo "Services ready: Redis 127.0.0.1:6379, RabbitMQ 127.0.0.1:5672." >&2
