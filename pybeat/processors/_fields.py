"""Field access as Beats' processors see an event: dotted paths into ``fields``, and
``@metadata.<key>`` into ``event.meta`` (so ``@metadata._id`` is the Elasticsearch document id).

Shared by the built-in processors (a plugin's own helper module; it imports only ``pybeat.api``).
"""

from __future__ import annotations

from typing import Any

from pybeat.api import Event

__all__ = ["MISSING", "delete_value", "get_value", "has_value", "put_value", "FieldError"]

META = "@metadata"

#: What :func:`get_value` returns for a path that is not there (``None`` is a value).
MISSING: Any = object()


class FieldError(Exception):
    """A processor's step failed on this event (Beats' processor error): the agent notes it
    in ``error.message`` unless the processor ignores it."""


def _root(event: Event, path: str) -> tuple[dict[str, Any], str]:
    if path == META:
        return {META: event.meta}, META
    if path.startswith(META + "."):
        return event.meta, path[len(META) + 1:]
    return event.fields, path


def get_value(event: Event, path: str) -> Any:
    """The value at ``path`` or :data:`MISSING`; a key that itself contains dots is found too
    (as Beats' ``GetValue``)."""
    node, key = _root(event, path)
    if key in node:
        return node[key]
    cur: Any = node
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def has_value(event: Event, path: str) -> bool:
    return get_value(event, path) is not MISSING


def put_value(event: Event, path: str, value: Any) -> None:
    """Set ``path``, creating objects on the way; a non-object on the way is an error (Beats:
    "expected map but type is ..."), never silently replaced."""
    node, key = _root(event, path)
    if path == META:
        if not isinstance(value, dict):
            raise FieldError("@metadata must be an object")
        event.meta.clear()
        event.meta.update(value)
        return
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise FieldError(f"cannot set {path}: {part} is a {type(child).__name__}, not an object")
        node = child
    node[leaf] = value


def delete_value(event: Event, path: str) -> bool:
    """Remove ``path``; True if something was removed."""
    node, key = _root(event, path)
    if key in node:
        del node[key]
        return True
    *parents, leaf = key.split(".")
    cur: Any = node
    for part in parents:
        cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            return False
    if isinstance(cur, dict) and leaf in cur:
        del cur[leaf]
        return True
    return False
