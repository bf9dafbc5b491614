"""The shutdown deadline every wait of a stopping agent respects.

None until a stop is requested with a bound (``packetbeat.shutdown_timeout``, or a signal);
then a ``time.monotonic()`` instant after which blocked puts, queue drains and output workers
give up and what is left is counted as not delivered. A second signal moves it to now.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class Deadline:
    def __init__(self) -> None:
        self._at: float | None = None
        self._lock = threading.Lock()

    @property
    def at(self) -> float | None:
        return self._at

    def set_in(self, seconds: float) -> None:
        """Give up ``seconds`` from now, unless an earlier deadline is already set."""
        at = time.monotonic() + max(0.0, seconds)
        with self._lock:
            if self._at is None or at < self._at:
                self._at = at

    def expired(self) -> bool:
        at = self._at
        return at is not None and time.monotonic() >= at

    def remaining(self) -> float | None:
        at = self._at
        return None if at is None else max(0.0, at - time.monotonic())

    def wait_time(self, poll: float) -> float:
        """How long a waiter may sleep before it must look again."""
        left = self.remaining()
        return poll if left is None else min(poll, left)

    def wait_for(self, cond: threading.Condition, done: Callable[[], bool], timeout: float | None = None,
                 poll: float = 0.25) -> bool:
        """With ``cond`` held: wait until ``done()``, at most ``timeout`` seconds and never past
        the deadline (looked at every ``poll`` seconds); False if it did not happen."""
        end = None if timeout is None else time.monotonic() + timeout
        while not done():
            if self.expired():
                return False
            wait = self.wait_time(poll)
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                wait = min(wait, left)
            cond.wait(wait)
        return True
