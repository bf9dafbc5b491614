#!/usr/bin/env bash
# Build the Lumberjack v2 test receiver (go-lumber's server, from the Go module proxy).
# Idempotent: go's build and module caches make a second run a no-op. The binary goes to
# .build/ beside this file (ignored by git); lumber_receiver.py finds it there.
# A failed build does not stop .ci/run (the other suites still run): the Logstash tests then
# fail under CI=true with "CI must provide this but it is missing: the lumber-receiver ...".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=../go-toolchain.sh
. "$here/../go-toolchain.sh"
if ! find_go; then
  echo "lumber-receiver: no Go toolchain; the Logstash output tests will fail" >&2
  exit 0
fi

mkdir -p "$here/.build"
cd "$here"
# GOFLAGS=-mod=mod lets go fetch the modules listed in go.mod/go.sum on a fresh machine.
if GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -o "$here/.build/lumber-receiver" .; then
  echo "lumber-receiver: built $here/.build/lumber-receiver ($("$GO" version))"
else
  echo "lumber-receiver: BUILD FAILED; the Logstash output tests will fail" >&2
fi
