"""add_id and fingerprint: libbeat's test vectors byte for byte, Elasticsearch's id layout, and
a real Elasticsearch node: a replay sent twice with ``fingerprint`` into ``@metadata._id``
leaves one document per transaction, the second pass counted as duplicates."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pybeat.processors.ids import EsIdGenerator, go_value, xxh64
from tests.conftest import PCAPS, REPO, need
from tests.processors.support import ev, make


def fp(settings: dict, fields: dict | None = None, meta: dict | None = None, ts_ns: int | None = None):
    e = ev(fields, meta)
    if ts_ns is not None:
        e.timestamp_ns = ts_ns
    return make("fingerprint", settings).run(e)


@pytest.mark.parametrize("settings,fields,ts,want", [  # libbeat fingerprint_test.go TestWithConfig
    ({"fields": ["message"]}, {"message": "hello world"}, 1635443183,
     "50110bbfc1757f21caacc966b33f5ea2235c4176739447e0b3285dec4e1dd2a4"),
    ({"fields": ["message"]}, {"message": 'test message "hello world"'}, 1635443183,
     "14a0364b79acbe4c78dd5e77db2c93ae8c750518b32581927d50b3eef407184e"),
    ({"fields": ["@timestamp", "message"]}, {"message": 'test message "hello world"'}, 1635443183,
     "081da76e049554943843b83948ac83ab7aa79fd2849331813e02042586021c26"),
])
def test_beats_config_vectors(settings, fields, ts, want):
    assert fp(settings, fields, ts_ns=ts * 1_000_000_000).fields["fingerprint"] == want


def test_metadata_source_and_target():
    out = fp({"fields": ["@metadata.message"], "target_field": "@metadata.fingerprint"}, {},
             {"message": "hello world"})
    assert out.meta == {"message": "hello world",
                        "fingerprint": "1a3fe8251076ed8de5fd99ce529d2b9971c54851d4d45f5a576bed91d0cc4202"}
    assert out.fields == {}


@pytest.mark.parametrize("method,want", [  # TestHashMethods
    ("md5", "4c45df4792f3ef850c928ec5f5232538"),
    ("sha1", "22f76427d626516d3f7a05785165b99617683b22"),
    ("sha256", "1208288932231e313b369bae587ff574cd3016a408e52e7128d7bee752674003"),
    ("sha384", "295adfe0bc03908948e4b0b6a54f441767867e426dda590430459c8a147fbba242a38cba282adee78335b9e08877b86c"),
    ("sha512", "f50ad51b63c92a0ed0c910527119b81806f3110f0afaa1dcb93506a78371ea761e50c0fc09b08c441d832dd2da1b45e5d8361adfb240e1fffc2695122a23e183"),
    ("xxhash", "37bc50682fba6686"),
])
def test_beats_hash_method_vectors(method, want):
    out = fp({"fields": ["field1", "field2"], "method": method}, {"field1": "foo", "field2": "bar", "unused_field": "baz"})
    assert out.fields["fingerprint"] == want


@pytest.mark.parametrize("fields", [["field1", "nested.field"], ["nested.field", "field1"],
                                    ["nested.field", "field1", "nested.field"]])
def test_field_order_and_duplicates_do_not_matter(fields):  # TestSourceFields
    out = fp({"fields": fields}, {"field1": "foo", "field2": "bar", "nested": {"field": "qux"}, "unused_field": "baz"})
    assert out.fields["fingerprint"] == "3d51237d384215a6e731f2cc67ead6d7d9a5138377897c8f542a915be3c25bcf"


@pytest.mark.parametrize("encoding,want", [("hex", "8934ca639027aab1ee9f3944d4d6bd1e"),
                                           ("base32", "RE2MUY4QE6VLD3U7HFCNJVV5DY======"),
                                           ("base64", "iTTKY5AnqrHunzlE1Na9Hg==")])
def test_beats_encoding_vectors(encoding, want):
    out = fp({"fields": ["field2", "nested.field"], "method": "md5", "encoding": encoding},
             {"field1": "foo", "field2": "bar", "nested": {"field": "qux"}})
    assert out.fields["fingerprint"] == want


@pytest.mark.parametrize("tz", [timezone.utc, timezone(timedelta(hours=-8)), timezone(timedelta(hours=5, minutes=30))])
def test_times_hash_in_utc(tz):  # TestConsistentHashingTimeFields
    t = datetime(2019, 10, 29, tzinfo=timezone.utc).astimezone(tz)
    assert fp({"fields": ["timestamp"]}, {"timestamp": t}).fields["fingerprint"] == \
        "4534d56a673c2da41df32db5da87cf47e639e84fe82907f2c015c8dfcac5d4f5"


def test_target_field_and_ignore_missing():  # TestTargetField, TestIgnoreMissing
    want = "4cf8b768ad20266c348d63a6d1ff5d6f6f9ed0f59f5c68ae031b78e3e04c5144"
    assert fp({"fields": ["field1"], "target_field": "nested.target_field"},
              {"field1": "foo", "nested": {"field": "bar"}}).fields["nested"]["target_field"] == want
    assert fp({"fields": ["field1", "missing_field"], "ignore_missing": True}, {"field1": "foo"}).fields["fingerprint"] == want


def test_missing_and_non_scalar_fields_raise():
    from pybeat.processors._fields import FieldError

    with pytest.raises(FieldError, match="failed to find field \\[missing_field\\]"):
        fp({"fields": ["field1", "missing_field"]}, {"field1": "foo"})
    with pytest.raises(FieldError, match="non-scalar field \\[complex_field\\]"):
        fp({"fields": ["complex_field"]}, {"complex_field": {"child": "qux"}})


@pytest.mark.parametrize("config", [{"fields": []}, {"fields": ["a"], "method": "non_existent"},
                                    {"fields": ["a"], "encoding": "non_existent"}])
def test_invalid_config(config):  # TestInvalidConfig
    with pytest.raises(ValidationError):
        make("fingerprint", config)


def test_go_value_formats():
    assert [go_value(v) for v in (1, -2, 1.5, 3.0, 1e6, 1234567.0, 0.00001, True, None, "x")] == \
        ["1", "-2", "1.5", "3", "1e+06", "1.234567e+06", "1e-05", "true", "<nil>", "x"]


def test_xxh64_vectors():
    assert [xxh64(d) for d in (b"", b"a", b"abc")] == [0xEF46DB3751D8E999, 0xD24EC4F1A98C6E5B, 0x44BC2CF5AD770999]
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1


def test_add_id_is_elasticsearch_time_based_uuid():
    clock = iter([0x0102030405AA, 0x0102030405AA, 0x0102030405A0])
    gen = EsIdGenerator(lambda: next(clock), seed=bytes([0x12, 0x34, 0x56]) + b"MACMAC")
    ids = [gen.next_id() for _ in range(3)]
    raw = [base64.urlsafe_b64decode(i) for i in ids]
    assert all(len(i) == 20 and "=" not in i for i in ids)
    # seq 0x123457: byte0 = low byte, byte1 = third byte, byte13 = middle byte; ts bytes as Elasticsearch lays them
    assert raw[0] == bytes([0x57, 0x12, 0x04, 0x03, 0x02, 0x01]) + b"MACMAC" + bytes([0x05, 0x34, 0xAA])
    assert raw[2][14] == 0xAA  # the clock never goes backwards
    p = make("add_id")
    out = p.run(ev({"a": 1}))
    assert len(out.meta["_id"]) == 20 and out.fields == {"a": 1}
    assert make("add_id", {"target_field": "event.id"}).run(ev()).fields["event"]["id"]


# -- a real Elasticsearch node --------------------------------------------------------------------
def _esnode():
    path = REPO / "tests" / "tooling" / "esnode" / "esnode.py"
    spec = importlib.util.spec_from_file_location("esnode", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("esnode", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.integration
def test_fingerprint_id_makes_a_second_delivery_duplicates_not_documents(tmp_path):
    esnode = _esnode()
    need(esnode.java("es7") and esnode.built("es7"),
         "the Elasticsearch node launcher: run tests/tooling/esnode/setup.sh (needs Maven)")
    node = esnode.NodeProcess("es7")
    try:
        url = node.url()
        cfg = tmp_path / "pybeat.yml"
        cfg.write_text(json.dumps({
            "packetbeat.protocols": [{"type": "dns", "ports": [53]}],
            "processors": [{"fingerprint": {
                "fields": ["@timestamp", "source.ip", "source.port", "destination.ip", "destination.port",
                           "network.transport", "dns.id"],
                "target_field": "@metadata._id"}}],
            "output.elasticsearch": {"hosts": [url], "max_retries": 0},
            "logging.to_files": False,
        }))
        cfg.chmod(0o600)
        pcap = PCAPS / "dns_udp_mixed.pcap"
        runs = []
        for _ in range(2):
            r = subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t",
                                "--path.data", str(tmp_path / "data")], capture_output=True, text=True, timeout=300)
            runs.append(r)
        esnode.http_json(f"{url}/packetbeat-*/_refresh", "POST")
        code, body = esnode.http_json(f"{url}/packetbeat-*/_count", "GET")
        assert code == 200
        docs = int(body["count"])
    finally:
        node.close()
    first, second = runs
    assert first.returncode == 0, first.stdout + first.stderr
    assert docs == 118  # every transaction of the capture, once
    summary = second.stdout + second.stderr
    assert f"acked 0, duplicates {docs:,}" in summary, summary
