"""The protocol plugin contract: what an analyzer receives and what it gives back."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Protocol

from pybeat._sdk.config import CommonProtocolConfig
from pybeat._sdk.events import BeatInfo, EmitFn
from pybeat._sdk.support import Logger
from pybeat.envelope import Envelope

__all__ = ["Analyzer", "Packet", "ProtocolContext", "ProtocolPlugin", "TcpConnection"]


class Packet:
    """What the decoding layer knows about one datagram, handed to protocol analyzers.

    ``src_ip``/``dst_ip`` are strings (``"10.0.0.1"``, ``"::1"``); ``transport`` is one of
    ``udp``, ``tcp``, ``icmp``, ``ipv6-icmp``. ``vlans`` lists VLAN ids, outermost first.
    """

    __slots__ = ("ts_ns", "src_ip", "dst_ip", "src_port", "dst_port", "transport", "ip_version", "vlans")

    def __init__(
        self,
        ts_ns: int,
        src_ip: str,
        dst_ip: str,
        src_port: int,
        dst_port: int,
        transport: str,
        ip_version: int,
        vlans: tuple[int, ...] = (),
    ):
        self.ts_ns = ts_ns
        self.src_ip = src_ip
        self.dst_ip = dst_ip
        self.src_port = src_port
        self.dst_port = dst_port
        self.transport = transport
        self.ip_version = ip_version
        self.vlans = vlans

    def __repr__(self) -> str:
        return (
            f"Packet({self.transport} {self.src_ip}:{self.src_port} -> "
            f"{self.dst_ip}:{self.dst_port} @ {self.ts_ns})"
        )


class TcpConnection:
    """One reassembled TCP connection as a protocol analyzer sees it.

    ``client_*`` is the side that opened the connection (sent the SYN), or, when the capture
    started mid-stream, the side talking to the protocol's port. ``state`` belongs to the
    analyzer: it keeps its per-connection parser state there (the agent never touches it).
    """

    __slots__ = ("client_ip", "client_port", "server_ip", "server_port", "ip_version", "state", "vlans")

    def __init__(
        self, client_ip: str, client_port: int, server_ip: str, server_port: int, ip_version: int,
        vlans: tuple[int, ...] = (),
    ):
        self.client_ip = client_ip
        self.client_port = client_port
        self.server_ip = server_ip
        self.server_port = server_port
        self.ip_version = ip_version
        self.state: Any = None
        self.vlans = vlans

    def __repr__(self) -> str:
        return f"TcpConnection({self.client_ip}:{self.client_port} -> {self.server_ip}:{self.server_port})"


class Analyzer:
    """Base class of a protocol analyzer; override what the protocol uses.

    Every method is called from the capture thread, one packet at a time, in capture order.
    A method that raises costs only the packet (or timer call) that caused it: the agent
    counts the exception under the protocol's name (``<protocol>.exceptions``) and logs each
    kind once, with the traceback at debug level. Bad bytes are not exceptions: they become a
    note on an event (``error.message``) and a counter of your own.
    """

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        """A UDP datagram to or from one of the protocol's ports (non-empty payload)."""

    def on_udp4(self, ts_ns: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, payload: bytes) -> None:
        """The same as ``on_udp`` for a datagram in plain IPv4 without VLAN tags (the decoder's
        common case): an analyzer may override it to skip building the :class:`Packet`."""
        self.on_udp(Packet(ts_ns, src_ip, dst_ip, src_port, dst_port, "udp", 4, ()), payload)

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        """In-order bytes of one direction of a TCP connection (retransmissions removed)."""

    def on_tcp_gap(self, conn: TcpConnection, from_client: bool, nbytes: int, ts_ns: int) -> None:
        """``nbytes`` of one direction were never captured; the stream continues after them."""

    def on_tcp_close(self, conn: TcpConnection, from_client: bool, ts_ns: int) -> None:
        """One direction ended (FIN or RST), or the connection expired or was evicted."""

    def on_icmp(self, pkt: Packet, message: bytes) -> None:
        """An ICMP or ICMPv6 message (``pkt.transport`` says which), starting at its type byte."""

    def expire(self, now_ns: int) -> None:
        """Publish what timed out by ``now_ns`` (packet time). Called every 0.5 s of packet
        time; keep it cheap."""

    def flush(self, now_ns: int) -> None:
        """End of input: publish everything still pending (as 'no response' and the like)."""

    def stats(self) -> dict[str, int]:
        """Counters for the metrics registry (``{"unmatched_requests": 3, ...}``), reported as
        ``<protocol>.<counter>``."""
        return {}

    def udp4_lane(self) -> Any:
        """pybeat.api 0.1 published this built-in-only hook (see ``pybeat._fastpath``); kept so
        that 0.1 code calling it still works, until 2.0. Always None for a plugin."""
        return None

    #: True when ``shard_key`` alone ties messages together across different address pairs
    #: (DHCP: an exchange moves from 0.0.0.0/broadcast to unicast addresses); the flow is then
    #: left out of the split key.
    shard_by_key_only: bool = False

    def shard_key(self, payload: bytes) -> int:
        """For runs split across processes: datagrams of one flow whose keys differ may go to
        different processes. Return what ties a request to its response (DNS: the message id);
        the default 0 keeps a whole flow in one process."""
        return 0


@dataclass(init=False, repr=False, eq=False)
class ProtocolContext:
    """What an analyzer is built with.

    ``emit``: publish one event (any thread-safety is the agent's; call it from the analyzer's
    methods only). ``envelope``: builds the fields every transaction event carries
    (:class:`pybeat.api.Envelope`), with the site's ``internal_networks``. ``logger``: your
    logger, bound to your protocol's name. ``events_may_share``: True when nothing downstream
    changes an event (no processors, fields, tags or index configured for this protocol or
    globally), so events may share nested objects (a memoised sub-document) with each other;
    when False every event must be an independent copy.
    """

    # A dataclass as in pybeat.api 0.1 (dataclasses.replace(ctx, ...) keeps working), with the
    # constructor written out: raw_close/emit_closed are accepted as 0.1 had them.
    emit: EmitFn
    beat: BeatInfo
    protocol_name: str
    envelope: Envelope
    logger: Logger
    events_may_share: bool
    _fastpath: Any

    def __init__(
        self,
        emit: EmitFn,
        beat: BeatInfo,
        protocol_name: str,
        envelope: Envelope | None = None,
        logger: Logger | None = None,
        events_may_share: bool = False,
        raw_close: bytes | None = None,
        emit_closed: EmitFn | None = None,
        fastpath: Any = None,
        _fastpath: Any = None,  # what dataclasses.replace passes on
    ):
        self.emit = emit
        self.beat = beat
        self.protocol_name = protocol_name
        self.envelope: Envelope = envelope if envelope is not None else Envelope()
        self.logger: Logger = logger if logger is not None else _NullLogger()
        self.events_may_share = events_may_share
        fastpath = fastpath if fastpath is not None else _fastpath
        if fastpath is None and raw_close is not None and emit_closed is not None:
            from pybeat._fastpath import FastPath

            fastpath = FastPath(raw_close, emit_closed)
        #: the built-in protocols' speed hooks (pybeat._fastpath); None when not offered
        self._fastpath = fastpath

    # pybeat.api 0.1 published these two; they are internal now (pybeat._fastpath).
    @property
    def raw_close(self) -> bytes | None:
        warnings.warn("ProtocolContext.raw_close is internal since pybeat.api 1.0 and will be removed in 2.0",
                      DeprecationWarning, stacklevel=2)
        return self._fastpath.raw_close if self._fastpath is not None else None

    @property
    def emit_closed(self) -> EmitFn | None:
        warnings.warn("ProtocolContext.emit_closed is internal since pybeat.api 1.0 and will be removed in 2.0",
                      DeprecationWarning, stacklevel=2)
        return self._fastpath.emit_closed if self._fastpath is not None else None

    def __repr__(self) -> str:
        return f"ProtocolContext({self.protocol_name!r}, events_may_share={self.events_may_share})"


class _NullLogger:
    """The logger of a context built without one (a plugin's own tests). 0.1 handed plugins the
    agent's structlog logger: ``bind``, ``exception`` and ``critical`` work too."""

    def debug(self, event: str, **kw: Any) -> None: ...

    def info(self, event: str, **kw: Any) -> None: ...

    def warning(self, event: str, **kw: Any) -> None: ...

    def error(self, event: str, **kw: Any) -> None: ...

    def exception(self, event: str, **kw: Any) -> None: ...

    def critical(self, event: str, **kw: Any) -> None: ...

    def bind(self, **kw: Any) -> "_NullLogger":
        return self


class ProtocolPlugin(Protocol):
    """What a ``pybeat.protocols`` entry point must provide.

    ``name`` (the ``type:`` in ``packetbeat.protocols``), ``transports`` (a subset of
    ``{"udp", "tcp", "icmp"}``), ``config_model`` (a subclass of
    :class:`CommonProtocolConfig`), ``api_version`` (the ``pybeat.api`` version the plugin
    was written for, e.g. ``"1.0"``) and ``create``, called once per run (per process in a
    split replay) before the first packet.

    Optional, looked up with ``getattr``:

    - ``prepare()``: expensive read-only set-up (a lookup table), called once before the
      analyzers are built and before a replay forks its worker processes;
    - ``fields()``: ``{dotted field name: Elasticsearch type}`` for the fields the protocol
      writes (``{"ntp.stratum": "long"}``); the index template is assembled from what every
      enabled protocol declares;
    - ``summary_field``: a :class:`pybeat.api.SummaryField` the exit summary counts.
    """

    @property
    def name(self) -> str: ...

    @property
    def transports(self) -> frozenset[str]: ...

    @property
    def config_model(self) -> type[CommonProtocolConfig]: ...

    def create(self, config: Any, ctx: ProtocolContext) -> Analyzer: ...
