"""A DNS responder on 127.0.0.1:53 and a client asking it COUNT times, for the live-capture step
of test_deb_install.py (runs inside the Debian root, in a private network namespace; standard
library only). Prints how many queries were answered.

    python3 dns_ping.py NAME COUNT
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time


def serve(server: socket.socket) -> None:
    while True:
        query, client = server.recvfrom(512)
        server.sendto(query[:2] + b"\x81\x80" + query[4:], client)  # QR, RD, RA; NOERROR, no answer


def main(name: str, count: int) -> int:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 53))
    threading.Thread(target=serve, args=(server,), daemon=True).start()
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(1.0)
    answered = 0
    for msg_id in range(1, count + 1):
        client.sendto(struct.pack("!6H", msg_id, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01",
                      ("127.0.0.1", 53))
        try:
            client.recvfrom(512)
            answered += 1
        except socket.timeout:
            pass
        time.sleep(0.1)
    print(answered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
