"""The metrics registry.

Components keep their own plain integer counters (cheap on the per-packet path) and register
a provider that reports them; the registry only reads them when asked (``snapshot``), so
nothing here runs per packet.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

Provider = Callable[[], Mapping[str, Any]]


class MetricsRegistry:
    def __init__(self) -> None:
        self._providers: list[tuple[str, Provider]] = []
        self._lock = threading.Lock()
        self._last: dict[str, Any] = {}

    def register(self, namespace: str, provider: Provider) -> None:
        with self._lock:
            self._providers.append((namespace, provider))

    def snapshot(self) -> dict[str, Any]:
        """All metrics as a flat ``{"namespace.name": value}`` mapping."""
        out: dict[str, Any] = {}
        with self._lock:
            providers = list(self._providers)
        for ns, provider in providers:
            try:
                values = provider()
            except Exception as exc:  # a broken provider must not break monitoring
                out[f"{ns}.provider_error"] = repr(exc)
                continue
            for k, v in values.items():
                out[f"{ns}.{k}" if ns else k] = v
        return out

    def deltas(self) -> dict[str, Any]:
        """Non-zero changes of numeric metrics since the previous call (for the periodic log)."""
        snap = self.snapshot()
        out = {}
        for k, v in snap.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                d = v - self._last.get(k, 0)
                if d:
                    out[k] = d
        self._last = snap
        return out


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (for JSON endpoints)."""
    out: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {} if child is None else {"value": child}
            node = child
        if isinstance(node.get(parts[-1]), dict):
            node[parts[-1]]["value"] = value
        else:
            node[parts[-1]] = value
    return out
