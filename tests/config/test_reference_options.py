"""Every option Packetbeat's reference configs document, uncommented on its own with the
example value written next to it, passes validation: pybeat acts on it, or accepts it with a
warning that it has no effect. This is the class of configs users have: any Packetbeat 7.x/8.x
``packetbeat.yml`` is the short config with some reference options uncommented."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pybeat.config import ConfigError, load_settings
from pybeat.config.loader import RawConfig, _merge
from pybeat.plugins import load_registry
from tests.conftest import DATA
from tests.config.reference_keys import reference_keys

REFERENCES = sorted((DATA / "configs" / "stock").glob("*/packetbeat.reference.yml"))
#: outputs pybeat does not have: enabling one is an error (events would go nowhere), by design
MISSING_OUTPUTS = ("output.kafka", "output.redis", "output.discard", "output.otelconsumer")
#: options refused on purpose, with the part of the error that says why
REFUSED = {
    "output.elasticsearch.kerberos.": "Kerberos authentication is not supported",
}
# output.elasticsearch.ssl.ca_sha256: "" (the reference's example) is no pin, so it loads; a real
# pin is still refused (tests/elasticsearch/test_es_unit.py::test_config_keys_and_refusals).
#: what an option needs beside it to make sense (a Logstash output needs hosts; a client
#: certificate needs its key)
COMPANIONS = {
    "output.logstash.": {"output.logstash.hosts": ["localhost:5044"]},
    "output.elasticsearch.ssl.certificate": {"output.elasticsearch.ssl.key": "/etc/pki/client/cert.key"},
    "output.elasticsearch.ssl.key": {"output.elasticsearch.ssl.certificate": "/etc/pki/client/cert.pem"},
    "output.logstash.ssl.certificate": {"output.logstash.ssl.key": "/etc/pki/client/cert.key"},
    "output.logstash.ssl.key": {"output.logstash.ssl.certificate": "/etc/pki/client/cert.pem"},
}


def _value(text: str) -> Any:
    if not text:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _options() -> list[tuple[str, str, Any]]:
    out = {}
    for ref in REFERENCES:
        for key, line, text in reference_keys(ref.read_text()):
            if key == "processors" or key.startswith("processors.") or key.startswith(MISSING_OUTPUTS):
                continue  # processors: their own models (the processors' tests); missing outputs: refused
            out.setdefault(key, (f"{ref.parent.name}:{line}", _value(text)))
    return [(k, where, v) for k, (where, v) in sorted(out.items())]


def _config(key: str, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"output": {"console": {}}}
    parts = key.split(".")
    if parts[:2] == ["packetbeat", "protocols"] and len(parts) > 3:
        item: dict[str, Any] = {"type": parts[2]}
        _merge(item, parts[3:], value)
        data["packetbeat"] = {"protocols": [item]}
    elif "*" in parts:
        i = parts.index("*")
        child: dict[str, Any] = {}
        _merge(child, parts[i + 1:], value)
        _merge(data, parts[:i], [child])
    else:
        _merge(data, parts, value)
    for prefix, extra in COMPANIONS.items():
        applies = key.startswith(prefix) or key == prefix.rstrip(".") if prefix.endswith(".") else key == prefix
        if applies and key not in extra:
            for k, v in extra.items():
                _merge(data, k.split("."), v)
    return data


@pytest.fixture(scope="module")
def registry():
    return load_registry()


OPTIONS = _options()


def test_the_references_document_hundreds_of_options():
    assert len(OPTIONS) > 300


@pytest.mark.parametrize("key,where,value", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_a_reference_option_uncommented_alone_is_accepted(key, where, value, registry):
    reason = next((why for prefix, why in REFUSED.items() if key.startswith(prefix)), None)
    try:
        load_settings(RawConfig(_config(key, value)), registry)
    except ConfigError as exc:
        if reason is None or reason not in str(exc):
            pytest.fail(f"{key} = {value!r} (from {where}) refused: {exc}")
    else:
        assert reason is None, f"{key} was expected to be refused ({reason})"
