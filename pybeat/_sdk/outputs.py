"""The output plugin contract, as libbeat's: a factory returns one group of clients with its
batch size and retry policy; the agent owns the queue, batching, retries, backoff, the
``max_retries`` limit and the counters; a client settles every event of every batch."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Mapping, Protocol, Sequence, TextIO, runtime_checkable

from pybeat._sdk.config import PluginConfig
from pybeat._sdk.events import BeatInfo, Event
from pybeat._sdk.support import Logger, Metrics, Paths, Shard

__all__ = [
    "AdminContext", "Batch", "Output", "OutputContext", "OutputGroup", "OutputPlugin", "RetryPolicy",
]

#: what the pipeline is told when a batch is settled: (batch, acked, duplicates, retry, cancelled, dropped)
SettleFn = Callable[["Batch", int, int, list[Event], list[Event], int], None]


class Batch:
    """A batch handed to an output client. Every event must end in exactly one outcome.

    - ``ack()`` / ``acked``: delivered. ``duplicates``: the destination already had it (HTTP
      409 on create): delivered too, counted apart.
    - ``retry()`` / ``retry=[...]``: a delivery attempt failed (the server refused or lost
      them); they come back later, counted against the output's ``max_retries``.
    - ``cancel()`` / ``cancelled=[...]``: nothing was attempted (no connection, the output is
      closing); they come back later without using up an attempt.
    - ``drop()`` / ``dropped=n``: never deliverable (cannot be encoded, refused for good);
      counted as dropped.

    ``settle`` records a mix at once (an Elasticsearch bulk response). Settling twice is an
    error, and so is a count that does not add up. The agent waits its backoff after a batch
    with retried or cancelled events before the client gets the next one.
    """

    __slots__ = ("events", "_on_settle", "_settled", "retries")

    def __init__(self, events: list[Event], on_settle: SettleFn | Callable[..., None], retries: int = 0):
        self.events = events
        self._on_settle = _settle_fn(on_settle)
        self._settled = False
        #: delivery attempts these events already failed (``retry``, not ``cancel``)
        self.retries = retries

    def settle(
        self, *, acked: int = 0, duplicates: int = 0, retry: list[Event] | None = None,
        cancelled: list[Event] | None = None, dropped: int = 0,
    ) -> None:
        """Record the outcome of every event: ``acked + duplicates + len(retry) +
        len(cancelled) + dropped`` must equal ``len(events)``."""
        if self._settled:
            raise RuntimeError("batch settled twice")
        retry = retry or []
        cancelled = cancelled or []
        if acked < 0 or duplicates < 0 or dropped < 0 or \
                acked + duplicates + len(retry) + len(cancelled) + dropped != len(self.events):
            raise ValueError(
                f"batch of {len(self.events)} settled as {acked} acked + {duplicates} duplicates + "
                f"{len(retry)} retried + {len(cancelled)} cancelled + {dropped} dropped"
            )
        self._settled = True
        self._on_settle(self, acked, duplicates, retry, cancelled, dropped)

    def ack(self) -> None:
        self.settle(acked=len(self.events))

    def retry(self) -> None:
        self.settle(retry=list(self.events))

    def cancel(self) -> None:
        self.settle(cancelled=list(self.events))

    def drop(self) -> None:
        self.settle(dropped=len(self.events))

    @property
    def settled(self) -> bool:
        return self._settled


def _settle_fn(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn``, or, for pybeat.api 0.1's five-argument callback ``(batch, acked + duplicates,
    duplicates, retry, dropped)`` (0.1 had no cancel: cancelled events are in ``retry``), ``fn``
    adapted to the six arguments of 1.0. Cheap: called once per batch."""
    func = getattr(fn, "__func__", None)  # a bound method: its function, without self
    if func is not None:
        code, bound = getattr(func, "__code__", None), 1
    else:
        code, bound = getattr(fn, "__code__", None), 0
        if code is None:  # an object with __call__
            code, bound = getattr(getattr(type(fn), "__call__", None), "__code__", None), 1
    if code is None or code.co_flags & 0x04 or code.co_argcount - bound != 5:  # 0x04: *args
        return fn

    def settle_0_1(batch: "Batch", acked: int, duplicates: int, retry: list[Event], cancelled: list[Event],
                   dropped: int) -> None:
        fn(batch, acked + duplicates, duplicates, retry + cancelled, dropped)

    return settle_0_1


@runtime_checkable
class Output(Protocol):
    """One output client. The agent calls ``publish`` from one worker thread per client, so a
    client never sees two batches at once; clients of one group run in parallel. ``publish``
    returns once the batch is settled (or raises: the batch is then retried). ``close`` may be
    called from another thread while ``publish`` runs: it must make ``publish`` return soon
    (settling what is left as cancelled)."""

    def publish(self, batch: Batch) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """What the agent does with retried and cancelled events (libbeat's keys).

    ``max_retries``: failed attempts after which an event is dropped (counted as
    ``dropped_max_retries``); negative = retry forever; cancelled events never use attempts.
    ``backoff_init``/``backoff_max``: seconds a client waits after a batch that was not fully
    delivered, doubling from ``init`` up to ``max`` (with jitter), reset by a fully delivered
    batch."""

    max_retries: int = 3
    backoff_init: float = 1.0
    backoff_max: float = 60.0


@dataclass
class OutputGroup:
    """What an output's ``create`` returns: its clients (one worker thread each), how many
    events a batch holds at most (0: whatever is queued), the retry policy, and optionally
    ``location``: a short text saying where events went, for the exit summary
    (``"./out/pybeat-20261127.ndjson"``)."""

    clients: Sequence[Output]
    batch_size: int = 2048
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    location: Callable[[], str] | None = None


_LEGACY_EXTRA = {"path_data": "paths.data", "setup": "setup", "file_suffix": "shard.suffix", "stdout": "stdout"}


class _LegacyExtra(dict):  # type: ignore[type-arg]
    """pybeat.api 0.1's ``OutputContext.extra``: its documented keys still work, and warn."""

    def _warn(self, key: Any) -> None:
        if key in _LEGACY_EXTRA:
            warnings.warn(f"OutputContext.extra[{key!r}] is deprecated since pybeat.api 1.0: use "
                          f"OutputContext.{_LEGACY_EXTRA[key]}", DeprecationWarning, stacklevel=3)

    def __getitem__(self, key: Any) -> Any:
        self._warn(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._warn(key)
        return super().get(key, default)


@dataclass
class OutputContext:
    """What an output is built with.

    ``name``: the output's config key (``output.<name>``). ``metrics``: register your own
    counters; they are reported as ``output.<name>.<namespace>.<counter>`` (the agent reports
    the events' outcomes itself as ``output.<name>.events.*``). ``paths``: the run's folders.
    ``shard``: set when a replay is split across processes (file names need
    ``shard.suffix``). ``setup``: the ``setup.*`` section (template, ILM). ``field_types``:
    every field the enabled protocols and the core declare, ``{dotted name: type}``, for an
    index template. ``stdout``: where a console-like output writes (bytes).
    """

    beat: BeatInfo
    metrics: Metrics | None
    logger: Logger | None
    name: str
    extra: dict[str, Any] = field(default_factory=dict)
    paths: Paths = field(default_factory=Paths.resolve)
    shard: Shard | None = None
    setup: Mapping[str, Any] = field(default_factory=dict)
    field_types: Mapping[str, str] = field(default_factory=dict)
    stdout: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)

    def __post_init__(self) -> None:
        legacy = _LegacyExtra(self.extra)
        legacy.setdefault("path_data", self.paths.data)
        legacy.setdefault("setup", dict(self.setup))
        if self.shard is not None:
            legacy.setdefault("file_suffix", self.shard.suffix)
        legacy.setdefault("stdout", self.stdout)
        self.extra = legacy


@dataclass
class AdminContext:
    """What an output's ``test_connection``/``setup``/``export`` capabilities get: ``out`` to
    print on (one line per step; never print a secret: see :func:`pybeat.api.redact_url`),
    the ``setup.*`` section, the declared ``field_types``, and the command's ``options``
    (``{"es.version": "8.15.0"}`` for ``pybeat export template --es.version``)."""

    beat: BeatInfo
    out: TextIO
    setup: Mapping[str, Any] = field(default_factory=dict)
    field_types: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    logger: Logger | None = None


class OutputPlugin(Protocol):
    """What a ``pybeat.outputs`` entry point must provide: ``name`` (the ``output.<name>``
    key), ``config_model``, ``api_version`` and ``create(config, ctx) -> OutputGroup``, called
    once per run (per process in a split replay).

    Optional capabilities, looked up with ``getattr`` (none names a plugin in the core):

    - ``test_connection(config, ctx: AdminContext) -> bool`` for ``pybeat test output``;
    - ``setup(config, ctx: AdminContext) -> None`` for ``pybeat setup``;
    - ``exports`` (a set such as ``{"template", "ilm-policy"}``) and
      ``export(what, config, ctx: AdminContext) -> object`` for ``pybeat export <what>``;
    - ``top_level_sections`` (a set such as ``{"cloud"}``) and ``apply_top_level(data)``: a
      top-level config section the output owns, applied to the raw config before validation
      (raise ``ValueError`` with the reason when it is wrong).
    """

    @property
    def name(self) -> str: ...

    @property
    def config_model(self) -> type[PluginConfig]: ...

    def create(self, config: Any, ctx: OutputContext) -> OutputGroup: ...
