#!/usr/bin/env python3
"""A far-away authoritative server for cap12_race.sh: relays each query from LISTEN_IP:53 to
BIND on 127.0.0.1:53 in the same namespace and sends BIND's answer back unchanged after
DELAY seconds (the host kernel has no netem), which opens the window the attacker races.

    slow_auth_proxy.py LISTEN_IP DELAY SECONDS

Exits by itself after SECONDS.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

listen_ip, delay, lifetime = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind((listen_ip, 53))
front.settimeout(0.5)
end = time.time() + lifetime


def relay(query: bytes, peer: tuple[str, int]) -> None:
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.settimeout(2)
    try:
        back.sendto(query, ("127.0.0.1", 53))
        answer, _ = back.recvfrom(65535)
    except OSError:
        return
    finally:
        back.close()
    time.sleep(delay)
    front.sendto(answer, peer)


while time.time() < end:
    try:
        data, peer = front.recvfrom(65535)
    except socket.timeout:
        continue
    threading.Thread(target=relay, args=(data, peer), daemon=True).start()
