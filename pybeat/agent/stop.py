"""Stopping: signals, the shutdown deadline, and forcing.

- The first SIGINT or SIGTERM always starts a shutdown: the source stops, what was decoded is
  flushed and delivered until the shutdown deadline (``packetbeat.shutdown_timeout``, or
  ``DEFAULT_STOP_TIMEOUT`` when that is not set), then what is left is counted as not delivered
  and the summary is printed.
- A second signal moves the deadline to now (the agent finishes at once, with its summary);
  if the process still has not ended ``FORCE_GRACE`` seconds later it exits without one.
- Without a signal: a replay that reached the end of its file waits until everything is
  delivered, bounded only by a configured ``shutdown_timeout``; a live capture that ended
  waits ``shutdown_timeout`` or ``DEFAULT_STOP_TIMEOUT``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from pybeat.pipeline.deadline import Deadline

DEFAULT_STOP_TIMEOUT = 5.0
FORCE_GRACE = 5.0


class Stopper:
    def __init__(self, deadline: Deadline, timeout: float | None, logger: Any = None):
        self.deadline = deadline
        self.timeout = timeout
        self.logger = logger
        self.requested = False
        self.requests = 0
        self._requested_at = 0.0
        self._old: dict[int, Any] = {}
        self._on_stop: Callable[[], None] | None = None

    # -- requests ------------------------------------------------------------------------------
    def request(self) -> None:
        """Stop (signal-safe: sets flags and the deadline only)."""
        self.requests += 1
        if not self.requested:
            self.requested = True
            self._requested_at = time.monotonic()
        self.deadline.set_in(self.timeout if self.timeout is not None else DEFAULT_STOP_TIMEOUT)

    def seconds_since_request(self) -> float:
        return time.monotonic() - self._requested_at if self.requested else 0.0

    def draining(self, live: bool) -> None:
        """The packet loop ended: bound the wait for the outputs (see the module docstring)."""
        if self.timeout is not None:
            self.deadline.set_in(self.timeout)
        elif live:
            self.deadline.set_in(DEFAULT_STOP_TIMEOUT)

    # -- signals ------------------------------------------------------------------------------
    def install(self, on_stop: Callable[[], None]) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._on_stop = on_stop
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if not self.requested:
            if self.logger is not None:
                wait = self.timeout if self.timeout is not None else DEFAULT_STOP_TIMEOUT
                self.logger.info("stopping", signal=name,
                                 note=f"delivering what is queued for up to {wait:g}s; send it again to stop now")
            if self._on_stop is not None:
                self._on_stop()
            else:
                self.request()
            return
        # A second signal: finish now, and make sure the process ends even if something hangs.
        self.requests += 1
        self.deadline.set_in(0.0)
        if self.logger is not None:
            self.logger.warning("stopping now", signal=name, note="what is not delivered yet is counted as such")
        t = threading.Thread(target=_force_exit, name="force-exit", daemon=True)
        t.start()


def _force_exit() -> None:
    time.sleep(FORCE_GRACE)
    sys.stderr.write(f"pybeat: still not stopped {FORCE_GRACE:g}s after the second signal; exiting\n")
    sys.stderr.flush()
    os._exit(130)
