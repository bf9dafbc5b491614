#!/bin/bash
# Capture 11: benign traffic that fools naive tunnel detectors, from dig against BIND 9
# (det-bsrv 10.99.11.1, zones from benign_zones.py) in a client namespace (det-bcli 10.99.11.2):
# DNS blocklist lookups, hash lookups of anti-virus clouds, CDN names, reverse sweeps
# (in-addr.arpa and ip6.arpa), DKIM/SPF TXT answers. Each batch runs as fast as dig goes.
# Run as root; $CAP is a scratch folder.
set -u
source "$(dirname "$0")/../lib.sh"
OUT=${CAP}/out/dns_benign_lookalikes_of_tunnels.pcap
W=${CAP}/benign; mkdir -p ${CAP}/out
python3 "$(dirname "$0")/benign_zones.py" $W
delns det-bsrv det-bcli
mkns det-bsrv; mkns det-bcli
mkveth det-bsrv bs0 det-bcli bc0
ip -n det-bsrv addr add 10.99.11.1/24 dev bs0
ip -n det-bcli addr add 10.99.11.2/24 dev bc0
ip netns exec det-bsrv named -c $W/named.conf -u root
sleep 2
startcap det-bcli bc0 $OUT "port 53"
for f in dnsbl_spamhaus dnsbl_mailfilter avhash_cymru avhash_avcloud avhash_gti cdn_akamaiedge cdn_edge-cdn \
         reverse_sweep dkim; do
  ip netns exec det-bcli timeout 120 dig @10.99.11.1 +tries=1 +timeout=2 +norecurse -f $W/queries/$f.txt > $W/$f.out 2>&1
  sleep 2
done
stopcap $OUT
kill "$(cat $W/named.pid)"; sleep 1
delns det-bsrv det-bcli
