#!/usr/bin/env bash
# Make ntp_chrony_sntp.pcap (and ntp_chrony_sntp.log, what the clients printed): real NTP traffic between two network namespaces this script creates
# (nothing leaves them), captured on the client's side with tcpdump.
#
#   server ns pbntp-srv: chronyd 4.x (Debian's chrony) serving its local clock at stratum 8 on
#                        10.123.0.1 and fd12:3::1, never touching the system clock (-x)
#   client ns pbntp-cli: 10.123.0.2 / fd12:3::2
#     1. chronyd -Q (a chrony client: iburst, 4 samples; it hides its clock: the transmit
#        timestamp of its requests is random, RFC 9109 style)
#     2. sntp (Debian 12's sntp package: ntpsec's ntpdig) over IPv4 and over IPv6 (real
#        transmit timestamps; it prints the offset it computed, kept in the .log)
#     3. sntp to 10.123.0.9, an address no one answers (the frames go out to the server's MAC,
#        whose host does not own the address): unanswered requests
#     4. two stray datagrams to port 123 that are not NTP (a 10-byte one and a 48-byte one with
#        version 0), sent by python: malformed messages
#
# Needs root, iproute2, ethtool, tcpdump, chrony and sntp (apt-get install chrony sntp).
# Usage: bash make_capture.sh [OUT.pcap]   (the log goes beside it, as OUT.log)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE/ntp_chrony_sntp.pcap}"
SRV=pbntp-srv
CLI=pbntp-cli
WORK="$(mktemp -d)"
chmod 755 "$WORK"
chown _chrony: "$WORK" 2>/dev/null || true  # chronyd drops to the _chrony user
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns del "$SRV" 2>/dev/null || true
ip netns del "$CLI" 2>/dev/null || true
ip netns add "$SRV"
ip netns add "$CLI"
ip link add ntps0 netns "$SRV" type veth peer name ntpc0 netns "$CLI"
for spec in "$SRV ntps0 10.123.0.1 fd12:3::1" "$CLI ntpc0 10.123.0.2 fd12:3::2"; do
  set -- $spec
  ip -n "$1" link set lo up
  ip -n "$1" addr add "$3/24" dev "$2"
  ip -n "$1" addr add "$4/64" dev "$2" nodad
  ip -n "$1" link set "$2" up
  ip netns exec "$1" ethtool -K "$2" tx off >/dev/null  # real checksums in the capture
done
SRV_MAC="$(ip netns exec "$SRV" cat /sys/class/net/ntps0/address)"
CLI_MAC="$(ip netns exec "$CLI" cat /sys/class/net/ntpc0/address)"
ip -n "$CLI" neigh replace 10.123.0.1 lladdr "$SRV_MAC" dev ntpc0 nud permanent
ip -n "$CLI" neigh replace 10.123.0.9 lladdr "$SRV_MAC" dev ntpc0 nud permanent
ip -n "$CLI" neigh replace fd12:3::1 lladdr "$SRV_MAC" dev ntpc0 nud permanent
ip -n "$SRV" neigh replace 10.123.0.2 lladdr "$CLI_MAC" dev ntps0 nud permanent
ip -n "$SRV" neigh replace fd12:3::2 lladdr "$CLI_MAC" dev ntps0 nud permanent

cat > "$WORK/server.conf" <<CONF
local stratum 8
allow all
port 123
cmdport 0
pidfile $WORK/server.pid
driftfile $WORK/server.drift
CONF
ip netns exec "$SRV" chronyd -x -d -f "$WORK/server.conf" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
sleep 2

ip netns exec "$CLI" tcpdump -i ntpc0 -U -n -s 0 -w "$WORK/capture.pcap" udp port 123 2>"$WORK/tcpdump.log" &
TCPDUMP=$!
PIDS+=($TCPDUMP)
sleep 2

# 1. chrony as a client (random transmit timestamps)
cat > "$WORK/client.conf" <<CONF
server 10.123.0.1 iburst maxsamples 4
server fd12:3::1 iburst maxsamples 4
cmdport 0
pidfile $WORK/client.pid
CONF
ip netns exec "$CLI" chronyd -x -Q -t 20 -f "$WORK/client.conf" >"$WORK/client.log" 2>&1 || true
sleep 0.5
# 2. sntp, IPv4 and IPv6
ip netns exec "$CLI" sntp -t 2 10.123.0.1 >>"$WORK/sntp.log" 2>&1 || true
sleep 0.5
ip netns exec "$CLI" sntp -t 2 fd12:3::1 >>"$WORK/sntp.log" 2>&1 || true
sleep 0.5
# 3. no one answers
ip netns exec "$CLI" sntp -t 1 10.123.0.9 >>"$WORK/sntp.log" 2>&1 || true
sleep 0.5
# 4. strays that are not NTP messages
ip netns exec "$CLI" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.123.0.2", 40123))
s.sendto(b"\x1b" + b"\x00" * 9, ("10.123.0.1", 123))       # too short for an NTP header
s.sendto(b"\x03" + b"\x00" * 47, ("10.123.0.1", 123))      # version 0
PY
sleep 1
kill -INT "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null || true
cp "$WORK/capture.pcap" "$OUT"
{ echo "== chronyd -Q:"; cat "$WORK/client.log"; echo "== sntp:"; cat "$WORK/sntp.log"; } | tee "${OUT%.pcap}.log"
echo "wrote $OUT ($(tcpdump -r "$OUT" -n 2>/dev/null | wc -l) packets)"
