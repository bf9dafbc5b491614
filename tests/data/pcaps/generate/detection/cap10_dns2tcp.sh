#!/bin/bash
# Capture 10: a dns2tcp tunnel (domain t2.tunnel.test) between det-d2cli (10.99.10.2) and
# dns2tcpd on det-d2srv (10.99.10.1:53), TXT records (dns2tcp's default), then KEY records.
# Through the tunnel: a 20,000-byte upload and a 30,000-byte download to a TCP service on the
# server side (nc), each checked byte for byte. Run as root; $CAP is a scratch folder.
set -u
source "$(dirname "$0")/../lib.sh"
OUT=${CAP}/out/dns_tunnel_dns2tcp.pcap
W=${CAP}/dns2tcp; mkdir -p $W ${CAP}/out
delns det-d2srv det-d2cli
mkns det-d2srv; mkns det-d2cli
mkveth det-d2srv d2s0 det-d2cli d2c0
ip -n det-d2srv addr add 10.99.10.1/24 dev d2s0
ip -n det-d2cli addr add 10.99.10.2/24 dev d2c0
cat > $W/dns2tcpd.conf <<CONF
listen = 10.99.10.1
port = 53
user = root
chroot = $W
domain = t2.tunnel.test
key = s3cr3tpw
resources = upload:10.99.10.1:9000 , download:10.99.10.1:9001
CONF
sleep 1
startcap det-d2cli d2c0 $OUT "port 53"
ip netns exec det-d2srv timeout 120 dns2tcpd -F -f $W/dns2tcpd.conf > $W/dns2tcpd.log 2>&1 & SRV=$!
sleep 1
head -c 20000 /dev/urandom > $W/up.bin; head -c 30000 /dev/urandom > $W/down.bin
# upload over TXT
ip netns exec det-d2srv timeout 60 nc -l -s 10.99.10.1 -p 9000 > $W/up.recv & NC=$!
sleep 0.5
ip netns exec det-d2cli timeout 50 dns2tcpc -z t2.tunnel.test -k s3cr3tpw -r upload -l 2222 10.99.10.1 > $W/c1.log 2>&1 & CLI=$!
sleep 1
ip netns exec det-d2cli timeout 40 nc -N 127.0.0.1 2222 < $W/up.bin
wait $NC; kill $CLI 2>/dev/null; wait $CLI 2>/dev/null
sleep 5
# download over KEY records
ip netns exec det-d2srv timeout 60 nc -N -l -s 10.99.10.1 -p 9001 < $W/down.bin & NC=$!
sleep 0.5
ip netns exec det-d2cli timeout 50 dns2tcpc -T KEY -z t2.tunnel.test -k s3cr3tpw -r download -l 2223 10.99.10.1 > $W/c2.log 2>&1 & CLI=$!
sleep 1
ip netns exec det-d2cli timeout 40 nc 127.0.0.1 2223 > $W/down.recv
wait $NC; kill $CLI 2>/dev/null; wait $CLI 2>/dev/null
sleep 1
kill $SRV; wait $SRV 2>/dev/null
stopcap $OUT
cmp $W/up.bin $W/up.recv && echo "upload intact ($(stat -c %s $W/up.recv) bytes)"
cmp $W/down.bin $W/down.recv && echo "download intact ($(stat -c %s $W/down.recv) bytes)"
delns det-d2srv det-d2cli
