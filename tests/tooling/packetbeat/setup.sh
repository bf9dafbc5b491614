#!/usr/bin/env bash
# Build Elastic Packetbeat 7.17.29 from the Go module proxy: the oracle of tests/parity and the
# peer of bench/bench_dns.py. go.mod here requires github.com/elastic/beats/v7 v7.17.29 and
# repeats that module's own replace block (a dependency's replaces do not apply); none of
# Packetbeat's code is kept in this repository. The binary goes to .build/packetbeat (ignored).
# Idempotent: skipped when the binary was built from the same go.mod/go.sum.
# A failed build does not stop .ci/run: the parity tests then fail under CI=true, naming this file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$here/.build/packetbeat"
stamp="$here/.build/stamp"
export DEBIAN_FRONTEND=noninteractive

# libpcap's headers: Packetbeat's sniffer links against libpcap with cgo.
if ! dpkg-query -W -f='${Status}' libpcap-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "packetbeat: installing libpcap-dev and gcc"
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends libpcap-dev gcc libc6-dev >/dev/null
fi

# shellcheck source=../go-toolchain.sh
. "$here/../go-toolchain.sh"
if ! find_go; then
  echo "packetbeat: no Go toolchain; the Packetbeat parity tests will fail under CI" >&2
  exit 0
fi

sum=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1)
if [ -x "$binary" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
  echo "packetbeat: up to date ($binary)"
  exit 0
fi

mkdir -p "$here/.build"
cd "$here"
# -mod=mod lets go fetch the modules named by go.mod/go.sum on a fresh machine; CGO for libpcap;
# GOTOOLCHAIN=auto (go-toolchain.sh) brings the Go that go.mod names when the machine's is older.
if CGO_ENABLED=1 GOFLAGS="-mod=mod -buildvcs=false" \
   "$GO" build -o "$binary" github.com/elastic/beats/v7/packetbeat; then
  echo "$sum" > "$stamp"
  echo "packetbeat: built $("$binary" version) with $("$GO" version)"
else
  rm -f "$binary" "$stamp"
  echo "packetbeat: BUILD FAILED; the Packetbeat parity tests will fail under CI" >&2
fi
