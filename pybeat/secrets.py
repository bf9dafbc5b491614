"""One rule for what is secret in a config, and the functions that hide it wherever pybeat
prints: ``export config``, ``test output``, every log line, config error messages.

Secret are: the value of a key named like a credential (password, passphrase, api_key, token,
secret, ``cloud.auth``, ...), every value of a ``headers``, ``proxy_headers`` or ``parameters``
map, the userinfo of any URL (``https://user:pass@host``, ``proxy_url``), secret-named query
parameters of a URL, an inline PEM private key (``ssl.key: |`` with the key's body), and an
``Authorization`` credential written in text. Besides these shapes, the values found in the
config and the keystore are remembered (``remember``) so that ``scrub`` hides them in any text,
whatever a library printed around them.

Nothing here does I/O. ``structlog_processor`` is the logging hook (pybeat/logs.py installs it).
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterable, MutableMapping

MASK = "[redacted]"

_SECRET_NAMES = frozenset({
    "password", "passwd", "passphrase", "key_passphrase", "api_key", "apikey", "token", "access_token",
    "refresh_token", "secret", "secret_token", "client_secret", "auth", "authorization", "credentials",
    "private_key", "secret_access_key", "session_token", "sas_token", "sasl_password", "bearer_token",
})
_SECRET_SUFFIXES = ("_password", "_passphrase", "_token", "_secret", "_api_key", "_apikey", "_credentials")
#: maps whose every value is secret, whatever the entry is called
_SECRET_MAPS = frozenset({"headers", "proxy_headers", "parameters"})

_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s\"']+)@")
_BARE_USERINFO = re.compile(r"^(?P<userinfo>[^\s/@:]+:[^\s/@]+)@(?=[^\s@]+$)")
_URL_QUERY_SECRET = re.compile(
    r"(?P<name>[?&](?:api_?key|(?:access_)?token|password|passwd|secret|auth|sig|signature|key)=)[^&#\s\"']*",
    re.IGNORECASE,
)
_PEM_KEY = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END (?P=kind)PRIVATE KEY-----|\Z)", re.DOTALL
)
_AUTH_HEADER = re.compile(r"\b(?P<scheme>Basic|Bearer|ApiKey|Negotiate)\s+[A-Za-z0-9+/=._~\-]{6,}")


def is_secret_key(key: str) -> bool:
    """A key (its last dotted part) whose value is a credential."""
    name = str(key).rpartition(".")[2].lower().replace("-", "_")
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES) or "password" in name


def is_secret_map(key: str) -> bool:
    return str(key).rpartition(".")[2].lower() in _SECRET_MAPS


def redact_url(text: str) -> str:
    """``https://[redacted]@host/?api_key=[redacted]``: userinfo and secret query values hidden."""
    out = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    out = _BARE_USERINFO.sub(f"{MASK}@", out)
    return _URL_QUERY_SECRET.sub(lambda m: m.group("name") + MASK, out)


def redact_text(text: str) -> str:
    """Hide every secret shape in free text (URLs, PEM private keys, Authorization credentials)."""
    if "PRIVATE KEY" in text:
        text = _PEM_KEY.sub(f"{MASK} private key", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('scheme')} {MASK}", text)
    return redact_url(text)


def mask_tree(node: Any, key: str = "") -> Any:
    """A copy of a config tree with every secret replaced by ``[redacted]``."""
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for k, v in node.items():
            if is_secret_key(k) and v not in (None, ""):
                out[k] = MASK
            elif is_secret_map(k) and isinstance(v, dict):
                out[k] = {hk: (MASK if hv not in (None, "") else hv) for hk, hv in v.items()}
            else:
                out[k] = mask_tree(v, str(k))
        return out
    if isinstance(node, list):
        return [mask_tree(v, key) for v in node]
    if isinstance(node, str):
        return redact_text(node)
    return node


def find_secrets(node: Any, key: str = "") -> set[str]:
    """The secret values in a config tree (for ``remember``)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if (is_secret_key(k) or is_secret_map(k)) and v not in (None, ""):
                found |= _scalars(v)
            else:
                found |= find_secrets(v, str(k))
    elif isinstance(node, list):
        for v in node:
            found |= find_secrets(v, key)
    elif isinstance(node, str):
        for m in _URL_USERINFO.finditer(node):
            found |= _userinfo_parts(m.group("userinfo"))
        bare = _BARE_USERINFO.match(node)
        if bare:
            found |= _userinfo_parts(bare.group("userinfo"))
        for m in _PEM_KEY.finditer(node):
            found.add(m.group(0))
    return found


def _scalars(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_scalars(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_scalars(v) for v in value)) if value else set()
    return {str(value)} if value not in (None, "") and not isinstance(value, bool) else set()


def _userinfo_parts(userinfo: str) -> set[str]:
    _, sep, password = userinfo.partition(":")
    return {password} if sep and password else set()


# Remembered secret values: process-wide, like the logging configuration they serve.
_lock = threading.Lock()
_known: set[str] = set()
_known_re: re.Pattern[str] | None = None
#: shorter values are not hunted for in free text (they would mask ordinary words); their keys
#: still are masked wherever a tree is printed
MIN_REMEMBERED = 4


def remember(values: Iterable[str]) -> None:
    global _known_re
    with _lock:
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_REMEMBERED} - _known
        if new:
            _known.update(new)
            ordered = sorted(_known, key=len, reverse=True)
            _known_re = re.compile("|".join(re.escape(v) for v in ordered))


def forget_all() -> None:
    """Tests: start from nothing remembered."""
    global _known_re
    with _lock:
        _known.clear()
        _known_re = None


def scrub(text: str) -> str:
    """``text`` with remembered secrets and every secret shape hidden."""
    pattern = _known_re
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return redact_text(text)


def scrub_value(value: Any, key: str = "") -> Any:
    """A log field's value, hidden by its key's name or scrubbed."""
    if key and is_secret_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (dict, list)):
        return _scrub_tree(mask_tree(value, key))
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


def _scrub_tree(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _scrub_tree(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub_tree(v) for v in node]
    return scrub(node) if isinstance(node, str) else node


def structlog_processor(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Hide secrets in every field of a log event (run it after exceptions are formatted)."""
    for k, v in list(event_dict.items()):
        event_dict[k] = scrub_value(v, k if k not in ("event", "exception") else "")
    return event_dict
