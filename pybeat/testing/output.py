"""Drive an output plugin as the agent does: its group built with a real
:class:`OutputContext` (``create``, or a 0.1 plugin's ``workers``/``batch_size``/``create`` per
worker through the agent's compatibility layer), batches handed to its clients and checked
to be settled exactly once with counts that add up, ``close`` called from another thread
while ``publish`` runs, and whole runs through the agent's :class:`OutputRunner` (queue,
worker threads, retries, backoff, ``max_retries``) whose ``output.<name>.events.*`` counts a
test reads.

    h = OutputHarness(plugin, {"path": str(tmp_path)})
    s = h.publish(events)              # one batch to client 0
    assert s.acked == len(events)
    run = h.run(events * 10)           # through the runner, with a quick retry policy
    assert run.events["acked"] == 10 * len(events)
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Mapping, Sequence

from pybeat._compat import output_group
from pybeat.agent.build import _ScopedMetrics
from pybeat.api import (
    Batch, BeatInfo, Event, Metrics, Output, OutputContext, OutputGroup, Paths, RetryPolicy, Shard,
)
from pybeat.fieldtypes import declared_field_types
from pybeat.monitoring import MetricsRegistry
from pybeat.pipeline.deadline import Deadline
from pybeat.pipeline.runner import OutputRunner
from pybeat.testing._common import PluginFault, RecordingLogger, _Faults, checked, config_of, raise_first, fixed_beat

__all__ = ["QUICK_RETRY", "OutputHarness", "OutputRun", "Settlement"]

#: the retry policy :meth:`OutputHarness.run` uses unless told otherwise: the agent's
#: behaviour, with backoffs short enough for a test
QUICK_RETRY = RetryPolicy(max_retries=3, backoff_init=0.01, backoff_max=0.05)


@dataclass
class Settlement:
    """How a client settled one batch."""

    size: int
    acked: int = 0
    duplicates: int = 0
    retried: list[Event] = field(default_factory=list)
    cancelled: list[Event] = field(default_factory=list)
    dropped: int = 0
    #: False when ``publish`` returned (or raised) without settling the batch
    settled: bool = False
    #: what ``publish`` raised (``strict=False`` only; the agent retries the batch)
    raised: BaseException | None = None
    #: settle calls the batch refused (settled twice, counts that do not add up)
    problems: list[str] = field(default_factory=list)
    #: how long ``publish`` took, in seconds
    seconds: float = 0.0

    @property
    def delivered(self) -> int:
        return self.acked + self.duplicates


class _CheckedBatch(Batch):
    """A real :class:`Batch` that remembers how it was settled and every refused attempt."""

    __slots__ = ("outcome", "problems")

    def __init__(self, events: list[Event], retries: int = 0):
        self.outcome: Settlement | None = None
        self.problems: list[str] = []
        super().__init__(events, self._record, retries)

    def _record(self, batch: Batch, acked: int, duplicates: int, retry: list[Event], cancelled: list[Event],
                dropped: int) -> None:
        self.outcome = Settlement(len(self.events), acked, duplicates, list(retry), list(cancelled), dropped, True)

    def settle(self, *, acked: int = 0, duplicates: int = 0, retry: list[Event] | None = None,
               cancelled: list[Event] | None = None, dropped: int = 0) -> None:
        try:
            super().settle(acked=acked, duplicates=duplicates, retry=retry, cancelled=cancelled, dropped=dropped)
        except (RuntimeError, ValueError) as exc:
            self.problems.append(str(exc))
            raise


@dataclass
class OutputRun:
    """What a run through the agent's :class:`OutputRunner` counted."""

    name: str
    #: events handed to the output's queue
    given: int
    #: the agent's metrics for the output: ``output.<name>.events.acked`` and the rest of the
    #: runner's counters, the plugin's own (``output.<name>.<namespace>.<counter>``) and
    #: ``output.<name>.exceptions``
    metrics: dict[str, Any]
    #: True when every event was settled for good before the timeout
    drained: bool
    seconds: float

    @property
    def events(self) -> dict[str, int]:
        """``output.<name>.events.*`` without the prefix: ``acked``, ``duplicates``,
        ``dropped``, ``dropped_max_retries``, ``retried``, ``cancelled``, ``not_delivered``."""
        prefix = f"output.{self.name}.events."
        return {k[len(prefix):]: int(v) for k, v in self.metrics.items() if k.startswith(prefix)}

    @property
    def accounted(self) -> int:
        """Events with a final outcome: this equals ``given`` in every run the agent accepts."""
        e = self.events
        return e["acked"] + e["duplicates"] + e["dropped"] + e["dropped_max_retries"] + e["not_delivered"]


class OutputHarness:
    """An output plugin's group, built as the agent builds it.

    ``config``: the ``output.<name>`` settings (a mapping validated by the plugin's model, or a
    model instance). ``paths`` default to a fresh temporary home. ``stdout`` (default: an
    in-memory buffer, :attr:`stdout`) is where a console-like output writes. ``shard``: set to
    test a replay split across processes (``Shard(1, 2)``: file names need ``shard.suffix``).
    """

    def __init__(
        self,
        plugin: Any,
        config: Mapping[str, Any] | Any = None,
        *,
        name: str | None = None,
        strict: bool = True,
        paths: Paths | None = None,
        shard: Shard | None = None,
        setup: Mapping[str, Any] | None = None,
        field_types: Mapping[str, str] | None = None,
        stdout: BinaryIO | None = None,
        beat: BeatInfo | None = None,
    ):
        info = checked("outputs", plugin)
        self.plugin = plugin
        self.name = name or info.name
        #: served through the 0.1 compatibility layer (declares no api_version)
        self.legacy = info.legacy
        self.strict = strict
        self.beat = beat or fixed_beat()
        self.logger = RecordingLogger()
        self.faults = _Faults(self.logger)
        self.config = config_of(plugin.config_model, config, f"output.{self.name}")
        self.paths = paths or Paths.resolve(tempfile.mkdtemp(prefix="pybeat-output-"))
        self.stdout: BinaryIO = stdout if stdout is not None else io.BytesIO()
        self.metrics_registry = MetricsRegistry()
        metrics: Metrics = self.metrics_registry if self.legacy else _ScopedMetrics(
            self.metrics_registry, f"output.{self.name}")
        self.context = OutputContext(
            beat=self.beat, metrics=metrics, logger=self.logger.bind(output=self.name), name=self.name,
            paths=self.paths, shard=shard, setup=dict(setup or {}),
            field_types=dict(field_types) if field_types is not None else declared_field_types([]),
            stdout=self.stdout,
        )
        #: what ``create`` returned (for a 0.1 plugin: the group the agent makes of its clients)
        self.group: OutputGroup = output_group(plugin, self.config, self.context, self.legacy)
        self.clients: list[Output] = list(self.group.clients)
        if not self.clients:
            raise AssertionError(f"output {self.name}: create() returned a group without clients")
        self._closed = False

    # -- one batch at a time -------------------------------------------------------------
    def publish(self, events: Sequence[Event], *, client: int = 0, retries: int = 0) -> Settlement:
        """Hand one batch to a client, as its worker thread would, and check that it was
        settled exactly once with counts that add up (else :class:`AssertionError`; with
        ``strict=False`` the problems are in the returned :class:`Settlement`)."""
        batch = _CheckedBatch(list(events), retries)
        started = time.monotonic()
        raised: BaseException | None = None
        try:
            self.clients[client].publish(batch)
        except Exception as exc:
            raised = exc
        return self._outcome(batch, raised, time.monotonic() - started)

    def _outcome(self, batch: _CheckedBatch, raised: BaseException | None, seconds: float) -> Settlement:
        outcome = batch.outcome or Settlement(len(batch.events))
        outcome.raised, outcome.problems, outcome.seconds = raised, list(batch.problems), seconds
        if self.strict:
            if raised is not None:
                raise PluginFault("output", self.name, raised, "publish") from raised
            if outcome.problems:
                raise AssertionError(f"output {self.name}: a batch of {outcome.size} was settled wrongly: "
                                     + "; ".join(outcome.problems))
            if not outcome.settled:
                raise AssertionError(f"output {self.name}: publish() returned without settling its batch of "
                                     f"{outcome.size} (the agent would retry it with backoff; a client must "
                                     "ack, retry, cancel or drop every event)")
        return outcome

    def close_during_publish(self, events: Sequence[Event], *, after: float = 0.1, client: int = 0,
                             timeout: float = 10.0) -> Settlement:
        """``publish`` on a worker thread, ``close`` from this one ``after`` seconds later (as a
        stopping agent does when the shutdown timeout passes): ``publish`` must return within
        ``timeout`` seconds with the batch settled (what was not sent: cancelled)."""
        batch = _CheckedBatch(list(events))
        box: list[BaseException] = []
        started = time.monotonic()

        def work() -> None:
            try:
                self.clients[client].publish(batch)
            except Exception as exc:
                box.append(exc)

        worker = threading.Thread(target=work, name=f"output-{self.name}-test", daemon=True)
        worker.start()
        worker.join(after)
        self.close()
        worker.join(timeout)
        if worker.is_alive():
            raise AssertionError(f"output {self.name}: publish() did not return within {timeout}s of close()")
        return self._outcome(batch, box[0] if box else None, time.monotonic() - started)

    def close(self) -> None:
        """Close every client once (the agent closes each distinct client at the end)."""
        if self._closed:
            return
        self._closed = True
        for c in {id(c): c for c in self.clients}.values():
            try:
                c.close()
            except Exception as exc:
                self.faults.record("output", self.name, exc, "close")
        raise_first(self.faults, self.strict)

    def metrics(self) -> dict[str, Any]:
        """What the plugin registered (``output.<name>.<namespace>.<counter>``)."""
        return self.metrics_registry.snapshot()

    # -- a whole run ---------------------------------------------------------------------
    def run(self, events: Sequence[Event], *, retry: RetryPolicy | None = QUICK_RETRY, timeout: float = 30.0,
            queue_events: int = 3200, batch_size: int | None = None) -> OutputRun:
        """Every event through the agent's :class:`OutputRunner` (its queue, one worker thread
        per client, retries, backoff, ``max_retries``), waiting at most ``timeout`` seconds as
        ``packetbeat.shutdown_timeout`` would, then closing the clients. ``retry``: the policy
        instead of the group's (None: the group's own). Ends the group: build another harness
        for more."""
        if self._closed:
            raise RuntimeError("the output was closed; make a new OutputHarness")
        self._closed = True
        group = self.group
        if retry is not None:
            group = dataclasses.replace(group, retry=retry)
        if batch_size is not None:
            group = dataclasses.replace(group, batch_size=batch_size)
        deadline = Deadline()
        started = time.monotonic()
        runner = OutputRunner(self.name, group, queue_events, self.logger.bind(output=self.name), self.faults,
                              deadline)
        deadline.set_in(timeout)
        given = runner.queue.put(list(events), block=True)
        drained = runner.close()
        seconds = time.monotonic() - started
        metrics = {f"output.{self.name}.{k}": v for k, v in runner.stats().items()}
        metrics.update(self.metrics_registry.snapshot())
        metrics.update(self.faults.metrics())
        if self.strict:
            raise_first(self.faults, True)
        else:
            self.faults.take()
        return OutputRun(self.name, given, metrics, drained, seconds)
