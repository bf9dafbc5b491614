"""One Lumberjack v2 connection to one host: dial (TCP, SOCKS5, TLS), send windows, await ACKs.

Owns the socket and the timing rules: ``timeout`` bounds the dial, the TLS handshake, each
write and the wait for each ACK frame; every ACK (keep-alive seq 0 included) restarts the
wait, so a busy Logstash that keeps saying "still working" is waited for, as Beats does.
Up to ``pipelining`` windows are written before their ACKs are read.

Raises :class:`ConnectError` when no connection could be made (nothing was sent) and
:class:`SendError` (carrying how many events were ACKed first) when a connection failed
mid-batch. Knows nothing about batches, retries or backoff.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlsplit

from pybeat.outputs.logstash.protocol import AckReader, ProtocolError, WindowAcks, encode_batch
from pybeat.outputs.logstash.tls import TlsError, TlsSettings, explain_tls_error

__all__ = ["ConnectError", "Connection", "SendError"]


class ConnectError(Exception):
    """Could not connect (refused, unreachable, TLS handshake failed); nothing was sent."""


class SendError(Exception):
    """The connection failed during a batch; ``acked`` events (a prefix) were ACKed before.

    ``refused`` marks a TLS 1.3 server refusing us (our client certificate) on the first read:
    the handshake only completes there, so it is a connection failure, not a failed send.
    """

    def __init__(self, message: str, acked: int, refused: bool = False):
        super().__init__(message)
        self.acked = acked
        self.refused = refused


class Connection:
    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        compression_level: int = 0,
        tls: TlsSettings | None = None,
        proxy_url: str | None = None,
        proxy_use_local_resolver: bool = False,
    ):
        self.host = host
        self.port = port
        self.where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout = timeout
        self.compression_level = compression_level
        self.tls = tls
        self.proxy_url = proxy_url
        self.proxy_local = proxy_use_local_resolver
        self.sock: socket.socket | None = None
        self.connected_at = 0.0
        self.keepalives = 0
        self.windows_sent = 0  # on the current socket
        self.acks_received = 0  # on the current socket
        self.bytes_sent = 0  # over the connection object's life (all reconnects)

    # -- connecting -------------------------------------------------------------------------
    def connect(self) -> None:
        self.close()
        try:
            if self.proxy_url:
                raw = self._dial_socks5()
            else:
                raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectError:
            raise
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.where}: {_os_reason(exc)}") from exc
        if self.tls is not None and self.tls.fingerprint is not None:
            try:
                self.tls.learn_ca(raw, self.host, self.where)
            except TlsError as exc:
                raise ConnectError(str(exc)) from exc
            except (ssl.SSLError, OSError) as exc:
                raise ConnectError(explain_tls_error(exc, self.where, self.host)) from exc
            self.connect()  # again, now verifying against the learned CA
            return
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(self.timeout)
        sock: socket.socket = raw
        if self.tls is not None:
            sock = self._handshake(raw)
        self.sock = sock
        self.connected_at = time.monotonic()
        self.windows_sent = 0
        self.acks_received = 0

    def _handshake(self, raw: socket.socket) -> ssl.SSLSocket:
        assert self.tls is not None
        name = self.host if self.tls.check_hostname else None
        try:
            tsock = self.tls.context.wrap_socket(raw, server_hostname=name)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise ConnectError(explain_tls_error(exc, self.where, self.host)) from exc
        try:
            self.tls.check_pins(tsock, self.where)
        except TlsError as exc:
            tsock.close()
            raise ConnectError(str(exc)) from exc
        return tsock

    def _dial_socks5(self) -> socket.socket:
        """RFC 1928 CONNECT, no authentication or username/password (RFC 1929)."""
        assert self.proxy_url
        url = urlsplit(self.proxy_url)
        phost, pport = url.hostname or "", url.port or 1080
        where = f"SOCKS5 proxy {phost}:{pport}"
        try:
            s = socket.create_connection((phost, pport), timeout=self.timeout)
        except OSError as exc:
            raise ConnectError(f"cannot connect to {where}: {_os_reason(exc)}") from exc
        try:
            user, pw = unquote(url.username or ""), unquote(url.password or "")
            methods = b"\x00\x02" if user else b"\x00"
            s.sendall(b"\x05" + bytes([len(methods)]) + methods)
            ver, method = _recv_exact(s, 2)
            if ver != 5 or method == 0xFF:
                raise ConnectError(f"{where} accepts none of our authentication methods")
            if method == 2:
                s.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(pw)]) + pw.encode())
                if _recv_exact(s, 2)[1] != 0:
                    raise ConnectError(f"{where} refused the username/password")
            target = self.host
            if self.proxy_local:  # else the proxy resolves the name (socks5h-style)
                target = str(socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][4][0])
            try:
                ip = ipaddress.ip_address(target)
                addr = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
            except ValueError:
                addr = b"\x03" + bytes([len(target)]) + target.encode()
            s.sendall(b"\x05\x01\x00" + addr + struct.pack(">H", self.port))
            head = _recv_exact(s, 4)
            if head[1] != 0:
                raise ConnectError(f"{where} could not connect to {self.where} (SOCKS reply {head[1]})")
            skip = {1: 4, 4: 16}.get(head[3])
            if skip is None:
                skip = _recv_exact(s, 1)[0]
            _recv_exact(s, skip + 2)
            return s
        except (OSError, ConnectError) as exc:
            s.close()
            if isinstance(exc, ConnectError):
                raise
            raise ConnectError(f"{where}: {_os_reason(exc)}") from exc

    # -- sending ------------------------------------------------------------------------------
    def send(
        self,
        payloads: Sequence[bytes],
        window: Callable[[], int],
        pipelining: int,
        on_window_acked: Callable[[int], None] | None = None,
    ) -> int:
        """Send every payload in windows of ``window()`` events, up to ``max(1, pipelining)``
        windows in flight; return when all are ACKed. Raises :class:`SendError`."""
        sock = self.sock
        if sock is None:
            raise SendError(f"not connected to {self.where}", 0)
        reader = AckReader()
        in_flight: deque[WindowAcks] = deque()
        total, pos, acked = len(payloads), 0, 0
        depth = max(1, pipelining)
        try:
            while pos < total or in_flight:
                while pos < total and len(in_flight) < depth:
                    size = max(1, min(window(), total - pos))
                    frame = encode_batch(payloads[pos : pos + size], self.compression_level)
                    sock.sendall(frame)
                    self.bytes_sent += len(frame)
                    in_flight.append(WindowAcks(size))
                    pos += size
                    self.windows_sent += 1
                data = sock.recv(4096)
                if not data:
                    raise SendError(self._closed_hint(acked, total), acked)
                for seq in reader.feed(data):
                    self.acks_received += 1
                    if not in_flight:
                        if seq == 0:
                            continue
                        raise ProtocolError(f"ACK {seq} with no window in flight")
                    head = in_flight[0]
                    acked += head.on_ack(seq)
                    if seq == 0:
                        self.keepalives += 1
                    if head.done:
                        in_flight.popleft()
                        if on_window_acked is not None:
                            on_window_acked(head.count)
        except SendError:
            raise
        except ProtocolError as exc:
            raise SendError(f"protocol error from {self.where}: {exc}{self._tls_hint()}", acked) from exc
        except TimeoutError as exc:
            raise SendError(
                f"{self.where} neither ACKed nor read for {self.timeout:g}s (timeout; {acked} of {total} "
                "events ACKed)",
                acked,
            ) from exc
        except ssl.SSLError as exc:
            msg = explain_tls_error(exc, self.where, self.host)
            refused = self.windows_sent <= depth and acked == 0 and "refused" in msg
            raise SendError(msg, acked, refused=refused) from exc
        except OSError as exc:
            raise SendError(f"connection to {self.where} failed: {_os_reason(exc)} "
                            f"({acked} of {total} events ACKed){self._tls_hint()}", acked) from exc
        return acked

    def _closed_hint(self, acked: int, total: int) -> str:
        return f"{self.where} closed the connection ({acked} of {total} events ACKed){self._tls_hint()}"

    def _tls_hint(self) -> str:
        """A plain-text client talking to a TLS input gets a close, a reset or a TLS alert in
        answer to its first window, never an ACK: say what the likely cause is."""
        if self.tls is None and self.acks_received == 0:
            return "; if its beats input has ssl enabled, configure output.logstash.ssl"
        return ""

    def stale(self) -> bool:
        """True when the server closed (or reset) a connection that has no window in flight:
        Logstash drops idle clients (``client_inactivity_timeout``) and firewalls drop idle
        flows. Seen before sending, this is a reconnect, not a failed send. Only after a first
        window, so a TLS 1.3 session ticket still unread after the handshake is not mistaken
        for it."""
        if self.sock is None or self.windows_sent == 0:
            return False
        try:
            p = select.poll()
            p.register(self.sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(p.poll(0))
        except (OSError, ValueError):
            return True

    def age(self) -> float:
        return time.monotonic() - self.connected_at if self.sock is not None else 0.0

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                # shutdown first: it wakes a worker blocked in recv() on this socket (agent
                # shutdown), which close() alone does not do on Linux.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("closed by the proxy")
        buf += chunk
    return buf


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__
