"""Helpers for the processor tests: build a processor the way the agent does, and a local
HTTP server on a loopback address that answers from a table of routes."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

from pybeat.api import BeatInfo, Event, ProcessorContext
from pybeat.plugins import load_registry

_REGISTRY = None


class ListLogger:
    """Records log calls as (level, event, kw)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str, event: str, **kw: Any) -> None:
        self.records.append((level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._log("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log("error", event, **kw)

    def at(self, level: str) -> list[str]:
        return [e for lvl, e, _ in self.records if lvl == level]


def make(name: str, settings: dict[str, Any] | None = None, logger: Any = None) -> Any:
    """Create processor ``name`` from ``settings`` through its plugin (model, then create)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    plugin = _REGISTRY.get("processors", name)
    config = plugin.config_model.model_validate(settings or {})
    return plugin.create(config, ProcessorContext(BeatInfo(), logger, name))


def ev(fields: dict[str, Any] | None = None, meta: dict[str, Any] | None = None) -> Event:
    return Event(1_700_000_000_000_000_000, fields or {}, meta)


Route = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


@contextmanager
def http_server(routes: dict[tuple[str, str], Route | bytes | str]) -> Iterator[tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    """A server on 127.0.0.1 (port chosen by the kernel): ``routes[(method, path)]`` is the
    body to answer (200) or a function returning ``(status, headers, body)``; anything else is
    404. Yields ``("127.0.0.1:port", requests_seen)``."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            seen.append((method, self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = routes.get((method, self.path))
            if route is None:
                status, headers, body = 404, {}, b"not found"
            elif callable(route):
                status, headers, body = route(self)
            else:
                status, headers, body = 200, {}, route.encode() if isinstance(route, str) else route
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        def do_GET(self) -> None:
            self._answer("GET")

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._answer("PUT")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
