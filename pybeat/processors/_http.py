"""A small HTTP/1.1 client for the metadata processors (cloud metadata services, the Docker
API on its unix socket, the Kubernetes API): one request per connection, a deadline on every
step, the body size capped. Standard library only, imported when a processor is built.

Never used per event: the processors call it from ``create`` or from their own background
thread.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from typing import Any, Mapping

from pybeat.api import SslConfig

__all__ = ["HttpError", "Response", "request", "ssl_context"]

#: A metadata document larger than this is refused (they are a few KiB).
MAX_BODY = 4 << 20


class HttpError(Exception):
    """A request failed: connection, timeout, status (``status`` set) or an oversized body."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def ssl_context(cfg: SslConfig | Mapping[str, Any] | None) -> ssl.SSLContext:
    """An SSL context from Beats' ``ssl`` keys (verification mode, CAs, client certificate)."""
    if cfg is None:
        return ssl.create_default_context()
    if not isinstance(cfg, SslConfig):
        cfg = SslConfig.model_validate(dict(cfg))
    ctx = ssl.create_default_context()
    for ca in cfg.certificate_authorities:
        if ca.lstrip().startswith("-----BEGIN"):
            ctx.load_verify_locations(cadata=ca)
        else:
            ctx.load_verify_locations(cafile=ca)
    if cfg.verification_mode == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif cfg.verification_mode == "certificate":
        ctx.check_hostname = False
    if cfg.certificate and cfg.key:
        ctx.load_cert_chain(cfg.certificate, cfg.key, cfg.key_passphrase)
    return ctx


def request(method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None,
            deadline: float, unix_socket: str | None = None, context: ssl.SSLContext | None = None,
            ok: tuple[int, ...] = (200,)) -> Response:
    """One request, finished by ``deadline`` (``time.monotonic()``); a status outside ``ok``
    raises :class:`HttpError` with the status."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HttpError("timed out")
    scheme, _, rest = url.partition("://")
    hostport, slash, path = rest.partition("/")
    path = slash + path if slash else "/"
    conn: http.client.HTTPConnection
    if unix_socket is not None:
        conn = _UnixConnection(unix_socket, remaining)
    elif scheme == "https":
        conn = http.client.HTTPSConnection(hostport, timeout=remaining, context=context or ssl.create_default_context())
    elif scheme == "http":
        conn = http.client.HTTPConnection(hostport, timeout=remaining)
    else:
        raise HttpError(f"unsupported URL scheme {scheme!r}")
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        if conn.sock is not None:
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        resp = conn.getresponse()
        data = resp.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise HttpError(f"response larger than {MAX_BODY} bytes")
        if resp.status not in ok:
            raise HttpError(f"HTTP status {resp.status}", resp.status)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    except HttpError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise HttpError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
