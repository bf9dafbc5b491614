"""Turn pydantic validation errors into messages a config author can act on:
the dotted key, where it was set (file:line or -E), the value, what was expected, and for an
unknown key the closest known key ("did you mean ...?")."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Iterable, TypeVar

from pydantic import BaseModel, ValidationError

from pybeat.config.loader import ConfigError, RawConfig

M = TypeVar("M", bound=BaseModel)


def unknown_name(what: str, name: str, known: Iterable[str], installed: list[str]) -> str:
    """``unknown protocol 'dnz'; did you mean 'dns'?`` (or the installed names when nothing is close)."""
    hint = difflib.get_close_matches(name, sorted(known), 1)
    return f"unknown {what} {name!r}" + (
        f"; did you mean {hint[0]!r}?" if hint else f" (installed: {', '.join(installed)})"
    )


def _model_keys(model: type[BaseModel]) -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        keys.append(info.alias or name)
    return keys


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes reachable from a field annotation (through Optional/Union/list/dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _submodels(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in typing.get_args(annotation):
            out += _submodels(arg)
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the key at ``loc`` (for 'did you mean' hints)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int) or part not in {k for k in _model_keys(current)} | set(current.model_fields):
            if isinstance(part, int) or not isinstance(part, str):
                continue
            return current
        info = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if info is None:
            return None
        subs = _submodels(info.annotation)
        current = subs[0] if subs else None
    return current


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_TAGS = {"int", "str", "float", "bool", "dict", "list", "none", "bytes", "tuple", "set"}


def _is_union_tag(part: Any) -> bool:
    """pydantic puts the union member it tried into ``loc`` (``int``, ``literal['auto']``,
    ``list[InterfaceConfig]``, ``InterfaceConfig``): those are not config keys."""
    if isinstance(part, int):
        return False
    text = str(part)
    return "[" in text or text in _TYPE_TAGS or text[:1].isupper() or text.startswith("function-")


def describe(exc: ValidationError, model: type[BaseModel], prefix: str, raw: RawConfig | None) -> list[str]:
    found: dict[str, list[str]] = {}  # key -> messages, in order
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        key = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(loc))
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            known = _model_keys(owner) if owner else []
            hint = difflib.get_close_matches(str(loc[-1]), known, 1, 0.6)
            tail = f"; did you mean {hint[0]!r}?" if hint else (f"; known keys: {', '.join(sorted(known))}" if known else "")
            message = f"unknown key{tail}"
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{err['msg'].rstrip('.')}, got {_short(err.get('input'))}"
        found.setdefault(key, [])
        if message not in found[key]:
            found[key].append(message)
    problems = []
    for key, messages in found.items():
        # A union whose other member failed deeper (interfaces: a mapping with a bad snaplen, or
        # a list) reports the shallow type mismatch too: the deeper error is the real one.
        if any(other.startswith(key + ".") for other in found):
            continue
        where = raw.origin(key) if raw is not None else None
        at = f" ({where})" if where else ""
        problems.append(f"{key}{at}: " + "; or ".join(messages))
    return problems


def validate(model: type[M], data: Any, prefix: str = "", raw: RawConfig | None = None) -> M:
    """Validate ``data`` against ``model``; raise ConfigError naming every bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = describe(exc, model, prefix, raw)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems) from None
