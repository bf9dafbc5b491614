"""Field-rewriting processors as libbeat has them: ``convert``, ``truncate_fields``, ``replace``
and ``dissect``."""

from __future__ import annotations

import copy
import ipaddress
import re
import struct
from typing import Any, Literal

from pydantic import Field, model_validator

from pybeat.api import Event, PluginConfig, ProcessorContext

from ._fields import MISSING, FieldError, delete_value, get_value, put_value
from .builtin import add_error
from .ids import go_value


class _Plugin:
    name = ""
    api_version = "1.0"
    config_model: type[PluginConfig] = PluginConfig


def _add_flag(event: Event, flag: str) -> None:
    """Beats' ``log.flags`` tag list."""
    flags = get_value(event, "log.flags")
    if not isinstance(flags, list):
        flags = [] if flags is MISSING or flags is None else [flags]
    if flag not in flags:
        flags.append(flag)
    put_value(event, "log.flags", flags)


# -- convert --------------------------------------------------------------------------------------------
ConvertType = Literal["integer", "long", "float", "double", "string", "boolean", "ip"]


class Conversion(PluginConfig):
    from_: str = Field(alias="from")
    to: str = ""
    type: ConvertType | None = None


class ConvertConfig(PluginConfig):
    fields: list[Conversion]
    tag: str = ""
    ignore_missing: bool = False
    fail_on_error: bool = True
    mode: Literal["copy", "rename"] = "copy"

    @model_validator(mode="after")
    def _some(self) -> "ConvertConfig":
        if not self.fields:
            raise ValueError("convert needs at least one field")
        return self


_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)\Z")
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])\Z")


def _wrap(v: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return ((v + half) % (1 << bits)) - half


def _to_int(v: Any, bits: int) -> int:
    if isinstance(v, str):
        if not _INT.match(v):
            raise ValueError(f'strconv.ParseInt: parsing "{v}": invalid syntax')
        n = int(v, 0) if "x" in v.lower() else int(v, 10)
        if not -(1 << (bits - 1)) <= n < (1 << (bits - 1)):
            raise ValueError(f'strconv.ParseInt: parsing "{v}": value out of range')
        return n
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"invalid conversion of [{_go_type(v)}] to {'long' if bits == 64 else 'integer'}")
    return _wrap(int(v), bits)


def _float32(f: float) -> float:
    """The float32 nearest ``f``, as the shortest decimal that reads back to it (as Go's JSON
    encoder writes a float32)."""
    try:
        single = struct.unpack("f", struct.pack("f", f))[0]
    except OverflowError:
        return float("inf") if f > 0 else float("-inf")
    for p in range(1, 10):
        text = f"{single:.{p}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return float(text)
    return single


def _to_float(v: Any, single: bool) -> float:
    if isinstance(v, str):
        if not _FLOAT.match(v):
            raise ValueError(f'strconv.ParseFloat: parsing "{v}": invalid syntax')
        f = float(v)
    elif isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"invalid conversion of [{_go_type(v)}] to float")
    else:
        f = float(v)
    return _float32(f) if single else f


def _go_type(v: Any) -> str:
    return {bool: "bool", str: "string", int: "int64", float: "float64", dict: "map[string]interface {}",
            list: "[]interface {}", type(None): "<nil>"}.get(type(v), type(v).__name__)


def convert_value(typ: str, v: Any) -> Any:
    if typ == "string":
        if v is None:
            raise ValueError("invalid conversion of [null] to string")
        return v if isinstance(v, str) else go_value(v)
    if typ == "long":
        return _to_int(v, 64)
    if typ == "integer":
        return _to_int(v, 32)
    if typ == "float":
        return _to_float(v, True)
    if typ == "double":
        return _to_float(v, False)
    if typ == "boolean":
        if isinstance(v, bool):
            return v
        if isinstance(v, str):
            if v in _BOOLS:
                return _BOOLS[v]
            raise ValueError(f'strconv.ParseBool: parsing "{v}": invalid syntax')
        raise ValueError(f"invalid conversion of [{_go_type(v)}] to boolean")
    if typ == "ip":
        if not isinstance(v, str):
            raise ValueError(f"invalid conversion of [{_go_type(v)}] to IP")
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError("value is not a valid IP address") from None
        return v
    return v


_SKIP = object()


class Convert:
    def __init__(self, config: ConvertConfig):
        self.c = config

    def _error(self, conv: Conversion, message: str) -> FieldError:
        tag = f" with instance_id={self.c.tag}" if self.c.tag else ""
        target = f" with target field [{conv.to}]" if conv.to else ""
        return FieldError(f"failed in processor.convert{tag}: conversion of field [{conv.from_}] to type "
                          f"[{conv.type or 'unset'}]{target} failed: {message}")

    def run(self, event: Event) -> Event:
        converted: list[Any] = []
        for conv in self.c.fields:
            try:
                v = get_value(event, conv.from_)
                if v is MISSING:
                    if self.c.ignore_missing:
                        converted.append(_SKIP)
                        continue
                    raise self._error(conv, f"field [{conv.from_}] is missing")
                if conv.type is not None:
                    try:
                        v = convert_value(conv.type, v)
                    except ValueError as exc:
                        raise self._error(conv, f"unable to convert value [{go_value(v)}]: {exc}") from None
                converted.append(v)
            except FieldError:
                if self.c.fail_on_error:
                    raise
                converted.append(_SKIP)
        saved = (copy.deepcopy(event.fields), copy.deepcopy(event.meta)) if len(converted) > 1 and self.c.fail_on_error \
            else None
        for conv, v in zip(self.c.fields, converted):
            if v is _SKIP:
                continue
            try:
                if not conv.to:
                    put_value(event, conv.from_, v)
                elif self.c.mode == "rename":
                    put_value(event, conv.to, v)
                    delete_value(event, conv.from_)
                else:
                    put_value(event, conv.to, copy.deepcopy(v))
            except FieldError as exc:
                if self.c.fail_on_error:
                    if saved is not None:
                        event.fields, event.meta = saved
                    raise self._error(conv, f"failed to put field [{conv.to}]: {exc}") from None
        return event


class ConvertPlugin(_Plugin):
    name = "convert"
    config_model = ConvertConfig

    def create(self, config: ConvertConfig, ctx: ProcessorContext) -> Convert:
        return Convert(config)


# -- truncate_fields --------------------------------------------------------------------------------------
class TruncateFieldsConfig(PluginConfig):
    fields: list[str]
    max_bytes: int | None = Field(default=None, gt=0)
    max_characters: int | None = Field(default=None, gt=0)
    fail_on_error: bool = True
    ignore_missing: bool = False

    @model_validator(mode="after")
    def _one_limit(self) -> "TruncateFieldsConfig":
        if (self.max_bytes is None) == (self.max_characters is None):
            raise ValueError("exactly one of max_bytes and max_characters must be set")
        return self


class TruncateFields:
    """Strings longer than the limit are cut (``max_bytes`` never splits a UTF-8 character) and
    ``log.flags`` gets ``truncated``, as in Beats."""

    def __init__(self, config: TruncateFieldsConfig):
        self.c = config

    def _cut(self, v: str) -> str | None:
        if self.c.max_characters is not None:
            return v[: self.c.max_characters] if len(v) > self.c.max_characters else None
        raw = v.encode("utf-8", "surrogateescape")
        if len(raw) <= (self.c.max_bytes or 0):
            return None
        return raw[: self.c.max_bytes].decode("utf-8", "ignore")

    def run(self, event: Event) -> Event:
        backup = (copy.deepcopy(event.fields), copy.deepcopy(event.meta)) if self.c.fail_on_error else None
        truncated = False
        for f in self.c.fields:
            v = get_value(event, f)
            try:
                if v is MISSING:
                    if self.c.ignore_missing:
                        continue
                    raise FieldError(f"could not fetch value for key: {f}, Error: key not found")
                if not isinstance(v, str):
                    raise FieldError(f"value cannot be truncated: {go_value(v) if not isinstance(v, (dict, list)) else v}")
                cut = self._cut(v)
                if cut is not None:
                    put_value(event, f, cut)
                    truncated = True
            except FieldError as exc:
                if backup is not None:
                    event.fields, event.meta = backup
                    add_error(event, f"Failed to truncate fields: {exc}")
                    return event
        if truncated:
            _add_flag(event, "truncated")
        return event


class TruncateFieldsPlugin(_Plugin):
    name = "truncate_fields"
    config_model = TruncateFieldsConfig

    def create(self, config: TruncateFieldsConfig, ctx: ProcessorContext) -> TruncateFields:
        return TruncateFields(config)


# -- replace ----------------------------------------------------------------------------------------------
class Replacement(PluginConfig):
    field: str
    pattern: str
    replacement: str

    @model_validator(mode="after")
    def _compiles(self) -> "Replacement":
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"invalid pattern {self.pattern!r}: {exc}") from None
        return self


class ReplaceConfig(PluginConfig):
    fields: list[Replacement]
    ignore_missing: bool = False
    fail_on_error: bool = True


_GO_REF = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def go_expander(replacement: str) -> Any:
    """A function for ``re.sub`` that expands a Go ``Regexp.ReplaceAllString`` replacement:
    ``$1``, ``${1}``, ``${name}``, ``$$``; as in Go, ``$1x`` names the group ``1x`` and a group
    the pattern does not have expands to nothing."""
    parts: list[tuple[bool, str]] = []  # (is a group reference, text or group name)
    pos = 0
    for m in _GO_REF.finditer(replacement):
        parts.append((False, replacement[pos:m.start()]))
        parts.append((False, "$") if m.group(1) == "$" else (True, m.group(2) or m.group(3)))
        pos = m.end()
    parts.append((False, replacement[pos:]))

    def expand(m: re.Match[str]) -> str:
        out = []
        for is_ref, text in parts:
            if not is_ref:
                out.append(text)
                continue
            try:
                out.append(m.group(int(text) if text.isdigit() else text) or "")
            except (IndexError, re.error):
                pass
        return "".join(out)

    return expand



class Replace:
    def __init__(self, config: ReplaceConfig):
        self.c = config
        self.rules = []
        for r in config.fields:
            try:
                self.rules.append((r.field, re.compile(r.pattern), go_expander(r.replacement)))
            except re.error as exc:
                raise ValueError(f"replace: invalid pattern {r.pattern!r}: {exc}") from None

    def run(self, event: Event) -> Event:
        backup = (copy.deepcopy(event.fields), copy.deepcopy(event.meta)) if self.c.fail_on_error else None
        for field, rx, expand in self.rules:
            v = get_value(event, field)
            try:
                if v is MISSING:
                    if self.c.ignore_missing:
                        continue
                    raise FieldError(f"could not fetch value for key: {field}, Error: key not found")
                if not isinstance(v, str):
                    raise FieldError(f"could not fetch value for key: {field}, Error: value is not a string")
                put_value(event, field, rx.sub(expand, v))
            except FieldError as exc:
                if backup is not None:
                    event.fields, event.meta = backup
                    add_error(event, f"Failed to replace fields in processor: {exc}")
                    return event
        return event


class ReplacePlugin(_Plugin):
    name = "replace"
    config_model = ReplaceConfig

    def create(self, config: ReplaceConfig, ctx: ProcessorContext) -> Replace:
        return Replace(config)


# -- dissect ----------------------------------------------------------------------------------------------
_KEY = re.compile(r"%\{([^}]*)\}")
_TYPES = {"integer", "long", "float", "double", "boolean", "ip", "string"}


class _Key:
    __slots__ = ("name", "kind", "order", "pad", "type")

    def __init__(self, raw: str):
        self.pad = raw.endswith("->")
        if self.pad:
            raw = raw[:-2]
        self.type = None
        if "|" in raw:
            raw, typ = raw.rsplit("|", 1)
            if typ not in _TYPES:
                raise ValueError(f"unsupported dissect type {typ!r}")
            self.type = typ
        self.kind = ""
        if raw[:1] in ("+", "?", "*", "&"):
            self.kind, raw = raw[0], raw[1:]
        self.order = 0
        if self.kind == "+" and "/" in raw:
            raw, order = raw.rsplit("/", 1)
            self.order = int(order)
        self.name = raw
        if not raw:
            self.kind = "?"  # %{} skips


def parse_tokenizer(tokenizer: str) -> tuple[str, list[tuple[_Key, str]]]:
    """``(prefix, [(key, delimiter after it)])``."""
    matches = list(_KEY.finditer(tokenizer))
    if not matches:
        raise ValueError("invalid dissect tokenizer: no key found")
    prefix = tokenizer[: matches[0].start()]
    out = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(tokenizer)
        delim = tokenizer[m.end():end]
        if not delim and i + 1 < len(matches):
            raise ValueError("invalid dissect tokenizer: two keys without a delimiter between them")
        out.append((_Key(m.group(1)), delim))
    return prefix, out


def dissect(prefix: str, keys: list[tuple[_Key, str]], text: str) -> dict[str, Any]:
    """Beats' dissect: each delimiter is looked for from where the previous one ended; the last
    key without a trailing delimiter takes the rest. Raises ValueError when it does not match."""
    if not text.startswith(prefix):
        raise ValueError(f"could not find beginning delimiter: `{prefix}` in remaining: `{text}`")
    pos = len(prefix)
    values: list[tuple[_Key, str]] = []
    for i, (key, delim) in enumerate(keys):
        if not delim:
            values.append((key, text[pos:]))
            pos = len(text)
            continue
        at = text.find(delim, pos)
        if at < 0:
            raise ValueError(f"could not find delimiter: `{delim}` in remaining: `{text[pos:]}`, (offset: {pos})")
        values.append((key, text[pos:at]))
        pos = at + len(delim)
        if key.pad:
            while text.startswith(delim, pos):
                pos += len(delim)
    out: dict[str, Any] = {}
    appends: dict[str, list[tuple[int, int, str]]] = {}
    refs: dict[str, str] = {}
    ref_values: dict[str, str] = {}
    for idx, (key, value) in enumerate(values):
        if key.kind == "?":
            continue
        if key.kind == "+":
            appends.setdefault(key.name, []).append((key.order, idx, value))
        elif key.kind == "*":
            refs[key.name] = value
        elif key.kind == "&":
            ref_values[key.name] = value
        else:
            out[key.name] = convert_value(key.type, value) if key.type else value
    for name, parts in appends.items():
        joined = " ".join(v for _, _, v in sorted(parts))
        out[name] = (out[name] + " " + joined) if isinstance(out.get(name), str) else joined
    for name, keyname in refs.items():
        if name in ref_values:
            out[keyname] = ref_values[name]
    return out


class DissectConfig(PluginConfig):
    tokenizer: str
    field: str = "message"
    target_prefix: str = "dissect"
    ignore_failure: bool = False
    overwrite_keys: bool = False
    trim_values: Literal["none", "left", "right", "all"] = "none"
    trim_chars: str = " "
    tag: str = ""

    @model_validator(mode="after")
    def _tokenizer_ok(self) -> "DissectConfig":
        parse_tokenizer(self.tokenizer)
        return self


class Dissect:
    def __init__(self, config: DissectConfig):
        self.c = config
        self.prefix, self.keys = parse_tokenizer(config.tokenizer)

    def _trim(self, v: str) -> str:
        chars = self.c.trim_chars
        t = self.c.trim_values
        return v.strip(chars) if t == "all" else v.lstrip(chars) if t == "left" else v.rstrip(chars) if t == "right" else v

    def run(self, event: Event) -> Event:
        text = get_value(event, self.c.field)
        try:
            if not isinstance(text, str):
                raise ValueError(f"field '{self.c.field}' not found or not a string")
            values = dissect(self.prefix, self.keys, text)
            if self.c.trim_values != "none":
                values = {k: self._trim(v) if isinstance(v, str) else v for k, v in values.items()}
            for k, v in values.items():
                key = f"{self.c.target_prefix}.{k}" if self.c.target_prefix else k
                if not self.c.overwrite_keys and get_value(event, key) is not MISSING:
                    raise ValueError(f"cannot override existing key with `{key}`")
            for k, v in values.items():
                put_value(event, f"{self.c.target_prefix}.{k}" if self.c.target_prefix else k, v)
        except (ValueError, FieldError) as exc:
            _add_flag(event, "dissect_parsing_error")
            if self.c.ignore_failure:
                return event
            raise FieldError(str(exc)) from None
        return event


class DissectPlugin(_Plugin):
    name = "dissect"
    config_model = DissectConfig

    def create(self, config: DissectConfig, ctx: ProcessorContext) -> Dissect:
        return Dissect(config)


convert = ConvertPlugin()
truncate_fields = TruncateFieldsPlugin()
replace = ReplacePlugin()
dissect_processor = DissectPlugin()
