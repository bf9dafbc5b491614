"""``pybeat test output`` for Logstash: dial every host, show each step, name what failed.

Prints the same steps as ``packetbeat test output`` (parse host, DNS lookup, dial, TLS
handshake with version and cipher) and stops at the first failing step per host, with the
cause in words. Sends no events.
"""

from __future__ import annotations

import socket
from typing import Any, TextIO

from pybeat.api import scrub
from pybeat.outputs.logstash.config import LogstashConfig
from pybeat.outputs.logstash.connection import ConnectError, Connection
from pybeat.outputs.logstash.tls import TlsError, build_tls


def test_output(config: LogstashConfig, beat: Any, out: TextIO) -> bool:
    ok = True
    tls = None
    if config.tls_enabled:
        try:
            tls = build_tls(config.ssl)
        except TlsError as exc:
            print(f"logstash: ssl settings... ERROR {scrub(str(exc))}", file=out)
            return False
    for host, port in config.addresses:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        print(f"logstash: {where}...", file=out)
        print("  connection...", file=out)
        print("    parse host... OK", file=out)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            print(f"    dns lookup... ERROR {scrub(str(exc.strerror))}", file=out)
            ok = False
            continue
        print("    dns lookup... OK", file=out)
        print(f"    addresses: {', '.join(sorted({str(i[4][0]) for i in infos}))}", file=out)
        conn = Connection(host, port, config.timeout, tls=tls, proxy_url=config.proxy_url,
                          proxy_use_local_resolver=config.proxy_use_local_resolver)
        try:
            conn.connect()
        except ConnectError as exc:
            step = "  TLS... handshake" if tls is not None and "TLS" in str(exc) else "    dial up"
            print(f"{step}... ERROR {scrub(str(exc))}", file=out)
            ok = False
            continue
        print("    dial up... OK", file=out)
        if tls is not None and conn.sock is not None:
            sock: Any = conn.sock
            mode = config.ssl.verification_mode
            security = ("server's certificate chain verification is enabled" if mode != "none"
                        else "WARNING server's certificate chain verification is disabled")
            print("  TLS...", file=out)
            print(f"    security: {security}", file=out)
            print("    handshake... OK", file=out)
            print(f"    TLS version: {sock.version()}", file=out)
            cipher = sock.cipher()
            if cipher:
                print(f"    cipher: {cipher[0]}", file=out)
        print("  talk to server... OK", file=out)
        conn.close()
    return ok
