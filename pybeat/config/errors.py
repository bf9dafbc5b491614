"""Turn pydantic validation errors into messages a config author can act on:
the dotted key, where it was set (file:line or -E), the value, what was expected, and for an
unknown key the closest known key ("did you mean ...?")."""

from __future__ import annotations

import copy
import difflib
import types
import typing
from typing import Any, Iterable, TypeVar

from pydantic import BaseModel, ValidationError

from pybeat.config import beats
from pybeat.config.loader import ConfigError, RawConfig
from pybeat.secrets import find_secrets, is_secret_key, scrub

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


def shown(key: str, value: Any) -> str:
    """How an error shows the value it refused: a short scalar as written, unless the key or
    the value is secret (then only its type); a mapping or a list only by its shape, since
    either may hold credentials."""
    if isinstance(value, dict):
        return f"a mapping (keys: {', '.join(map(str, list(value)[:6]))}{', ...' if len(value) > 6 else ''})"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if is_secret_key(key) or (isinstance(value, str) and (find_secrets(value) or scrub(value) != value)):
        return f"a {type(value).__name__} (not shown: it may be secret)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _msg(key: str, err: Any) -> str:
    """pydantic's message, without the refused value when that may be secret (a validator's
    message may quote it)."""
    msg = str(err["msg"]).rstrip(".")
    for tag in ("Value error, ", "Assertion failed, "):  # pydantic's prefix of a validator's own message
        if msg.startswith(tag):
            msg = msg[len(tag):]
    value = err.get("input")
    if isinstance(value, str) and value and shown(key, value).startswith("a str (not shown"):
        msg = msg.replace(repr(value), "(not shown)").replace(value, "(not shown)")
    return scrub(msg)


_TYPE_TAGS = {"int", "str", "float", "bool", "dict", "list", "none", "bytes", "tuple", "set"}


def _is_union_tag(part: Any) -> bool:
    """pydantic puts the union member it tried into ``loc`` (``int``, ``literal['auto']``,
    ``list[InterfaceConfig]``, ``InterfaceConfig``): those are not config keys."""
    if isinstance(part, int):
        return False
    text = str(part)
    return "[" in text or text in _TYPE_TAGS or text[:1].isupper() or text.startswith("function-")


def describe(exc: ValidationError, model: type[BaseModel], prefix: str, raw: RawConfig | None,
             extra: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """One line per bad key. ``extra`` holds the messages already decided for some unknown keys."""
    found: dict[str, list[str]] = {}  # key -> messages, in order
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        key = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(loc))
        if err["type"] == "extra_forbidden" and extra and key in extra:
            key, message = extra[key]
        elif err["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            known = set(_model_keys(owner) if owner else [])
            hint = difflib.get_close_matches(str(loc[-1]), sorted(known), 1, 0.6)
            tail = f"; did you mean {hint[0]!r}?" if hint else (f"; known keys: {', '.join(sorted(known))}" if known else "")
            message = f"unknown key{tail}"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "value_error" and isinstance(err.get("input"), (list, dict)):
            message = _msg(key, err)  # a validator's own message says which item (a list's size would not)
        else:
            message = f"{_msg(key, err)}, got {shown(key, err.get('input'))}"
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
        problems.append(f"{raw.written(key) if raw is not None else key}{at}: " + "; or ".join(messages))
    return problems


def validate(
    model: type[M],
    data: Any,
    prefix: str = "",
    raw: RawConfig | None = None,
    warnings: list[str] | None = None,
    beats_prefix: str | None = None,
) -> M:
    """Validate ``data`` against ``model``; raise ConfigError naming every bad key.

    With a ``warnings`` list, a key the model does not know but Packetbeat's configs have
    (beats.py) is dropped with a warning there that it has no effect; ``beats_prefix`` is the
    catalogue's name for ``prefix`` (a protocol's item is named by its type there).
    """
    current = data
    for _ in range(8):  # each round drops what the last one found; nesting is shallow
        try:
            return model.model_validate(current)
        except ValidationError as exc:
            if warnings is None:
                problems = describe(exc, model, prefix, raw)
                raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems) from None
            drops, extra = _packetbeat_keys(exc, prefix, beats_prefix, raw, warnings)
            if not drops:
                problems = describe(exc, model, prefix, raw, extra)
                raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems) from None
            current = _without(current, drops)
    raise ConfigError(f"{prefix or 'config'}: too many unknown keys")


def _packetbeat_keys(
    exc: ValidationError, prefix: str, beats_prefix: str | None, raw: RawConfig | None, warnings: list[str]
) -> tuple[list[tuple[Any, ...]], dict[str, tuple[str, str]]]:
    """The unknown keys that Packetbeat has (to drop, each warned about once unless it is
    turned off), and (key, message) for Packetbeat sections holding a key Packetbeat lacks."""
    drops: list[tuple[Any, ...]] = []
    extra: dict[str, tuple[str, str]] = {}
    head = prefix.split(".") if prefix else []
    catalogue_head = beats_prefix.split(".") if beats_prefix else head
    for err in exc.errors():
        if err["type"] != "extra_forbidden":
            continue
        loc = [str(p) for p in err["loc"] if not _is_union_tag(p)]
        parts = head + loc
        name = beats.pattern(catalogue_head + loc)
        if not beats.is_beats_key(name):
            continue  # a typo: describe() reports it with the model's hint
        verdict = beats.judge(name, err.get("input"))
        key = ".".join(parts)
        if verdict.unknown is not None:
            bad = f"{key}.{verdict.unknown}"
            hint = f"; did you mean {verdict.hint!r}?" if verdict.hint else ""
            extra[key] = (bad, f"unknown key{hint}")
            continue
        drops.append(tuple(err["loc"]))
        if verdict.silent or verdict.warn is None:
            continue
        warned = ".".join(parts[: verdict.warn.count(".") + 1])
        where = raw.origin(warned) if raw is not None else None
        line = f"{warned}{f' ({where})' if where else ''}: pybeat does not act on this Packetbeat setting; it has no effect"
        if line not in warnings:
            warnings.append(line)
    return drops, extra


def _without(data: Any, drops: list[tuple[Any, ...]]) -> Any:
    """A copy of ``data`` without the keys at ``drops`` (pydantic locations)."""
    data = copy.deepcopy(data)
    for loc in drops:
        node = data
        parts = [p for p in loc if not _is_union_tag(p)]
        for part in parts[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return data
