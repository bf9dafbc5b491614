#!/usr/bin/env bash
# Tools for packaging/build.sh and tests/packages (idempotent; .ci/run runs it as root): nfpm
# (from the Go module proxy), rpm, debootstrap, dpkg-dev, systemd-analyze, systemd-nspawn (boots
# the Debian root to run the unit under its own systemd), python3.11 with venv and headers, unzip.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
NFPM_VERSION=v2.48.0

pkgs=(python3.11 python3.11-venv python3.11-dev gcc libc6-dev
      rpm debootstrap dpkg-dev systemd systemd-container unzip util-linux passwd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then  # also on its own on a fresh machine (no apt lists yet)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../go-toolchain.sh
. "$here/../go-toolchain.sh"
find_go || { echo "setup.sh: no Go >= 1.21 to install nfpm with" >&2; exit 1; }
installed=$("$GO" version -m /usr/local/bin/nfpm 2>/dev/null | awk '$1 == "mod" {print $3}' || true)
if [ "$installed" != "$NFPM_VERSION" ]; then
  GOBIN=/usr/local/bin "$GO" install "github.com/goreleaser/nfpm/v2/cmd/nfpm@${NFPM_VERSION}"
fi
echo "nfpm $NFPM_VERSION at /usr/local/bin/nfpm"
