"""Elastic Cloud settings: ``cloud.id`` and ``cloud.auth``, decoded exactly as libbeat's
``cloudid`` package does, with its error texts.

Owns: turning ``cloud.id`` into the Elasticsearch and Kibana URLs and rewriting the raw
config dict (``output.elasticsearch.hosts``/``username``/``password``, ``setup.kibana.host``).
Never does I/O; the config loader calls :func:`apply_cloud` before validation.
"""

from __future__ import annotations

import base64
import binascii
import string
from dataclasses import dataclass
from typing import Any

__all__ = ["CloudID", "apply_cloud", "decode_cloud_auth", "decode_cloud_id"]

_B64 = set(string.ascii_letters + string.digits + "+/")
# Characters newer Beats refuse inside a component (they would change the URL's meaning).
_FORBIDDEN = "#@?/"


@dataclass(frozen=True)
class CloudID:
    es_url: str
    kibana_url: str
    username: str = ""
    password: str = ""


def _corrupt_at(text: str) -> int:
    """Where Go's decoder would report ``illegal base64 data at input byte N`` (approximately:
    the first character outside the alphabet, else the start of the incomplete last quantum)."""
    for i, ch in enumerate(text.rstrip("=")):
        if ch not in _B64:
            return i
    return len(text) - len(text) % 4


def _split_port(word: str, default: str) -> tuple[str, str]:
    idx = word.rfind(":")
    if idx != -1:
        return word[:idx], word[idx + 1:]
    return word, default


def decode_cloud_id(cloud_id: str) -> tuple[str, str]:
    """``(es_url, kibana_url)`` from a Cloud ID; ValueError with Beats' texts otherwise."""
    encoded = cloud_id[cloud_id.rfind(":") + 1:]  # anything up to the last ':' is a label
    try:
        if any(ch not in _B64 and ch != "=" for ch in encoded) or len(encoded) % 4:
            raise binascii.Error
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise ValueError(
            f"base64 decoding failed on {encoded}: illegal base64 data at input byte {_corrupt_at(encoded)}"
        ) from None
    words = decoded.split("$")
    if len(words) < 3:
        raise ValueError(f"Expected at least 3 parts in {decoded}")
    for word in words[:3]:
        bad = next((ch for ch in word if ch in _FORBIDDEN), None)
        if bad is not None:
            raise ValueError(f"invalid character {bad!r} in cloud id component {word!r}")
    host, port = _split_port(words[0], "443")
    es_id, es_port = _split_port(words[1], port)
    kb_id, kb_port = _split_port(words[2], port)
    return f"https://{es_id}.{host}:{es_port}", f"https://{kb_id}.{host}:{kb_port}"


def decode_cloud_auth(cloud_auth: str) -> tuple[str, str]:
    user, sep, password = cloud_auth.partition(":")
    if not sep:
        raise ValueError("cloud.auth setting doesn't contain `:` to split between username and password")
    return user, password


def parse(cloud_id: str, cloud_auth: str = "") -> CloudID:
    """Both settings decoded, errors worded as libbeat's ``NewCloudID``."""
    try:
        es_url, kb_url = decode_cloud_id(cloud_id)
    except ValueError as exc:
        raise ValueError(f"invalid cloud id '{cloud_id}': {exc}") from None
    user = password = ""
    if cloud_auth:
        try:
            user, password = decode_cloud_auth(cloud_auth)
        except ValueError as exc:
            raise ValueError(f"invalid cloud auth: {exc}") from None
    return CloudID(es_url, kb_url, user, password)


def _enabled_outputs(outputs: Any) -> list[str]:
    if not isinstance(outputs, dict):
        return []
    names = []
    for name, section in outputs.items():
        enabled = section.get("enabled", True) if isinstance(section, dict) else True
        if enabled is False or (isinstance(enabled, str) and enabled.strip().lower() in ("false", "no", "off", "0")):
            continue  # also `enabled: ${VAR:false}`, still a string before validation
        names.append(name)
    return names


def apply_cloud(config: dict[str, Any]) -> None:
    """Rewrite the raw config as libbeat's ``cloudid.OverwriteSettings`` does.

    Reads ``cloud.id``/``cloud.auth`` (nested or dotted keys), then sets
    ``output.elasticsearch.hosts`` to the single Cloud URL, ``setup.kibana.host`` to the Kibana
    URL and, with ``cloud.auth``, ``output.elasticsearch.username``/``password``. An
    ``api_key`` already under ``output.elasticsearch`` is kept (Cloud ID with an API key).
    Raises ValueError with Beats' error texts.
    """
    cloud_value = config.get("cloud")
    cloud: dict[str, Any] = cloud_value if isinstance(cloud_value, dict) else {}
    cloud_id = str(cloud.get("id") or config.get("cloud.id") or "")
    cloud_auth = str(cloud.get("auth") or config.get("cloud.auth") or "")
    if not cloud_id and not cloud_auth:
        return
    if not cloud_id:
        raise ValueError("cloud.auth specified but cloud.id is empty. Please specify both")
    try:
        cid = parse(cloud_id, cloud_auth)
    except ValueError as exc:
        raise ValueError(f"Error decoding cloud.id: {exc}") from None
    outputs = config.get("output")
    for name in _enabled_outputs(outputs):
        if name != "elasticsearch":
            raise ValueError(
                f"The cloud.id setting enables the Elasticsearch output, but you already have the "
                f"{name} output enabled in the config"
            )
    if not isinstance(outputs, dict):
        outputs = config["output"] = {}
    es = outputs.get("elasticsearch")
    if not isinstance(es, dict):
        es = outputs["elasticsearch"] = {}
    es["hosts"] = [cid.es_url]
    if cloud_auth:
        es["username"] = cid.username
        es["password"] = cid.password
    setup = config.get("setup")
    if not isinstance(setup, dict):
        setup = config["setup"] = {}
    kibana = setup.get("kibana")
    if not isinstance(kibana, dict):
        kibana = setup["kibana"] = {}
    kibana["host"] = cid.kibana_url
