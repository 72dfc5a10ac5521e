#!/usr/bin/env bash
# Installs kafka-python, a Kafka client no one here wrote whose default partitioner is the Java
# client's murmur2, into a virtualenv outside the checkout: the partitioning cutover test
# (relay/tests/it/partitioning.rs) writes a topic with it before the relay does.
# Prints the virtualenv's python as its last line of output.
set -euo pipefail

version=3.0.12
# The sha256 of the wheel as first downloaded: a wheel that differs is refused.
sha256=67add72052e3ad0c37ed9963ebe2b1696adc7f063c64eaf19862c21b69a64a18

venv="${HOME:?}/.cache/outbox-relay/kafka-python-$version"
python="$venv/bin/python"

if ! [ -x "$python" ] || ! "$python" -c "import kafka, sys; sys.exit(kafka.__version__ != '$version')" 2>/dev/null; then
  echo "Installing kafka-python $version into $venv..." >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  requirements="$(mktemp)"
  trap 'rm -f "$requirements"' EXIT
  echo "kafka-python==$version --hash=sha256:$sha256" >"$requirements"
  # kafka-python has no dependencies; --no-deps keeps it that way if a later version adds optional ones.
  "$python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$requirements" >&2
fi

echo "$python"
