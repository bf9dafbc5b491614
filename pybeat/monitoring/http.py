"""The optional HTTP endpoint (``http.enabled``): ``GET /`` (who is running) and ``GET /stats``
(the metrics registry as nested JSON; ``?pretty`` indents it), as Beats' monitoring endpoint.

Bounded: ``WORKERS`` threads serve requests, at most ``BACKLOG`` more connections wait for one
(further ones are closed at once and counted), and a connection that sends nothing for
``READ_TIMEOUT`` seconds is closed, so idle or slow clients cannot pile up threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import orjson

from pybeat.api import BeatInfo
from pybeat.monitoring.registry import MetricsRegistry, nested


WORKERS = 4
BACKLOG = 16
READ_TIMEOUT = 5.0


class _PoolServer(HTTPServer):
    """An HTTPServer whose requests run on a fixed pool of threads, with a bounded wait list."""

    def __init__(self, addr: tuple[str, int], handler: Any, workers: int, backlog: int):
        super().__init__(addr, handler)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-stats")
        self._slots = threading.BoundedSemaphore(workers + backlog)
        self.rejected = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.rejected += 1  # every worker busy and the wait list full: refuse, do not queue
            self.shutdown_request(request)
            return
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # the pool is shut down (closing)
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            pass  # a client that went away or timed out: nothing to report
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class StatsServer:
    def __init__(
        self,
        host: str,
        port: int,
        beat: BeatInfo,
        metrics: MetricsRegistry,
        workers: int = WORKERS,
        backlog: int = BACKLOG,
        read_timeout: float = READ_TIMEOUT,
    ):
        info = {
            "beat": beat.beat,
            "hostname": beat.hostname,
            "name": beat.name,
            "uuid": beat.agent_id,
            "version": beat.version,
            "product": beat.product,
        }

        class Handler(BaseHTTPRequestHandler):
            timeout = read_timeout  # seconds a connection may stay silent (socket timeout)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path, _, query = self.path.partition("?")
                body: Any
                if path in ("", "/"):
                    body = info
                elif path == "/stats":
                    body = nested(metrics.snapshot())
                else:
                    self.send_error(404)
                    return
                opts = orjson.OPT_INDENT_2 if "pretty" in query else 0
                data = orjson.dumps(body, option=opts | orjson.OPT_NON_STR_KEYS, default=str)
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _PoolServer((host, port), Handler, workers, backlog)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-stats", daemon=True)
        self._thread.start()

    @property
    def rejected(self) -> int:
        """Connections closed unanswered because every worker was busy and the wait list full."""
        return self.server.rejected

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
