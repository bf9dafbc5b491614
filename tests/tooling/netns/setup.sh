#!/usr/bin/env bash
# Debian packages for the live-capture tests in network namespaces (tests/live): the DNS, mDNS
# and DHCP servers and clients, traffic generators, and the tools that build namespaces.
# Idempotent: installs only what is missing. Servers are started by the tests themselves.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(iproute2 ethtool util-linux libpcap0.8 tcpdump tcpreplay iputils-ping
      bind9 bind9-dnsutils dnsperf avahi-daemon avahi-utils libnss-mdns
      isc-dhcp-server isc-dhcp-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian services must not run in the root namespace: the tests start their own copies.
for svc in named bind9 avahi-daemon isc-dhcp-server; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
echo "netns tooling ready: ${pkgs[*]}"
