"""The stats endpoint: idle connections are closed after the read timeout and the threads that
serve requests are a fixed, small pool."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

from pybeat.api import BeatInfo
from pybeat.monitoring.http import StatsServer
from pybeat.monitoring.registry import MetricsRegistry


def _server(**kw):  # type: ignore[no-untyped-def]
    metrics = MetricsRegistry()
    metrics.register("x", lambda: {"n": 1})
    return StatsServer("127.0.0.1", 0, BeatInfo(version="0"), metrics, **kw)


def _http_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("http-stats_"))


def test_an_idle_connection_is_closed_after_the_read_timeout() -> None:
    """A client that connects and says nothing is cut off after read_timeout."""
    srv = _server(read_timeout=0.5)
    try:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.settimeout(5)
        start = time.monotonic()
        assert s.recv(100) == b""  # closed by the server
        assert 0.3 < time.monotonic() - start < 3
        s.close()
    finally:
        srv.close()


def test_idle_connections_do_not_pile_up_threads_and_stats_still_answer() -> None:
    """50 silent connections: at most `workers` threads, extra ones refused, and once the
    idle ones time out /stats answers again."""
    srv = _server(read_timeout=0.5, workers=2, backlog=2)
    socks = []
    try:
        for _ in range(50):
            socks.append(socket.create_connection(("127.0.0.1", srv.port)))
        time.sleep(0.2)
        assert _http_threads() <= 2
        deadline = time.monotonic() + 10
        body = None
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/stats", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.1)
        assert body == {"x": {"n": 1}}
        assert srv.rejected > 0
        assert _http_threads() <= 2
    finally:
        for s in socks:
            s.close()
        srv.close()


def test_stats_and_info_are_served() -> None:
    """GET / and GET /stats?pretty answer as before."""
    srv = _server()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=5) as r:
            assert json.loads(r.read())["version"] == "0"
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/stats?pretty", timeout=5) as r:
            text = r.read().decode()
            assert "\n" in text and json.loads(text) == {"x": {"n": 1}}
    finally:
        srv.close()
