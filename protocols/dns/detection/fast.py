"""The compiled twins of the dns detector's per-transaction steps (``_detect.pyx``): ``CORE``
is that module where it was built, or None (not built, or ``PYBEAT_PURE_PYTHON=1``). Each
detector picks its twin when it is built; tests set ``CORE`` to None to run the Python
reference."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from pybeat.api import Event

from .caps import evict_oldest
from . import features
from .features import MIN_ENCODED_LABEL, name_features

__all__ = ["CORE"]

CORE: ModuleType | None = None

if os.environ.get("PYBEAT_PURE_PYTHON", "") in ("", "0"):
    try:
        _detect = importlib.import_module(f"{__package__}._detect")
    except ImportError:  # not built: the Python reference
        pass
    else:
        _detect.bind(evict_oldest, name_features, features._cache, MIN_ENCODED_LABEL, Event)
        CORE = _detect
