"""The field declarations an index template is built from: the agent's own fields
(``fields.yml`` beside this module: the envelope, ``agent``, ``ecs``, ``host``, ...) and what
each enabled protocol and detector declares through its plugin's optional ``fields()``.

A plugin whose ``fields()`` fails is left out with a warning: its events still index, with
dynamic mappings.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

CORE_FIELDS = Path(__file__).with_name("fields.yml")


def load_field_file(path: str | Path) -> dict[str, str]:
    """A flat ``dotted.name: type`` YAML file as a dict (plugins may use it for their own)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of field names to types")
    return {str(k): str(v) for k, v in data.items()}


@lru_cache(maxsize=1)
def core_field_types() -> Mapping[str, str]:
    return load_field_file(CORE_FIELDS)


def declared_field_types(plugins: Iterable[tuple[str, Any]], logger: Any = None) -> dict[str, str]:
    """The core's fields plus every plugin's ``fields()``; ``plugins`` are (name, plugin)."""
    types = dict(core_field_types())
    for name, plugin in plugins:
        declare = getattr(plugin, "fields", None)
        if not callable(declare):
            continue
        try:
            declared = declare()
            types.update({str(k): str(v) for k, v in dict(declared).items()})
        except Exception as exc:
            if logger is not None:
                logger.warning("a plugin's field declarations could not be read; its fields get dynamic mappings",
                               plugin=name, error=f"{type(exc).__name__}: {exc}")
    return types
