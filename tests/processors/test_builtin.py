"""The first built-ins (add_fields, drop_fields, rename, copy_fields) with Beats' semantics:
api 1.0 plugins; ignore_missing and fail_on_error are read."""

from __future__ import annotations

from pybeat.plugins import load_registry
from tests.processors.support import ListLogger, ev, make

BUILTINS = ["add_fields", "add_tags", "add_labels", "add_host_metadata", "drop_event", "drop_fields",
            "include_fields", "rename", "copy_fields", "add_cloud_metadata", "add_docker_metadata",
            "add_kubernetes_metadata", "detect_mime_type"]


def test_every_builtin_declares_api_1_0():
    reg = load_registry()
    for name in BUILTINS:
        info = reg.info("processors", name)
        info.load()
        assert info.api_version == "1.0" and not info.legacy, name


def test_rename_refuses_an_existing_target_and_restores_the_event():
    p = make("rename", {"fields": [{"from": "a", "to": "b"}, {"from": "c", "to": "d"}]})
    out = p.run(ev({"a": 1, "c": 2, "d": 3}))
    assert out.fields == {"a": 1, "c": 2, "d": 3, "error": {
        "message": "Failed to rename fields in processor: target field d already exists, drop or rename this field first"}}


def test_rename_without_fail_on_error_keeps_what_worked():
    p = make("rename", {"fields": [{"from": "a", "to": "b"}, {"from": "c", "to": "d"}], "fail_on_error": False})
    assert p.run(ev({"a": 1, "c": 2, "d": 3})).fields == {"b": 1, "c": 2, "d": 3}


def test_rename_missing_source_is_an_error_unless_ignore_missing():
    strict = make("rename", {"fields": [{"from": "x", "to": "y"}]})
    assert strict.run(ev({"a": 1})).fields["error"]["message"].startswith(
        "Failed to rename fields in processor: could not fetch value for key: x")
    lenient = make("rename", {"fields": [{"from": "x", "to": "y"}, {"from": "a", "to": "b"}], "ignore_missing": True})
    assert lenient.run(ev({"a": 1})).fields == {"b": 1}


def test_rename_nested_and_into_metadata():
    p = make("rename", {"fields": [{"from": "dns.id", "to": "@metadata._id"}]})
    out = p.run(ev({"dns": {"id": 7, "x": 1}}))
    assert out.fields == {"dns": {"x": 1}} and out.meta == {"_id": 7}


def test_copy_fields_copies_deeply_and_notes_errors_as_beats():
    p = make("copy_fields", {"fields": [{"from": "src", "to": "dst"}]})
    out = p.run(ev({"src": {"a": [1]}}))
    out.fields["dst"]["a"].append(2)
    assert out.fields["src"] == {"a": [1]}
    again = p.run(ev({"src": 1, "dst": 2}))
    assert again.fields["error"]["message"] == (
        "Failed to copy fields in processor: target field dst already exists, drop or rename this field first")


def test_drop_fields_ignore_missing_and_regexp():
    log = ListLogger()
    p = make("drop_fields", {"fields": ["a.b", "gone", "/^dns\\.answers/", "@timestamp"]}, log)
    out = p.run(ev({"a": {"b": 1, "c": 2}, "dns": {"answers": [1], "answers_count": 1, "id": 3}}))
    assert out.fields == {"a": {"c": 2}, "dns": {"id": 3}}
    p.run(ev({}))
    assert log.at("debug").count("drop_fields: field not found (set ignore_missing: true to silence)") == 2
    quiet = ListLogger()
    make("drop_fields", {"fields": ["gone"], "ignore_missing": True}, quiet).run(ev({}))
    assert quiet.records == []


def test_add_fields_into_metadata():
    out = make("add_fields", {"target": "@metadata", "fields": {"_id": "abc", "pipeline": "p"}}).run(ev({"x": 1}))
    assert out.meta == {"_id": "abc", "pipeline": "p"} and out.fields == {"x": 1}
