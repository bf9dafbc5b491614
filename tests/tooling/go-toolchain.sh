# Sourced by the tooling setup.sh scripts that build Go programs (not run on its own).
# find_go sets GO to a Go command that can build a module needing a newer Go: Go >= 1.21 with
# GOTOOLCHAIN=auto, which fetches the Go version a go.mod names from the Go module proxy. The
# machine's Go (PATH, /usr/local/go) when it is new enough; else, on Debian 12, golang-go from
# bookworm-backports (Debian's own golang-go, 1.19, is too old for that). GO is empty when none.
export GOTOOLCHAIN=auto

_go_new_enough() {  # Go >= 1.21: it understands GOTOOLCHAIN
  local v
  v="$("$1" env GOVERSION 2>/dev/null || true)"
  v="${v#go}"
  [ -n "$v" ] && awk -F. -v v="$v" 'BEGIN { split(v, p, "."); exit !(p[1] > 1 || (p[1] == 1 && p[2] >= 21)) }'
}

find_go() {
  GO=""
  local candidate
  for candidate in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go-1.2[1-9]/bin/go; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && _go_new_enough "$candidate"; then
      GO="$candidate"
      return 0
    fi
  done
  echo "no Go >= 1.21 found: installing golang-go" >&2
  export DEBIAN_FRONTEND=noninteractive
  if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-go >/dev/null || true
  else
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends golang-go >/dev/null || true
  fi
  for candidate in "$(command -v go || true)" /usr/lib/go-1.2[1-9]/bin/go; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && _go_new_enough "$candidate"; then
      GO="$candidate"
      return 0
    fi
  done
  return 1
}
