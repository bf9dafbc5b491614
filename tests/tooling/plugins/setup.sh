#!/usr/bin/env bash
# Plugin packages the tests run as separately installed packages, as users install them:
#   examples/pybeat-ntp               the worked external plugin (its own tests run from tests/sdk)
#   tests/plugin_compat/legacy01      a plugin package written for pybeat.api 0.1
# Installed into the Python environment the tests run in: the active virtualenv (.ci/run
# activates .venv before it runs this), else the repository's .venv, else python3. pybeat itself
# is installed by .ci/run afterwards, hence --no-deps. Idempotent (pip reinstalls in place).
# The broken, clashing and future-API packages under tests/plugin_compat are never installed
# here: their tests install them into folders of their own.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python3"
elif [ -x "$ROOT/.venv/bin/python3" ]; then
  PY="$ROOT/.venv/bin/python3"
else
  PY="python3"
fi
for pkg in examples/pybeat-ntp tests/plugin_compat/legacy01; do
  # built from a copy: a build leaves build/ and *.egg-info beside the sources
  tmp="$(mktemp -d)"
  cp -r "$ROOT/$pkg" "$tmp/src"
  "$PY" -m pip install -q --no-deps --force-reinstall "$tmp/src"
  rm -rf "$tmp"
done
"$PY" -m pip show pybeat-ntp pybeat-legacy01 | grep -E '^(Name|Version|Location):'
echo "plugin packages installed for $PY"
