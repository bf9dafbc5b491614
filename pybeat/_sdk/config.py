"""Config models: every plugin's settings are a pydantic v2 model derived from these."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, field_validator, model_validator

from pybeat.durations import Duration

__all__ = ["CommonProtocolConfig", "PluginConfig"]


class PluginConfig(BaseModel):
    """Base for every plugin's config model: unknown keys are errors, never silently ignored
    (the agent reports them with the file, the line and a "did you mean").

    Read as Beats read their config (go-ucfg): a single value where a list is expected is a
    one-item list (``ports: 53``, ``tags: site-a``), and a number where text is expected is
    that text (``password: 12345678``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _single_values_are_lists(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        lists = _list_keys(cls)
        out = None
        for key in lists.intersection(data):
            value = data[key]
            if value is not None and not isinstance(value, (list, tuple, dict)):
                out = out if out is not None else dict(data)
                out[key] = [value]
        return data if out is None else out


class CommonProtocolConfig(PluginConfig):
    """Keys every Packetbeat protocol accepts (``packetbeat.protocols[*]``). The agent applies
    ``fields``, ``fields_under_root``, ``tags``, ``processors``, ``index`` and
    ``interface`` for you; the protocol reads the rest."""

    type: str
    enabled: bool = True
    ports: list[int] = []
    fields: dict[str, Any] = {}
    fields_under_root: bool = False
    tags: list[str] = []
    processors: list[dict[str, Any]] = []
    keep_null: bool = False
    index: str | None = None
    send_request: bool = False
    send_response: bool = False
    transaction_timeout: Duration = 10.0
    interface: dict[str, Any] = {}

    @field_validator("transaction_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("transaction_timeout must be a positive duration such as 10s")
        return value


_LIST_KEYS: dict[type, frozenset[str]] = {}


def _list_keys(model: type[BaseModel]) -> frozenset[str]:
    """The keys (names and aliases) of ``model``'s fields that take only a list."""
    keys = _LIST_KEYS.get(model)
    if keys is None:
        found: set[str] = set()
        for name, info in model.model_fields.items():
            if not _only_list(info.annotation):
                continue
            found.add(name)
            for alias in (info.alias, info.validation_alias):
                if isinstance(alias, str):
                    found.add(alias)
                elif isinstance(alias, AliasChoices):
                    found.update(c for c in alias.choices if isinstance(c, str))
        keys = _LIST_KEYS[model] = frozenset(found)
    return keys


def _only_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _only_list(typing.get_args(annotation)[0])
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_only_list(a) for a in args)
    return False
