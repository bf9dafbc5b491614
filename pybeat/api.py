"""The public interface for plugin authors: protocols, outputs and processors.

Everything a plugin needs from the agent is in this module; anything else in ``pybeat`` is
private and may change. Plugins are found through the entry-point groups ``pybeat.protocols``,
``pybeat.outputs`` and ``pybeat.processors``; the built-ins register the same way.

A protocol is sans-IO: it gets payloads with their capture timestamps and emits events through
the ``emit`` callback it was built with. It never opens sockets, reads files or reads the clock;
its timeouts run on the ``now_ns`` values the agent passes in (packet time).

An output gets :class:`Batch` objects on worker threads and must settle every event of every
batch: acknowledge it, hand it back for retry, or drop it (counted, with a reason). Outputs
only read events: one event goes to every enabled output, and events may share nested objects
(see ``ProtocolContext.events_may_share``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

import orjson

from pydantic import BaseModel, ConfigDict, field_validator

from pybeat.durations import Duration

__all__ = [
    "Analyzer",
    "Batch",
    "BeatInfo",
    "CommonProtocolConfig",
    "EmitFn",
    "Event",
    "Output",
    "OutputContext",
    "OutputPlugin",
    "Packet",
    "PluginConfig",
    "Processor",
    "ProcessorPlugin",
    "ProtocolContext",
    "ProtocolPlugin",
    "TcpConnection",
]


class PluginConfig(BaseModel):
    """Base for every plugin's config model: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CommonProtocolConfig(PluginConfig):
    """Keys every Packetbeat protocol accepts (``packetbeat.protocols[*]``)."""

    type: str
    enabled: bool = True
    ports: list[int] = []
    fields: dict[str, Any] = {}
    fields_under_root: bool = False
    tags: list[str] = []
    processors: list[dict[str, Any]] = []
    keep_null: bool = False
    index: str | None = None
    send_request: bool = False
    send_response: bool = False
    transaction_timeout: Duration = 10.0
    interface: dict[str, Any] = {}

    @field_validator("transaction_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("transaction_timeout must be a positive duration such as 10s")
        return value


class Event:
    """One event: ``fields`` is the document, ``meta`` becomes ``@metadata``.

    ``timestamp_ns`` is the capture time of the first packet of the transaction (nanoseconds
    since the epoch); it is rendered as ``@timestamp`` by the codec, never taken from the clock.

    Pre-encoded events: an analyzer that may share events (``ProtocolContext.events_may_share``:
    nothing downstream changes them) can hand over the document already encoded, ``raw`` = the
    JSON object of ``fields`` (no ``@timestamp`` or ``@metadata`` key in it), with ``fields``
    None. Encoders splice ``raw`` as it is; anything that reads ``fields`` gets it decoded from
    ``raw`` on first access (and ``raw`` is then dropped: the dict is the document from then
    on, and may be changed). ``digest`` is what the exit summary needs of such an event
    without decoding it: ``(type, status, question name, notes)``.
    """

    __slots__ = ("timestamp_ns", "_fields", "meta", "raw", "digest")

    def __init__(
        self,
        timestamp_ns: int,
        fields: dict[str, Any] | None,
        meta: dict[str, Any] | None = None,
        raw: bytes | None = None,
        digest: tuple[str, str | None, str | None, Sequence[str] | None] | None = None,
    ):
        self.timestamp_ns = timestamp_ns
        self._fields = fields
        self.meta = meta if meta is not None else {}
        self.raw = raw if fields is None else None
        self.digest = digest

    @property
    def fields(self) -> dict[str, Any]:
        f = self._fields
        if f is None:
            raw = self.raw
            f = self._fields = orjson.loads(raw) if raw is not None else {}
            self.raw = None
        return f

    @fields.setter
    def fields(self, value: dict[str, Any]) -> None:
        self._fields = value
        self.raw = None

    def get(self, dotted: str, default: Any = None) -> Any:
        """Value at a dotted path (``dns.question.name``), as Beats' ``GetValue`` reads it."""
        node: Any = self.fields
        if dotted in node:
            return node[dotted]
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def put(self, dotted: str, value: Any) -> None:
        """Set a value at a dotted path, creating the objects on the way."""
        node = self.fields
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value

    def delete(self, dotted: str) -> bool:
        """Remove a dotted path; True if something was removed."""
        node: Any = self.fields
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return False
        if isinstance(node, dict) and leaf in node:
            del node[leaf]
            return True
        return False

    def __repr__(self) -> str:
        if self._fields is None and self.raw is not None:  # without decoding it
            return f"Event({self.timestamp_ns}, raw={self.raw!r})"
        return f"Event({self.timestamp_ns}, {self.fields!r})"


EmitFn = Callable[[Event], None]


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
    """Base class of a protocol analyzer instance; override what the protocol uses.

    All methods are called from the capture thread, one packet at a time, in capture order.
    They must not raise for any input: bad bytes become a note on an event and a counter.
    """

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        """A UDP datagram to or from one of the protocol's ports (non-empty payload)."""

    def on_udp4(self, ts_ns: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, payload: bytes) -> None:
        """The same as ``on_udp`` for a datagram in plain IPv4 without VLAN tags (the decoder's
        common case): an analyzer may override it to skip building the :class:`Packet`."""
        self.on_udp(Packet(ts_ns, src_ip, dst_ip, src_port, dst_port, "udp", 4, ()), payload)

    def udp4_lane(self) -> Any:
        """An optional compiled stand-in for ``on_udp4`` that the compiled replay loop calls
        without creating Python objects first (see pybeat/_speedups.pyx), or None (the
        default): the loop then calls ``on_udp4``. Built-in analyzers only: the lane must give
        exactly what ``on_udp4`` gives, and the loop assumes ``shard_key`` is the DNS ID."""
        return None

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        """In-order bytes of one direction of a TCP connection (retransmissions removed)."""

    def on_tcp_gap(self, conn: TcpConnection, from_client: bool, nbytes: int, ts_ns: int) -> None:
        """``nbytes`` of one direction were never captured; the stream continues after them."""

    def on_tcp_close(self, conn: TcpConnection, from_client: bool, ts_ns: int) -> None:
        """One direction ended (FIN or RST), or the connection expired or was evicted."""

    def on_icmp(self, pkt: Packet, message: bytes) -> None:
        """An ICMP or ICMPv6 message (``pkt.transport`` says which), starting at its type byte."""

    def expire(self, now_ns: int) -> None:
        """Publish what timed out by ``now_ns`` (packet time). Called often; keep it cheap."""

    def flush(self, now_ns: int) -> None:
        """End of input: publish everything still pending (as 'no response' and the like)."""

    def stats(self) -> dict[str, int]:
        """Counters for the metrics registry (``{"unmatched_requests": 3, ...}``)."""
        return {}

    #: True when ``shard_key`` alone ties messages together across different address pairs
    #: (DHCP: an exchange moves from 0.0.0.0/broadcast to unicast addresses); the flow is then
    #: left out of the split key.
    shard_by_key_only: bool = False

    def shard_key(self, payload: bytes) -> int:
        """For runs split across processes: datagrams of one flow whose keys differ may go to
        different processes. Return what ties a request to its response (DNS: the message id);
        the default 0 keeps a whole flow in one process."""
        return 0


@dataclass
class BeatInfo:
    """Who is running: rendered into ``agent.*`` and ``@metadata``."""

    beat: str = "packetbeat"  # agent.type / index prefix, kept so Kibana's Packetbeat assets work
    name: str = ""  # agent.name (defaults to the host name)
    hostname: str = ""
    version: str = ""
    agent_id: str = ""
    ephemeral_id: str = ""
    product: str = "pybeat"


@dataclass
class ProtocolContext:
    """What an analyzer is built with: where to emit events and facts about the run."""

    emit: EmitFn
    beat: BeatInfo
    protocol_name: str
    #: builds the common transaction fields (pybeat.envelope.Envelope: source/destination/
    #: client/server, network.*, event.*, related.ip) with the site's internal_networks
    envelope: Any = None
    logger: Any = None
    #: True when nothing downstream changes an event (no processors, fields, tags or index
    #: configured for this protocol or globally): the analyzer may then emit events that share
    #: nested objects with each other (memoised sub-documents). Outputs and observers only ever
    #: read events, so sharing is safe then; when False every event must be an independent copy.
    events_may_share: bool = False
    #: Set only with ``events_may_share``: the bytes that close a pre-encoded document (the
    #: pipeline's ``agent``, ``ecs`` and ``host`` objects and the final ``}``), and the function
    #: that publishes an event whose ``raw`` already ends with them, so that nothing is spliced
    #: into it on the way (``emit`` adds them to a ``raw`` that ends with a plain ``}``).
    raw_close: bytes | None = None
    emit_closed: EmitFn | None = None


class ProtocolPlugin(Protocol):
    """What a ``pybeat.protocols`` entry point must provide.

    Optional: ``prepare()``, called once before the analyzers are built (and before a replay
    forks its worker processes), for expensive read-only set-up such as building a lookup table.
    """

    name: str
    #: subset of {"udp", "tcp", "icmp"}: which transports feed this protocol
    transports: frozenset[str]
    config_model: type[CommonProtocolConfig]

    def create(self, config: Any, ctx: ProtocolContext) -> Analyzer: ...


class Batch:
    """A batch handed to an output. Every event must end acked, retried or dropped.

    The pipeline builds batches; outputs call ``ack``/``retry``/``drop`` or, for mixed
    outcomes (an Elasticsearch bulk response), ``settle``. Settling twice is an error.
    """

    __slots__ = ("events", "_on_settle", "_settled", "retries")

    def __init__(self, events: list[Event], on_settle: Callable[["Batch", int, int, list[Event], int], None], retries: int = 0):
        self.events = events
        self._on_settle = on_settle
        self._settled = False
        self.retries = retries

    def settle(
        self, *, acked: int = 0, duplicates: int = 0, retry: list[Event] | None = None, dropped: int = 0
    ) -> None:
        """Record the outcome of every event: ``acked + duplicates + len(retry) + dropped`` must
        equal ``len(events)``. Duplicates (HTTP 409 on create) count as delivered."""
        if self._settled:
            raise RuntimeError("batch settled twice")
        retry = retry or []
        if acked + duplicates + len(retry) + dropped != len(self.events):
            raise ValueError(
                f"batch of {len(self.events)} settled as {acked} acked + {duplicates} duplicates + "
                f"{len(retry)} retried + {dropped} dropped"
            )
        self._settled = True
        self._on_settle(self, acked + duplicates, duplicates, retry, dropped)

    def ack(self) -> None:
        self.settle(acked=len(self.events))

    def retry(self) -> None:
        self.settle(retry=list(self.events))

    def drop(self) -> None:
        self.settle(dropped=len(self.events))

    @property
    def settled(self) -> bool:
        return self._settled


@dataclass
class OutputContext:
    """What an output is built with."""

    beat: BeatInfo
    metrics: Any  # pybeat.monitoring.registry.Registry
    logger: Any
    name: str
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Output(Protocol):
    """A running output. ``publish`` is called from one of ``workers`` threads at once."""

    def publish(self, batch: Batch) -> None: ...

    def close(self) -> None: ...


class OutputPlugin(Protocol):
    """What a ``pybeat.outputs`` entry point must provide.

    ``create`` builds one output client per worker (``workers(config)`` of them); outputs that
    want one shared client return the same object each time.
    """

    name: str
    config_model: type[PluginConfig]

    def create(self, config: Any, ctx: OutputContext) -> Output: ...

    def workers(self, config: Any) -> int: ...

    def batch_size(self, config: Any) -> int: ...


class Processor(Protocol):
    """Runs on one event; returns the event (changed in place or new) or None to drop it."""

    def run(self, event: Event) -> Event | None: ...


class ProcessorPlugin(Protocol):
    """What a ``pybeat.processors`` entry point must provide."""

    name: str
    #: the model for the processor's settings; ``when`` is handled by the agent
    config_model: type[PluginConfig]

    def create(self, config: Any, beat: BeatInfo) -> Processor: ...


class Plugin:
    """Convenience base for built-in plugin objects: declares the attributes above."""

    name: ClassVar[str]
