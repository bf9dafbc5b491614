#!/bin/bash
# Capture 12: a forged-response race (Kaminsky style) against a real resolver. A client
# (det-rcli 10.99.12.2) asks BIND 9 resolving on det-rres (10.99.12.1 | 10.99.13.2), which asks
# the authoritative BIND of victim.test on det-rauth (10.99.13.1, answers delayed 400 ms by
# slow_auth_proxy.py). An attacker on the authoritative side (race_attacker.py, scapy) races each of the
# resolver's upstream queries with 150 forged answers (A 203.0.113.66) with random ids; in the
# third attempt the burst carries the right id, the forgery wins and the genuine answer comes
# second. Also ordinary lookups before and after (www, mail, a retried query). Captured on the
# resolver's upstream interface. Run as root; $CAP is a scratch folder.
set -u
D="$(dirname "$(readlink -f "$0")")"
source "$D/../lib.sh"
OUT=${CAP}/out/dns_poisoning_race.pcap
W=${CAP}/race; mkdir -p $W ${CAP}/out
delns det-rcli det-rres det-rauth
mkns det-rcli; mkns det-rres; mkns det-rauth
mkveth det-rcli rc0 det-rres rr0
mkveth det-rres ru0 det-rauth ra0
ip -n det-rcli addr add 10.99.12.2/24 dev rc0
ip -n det-rres addr add 10.99.12.1/24 dev rr0
ip -n det-rres addr add 10.99.13.2/24 dev ru0
ip -n det-rauth addr add 10.99.13.1/24 dev ra0
cat > $W/victim.test.zone <<ZONE
\$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
ns1 IN A 10.99.13.1
www IN A 198.51.100.10
mail IN A 198.51.100.25
* IN A 198.51.100.99
ZONE
cat > $W/auth.conf <<CONF
options { directory "$W"; pid-file "auth.pid"; listen-on { 127.0.0.1; }; listen-on-v6 { none; };
  recursion no; dnssec-validation no; };
zone "victim.test" { type primary; file "$W/victim.test.zone"; };
CONF
cat > $W/res.conf <<CONF
options { directory "$W"; pid-file "res.pid"; listen-on { 10.99.12.1; }; listen-on-v6 { none; };
  recursion yes; allow-recursion { any; }; dnssec-validation no; qname-minimization disabled;
  query-source address 10.99.13.2; };
zone "victim.test" { type static-stub; server-addresses { 10.99.13.1; }; };
CONF
ip netns exec det-rauth named -c $W/auth.conf -u root
ip netns exec det-rauth timeout 90 python3 "$D/slow_auth_proxy.py" 10.99.13.1 0.4 85 & PROXY=$!
ip netns exec det-rres named -c $W/res.conf -u root
sleep 2
startcap det-rres ru0 $OUT "port 53"
Q() { ip netns exec det-rcli dig @10.99.12.1 +tries=1 +timeout=5 "$@" | grep -A3 "ANSWER SECTION" | tail -n +2 | head -2; }
Q www.victim.test A; Q mail.victim.test A
ip netns exec det-rauth timeout 70 /usr/bin/python3 "$D/race_attacker.py" ra0 10.99.13.1 203.0.113.66 150 3 > $W/attacker.log 2>&1 & ATT=$!
sleep 3
for n in 1 2 3; do Q rnd$n$RANDOM.victim.test A; sleep 2; done
wait $ATT; cat $W/attacker.log
sleep 2
Q www.victim.test A; Q shop.victim.test A
stopcap $OUT
kill "$(cat $W/res.pid)" "$(cat $W/auth.pid)" $PROXY; sleep 1
delns det-rcli det-rres det-rauth
