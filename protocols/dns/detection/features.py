"""Numbers computed from one question name: length, labels, entropy and the shape of the
longest label of its subdomain (the part left of the registered domain). Pure functions plus a
bounded per-name cache: DNS traffic repeats names, tunnels never do (so the cache is cleared
when full rather than kept exact).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

__all__ = ["MIN_ENCODED_LABEL", "NameFeatures", "entropy", "name_features", "raw_length", "shape"]

_HEX = frozenset("0123456789abcdefABCDEF")
_B32 = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_B64 = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=_-")
_DIGITS = frozenset("0123456789")
#: the shortest label whose character mix is judged (shorter labels carry little data)
MIN_ENCODED_LABEL = 16


class NameFeatures(NamedTuple):
    length: int          # characters of the subdomain (the data a tunnel can carry up)
    labels: int          # labels of the subdomain
    longest_label: int   # characters of the longest label (an escaped byte counts once)
    entropy: float       # Shannon entropy of the subdomain's characters, bits per character
    shape: str           # "hex", "base32", "base64", "binary" or "" (not encoded-looking)


def entropy(text: str) -> float:
    """Shannon entropy in bits per character (0.0 for an empty string)."""
    n = len(text)
    if n == 0:
        return 0.0
    h = 0.0
    for count in Counter(text).values():
        p = count / n
        h -= p * math.log2(p)
    return h


def shape(label: str) -> str:
    """How a label looks: an encoding of data, or "" (words, numbers, short labels).

    A label is judged only from 16 characters on. Hex needs both digits and letters; base32
    and base64 need digits and letters and an even spread of characters (entropy of at least
    3.5 bits per character: words and numbered host names stay well below); "binary" is any
    byte outside printable ASCII (the protocol shows it escaped, as ``\\ddd``) or a mix of
    cases that no host name has.
    """
    n = len(label)
    if n < MIN_ENCODED_LABEL:
        return ""
    chars = set(label)
    if "\\" in chars or not label.isascii():
        return "binary"
    has_digit = not chars.isdisjoint(_DIGITS)
    if chars <= _HEX:
        return "hex" if has_digit and not chars <= _DIGITS else ""
    if not has_digit and entropy(label) < 4.0:
        return ""
    if entropy(label) < 3.5:
        return ""
    if chars <= _B32:
        return "base32"
    if chars <= _B64:
        return "base64"
    return ""


def raw_length(label: str) -> int:
    """Length of a label with each \\ddd (or \\c) escape counted as the one byte it stands for."""
    if "\\" not in label:
        return len(label)
    n = i = 0
    while i < len(label):
        if label[i] == "\\":
            i += 4 if label[i + 1:i + 4].isdigit() else 2
        else:
            i += 1
        n += 1
    return n


_CACHE_MAX = 65_536
_cache: dict[str, NameFeatures] = {}
_NONE = NameFeatures(0, 0, 0, 0.0, "")


def name_features(subdomain: str) -> NameFeatures:
    """Features of a subdomain (cached; ``""`` for a query of the registered domain itself)."""
    f = _cache.get(subdomain)
    if f is not None:
        return f
    if not subdomain:
        return _NONE
    labels = subdomain.split(".")
    longest = max(labels, key=raw_length)
    data = subdomain.replace(".", "")
    # the protocol shows a byte outside printable ASCII as \ddd: count it as the one byte it is
    length = len(subdomain) - 3 * subdomain.count("\\") if "\\" in subdomain else len(subdomain)
    f = NameFeatures(length, len(labels), raw_length(longest), entropy(data), shape(longest))
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[subdomain] = f
    return f
