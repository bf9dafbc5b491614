"""The optional HTTP endpoint (``http.enabled``): ``GET /`` (who is running) and ``GET /stats``
(the metrics registry as nested JSON; ``?pretty`` indents it), as Beats' monitoring endpoint."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from pybeat.api import BeatInfo
from pybeat.monitoring.registry import MetricsRegistry, nested


class StatsServer:
    def __init__(self, host: str, port: int, beat: BeatInfo, metrics: MetricsRegistry):
        info = {
            "beat": beat.beat,
            "hostname": beat.hostname,
            "name": beat.name,
            "uuid": beat.agent_id,
            "version": beat.version,
            "product": beat.product,
        }

        class Handler(BaseHTTPRequestHandler):
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

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-stats", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
