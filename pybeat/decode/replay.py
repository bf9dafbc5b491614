"""Which replay loop a ``-t`` replay of a capture file uses.

The compiled loop (``pybeat/decode/_replay.pyx``) when it was built, for classic pcap files of
Ethernet frames; else (and for everything else) the agent's own loop over the source's iterator
and ``Decoder.decode``. A Python twin of the fused loop was measured to gain nothing over that
generator loop (docs/performance.md) and was removed.
"""

from __future__ import annotations

import os
from typing import Any, Callable

__all__ = ["best_replay", "compiled_replay"]

try:  # pybeat/decode/_replay.pyx, when it was built
    from pybeat.decode._replay import replay as compiled_replay
except ImportError:  # pragma: no cover - a build without a C compiler
    compiled_replay = None


def _no_replay(source: Any, decoder: Any, check: Callable[[], bool]) -> None:
    """No fused loop: the agent reads the source's iterator."""
    return None


def best_replay() -> Callable[[Any, Any, Callable[[], bool]], bool | None]:
    """The compiled loop when it was built, unless ``PYBEAT_PURE_PYTHON=1`` asks for the
    Python path (same results: tests/unit/test_replay_loop.py)."""
    if compiled_replay is not None and os.environ.get("PYBEAT_PURE_PYTHON", "") in ("", "0"):
        return compiled_replay
    return _no_replay
