"""``add_id`` and ``fingerprint``: document ids, as libbeat's processors.

``add_id``: ``target_field`` (``@metadata._id``, the Elasticsearch output's document id),
``type`` (``elasticsearch``: Elasticsearch's time-based UUID, 20 URL-safe base64 characters,
the layout of libbeat's generator). A new id per event: it makes a retried bulk request
idempotent, not a re-run of the agent.

``fingerprint``: a hash of chosen fields, the same for the same values on every run (so a
resent or replayed event gets the same ``_id``). Keys: ``fields`` (required; sorted and
de-duplicated, so their order does not matter), ``target_field`` (``fingerprint``), ``method``
(``sha256``; ``md5``, ``sha1``, ``sha384``, ``sha512``, ``xxhash``), ``encoding`` (``hex``;
``base32``, ``base64``), ``ignore_missing`` (false). The hashed bytes are libbeat's:
``|<field>|<value>`` for each field, then ``|``, values written as Go's ``%v`` writes them
(``@timestamp`` is the event time, ``2021-10-28 17:46:23 +0000 UTC``), so the output is
byte-for-byte Beats' on the same input (libbeat's test vectors are in the tests).

What differs: a missing field (without ``ignore_missing``) or an object/array value is an
error that costs only this processor's run on that event: the event goes on without the
fingerprint, with the error in ``error.message`` and counted (libbeat drops the event).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Literal

from pydantic import field_validator

from pybeat.api import Event, PluginConfig, ProcessorContext

from ._fields import MISSING, FieldError, get_value, put_value

__all__ = ["go_value", "xxh64", "EsIdGenerator"]


# -- add_id ----------------------------------------------------------------------------------------
class EsIdGenerator:
    """Elasticsearch's ``TimeBasedUUIDGenerator`` (as libbeat's ``es_generator.go``): a
    random start sequence, a random "munged MAC", the clock in ms never going backwards."""

    def __init__(self, clock_ms: Callable[[], int] | None = None, seed: bytes | None = None):
        seed = seed if seed is not None else os.urandom(9)
        self._seq = int.from_bytes(seed[:3], "big")
        self._mac = seed[3:9]
        self._last = 0
        self._clock = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()

    def next_id(self) -> str:
        with self._lock:
            self._seq = (self._seq + 1) & 0xFFFFFF
            seq = self._seq
            ts = max(self._clock(), self._last)
            if seq == 0:  # force the clock on when the sequence wraps (a long slip backwards)
                ts += 1
            self._last = ts
        b = bytes((seq & 0xFF, (seq >> 16) & 0xFF, (ts >> 16) & 0xFF, (ts >> 24) & 0xFF, (ts >> 32) & 0xFF,
                   (ts >> 40) & 0xFF)) + self._mac + bytes(((ts >> 8) & 0xFF, (seq >> 8) & 0xFF, ts & 0xFF))
        return base64.urlsafe_b64encode(b).decode("ascii")  # 15 bytes: 20 characters, no padding


class AddIdConfig(PluginConfig):
    target_field: str = "@metadata._id"
    type: Literal["elasticsearch"] = "elasticsearch"


class AddId:
    def __init__(self, target: str, generator: EsIdGenerator):
        self.target = target
        self.generator = generator

    def run(self, event: Event) -> Event:
        put_value(event, self.target, self.generator.next_id())
        return event


class AddIdPlugin:
    name = "add_id"
    api_version = "1.0"
    config_model = AddIdConfig

    def create(self, config: AddIdConfig, ctx: ProcessorContext) -> AddId:
        return AddId(config.target_field, EsIdGenerator())


# -- fingerprint -----------------------------------------------------------------------------------
_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                           0x27D4EB2F165667C5)
_M = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _M, 31) * _P1) & _M


def _merge(acc: int, val: int) -> int:
    return ((acc ^ _round(0, val)) * _P1 + _P4) & _M


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 (the ``xxhash`` method: cespare/xxhash, seed 0), in plain Python."""
    n = len(data)
    i = 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + _P1 + _P2) & _M, (seed + _P2) & _M, seed, (seed - _P1) & _M
        while i + 32 <= n:
            a, b, c, d = struct.unpack_from("<4Q", data, i)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        h = _merge(_merge(_merge(_merge(h, v1), v2), v3), v4)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        (k,) = struct.unpack_from("<Q", data, i)
        h = ((_rotl(h ^ _round(0, k), 27) * _P1) + _P4) & _M
        i += 8
    if i + 4 <= n:
        (k,) = struct.unpack_from("<I", data, i)
        h = ((_rotl(h ^ ((k * _P1) & _M), 23) * _P2) + _P3) & _M
        i += 4
    while i < n:
        h = (_rotl(h ^ ((data[i] * _P5) & _M), 11) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


class _Xxh64:
    """A hashlib-like wrapper (the ``xxhash`` package when installed, else :func:`xxh64`)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def update(self, data: bytes) -> None:
        self._parts.append(data)

    def digest(self) -> bytes:
        data = b"".join(self._parts)
        try:
            import xxhash

            return xxhash.xxh64_digest(data)  # type: ignore[no-any-return]
        except ImportError:
            return xxh64(data).to_bytes(8, "big")


METHODS: dict[str, Callable[[], Any]] = {
    "md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
    "sha512": hashlib.sha512, "xxhash": _Xxh64,
}
ENCODINGS: dict[str, Callable[[bytes], str]] = {
    "hex": lambda b: b.hex(),
    "base32": lambda b: base64.b32encode(b).decode("ascii"),
    "base64": lambda b: base64.b64encode(b).decode("ascii"),
}


def _go_float(v: float) -> str:
    """Go's ``%v`` of a float64 (``strconv.FormatFloat(v, 'g', -1, 64)``)."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if str(v).startswith("-") else "0"
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    dp = len(digits) + int(exp)  # position of the decimal point in ds
    x = dp - 1
    neg = "-" if sign else ""
    if x < -4 or x >= 6:  # shortest precision: Go decides %e against precision 6
        # %e form: d[.ddd]e±XX
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return f"{neg}{ds}{'0' * (dp - len(ds))}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def go_time(ns: int) -> str:
    """Go's ``time.Time.String()`` of a UTC time (``2021-10-28 17:46:23.5 +0000 UTC``)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + " +0000 UTC"


def go_value(v: Any) -> str:
    """A scalar as libbeat's ``fmt.Fprintf("%v")`` writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if v is None:
        return "<nil>"
    if isinstance(v, datetime):
        ts = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
        return go_time(int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000)
    return str(v)


class FingerprintConfig(PluginConfig):
    fields: list[str]
    target_field: str = "fingerprint"
    method: Literal["md5", "sha1", "sha256", "sha384", "sha512", "xxhash"] = "sha256"
    encoding: Literal["hex", "base32", "base64"] = "hex"
    ignore_missing: bool = False

    @field_validator("fields")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("fingerprint needs at least one field")
        return v


class Fingerprint:
    def __init__(self, config: FingerprintConfig):
        self.fields = sorted(set(config.fields))
        self.target = config.target_field
        self.method = METHODS[config.method]
        self.encode = ENCODINGS[config.encoding]
        self.ignore_missing = config.ignore_missing

    def text(self, event: Event) -> bytes:
        """The bytes that are hashed (libbeat's ``writeFields``)."""
        parts: list[str] = []
        for k in self.fields:
            v = event.timestamp_ns if k == "@timestamp" else get_value(event, k)
            if v is MISSING:
                if self.ignore_missing:
                    continue
                raise FieldError(f"failed to find field [{k}] in event")
            if isinstance(v, (dict, list)):
                raise FieldError(f"cannot compute fingerprint using non-scalar field [{k}]")
            parts.append(f"|{k}|{go_time(v) if k == '@timestamp' else go_value(v)}")
        parts.append("|")
        return "".join(parts).encode("utf-8", "surrogateescape")

    def run(self, event: Event) -> Event:
        h = self.method()
        h.update(self.text(event))
        put_value(event, self.target, self.encode(h.digest()))
        return event


class FingerprintPlugin:
    name = "fingerprint"
    api_version = "1.0"
    config_model = FingerprintConfig

    def create(self, config: FingerprintConfig, ctx: ProcessorContext) -> Fingerprint:
        return Fingerprint(config)


add_id = AddIdPlugin()
fingerprint = FingerprintPlugin()
