#!/usr/bin/env bash
# Build pybeat's release artifacts into dist/ (run from anywhere; works on the project root):
#
#   pybeat-<v>.tar.gz, pybeat-<v>-cp311-cp311-linux_x86_64.whl   wheel and sdist (python -m build)
#   pybeat_<v>_amd64.deb, pybeat-<v>-1.x86_64.rpm                 Linux packages (nfpm)
#   pybeat-<v>-windows-x86_64.zip                                 Windows: wheelhouse + service scripts
#
# The Linux packages carry their own Python environment (/usr/share/pybeat/venv: pybeat with the
# compiled hot path and every dependency) on top of the system's CPython 3.11, which they declare
# as a dependency with libpcap. The venv is built here with Debian 12's /usr/bin/python3.11, the
# interpreter the packages run on, then relocated to its installed path.
#
# Needs (tests/tooling/packaging/setup.sh installs them): python3.11 with venv and headers, a C
# compiler, nfpm, and PyPI for the dependencies. The version comes from pyproject.toml only.
#
# Environment: PYBEAT_DIST_DIR / PYBEAT_BUILD_DIR (default dist/ and build/packaging/),
# PYBEAT_TARGETS (default "deb rpm windows"; the wheel and sdist are always built),
# PYBEAT_WINDOWS_PYTHONS (the Python versions of the Windows wheelhouse, default 3.11-3.13).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PY=${PYBEAT_BUILD_PYTHON:-/usr/bin/python3.11}
NFPM=${NFPM:-nfpm}
WIN_PYTHONS=${PYBEAT_WINDOWS_PYTHONS:-3.11 3.12 3.13}
PREFIX=/usr/share/pybeat
BUILD=${PYBEAT_BUILD_DIR:-$ROOT/build/packaging}
DIST=${PYBEAT_DIST_DIR:-$ROOT/dist}
TARGETS=" ${PYBEAT_TARGETS:-deb rpm windows} "

log() { echo "== $*" >&2; }
die() { echo "build.sh: $*" >&2; exit 1; }

[ -x "$PY" ] || die "$PY not found (Debian 12: apt-get install python3.11-venv python3.11-dev)"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' || die "$PY is not CPython 3.11"
command -v "$NFPM" >/dev/null || die "nfpm not found (bash tests/tooling/packaging/setup.sh installs it)"

VERSION=$("$PY" packaging/version.py)
export VERSION
log "pybeat $VERSION"

rm -rf "$BUILD"
mkdir -p "$BUILD" "$DIST"
rm -f "$DIST"/pybeat-*.whl "$DIST"/pybeat-*.tar.gz "$DIST"/pybeat_*.deb "$DIST"/pybeat-*.rpm \
  "$DIST"/pybeat-*-windows-*.zip

log "build tools"
"$PY" -m venv "$BUILD/tools"
TOOLS=$BUILD/tools/bin
"$TOOLS/python" -m pip install -q --upgrade pip 'setuptools>=77' wheel build

log "sdist and wheel (compiled extensions)"
# Every extension setup.py declares must build (it would otherwise leave it out quietly).
PYBEAT_REQUIRE_COMPILED=1 "$TOOLS/python" -m build -q --outdir "$DIST" . >/dev/null
WHEEL=$(ls "$DIST"/pybeat-"$VERSION"-cp311-cp311-*.whl 2>/dev/null) \
  || die "no compiled cp311 wheel in dist/ (is a C compiler installed?)"
COMPILED=$(unzip -Z1 "$WHEEL" | sed -n 's/\.cpython-[^/]*\.so$//p' | tr / . | paste -sd, -)
[ -n "$COMPILED" ] || die "the wheel has no compiled module"

if [[ $TARGETS == *" deb "* || $TARGETS == *" rpm "* ]]; then
log "Linux venv at $PREFIX/venv"
STAGE=$BUILD/root
VENV=$STAGE$PREFIX/venv
"$PY" -m venv --without-pip "$VENV"
"$TOOLS/pip" --python "$VENV/bin/python" install -q --no-cache-dir --no-compile --only-binary=:all: "$WHEEL"
"$PY" packaging/relocate_venv.py "$VENV" "$PREFIX/venv"
"$VENV/bin/python" -I -c "import pybeat.cli, $COMPILED" || die "the staged venv does not import pybeat ($COMPILED)"

log "deb and rpm (nfpm)"
# nfpm expands variables in a few fields only: the description is rendered here.
export STAGE ROOT
"$PY" -c 'import os, sys; text = os.path.expandvars(open(sys.argv[1]).read()); assert "${" not in text, "unset variable"; print(text)' \
  packaging/linux/nfpm.yaml >"$BUILD/nfpm.yaml"
for target in deb rpm; do
  [[ $TARGETS == *" $target "* ]] || continue
  [ $target = deb ] && out=$DIST/pybeat_${VERSION}_amd64.deb || out=$DIST/pybeat-${VERSION}-1.x86_64.rpm
  "$NFPM" package -f "$BUILD/nfpm.yaml" -p $target -t "$out" >/dev/null
done
fi

if [[ $TARGETS == *" windows "* ]]; then
log "Windows zip (Python $WIN_PYTHONS)"
# pybeat for Windows is the pure-Python wheel (no compiler for Windows here): a tools venv
# without Cython builds it, and setup.py then leaves the optional extension out.
"$TOOLS/pip" wheel -q --no-deps --no-build-isolation -w "$BUILD/pure" . >/dev/null
PURE=$(ls "$BUILD"/pure/pybeat-"$VERSION"-py3-none-any.whl) || die "no pure-Python wheel was built"
WIN=$BUILD/win/pybeat-$VERSION-windows-x86_64
mkdir -p "$WIN/wheels"
cp "$PURE" "$WIN/wheels/"
for pyver in $WIN_PYTHONS; do
  # Markers are evaluated for this (Linux) interpreter, so the Windows-only ones are listed too.
  "$TOOLS/pip" download -q --dest "$WIN/wheels" --only-binary=:all: --platform win_amd64 \
    --python-version "$pyver" "$PURE" $("$PY" packaging/version.py --windows-only-requirements)
done
cp packaging/windows/install-service-pybeat.ps1 packaging/windows/uninstall-service-pybeat.ps1 \
  packaging/windows/pybeat.yml "$WIN/"
cp docs/install.md "$WIN/INSTALL.md"
(cd "$BUILD/win" && "$PY" -m zipfile -c "$DIST/pybeat-$VERSION-windows-x86_64.zip" "pybeat-$VERSION-windows-x86_64")
fi

log "done"
ls -l "$DIST"
