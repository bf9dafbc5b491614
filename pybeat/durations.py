"""Beats durations as config values (`10s`, `500ms`, `1m30s`, or a number of seconds)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: Any) -> float:
    """Seconds from a Go-style duration string or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 500ms or 1m")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        text = text.lstrip("+-")
        try:
            return sign * float(text)
        except ValueError:
            pass
        pos = 0
        total = 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos == len(text) and pos > 0:
            return sign * total
    raise ValueError(f"expected a duration such as 10s, 500ms or 1m, got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
