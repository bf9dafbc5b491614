"""The object the Service Control Manager drives: run pybeat in this process, stop it on request.

``run()`` is the service's main (pywin32's ``SvcDoRun``) and blocks until the agent has stopped;
``stop()`` comes from the control thread (``SvcStop``) and asks the agent to finish as SIGTERM
would on Linux (stop capturing, flush, drain the queues). A stop that arrives before the agent
exists is remembered and applied as soon as it does.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol, Sequence


class Stoppable(Protocol):
    def stop(self) -> None: ...


#: runs ``pybeat <argv>`` and calls ``on_agent`` with the agent once it is built; returns the
#: exit status (``pybeat.cli.main``)
RunAgent = Callable[[Sequence[str], Callable[[Stoppable], None]], int]


class PybeatService:
    def __init__(self, argv: Sequence[str], run_agent: RunAgent) -> None:
        self.argv = list(argv)
        self._run_agent = run_agent
        self._lock = threading.Lock()
        self._agent: Stoppable | None = None
        self._stop_requested = False

    def run(self) -> int:
        return self._run_agent(self.argv, self._attach)

    def stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            agent = self._agent
        if agent is not None:
            agent.stop()

    def _attach(self, agent: Stoppable) -> None:
        with self._lock:
            self._agent = agent
            stop_now = self._stop_requested
        if stop_now:
            agent.stop()


def run_pybeat(argv: Sequence[str], on_agent: Callable[[Stoppable], None]) -> int:
    from pybeat.cli import main

    return main(list(argv), on_agent=on_agent)
