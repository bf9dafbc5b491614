#!/bin/bash
# Capture 13: lookups of lookalikes of example.test and corp.test (confusables behind punycode,
# Cyrillic/Greek letters, digit/letter swaps, one edit away, hyphenated additions), legitimate
# IDN names and ordinary names (lookalike_names.py), each asked 4 times (A, www A, MX, A again),
# from dig (det-lcli 10.99.14.2) to BIND 9 (det-lsrv 10.99.14.1) serving a zone for every one.
# Run as root; $CAP is a scratch folder.
set -u
D="$(dirname "$(readlink -f "$0")")"
source "$D/../lib.sh"
OUT=${CAP}/out/dns_lookalikes.pcap
W=${CAP}/lookalike; mkdir -p $W ${CAP}/out
delns det-lsrv det-lcli
mkns det-lsrv; mkns det-lcli
mkveth det-lsrv ls0 det-lcli lc0
ip -n det-lsrv addr add 10.99.14.1/24 dev ls0
ip -n det-lcli addr add 10.99.14.2/24 dev lc0
{
  echo "options { directory \"$W\"; pid-file \"named.pid\"; listen-on { 10.99.14.1; }; listen-on-v6 { none; };"
  echo "  recursion no; dnssec-validation no; };"
  for z in $(python3 "$D/lookalike_names.py" zones); do
    printf '$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 10.99.14.1\n@ IN A 198.51.100.7\nwww IN A 198.51.100.8\nmail IN A 198.51.100.9\n@ IN MX 10 mail\n' > $W/$z.zone
    echo "zone \"$z\" { type primary; file \"$W/$z.zone\"; };"
  done
} > $W/named.conf
python3 "$D/lookalike_names.py" queries > $W/queries.txt
ip netns exec det-lsrv named -c $W/named.conf -u root
sleep 2
startcap det-lcli lc0 $OUT "port 53"
ip netns exec det-lcli timeout 120 dig @10.99.14.1 +tries=1 +timeout=2 +norecurse -f $W/queries.txt > $W/dig.out 2>&1
stopcap $OUT
kill "$(cat $W/named.pid)"; sleep 1
delns det-lsrv det-lcli
