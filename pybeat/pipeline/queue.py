"""A bounded in-memory event queue (libbeat's ``queue.mem``).

Owns: capacity accounting, blocking vs dropping when full, retried events going to the front.
Space is freed only when an output settles events (ack or drop); events handed back for retry
keep their place in the count. The queue never reads the clock except to wait.
"""

from __future__ import annotations

import threading
from collections import deque

from pybeat.api import Event


class MemQueue:
    def __init__(self, capacity: int = 3200):
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._events: deque[Event] = deque()
        self._retry: deque[tuple[list[Event], int]] = deque()
        self._used = 0  # queued + in flight (handed to an output, not settled yet)
        self._closed = False
        self.dropped_full = 0
        self.peak = 0

    @property
    def used(self) -> int:
        return self._used

    def put(self, events: list[Event], block: bool = True) -> int:
        """Add events; return how many were accepted.

        ``block=True`` (capture file replay) waits for space, so nothing is lost.
        ``block=False`` (live capture) takes what fits and counts the rest in ``dropped_full``.
        """
        accepted = 0
        with self._cond:
            while accepted < len(events):
                if self._closed:
                    break
                room = self.capacity - self._used
                if room <= 0:
                    if not block:
                        break
                    self._cond.wait(0.5)
                    continue
                chunk = events[accepted : accepted + room]
                self._events.extend(chunk)
                self._used += len(chunk)
                accepted += len(chunk)
                if self._used > self.peak:
                    self.peak = self._used
                self._cond.notify_all()
        self.dropped_full += len(events) - accepted
        return accepted

    def get(self, max_events: int, timeout: float | None = None) -> tuple[list[Event], int] | None:
        """Take up to ``max_events`` (retried groups first, with their retry count).

        Returns None once the queue is closed and every event settled, or ``([], 0)`` on timeout.
        """
        with self._cond:
            while not self._events and not self._retry:
                # Stop only when nothing is in flight either: a batch another worker holds may
                # still come back for retry (requeue), and someone must be there to take it.
                if self._closed and self._used == 0:
                    return None
                if not self._cond.wait(timeout):
                    return [], 0
            if self._retry:
                return self._retry.popleft()
            n = min(max_events, len(self._events)) if max_events > 0 else len(self._events)
            pop = self._events.popleft
            return [pop() for _ in range(n)], 0

    def requeue(self, events: list[Event], retries: int) -> None:
        """Put events an output could not deliver back at the front (they keep their space)."""
        with self._cond:
            self._retry.append((events, retries))
            self._cond.notify_all()

    def release(self, n: int) -> None:
        """``n`` events were settled for good (acked or dropped): free their space."""
        with self._cond:
            self._used -= n
            self._cond.notify_all()

    def close(self) -> None:
        """No more puts; getters drain what is left, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_empty(self, timeout: float | None) -> bool:
        """Wait until every event was settled; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._used == 0, timeout)
