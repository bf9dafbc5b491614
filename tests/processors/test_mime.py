"""detect_mime_type: libbeat's mime.Detect test vectors, Go's http.DetectContentType rules,
and the processor's keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pybeat.processors.mime import detect, sniff
from tests.processors.support import ev, make

H = bytes.fromhex


@pytest.mark.parametrize("body,expected", [  # libbeat/mime/mime_test.go
    ("<html>Test</html>", "text/html; charset=utf-8"),
    (H("4d5a90000300000004000000ffff"), "application/vnd.microsoft.portable-executable"),
    (H("7f454c460101010000000000000000000300030001000000f0dc01003400000080a318000000000034002000080028001e001d0001"),
     "application/x-executable"),
    (H("cffaedfe0700000103000000020000001000000058050000850020000000000019000000480000005f5f504147455a45524f"),
     "application/x-mach-binary"),
    ("{}", "application/json"),
    ("<test></test>", "text/xml"),
    ("Hello world!", "text/plain; charset=utf-8"),
    (H("89504e470d0a1a0a0000000d494844520000025800000258080200000031040f8b0000000467414d410000b18f0bfc610500"),
     "image/png"),
    (b"\x00\x00", ""),  # detect_mime_type_test.go: no match, nothing written
    ("hello world!", "text/plain; charset=utf-8"),
])
def test_libbeat_vectors(body, expected):
    assert detect(body) == expected


@pytest.mark.parametrize("data,expected", [  # Go's net/http sniff_test.go cases
    (b"", "text/plain; charset=utf-8"),
    (b"\n <!DOCTYPE HTML><html>", "text/html; charset=utf-8"),
    (b"  <html>", "text/html; charset=utf-8"),
    (b"<HtMl><bOdY>blah blah blah</body></html>", "text/html; charset=utf-8"),
    (b"<!-- comment -->", "text/html; charset=utf-8"),
    (b"\n<?xml!", "text/xml; charset=utf-8"),
    (b"\xfe\xff\x00\x00", "text/plain; charset=utf-16be"),
    (b"\xff\xfe\x00\x00", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf\x00", "text/plain; charset=utf-8"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a...", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wave"),
    (b"\x1f\x8b\x08\x00", "application/x-gzip"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom<\x06t\xbfmdat", "video/mp4"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video/mp4"),
    (b"\x00\x01\x02\x03", "application/octet-stream"),
])
def test_go_http_sniffing(data, expected):
    assert sniff(data) == expected


def test_the_processor_writes_target_and_metadata_targets():
    p = make("detect_mime_type", {"field": "http.request.body.content", "target": "http.request.mime_type"})
    out = p.run(ev({"http": {"request": {"body": {"content": "{\"a\": 1}"}}}}))
    assert out.fields["http"]["request"]["mime_type"] == "application/json"
    meta = make("detect_mime_type", {"field": "foo.bar.baz", "target": "@metadata.field"}).run(
        ev({"foo.bar.baz": "hello world!"}))
    assert meta.meta == {"field": "text/plain; charset=utf-8"} and meta.fields == {"foo.bar.baz": "hello world!"}


def test_missing_empty_or_non_string_fields_are_left_alone():
    p = make("detect_mime_type", {"field": "body", "target": "mime"})
    for fields in ({}, {"body": ""}, {"body": 12}, {"body": {"a": 1}}):
        assert p.run(ev(dict(fields))).fields == fields


def test_both_keys_are_required():
    with pytest.raises(ValidationError):
        make("detect_mime_type", {"field": "body"})
