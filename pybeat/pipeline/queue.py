"""A bounded in-memory event queue (libbeat's ``queue.mem``).

Owns: capacity accounting, blocking vs dropping when full, retried events going to the front
(after a delay the runner chooses), and giving up at a shutdown deadline. Space is freed only
when an output settles events for good (ack or drop) or when they are given up at shutdown;
events handed back for retry keep their place in the count. The queue reads the clock only to
wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator

from pybeat.api import Event
from pybeat.pipeline.deadline import Deadline

#: how often a blocked caller looks at the shutdown deadline (seconds)
_POLL = 0.25


class RetryLine:
    """Groups of events an output handed back, each with the time (``time.monotonic()``) it
    may be taken again and its retry count: taken before new events, earliest first. Both
    queues keep one per reader; the caller holds the queue's lock."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: deque[tuple[float, list[Event], int]] = deque()

    def __bool__(self) -> bool:
        return bool(self._groups)

    def __iter__(self) -> Iterator[list[Event]]:
        return (g[1] for g in self._groups)

    def events(self) -> int:
        """How many events wait in it."""
        return sum(len(g[1]) for g in self._groups)

    def add(self, not_before: float, events: list[Event], retries: int) -> None:
        groups = self._groups
        groups.append((not_before, events, retries))
        if len(groups) > 1 and not_before < groups[-2][0]:
            self._groups = deque(sorted(groups, key=lambda g: g[0]))

    def due(self, now: float) -> tuple[list[Event], int] | None:
        """The earliest group if its time has come (removed), else None."""
        groups = self._groups
        if groups and groups[0][0] <= now:
            _, events, retries = groups.popleft()
            return events, retries
        return None

    def wait(self, now: float, wait: float) -> float:
        """``wait`` shortened to when the earliest group is due."""
        return min(wait, max(0.0, self._groups[0][0] - now)) if self._groups else wait

    def clear(self) -> None:
        self._groups.clear()


class MemQueue:
    def __init__(self, capacity: int = 3200, deadline: Deadline | None = None):
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self.deadline = deadline or Deadline()
        self._cond = threading.Condition()
        self._events: deque[Event] = deque()
        self._retry = RetryLine()  # groups handed back by an output, taken before new events
        self._used = 0  # queued + in flight (handed to an output, not settled yet)
        self._closed = False
        self.dropped_full = 0
        self.peak = 0

    @property
    def used(self) -> int:
        return self._used

    @property
    def queued(self) -> int:
        """Events waiting in the queue (not handed to an output)."""
        with self._cond:
            return len(self._events) + self._retry.events()

    def put(self, events: list[Event], block: bool = True) -> int:
        """Add events; return how many were accepted.

        ``block=True`` (capture file replay) waits for space, so nothing is lost, until the
        queue is closed or the shutdown deadline passes (the caller counts the rest).
        ``block=False`` (live capture) takes what fits and counts the rest in ``dropped_full``.
        """
        accepted = 0
        deadline = self.deadline
        with self._cond:
            while accepted < len(events):
                if self._closed:
                    break
                room = self.capacity - self._used
                if room <= 0:
                    if not block or deadline.expired():
                        break
                    self._cond.wait(deadline.wait_time(_POLL))
                    continue
                chunk = events[accepted : accepted + room]
                self._events.extend(chunk)
                self._used += len(chunk)
                accepted += len(chunk)
                if self._used > self.peak:
                    self.peak = self._used
                self._cond.notify_all()
        if not block:
            self.dropped_full += len(events) - accepted
        return accepted

    def get(self, max_events: int, timeout: float | None = None) -> tuple[list[Event], int] | None:
        """Take up to ``max_events`` (retried groups first once their delay is over, with their
        retry count).

        Returns None once the queue is closed and every event settled, or ``([], 0)`` on timeout.
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                due = self._retry.due(now)
                if due is not None:
                    return due
                if self._events:
                    n = min(max_events, len(self._events)) if max_events > 0 else len(self._events)
                    pop = self._events.popleft
                    return [pop() for _ in range(n)], 0
                # Stop only when nothing is in flight either: a batch another worker holds may
                # still come back for retry (requeue), and someone must be there to take it.
                if self._closed and self._used == 0:
                    return None
                wait = self._retry.wait(now, _POLL)
                if end is not None:
                    if now >= end:
                        return [], 0
                    wait = min(wait, end - now)
                self._cond.wait(wait)

    def requeue(self, events: list[Event], retries: int, not_before: float = 0.0) -> None:
        """Put events an output could not deliver back at the front (they keep their space);
        a worker takes them again from ``not_before`` (``time.monotonic()`` seconds) on."""
        with self._cond:
            self._retry.add(not_before, events, retries)
            self._cond.notify_all()

    def release(self, n: int) -> None:
        """``n`` events were settled for good (acked or dropped): free their space."""
        with self._cond:
            self._used -= n
            self._cond.notify_all()

    def take_all(self) -> int:
        """Shutdown gave up: remove every queued event (not those in flight); return how many."""
        with self._cond:
            n = len(self._events) + self._retry.events()
            self._events.clear()
            self._retry.clear()
            self._used -= n
            self._cond.notify_all()
            return n

    def close(self) -> None:
        """No more puts; getters drain what is left, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until every event was settled, at most ``timeout`` seconds and never past the
        shutdown deadline; False if events are left."""
        with self._cond:
            return self.deadline.wait_for(self._cond, lambda: self._used == 0, timeout, _POLL)

    def notify(self) -> None:
        """Wake every waiter (the deadline changed)."""
        with self._cond:
            self._cond.notify_all()
