"""One output at run time: its queue, a worker thread per client, retries, backoff, and the
accounting of every event it was given (libbeat's output controller and retryer).

    given = acked + duplicates + dropped + dropped_max_retries + not_delivered (+ in the queue)

The output's clients settle each batch (``pybeat.api.Batch``); this module decides what
happens next: a retried event comes back at the front of the queue until it used up
``max_retries`` attempts (then it is dropped and counted), a cancelled one comes back without
using an attempt, and a client whose batch was not fully delivered waits its backoff
(doubling from ``backoff_init`` to ``backoff_max``, with jitter, reset by a clean batch)
before it gets the next one. A client that raises, or returns without settling, has its
batch retried the same way. At shutdown the runner waits until the deadline, then closes the
clients and counts what is left as not delivered.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable

from pybeat.api import Batch, Event, Output, OutputGroup, RetryPolicy
from pybeat.pipeline.deadline import Deadline
from pybeat.pipeline.faults import FaultLog
from pybeat.pipeline.queue import MemQueue

#: how long in-flight batches may take to settle once the clients were closed at a deadline
SETTLE_GRACE = 1.5


def backoff_delay(failures: int, policy: RetryPolicy, rand: Callable[[], float] = random.random) -> float:
    """Equal-jitter exponential backoff (as Beats): half of ``min(max, init * 2**(n-1))`` fixed,
    half random."""
    if failures <= 0:
        return 0.0
    step = min(policy.backoff_max, policy.backoff_init * (2 ** min(failures - 1, 30)))
    return step / 2 + rand() * step / 2


class OutputRunner:
    """One output: its queue and one worker thread per client of its group."""

    def __init__(
        self,
        name: str,
        group: OutputGroup,
        queue_events: int,
        logger: Any,
        faults: FaultLog | None = None,
        deadline: Deadline | None = None,
        queue: Any = None,
    ):
        self.name = name
        self.group = group
        self.policy = group.retry
        self.deadline = deadline or Deadline()
        #: a MemQueue of its own, or this output's view of the shared disk queue
        #: (pybeat.pipeline.diskqueue.DiskQueueConsumer), which is told which events were settled
        self.queue: Any = queue if queue is not None else MemQueue(queue_events, self.deadline)
        self._settled_events = getattr(self.queue, "settled", None)
        self.batch_size = group.batch_size
        self.logger = logger
        self.faults = faults or FaultLog(logger)
        self.clients: list[Output] = list(group.clients)
        if not self.clients:
            raise ValueError(f"output {name}: create() returned a group without clients")
        self.acked = 0
        self.duplicates = 0
        self.dropped = 0
        self.dropped_max_retries = 0
        self.retried = 0
        self.cancelled = 0
        self.not_delivered = 0
        self.batches = 0
        self.unclean_batches = 0
        self.publish_errors = 0
        self._abandon = False
        self._finished = False
        self._warned_unsettled = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(c,), name=f"output-{name}-{i}", daemon=True)
            for i, c in enumerate(self.clients)
        ]
        for t in self._threads:
            t.start()
        if logger is not None:
            logger.debug("output started", output=name, clients=len(self.clients), batch_size=self.batch_size,
                         queue_events=queue_events, max_retries=self.policy.max_retries,
                         backoff=f"{self.policy.backoff_init:g}s..{self.policy.backoff_max:g}s")

    # -- settling ----------------------------------------------------------------------------------
    def _on_settle(self, batch: Batch, acked: int, duplicates: int, retry: list[Event], cancelled: list[Event],
                   dropped: int) -> None:
        queue = self.queue
        with self._lock:
            if self._finished:  # a stuck client settled after shutdown counted its batch
                return
            self.acked += acked
            self.duplicates += duplicates
            self.dropped += dropped
            self.batches += 1
            again: list[Event] = []
            if retry:
                self.retried += len(retry)
                max_retries = self.policy.max_retries
                if 0 <= max_retries <= batch.retries:
                    self.dropped_max_retries += len(retry)
                    dropped += len(retry)
                    if self.logger is not None:
                        self.logger.warning("events dropped after max_retries failed attempts", output=self.name,
                                            count=len(retry), max_retries=max_retries)
                else:
                    again = retry
            if cancelled:
                self.cancelled += len(cancelled)
            # not settled for good: they come back, or (after a shutdown gave up) a disk queue
            # keeps them for the next start
            unsettled = [*again, *cancelled]
            if self._abandon:
                self.not_delivered += len(again) + len(cancelled)
                dropped += len(again) + len(cancelled)
                again, cancelled = [], []
        if self._settled_events is not None:
            if unsettled:
                keep = {id(e) for e in unsettled}
                self._settled_events([e for e in batch.events if id(e) not in keep])
            else:
                self._settled_events(batch.events)
            if self._abandon:
                queue.requeue(unsettled, batch.retries)  # given up: forgotten here, kept on disk
                return
        else:
            queue.release(acked + duplicates + dropped)
        if again:
            queue.requeue(again, batch.retries + 1)
        if cancelled:
            queue.requeue(cancelled, batch.retries)

    # -- the worker of one client -------------------------------------------------------------
    def _work(self, client: Output) -> None:
        failures = 0
        on_settle = self._on_settle
        deadline = self.deadline
        # Past the shutdown deadline no new attempt starts: close() counts what is left.
        while not self._abandon and not deadline.expired():
            got = self.queue.get(self.batch_size, timeout=0.5)
            if got is None:
                return
            events, retries = got
            if not events:
                continue
            clean = [True]

            def settled(b: Batch, acked: int, dup: int, retry: list[Event], cancelled: list[Event],
                        dropped: int) -> None:
                if retry or cancelled:
                    clean[0] = False
                on_settle(b, acked, dup, retry, cancelled, dropped)

            batch = Batch(events, settled, retries)
            raised = False
            try:
                client.publish(batch)
            except Exception as exc:  # a client bug must not lose events or kill the worker
                raised = True
                self.publish_errors += 1
                self.faults.record("output", self.name, exc, "publish")
            if not batch.settled:
                self._unsettled(batch, raised)
            if clean[0]:
                failures = 0
                continue
            failures += 1
            self.unclean_batches += 1
            self._wake.wait(deadline.wait_time(backoff_delay(failures, self.policy)))

    def _unsettled(self, batch: Batch, raised: bool) -> None:
        """publish() returned or raised without settling: retry the whole batch."""
        if not raised and not self._warned_unsettled:
            self._warned_unsettled = True
            if self.logger is not None:
                self.logger.warning("output returned without settling its batch; retrying it with backoff "
                                    "(further ones are counted as events.retried)", output=self.name)
        batch.retry()

    # -- stopping ------------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is settled or the deadline passes (or ``timeout``
        seconds from now), then stop. True if nothing was left undelivered."""
        if timeout is not None:
            self.deadline.set_in(timeout)
        queue = self.queue
        queue.close()
        drained = queue.wait_empty()
        if not drained:
            self._abandon = True
            self._wake.set()
            with self._lock:
                self.not_delivered += queue.take_all()
            self._close_clients()  # wakes a client waiting on a dead server
            end = time.monotonic() + SETTLE_GRACE
            while queue.used > 0 and time.monotonic() < end:
                time.sleep(0.02)
            with self._lock:
                stuck = queue.used
                self.not_delivered += stuck
                self._finished = True
            if stuck:
                queue.release(stuck)
                if self.logger is not None:
                    self.logger.error("output did not return its batches in time", output=self.name, events=stuck)
        for t in self._threads:
            t.join(timeout=0.5 if not drained else 5.0)
        if drained:
            self._close_clients()
        with self._lock:
            self._finished = True
        if self.logger is not None:
            self.logger.debug("output stopped", output=self.name, drained=drained, acked=self.acked,
                              not_delivered=self.not_delivered, retried=self.retried)
        return drained and self.not_delivered == 0

    def _close_clients(self) -> None:
        for c in {id(c): c for c in self.clients}.values():
            try:
                c.close()
            except Exception as exc:
                self.faults.record("output", self.name, exc, "close")

    def location(self) -> str | None:
        fn = self.group.location
        if fn is None:
            return None
        try:
            return fn()
        except Exception:
            return None

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events.acked": self.acked,
            "events.duplicates": self.duplicates,
            "events.dropped": self.dropped,
            "events.dropped_max_retries": self.dropped_max_retries,
            "events.retried": self.retried,
            "events.cancelled": self.cancelled,
            "events.not_delivered": self.not_delivered,
            "batches": self.batches,
            "batches.not_fully_delivered": self.unclean_batches,
            "publish_errors": self.publish_errors,
            "queue.used": self.queue.used,
            "queue.capacity": self.queue.capacity,
            "queue.peak": self.queue.peak,
            "queue.dropped_full": self.queue.dropped_full,
        }
        where = self.location()
        if where:
            out["location"] = where
        return out
