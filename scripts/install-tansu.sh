#!/usr/bin/env bash
# Installs Tansu 0.6.0, the Kafka-protocol broker the tests start (see harness/src/kafka.rs), into a
# cache outside the checkout, so that only the first run on a machine pays its 10 to 20 minute build.
# Prints the binary's path as its last line of output.
set -euo pipefail

root="${HOME:?}/.cache/outbox-relay/tansu-0.6.0"
bin="$root/bin/tansu"

if ! [ -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -qx 'tansu 0.6.0'; then
  echo "Installing Tansu 0.6.0 into $root (10 to 20 minutes on 2 cores, once per machine)..." >&2
  # libsql only: the sqlite storage that keeps data across broker restarts, without the other engines.
  cargo install tansu@0.6.0 --locked --no-default-features --features libsql --root "$root" >&2
fi

echo "$bin"
