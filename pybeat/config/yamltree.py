"""YAML text to plain Python values, with the line of every key and bounded alias expansion.

Owns: turning one YAML document into dicts, lists and scalars while (1) recording ``file:line``
for every dotted key, (2) expanding dotted keys (``a.b: 1`` is ``a: {b: 1}``), (3) honouring merge
keys (``<<: *base``) and (4) refusing hostile input in bounded time and memory: YAML aliases may
expand to at most ``MAX_ALIAS_VALUES`` values through at most ``MAX_ALIAS_REFS`` references,
nesting is at most ``MAX_DEPTH`` deep, an alias that contains itself is an error, and a file is
at most ``MAX_FILE_BYTES``. Composing the node graph shares aliased nodes, so a billion-laughs
file is cheap to compose; only building values expands it, and that is what is counted here.

A key with no value (``setup.kibana:`` followed only by comments) is ``None``; the models read
``None`` as "not set".
"""

from __future__ import annotations

from typing import Any, Callable

import yaml
from yaml.constructor import SafeConstructor

MAX_FILE_BYTES = 8 << 20
MAX_DEPTH = 64
MAX_ALIAS_REFS = 1_000
MAX_ALIAS_VALUES = 10_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlInputError(ValueError):
    """One line: ``where:line: what is wrong``."""


Merge = Callable[[dict[str, Any], list[str], Any], None]


class _Builder:
    def __init__(self, where: str, origins: dict[str, str], merge: Merge):
        self.where = where
        self.origins = origins
        self.merge = merge
        self.scalars = SafeConstructor()
        self.built: set[int] = set()  # ids of nodes built once: a second visit is an alias
        self.path: set[int] = set()  # collections being built: meeting one again is a cycle
        self.alias_refs = 0
        self.alias_values = 0
        self.in_alias = 0  # > 0 while building the expansion of an alias

    def fail(self, node: yaml.Node, what: str) -> YamlInputError:
        return YamlInputError(f"{self.where}:{node.start_mark.line + 1}: {what}")

    def build(self, node: yaml.Node, prefix: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"values nested more than {MAX_DEPTH} levels deep")
        alias = id(node) in self.built and not isinstance(node, yaml.ScalarNode)
        if id(node) in self.path:
            raise self.fail(node, "a YAML alias refers to the value that contains it (a loop)")
        if alias:
            self.alias_refs += 1
            if self.alias_refs > MAX_ALIAS_REFS:
                raise self.fail(node, f"more than {MAX_ALIAS_REFS:,} YAML alias references")
            self.in_alias += 1
        try:
            return self._build(node, prefix, depth)
        finally:
            if alias:
                self.in_alias -= 1

    def _count(self, node: yaml.Node) -> None:
        self.built.add(id(node))
        if self.in_alias:
            self.alias_values += 1
            if self.alias_values > MAX_ALIAS_VALUES:
                raise self.fail(
                    node, f"YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values (an alias bomb?)"
                )

    def _build(self, node: yaml.Node, prefix: str, depth: int) -> Any:
        self._count(node)
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.scalars.construct_object(node)
            except yaml.YAMLError as exc:
                raise self.fail(node, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
        self.path.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items = []
                for i, item in enumerate(node.value):
                    dotted = f"{prefix}.{i}"
                    self.origins.setdefault(dotted, f"{self.where}:{item.start_mark.line + 1}")
                    items.append(self.build(item, dotted, depth + 1))
                return items
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, prefix, depth)
        finally:
            self.path.discard(id(node))
        raise self.fail(node, "unsupported YAML node")

    def _mapping(self, node: yaml.MappingNode, prefix: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # Merge keys first: the mapping's own keys win over merged ones, wherever they are written.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = self.build(value_node, prefix, depth + 1)
                sources = merged if isinstance(merged, list) else [merged]
                for source in reversed(sources):  # the first listed wins
                    if not isinstance(source, dict):
                        raise self.fail(value_node, "a merge key (<<) takes a mapping or a list of mappings")
                    for k, v in source.items():
                        self.merge(out, [k], v)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be a plain name, not a list or a mapping")
            key = self.scalars.construct_object(key_node)
            key = "" if key is None else str(key)
            parts: list[str] = key.split(".") if key else [key]
            line = f"{self.where}:{key_node.start_mark.line + 1}"
            dotted = f"{prefix}.{key}" if prefix else key
            self.origins[dotted] = line
            for i in range(1, len(parts)):  # the parents a dotted key introduces
                p = ".".join(parts[:i])
                self.origins.setdefault(f"{prefix}.{p}" if prefix else p, line)
            self.merge(out, parts, self.build(value_node, dotted, depth + 1))
        return out


def parse(text: str, where: str, merge: Merge) -> tuple[Any, dict[str, str]]:
    """The document's value (None for an empty one) and the origin of every dotted key."""
    if len(text) > MAX_FILE_BYTES:
        raise YamlInputError(f"{where}: larger than {MAX_FILE_BYTES >> 20} MiB; not a config file?")
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlInputError(f"{where}{line}: not valid YAML: {problem}") from None
    origins: dict[str, str] = {}
    if root is None:
        return None, origins
    try:
        return _Builder(where, origins, merge).build(root, "", 0), origins
    except RecursionError:  # a belt for the depth bound (deep flow collections on a small stack)
        raise YamlInputError(f"{where}: values nested too deeply") from None
