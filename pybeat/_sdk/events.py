"""Events and who is running: :class:`Event`, :class:`BeatInfo`, :data:`EmitFn`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import orjson

__all__ = ["BeatInfo", "EmitFn", "Event"]


class Event:
    """One event: ``fields`` is the document, ``meta`` becomes ``@metadata``.

    ``timestamp_ns`` is the capture time of the first packet of the transaction (nanoseconds
    since the epoch); outputs render it as ``@timestamp``. It never comes from the clock.

    Read and change ``fields`` as a plain dict, or with the dotted-path helpers :meth:`get`,
    :meth:`put` and :meth:`delete`. ``meta`` keys reach the outputs as ``@metadata.<key>``
    (``_id`` names the Elasticsearch document, ``raw_index`` its index).
    """

    # raw and digest: the built-in protocols' pre-encoded form (see pybeat._fastpath); reading
    # ``fields`` always works, whatever form the event came in.
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
        """Value at a dotted path (``dns.question.name``), as Beats' ``GetValue`` reads it: a
        key that itself contains dots is found too."""
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


#: How a protocol analyzer or a detector hands an event to the agent.
EmitFn = Callable[[Event], None]


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
