#!/usr/bin/env bash
# Builds the relay's Debian package with cargo-deb (installed on first use into a cache outside the
# checkout), then inspects it with dpkg-deb and fails on anything wrong: the binary in /usr/bin runs and
# reports the package's version, and the systemd unit is deploy/outbox-relay.service with ExecStart
# pointing at /usr/bin, installed neither enabled nor started. Not part of scripts/test.sh: the release
# build it needs takes minutes on a cold cache (docs/OPERATIONS.md, "Debian package").
# Prints the .deb's path as its last line of output.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
root="${HOME:?}/.cache/outbox-relay/cargo-deb-$cargo_deb_version"
cargo_deb="$root/bin/cargo-deb"
if ! [ -x "$cargo_deb" ] || ! "$cargo_deb" --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb_version"; then
  echo "Installing cargo-deb $cargo_deb_version into $root (a few minutes, once per machine)..." >&2
  cargo install --locked "cargo-deb@$cargo_deb_version" --root "$root" >&2
fi

fail() {
  echo "package-deb: $*" >&2
  exit 1
}

# The unit as shipped for a binary installed by hand in /usr/local/bin, pointed at the package's
# /usr/bin; relay/Cargo.toml's [package.metadata.deb] takes it from here.
out=target/package-deb
rm -rf "$out"
mkdir -p "$out/systemd"
sed 's|^ExecStart=/usr/local/bin/outbox-relay |ExecStart=/usr/bin/outbox-relay |' \
  deploy/outbox-relay.service >"$out/systemd/outbox-relay.service"
grep -q '^ExecStart=/usr/bin/outbox-relay ' "$out/systemd/outbox-relay.service" ||
  fail "deploy/outbox-relay.service has no 'ExecStart=/usr/local/bin/outbox-relay ' line to rewrite"

echo "Building the release binary and the .deb (a first release build takes 5 to 10 minutes on 2 cores)..." >&2
started=$SECONDS
"$cargo_deb" -p outbox-relay --locked --output "$out/" >&2
echo "Built in $((SECONDS - started)) s." >&2
debs=("$out"/outbox-relay_*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one .deb in $out, found: ${debs[*]}"
deb="${debs[0]}"

version="$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "outbox-relay"))')"

info="$(dpkg-deb -I "$deb")"
echo "$info" >&2
for field in "Package: outbox-relay" "Version: $version-1" "Architecture: amd64" "Section: net"; do
  grep -qx " $field" <<<"$info" || fail "dpkg-deb -I lacks '$field'"
done
grep -q '^ Depends: .*libc6' <<<"$info" || fail "dpkg-deb -I: Depends lacks libc6"

contents="$(dpkg-deb -c "$deb")"
echo "$contents" >&2
unit_path="$(awk '{print $6}' <<<"$contents" | grep -E '^\./(usr/)?lib/systemd/system/outbox-relay\.service$')" ||
  fail "no lib/systemd/system/outbox-relay.service in the package"
for path in ./usr/bin/outbox-relay ./usr/share/doc/outbox-relay/examples/relay.example.toml; do
  awk '{print $6}' <<<"$contents" | grep -qx "$path" || fail "no $path in the package"
done
grep -q ' ./usr/bin/outbox-relay$' <<<"$(grep '^-rwxr-xr-x' <<<"$contents")" || fail "/usr/bin/outbox-relay is not mode 755"

tree="$out/tree"
mkdir -p "$tree"
dpkg-deb -x "$deb" "$tree"
# The packaged unit is the shipped one but for ExecStart.
diff <(grep -v '^ExecStart=' deploy/outbox-relay.service) <(grep -v '^ExecStart=' "$tree/$unit_path") >&2 ||
  fail "the packaged unit differs from deploy/outbox-relay.service beyond ExecStart"
grep -qx 'ExecStart=/usr/bin/outbox-relay --log-format json run' "$tree/$unit_path" ||
  fail "the packaged unit does not start /usr/bin/outbox-relay"
[ "$("$tree/usr/bin/outbox-relay" --version)" = "outbox-relay $version" ] ||
  fail "the packaged binary does not report version $version"

# Installed, the unit must wait for its environment file: not enabled, not started.
control="$out/control"
dpkg-deb -e "$deb" "$control"
if [ -f "$control/postinst" ]; then
  ! grep -Eq 'deb-systemd-helper enable|systemctl (--system )?(start|enable)|deb-systemd-invoke start' "$control/postinst" ||
    fail "postinst enables or starts the unit"
fi

echo "ok: $deb (outbox-relay $version, unit at /${unit_path#./})" >&2
echo "$deb"
