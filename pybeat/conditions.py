"""Beats' ``when`` conditions: equals, contains, regexp, range, network, has_fields, and/or/not.

A condition with several keys in one mapping is the AND of them, as in libbeat. Fields are read
with dotted paths; a condition on a missing field is false (``not`` of it is true).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from pybeat._sdk.events import Event
from pybeat.envelope import parse_networks

Condition = Callable[[Event], bool]

_RANGE_OPS = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}


class ConditionError(ValueError):
    """A condition in the config is not well formed."""


def _flat(spec: Any, prefix: str = "") -> Any:
    """``{"network": {"protocol": "dns"}}`` -> ``{"network.protocol": "dns"}``: the config loader
    expands dotted keys everywhere, so a field name written ``network.protocol`` arrives nested."""
    if not isinstance(spec, dict):
        return spec
    out: dict[str, Any] = {}
    for k, v in spec.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flat(v, key))
        else:
            out[key] = v
    return out


def _values(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _equals(spec: dict[str, Any]) -> Condition:
    spec = _flat(spec)
    if not isinstance(spec, dict) or not spec:
        raise ConditionError("equals expects a mapping of field: value")

    def check(e: Event) -> bool:
        for f, want in spec.items():
            got = e.get(f)
            if got is None:
                return False
            if isinstance(got, bool) or isinstance(want, bool):
                if got is not want:
                    return False
            elif isinstance(want, (int, float)) and isinstance(got, (int, float)):
                if got != want:
                    return False
            elif str(got) != str(want):
                return False
        return True

    return check


def _contains(spec: dict[str, Any]) -> Condition:
    spec = _flat(spec)
    if not isinstance(spec, dict) or not spec:
        raise ConditionError("contains expects a mapping of field: substring")

    def check(e: Event) -> bool:
        for f, sub in spec.items():
            got = e.get(f)
            if got is None or not any(isinstance(x, str) and str(sub) in x for x in _values(got)):
                return False
        return True

    return check


def _regexp(spec: dict[str, Any]) -> Condition:
    spec = _flat(spec)
    if not isinstance(spec, dict) or not spec:
        raise ConditionError("regexp expects a mapping of field: pattern")
    try:
        compiled = {f: re.compile(str(p)) for f, p in spec.items()}
    except re.error as exc:
        raise ConditionError(f"regexp: bad pattern: {exc}") from exc

    def check(e: Event) -> bool:
        for f, pat in compiled.items():
            got = e.get(f)
            if got is None or not any(isinstance(x, str) and pat.search(x) for x in _values(got)):
                return False
        return True

    return check


def _range(spec: dict[str, Any]) -> Condition:
    if not isinstance(spec, dict) or not spec:
        raise ConditionError("range expects field.gte/gt/lt/lte: number")
    checks: list[tuple[str, Callable[[Any, Any], bool], float]] = []

    def collect(prefix: str, node: dict[str, Any]) -> None:
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                collect(path, v)
                continue
            field, _, op = path.rpartition(".")
            if op not in _RANGE_OPS or not field:
                raise ConditionError(f"range: {path!r} must end in .gt, .gte, .lt or .lte")
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ConditionError(f"range: {path} expects a number, got {v!r}")
            checks.append((field, _RANGE_OPS[op], v))

    collect("", spec)

    def check(e: Event) -> bool:
        for f, op, bound in checks:
            got = e.get(f)
            if isinstance(got, bool) or not isinstance(got, (int, float)) or not op(got, bound):
                return False
        return True

    return check


def _network(spec: dict[str, Any]) -> Condition:
    spec = _flat(spec)
    if not isinstance(spec, dict) or not spec:
        raise ConditionError("network expects a mapping of field: CIDR or named network")
    try:
        nets = {f: parse_networks([str(x) for x in _values(v)]) for f, v in spec.items()}
        public = {f: "public" in [str(x) for x in _values(v)] for f, v in spec.items()}
    except ValueError as exc:
        raise ConditionError(f"network: {exc}") from exc

    def check(e: Event) -> bool:
        for f, ns in nets.items():
            got = e.get(f)
            ok = False
            for value in _values(got) if got is not None else []:
                try:
                    addr = ipaddress.ip_address(str(value))
                except ValueError:
                    continue
                if any(addr.version == n.version and addr in n for n in ns) or (public[f] and addr.is_global):
                    ok = True
                    break
            if not ok:
                return False
        return True

    return check


def _has_fields(spec: Any) -> Condition:
    if not isinstance(spec, list) or not spec:
        raise ConditionError("has_fields expects a list of field names")
    fields = [str(f) for f in spec]
    return lambda e: all(e.get(f) is not None for f in fields)


def _any_of(subs: list[Condition]) -> Condition:
    return lambda e: any(c(e) for c in subs)


def _none_of(sub: Condition) -> Condition:
    return lambda e: not sub(e)


def _all_of(subs: list[Condition]) -> Condition:
    return lambda e: all(c(e) for c in subs)


def build_condition(spec: Any) -> Condition:
    """Build a predicate from a ``when`` mapping."""
    if not isinstance(spec, dict) or not spec:
        raise ConditionError("a condition must be a mapping such as {equals: {field: value}}")
    parts: list[Condition] = []
    for kind, body in spec.items():
        if kind == "equals":
            parts.append(_equals(body))
        elif kind == "contains":
            parts.append(_contains(body))
        elif kind == "regexp":
            parts.append(_regexp(body))
        elif kind == "range":
            parts.append(_range(body))
        elif kind == "network":
            parts.append(_network(body))
        elif kind == "has_fields":
            parts.append(_has_fields(body))
        elif kind in ("or", "and"):
            if not isinstance(body, list) or not body:
                raise ConditionError(f"{kind} expects a list of conditions")
            parts.append(_any_of([build_condition(b) for b in body]) if kind == "or"
                         else _all_of([build_condition(b) for b in body]))
        elif kind == "not":
            parts.append(_none_of(build_condition(body)))
        else:
            import difflib

            known = ["equals", "contains", "regexp", "range", "network", "has_fields", "or", "and", "not"]
            hint = difflib.get_close_matches(kind, known, 1)
            raise ConditionError(
                f"unknown condition {kind!r}" + (f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})")
            )
    return parts[0] if len(parts) == 1 else _all_of(parts)
