#!/usr/bin/env bash
# Build pybeat's compiled extensions (pybeat.decode._replay, pybeat.protocols.dns._fast and
# .pairing) with AddressSanitizer and UndefinedBehaviorSanitizer, installed (not editable) into
# a virtualenv of their own: .build/venv beside this file (ignored by git).
# tests/fuzz/test_sanitizers.py runs the fuzz tests on that build (skips locally without it,
# fails under CI=true). Idempotent: every run reinstalls pybeat from the working tree.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="$here/.build/venv"
python="${PYTHON:-python3}"

if ! command -v gcc >/dev/null || [ ! -e "$(gcc -print-file-name=libasan.so)" ]; then
  echo "sanitizers: installing gcc and its sanitizer runtimes"
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev python3-dev zlib1g-dev >/dev/null || true
fi
asan="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$asan" ]; then
  echo "sanitizers: no libasan.so; the sanitizer fuzz test will fail under CI" >&2
  exit 0
fi

mkdir -p "$here/.build"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel 'Cython>=3.0' >/dev/null
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
# --no-build-isolation: the flags reach the build as they are; the build tree is a fresh copy
# (an in-place build of the working tree must not be picked up).
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
tar -C "$repo" --exclude=./build --exclude=./.git --exclude='*.so' --exclude='./tests/tooling/*/.build' -cf - . | tar -C "$src" -xf -
rm -f "$src"/pybeat/decode/_replay.c "$src"/protocols/dns/_fast.c "$src"/protocols/dns/pairing.c
PYBEAT_EXT_CFLAGS="$flags" PYBEAT_EXT_LDFLAGS="-fsanitize=address,undefined" \
  "$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall "$src[test]" >/dev/null
echo "$asan" > "$here/.build/preload"
(cd / && LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0 "$venv/bin/python" - <<'PY'
import pybeat.decode._replay as r, pybeat.protocols.dns._fast as f, pybeat.protocols.dns.pairing as p
for m in (r, f, p):
    assert m.__file__.endswith(".so"), m.__file__
print("sanitizers: built", r.__file__, f.__file__, p.__file__)
PY
)
