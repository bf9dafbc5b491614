"""convert, truncate_fields, replace, dissect and script with Beats' keys and behaviour; the
Beats processors pybeat lacks are refused by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pybeat.config.loader import ConfigError
from pybeat.processors._fields import FieldError
from pybeat.processors.text import convert_value, dissect, parse_tokenizer
from tests.processors.support import ev, make


# -- convert ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("typ,value,want", [  # convert_test.go's conversion table
    ("integer", "100", 100), ("integer", "0x64", 100), ("integer", "-0X64", -100), ("integer", 100.9, 100),
    ("integer", 2**32 + 5, 5), ("long", "9223372036854775807", 9223372036854775807), ("long", True, ValueError),
    ("float", "1.1", 1.1), ("float", 16777217, 16777216.0), ("double", "1.1", 1.1), ("double", "abc", ValueError),
    ("string", 5, "5"), ("string", 1.5, "1.5"), ("string", True, "true"), ("string", None, ValueError),
    ("boolean", "t", True), ("boolean", "FALSE", False), ("boolean", "yes", ValueError), ("boolean", 1, ValueError),
    ("ip", "192.168.1.1", "192.168.1.1"), ("ip", "::1", "::1"), ("ip", "300.1.1.1", ValueError),
    ("integer", "1_000", ValueError), ("integer", " 5", ValueError), ("integer", "99999999999", ValueError),
])
def test_conversions(typ, value, want):
    if want is ValueError:
        with pytest.raises(ValueError):
            convert_value(typ, value)
    else:
        got = convert_value(typ, value)
        assert got == want and type(got) is type(want)


def test_convert_copy_rename_in_place_and_missing():
    base = {"source": {"address": "10.0.0.1", "port": "53"}}
    out = make("convert", {"fields": [{"from": "source.address", "to": "source.ip", "type": "ip"},
                                      {"from": "source.port", "type": "long"}]}).run(ev(base))
    assert out.fields == {"source": {"address": "10.0.0.1", "ip": "10.0.0.1", "port": 53}}
    ren = make("convert", {"fields": [{"from": "a", "to": "b", "type": "integer"}], "mode": "rename"}).run(ev({"a": "7"}))
    assert ren.fields == {"b": 7}
    with pytest.raises(FieldError, match=r"conversion of field \[x\] to type \[long\] failed: field \[x\] is missing"):
        make("convert", {"fields": [{"from": "x", "type": "long"}]}).run(ev({}))
    assert make("convert", {"fields": [{"from": "x", "type": "long"}], "ignore_missing": True}).run(ev({})).fields == {}


def test_convert_fail_on_error_leaves_the_event_untouched_and_false_converts_what_it_can():
    cfg = {"fields": [{"from": "a", "type": "long"}, {"from": "b", "type": "long"}], "tag": "t1"}
    e = ev({"a": "1", "b": "x"})
    with pytest.raises(FieldError, match=r"instance_id=t1: conversion of field \[b\]"):
        make("convert", cfg).run(e)
    assert e.fields == {"a": "1", "b": "x"}
    assert make("convert", {**cfg, "fail_on_error": False}).run(ev({"a": "1", "b": "x"})).fields == {"a": 1, "b": "x"}


# -- truncate_fields ------------------------------------------------------------------------------------------
def test_truncate_fields():
    p = make("truncate_fields", {"fields": ["message", "short"], "max_characters": 5})
    out = p.run(ev({"message": "hello world", "short": "hi"}))
    assert out.fields == {"message": "hello", "short": "hi", "log": {"flags": ["truncated"]}}
    b = make("truncate_fields", {"fields": ["m"], "max_bytes": 4}).run(ev({"m": "aé€x"}))
    assert b.fields["m"] == "aé"  # never half a UTF-8 character
    assert make("truncate_fields", {"fields": ["m"], "max_bytes": 4}).run(ev({"m": "abc"})).fields == {"m": "abc"}
    bad = make("truncate_fields", {"fields": ["n"], "max_bytes": 1}).run(ev({"n": 12}))
    assert bad.fields["error"]["message"].startswith("Failed to truncate fields: value cannot be truncated")
    with pytest.raises(ValidationError):
        make("truncate_fields", {"fields": ["m"], "max_bytes": 1, "max_characters": 1})


# -- replace ----------------------------------------------------------------------------------------------
def test_replace_go_templates():
    p = make("replace", {"fields": [{"field": "file.path", "pattern": "/usr/(?P<rest>.*)", "replacement": "/opt/${rest}"},
                                    {"field": "m", "pattern": "(\\w+)@(\\w+)", "replacement": "$2 at $1 $$ $9"}]})
    out = p.run(ev({"file": {"path": "/usr/lib/x"}, "m": "bob@example"}))
    assert out.fields == {"file": {"path": "/opt/lib/x"}, "m": "example at bob $ "}


def test_replace_missing_and_fail_on_error():
    cfg = {"fields": [{"field": "a", "pattern": "x", "replacement": "y"}, {"field": "gone", "pattern": "x", "replacement": "y"}]}
    out = make("replace", cfg).run(ev({"a": "xx"}))
    assert out.fields["a"] == "xx" and "could not fetch value for key: gone" in out.fields["error"]["message"]
    assert make("replace", {**cfg, "ignore_missing": True}).run(ev({"a": "xx"})).fields == {"a": "yy"}
    assert make("replace", {**cfg, "fail_on_error": False}).run(ev({"a": "xx"})).fields == {"a": "yy"}
    with pytest.raises(ValidationError, match="invalid pattern"):
        make("replace", {"fields": [{"field": "a", "pattern": "(", "replacement": ""}]})


# -- dissect ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tokenizer,text,want", [
    ('"%{key1} - %{key2}"', '"hello - world"', {"key1": "hello", "key2": "world"}),
    ("%{ts} %{+ts} %{level} %{msg}", "Jan 01 INFO started ok", {"ts": "Jan 01", "level": "INFO", "msg": "started ok"}),
    ("%{+name/2} %{+name/1}", "world hello", {"name": "hello world"}),
    ("%{a} %{?skip} %{b}", "1 2 3", {"a": "1", "b": "3"}),
    ("%{a} %{} %{b}", "1 2 3", {"a": "1", "b": "3"}),
    ("%{*k} %{&k}", "user bob", {"user": "bob"}),
    ("%{a->} %{b}", "x     y", {"a": "x", "b": "y"}),
    ("%{n|integer} %{ok|boolean}", "42 true", {"n": 42, "ok": True}),
])
def test_dissect_patterns(tokenizer, text, want):
    prefix, keys = parse_tokenizer(tokenizer)
    assert dissect(prefix, keys, text) == want


def test_dissect_processor_prefix_failure_and_overwrite():
    p = make("dissect", {"tokenizer": "%{client} %{verb}", "field": "message"})
    assert p.run(ev({"message": "10.0.0.1 GET"})).fields["dissect"] == {"client": "10.0.0.1", "verb": "GET"}
    root = make("dissect", {"tokenizer": "%{a}-%{b}", "field": "m", "target_prefix": "", "trim_values": "all"})
    assert root.run(ev({"m": " x - y "})).fields == {"m": " x - y ", "a": "x", "b": "y"}
    bad = ev({"message": "nospace"})
    with pytest.raises(FieldError, match="could not find delimiter"):
        p.run(bad)
    assert bad.fields["log"]["flags"] == ["dissect_parsing_error"]
    quiet = make("dissect", {"tokenizer": "%{a} %{b}", "ignore_failure": True}).run(ev({"message": "x"}))
    assert quiet.fields["log"]["flags"] == ["dissect_parsing_error"]
    with pytest.raises(FieldError, match="cannot override existing key"):
        make("dissect", {"tokenizer": "%{a} %{b}", "target_prefix": ""}).run(ev({"message": "1 2", "a": 0}))
    with pytest.raises(ValidationError):
        make("dissect", {"tokenizer": "no keys"})


# -- script ---------------------------------------------------------------------------------------------
def test_script_expression_uses_the_beats_event_api():
    p = make("script", {"source": '(event.Put("dns.question.len", len(event.Get("dns.question.name"))), '
                                  'event.Tag("long") if event.Get("dns.question.name").count(".") > params["dots"] else None)',
                        "params": {"dots": 2}})
    out = p.run(ev({"dns": {"question": {"name": "a.b.c.example.com"}}}))
    assert out.fields["dns"]["question"]["len"] == 17 and out.fields["tags"] == ["long"]
    drop = make("script", {"source": 'event.Get("type") != "dns"'})
    assert drop.run(ev({"type": "dns"})) is None and drop.run(ev({"type": "icmp"})) is not None
    cancel = make("script", {"source": "event.Cancel()"})
    assert cancel.run(ev({})) is None


def test_script_exceptions_tag_the_event_and_raise():
    p = make("script", {"source": 'event.Get("missing").lower()'})
    e = ev({})
    with pytest.raises(AttributeError):
        p.run(e)
    assert e.fields["tags"] == ["_python_exception"]


@pytest.mark.parametrize("source", [
    "__import__('os').system('id')", "event._event", "().__class__.__mro__", "open('/etc/passwd')",
    "'{0.__class__}'.format(event)", "(lambda: 1)()", "[x for x in ().__class__.__bases__]", "exec('1')",
    "event.Get.__globals__",
])
def test_script_sandbox_refuses_escapes(source):
    with pytest.raises(ValidationError):
        make("script", {"source": source})


def test_javascript_is_refused_clearly():
    with pytest.raises(ValidationError, match="no JavaScript engine"):
        make("script", {"lang": "javascript", "source": "function process(event) {}"})


# -- Beats processors pybeat lacks ------------------------------------------------------------------------
def test_unsupported_beats_processors_are_refused_by_name(tmp_path):
    from pybeat.config import load, load_settings
    from pybeat.plugins import load_registry

    cfg = tmp_path / "pybeat.yml"
    cfg.write_text("packetbeat.protocols:\n  - type: dns\n    ports: [53]\nprocessors:\n"
                   "  - decode_json_fields: {fields: [message]}\n  - rate_limit: {limit: 10/m}\n"
                   "output.file.path: /tmp/x\n")
    with pytest.raises(ConfigError) as err:
        load_settings(load(str(cfg), env={}), load_registry())
    text = str(err.value)
    assert "processors.0.decode_json_fields" in text and "pybeat.yml:5" in text
    assert "the Beats processor decode_json_fields is not supported by pybeat" in text
    assert "the Beats processor rate_limit is not supported by pybeat" in text
