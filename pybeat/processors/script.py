"""``script``: a Python expression run on each event, where Beats runs JavaScript.

Keys (Beats' where they apply): ``lang`` (``python``; ``javascript``/``js`` are refused with a
clear error: pybeat has no JavaScript engine), ``source`` (the expression) or ``file`` (a file
holding it), ``params`` (a mapping, read as ``params``), ``tag`` (names the instance in
errors), ``tag_on_exception`` (``_python_exception``; added to ``tags`` when the expression
raises).

The expression sees ``event`` (Beats' JavaScript event API: ``Get``, ``Put``, ``Delete``,
``Rename``, ``Tag``, ``AppendTo``, ``Cancel``, ``Has``; ``event.fields`` is not exposed),
``params`` and a few builtins (``len``, ``str``, ``int``, ``float``, ``bool``, ``min``, ``max``,
``abs``, ``round``, ``sorted``, ``any``, ``all``, ``list``, ``dict``, ``set``, ``tuple``,
``isinstance``). Several steps are a tuple: ``(event.Put("a", 1), event.Tag("x"))``. The event
is dropped when ``event.Cancel()`` was called or the expression's value is ``False``.

Sandboxed to the event: the expression is checked before it is compiled, and refused when it
uses ``import``, lambda, names or attributes starting with ``_``, ``format``/``format_map``
(they reach attributes), or anything but the names above. It cannot open files, sockets or
modules. It is not a resource limit: an expression that loops over a huge range still takes
its time, as a JavaScript one does in Beats.
"""

from __future__ import annotations

import ast
from typing import Any, Literal

from pydantic import model_validator

from pybeat.api import Event, PluginConfig, ProcessorContext

from ._fields import MISSING, delete_value, get_value, has_value, put_value

SAFE_BUILTINS: dict[str, Any] = {
    "len": len, "str": str, "int": int, "float": float, "bool": bool, "min": min, "max": max, "abs": abs,
    "round": round, "sorted": sorted, "any": any, "all": all, "list": list, "dict": dict, "set": set,
    "tuple": tuple, "isinstance": isinstance, "True": True, "False": False, "None": None,
}
_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Dict, ast.Set, ast.Compare, ast.Call,
    ast.Constant, ast.Attribute, ast.Subscript, ast.Name, ast.List, ast.Tuple, ast.Slice, ast.Load,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension, ast.Store, ast.keyword,
    ast.JoinedStr, ast.FormattedValue, ast.boolop, ast.operator, ast.unaryop, ast.cmpop, ast.Starred,
)
_BANNED_ATTRS = {"format", "format_map", "mro", "gi_frame", "gi_code", "f_globals", "f_locals", "f_builtins"}


class ScriptError(ValueError):
    pass


def check_expression(source: str) -> ast.Expression:
    """Parse ``source`` as one expression and refuse anything outside the sandbox."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ScriptError(f"script is not a Python expression: {exc.msg} (line {exc.lineno})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ScriptError(f"script: {type(node).__name__} is not allowed in the expression")
        if isinstance(node, ast.Attribute) and (node.attr.startswith("_") or node.attr in _BANNED_ATTRS):
            raise ScriptError(f"script: attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Name) and (node.id.startswith("_") or
                                          (isinstance(node.ctx, ast.Load) and node.id not in SAFE_BUILTINS
                                           and node.id not in ("event", "params") and not _bound_in_comp(tree, node.id))):
            raise ScriptError(f"script: name {node.id!r} is not available (event, params and a few builtins are)")
    return tree


def _bound_in_comp(tree: ast.AST, name: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            for target in ast.walk(node.target):
                if isinstance(target, ast.Name) and target.id == name:
                    return True
    return False


class ScriptEvent:
    """Beats' JavaScript event API over one event (the only way the expression reaches it)."""

    __slots__ = ("_event", "cancelled")

    def __init__(self, event: Event):
        self._event = event
        self.cancelled = False

    def Get(self, key: str | None = None) -> Any:  # noqa: N802 (Beats' names)
        if key is None:
            import copy

            return copy.deepcopy(self._event.fields)
        v = get_value(self._event, key)
        return None if v is MISSING else v

    def Has(self, key: str) -> bool:  # noqa: N802
        return has_value(self._event, key)

    def Put(self, key: str, value: Any) -> Any:  # noqa: N802
        old = self.Get(key)
        put_value(self._event, key, value)
        return old

    def Delete(self, key: str) -> bool:  # noqa: N802
        return delete_value(self._event, key)

    def Rename(self, src: str, dst: str) -> bool:  # noqa: N802
        v = get_value(self._event, src)
        if v is MISSING or has_value(self._event, dst):
            return False
        delete_value(self._event, src)
        put_value(self._event, dst, v)
        return True

    def AppendTo(self, key: str, value: Any) -> None:  # noqa: N802
        cur = get_value(self._event, key)
        if cur is MISSING or cur is None:
            put_value(self._event, key, value if isinstance(value, list) else [value])
            return
        cur = cur if isinstance(cur, list) else [cur]
        for v in value if isinstance(value, list) else [value]:
            if v not in cur:
                cur.append(v)
        put_value(self._event, key, cur)

    def Tag(self, tag: str) -> None:  # noqa: N802
        self.AppendTo("tags", tag)

    def Cancel(self) -> None:  # noqa: N802
        self.cancelled = True


class ScriptConfig(PluginConfig):
    lang: str = "python"
    source: str | None = None
    file: str | None = None
    files: list[str] = []
    params: dict[str, Any] = {}
    tag: str = ""
    id: str = ""
    tag_on_exception: str = "_python_exception"
    timeout: Any = None
    max_cached_sessions: int | None = None

    @model_validator(mode="after")
    def _python_only(self) -> "ScriptConfig":
        if self.lang.lower() in ("javascript", "js"):
            raise ValueError("lang: javascript is not supported: pybeat has no JavaScript engine; write the script "
                             "as a Python expression with lang: python (docs/processors.md, script)")
        if self.lang.lower() != "python":
            raise ValueError(f"unsupported script language {self.lang!r} (pybeat: python)")
        if self.files:
            raise ValueError("files is not supported: use source or file with one Python expression")
        if (self.source is None) == (self.file is None):
            raise ValueError("script needs exactly one of source and file")
        if self.source is not None:
            check_expression(self.source)
        return self


class Script:
    def __init__(self, source: str, params: dict[str, Any], tag_on_exception: str, tag: str):
        tree = check_expression(source)
        self.code = compile(tree, f"<script {tag or 'processor'}>", "eval")
        self.params = params
        self.tag_on_exception = tag_on_exception

    def run(self, event: Event) -> Event | None:
        api = ScriptEvent(event)
        scope = {"__builtins__": {}, **SAFE_BUILTINS, "event": api, "params": self.params}
        try:
            result = eval(self.code, scope)  # noqa: S307 (checked by check_expression, no builtins)
        except Exception:
            if self.tag_on_exception:
                api.Tag(self.tag_on_exception)
            raise
        if api.cancelled or result is False:
            return None
        return event


class ScriptPlugin:
    name = "script"
    api_version = "1.0"
    config_model = ScriptConfig

    def create(self, config: ScriptConfig, ctx: ProcessorContext) -> Script:
        source = config.source
        if source is None:
            assert config.file is not None
            with open(config.file, encoding="utf-8") as fh:
                source = fh.read()
        return Script(source, config.params, config.tag_on_exception, config.tag or config.id)


script = ScriptPlugin()
