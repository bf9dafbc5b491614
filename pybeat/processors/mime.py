"""``detect_mime_type``: the MIME type of a field's content in ``target``, as libbeat's processor
(keys ``field`` and ``target``, both required).

Detection follows libbeat's ``mime.Detect``: magic numbers first (the h2non/filetype matchers
libbeat uses, on the first 8 KiB; the common ones are here with filetype's MIME names), then the
WHATWG sniffing of Go's ``http.DetectContentType`` (first 512 bytes), then text that is valid
JSON is ``application/json`` and text that parses as XML ``text/xml``. Nothing is written when
the field is missing, not a string, empty, or when only "some bytes" can be said
(``application/octet-stream``).
"""

from __future__ import annotations

from typing import Any, Callable

from pybeat.api import Event, PluginConfig, ProcessorContext

from ._fields import get_value, put_value

__all__ = ["detect", "sniff", "magic"]


# -- magic numbers (h2non/filetype's matchers and MIME names) -------------------------------------
def _at(buf: bytes, off: int, sig: bytes) -> bool:
    return buf[off:off + len(sig)] == sig


def _mp4(b: bytes) -> bool:
    return len(b) > 11 and b[4:8] == b"ftyp" and b[8:12] in (
        b"avc1", b"dash", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"isom", b"mmp4", b"mp41", b"mp42",
        b"mp4v", b"mp71", b"MSNV", b"NDAS", b"NDSC", b"NSDC", b"NSDH", b"NDSM", b"NDSP", b"NDSS", b"NDXC",
        b"NDXH", b"NDXM", b"NDXP", b"NDXS", b"F4V ", b"F4P ")


def _elf(b: bytes) -> bool:
    return len(b) > 52 and b[:4] == b"\x7fELF"


def _macho(b: bytes) -> bool:
    return len(b) >= 4 and b[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                                     b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def _tar(b: bytes) -> bool:
    return len(b) > 261 and b[257:262] == b"ustar"


#: (MIME, matcher) in filetype's order (images, video, audio, fonts, documents, archives, applications).
_MAGIC: list[tuple[str, Callable[[bytes], bool]]] = [
    ("image/jpeg", lambda b: _at(b, 0, b"\xff\xd8\xff")),
    ("image/png", lambda b: _at(b, 0, b"\x89PNG")),
    ("image/gif", lambda b: _at(b, 0, b"GIF8")),
    ("image/webp", lambda b: _at(b, 8, b"WEBP")),
    ("image/x-canon-cr2", lambda b: (_at(b, 0, b"II*\x00") or _at(b, 0, b"MM\x00*")) and _at(b, 8, b"CR")),
    ("image/tiff", lambda b: _at(b, 0, b"II*\x00") or _at(b, 0, b"MM\x00*")),
    ("image/bmp", lambda b: _at(b, 0, b"BM")),
    ("image/vnd.adobe.photoshop", lambda b: _at(b, 0, b"8BPS")),
    ("image/vnd.microsoft.icon", lambda b: _at(b, 0, b"\x00\x00\x01\x00")),
    ("video/mp4", _mp4),
    ("video/x-matroska", lambda b: _at(b, 0, b"\x1a\x45\xdf\xa3") and b"matroska" in b[:4096]),
    ("video/webm", lambda b: _at(b, 0, b"\x1a\x45\xdf\xa3")),
    ("video/quicktime", lambda b: _at(b, 4, b"ftypqt") or _at(b, 4, b"moov")),
    ("video/x-msvideo", lambda b: _at(b, 0, b"RIFF") and _at(b, 8, b"AVI")),
    ("video/x-ms-wmv", lambda b: _at(b, 0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")),
    ("video/mpeg", lambda b: len(b) > 3 and b[:3] == b"\x00\x00\x01" and 0xB0 <= b[3] <= 0xBF),
    ("video/x-flv", lambda b: _at(b, 0, b"FLV\x01")),
    ("audio/midi", lambda b: _at(b, 0, b"MThd")),
    ("audio/mpeg", lambda b: _at(b, 0, b"ID3") or (len(b) > 1 and b[0] == 0xFF and b[1] in (0xFB, 0xF3, 0xF2))),
    ("audio/ogg", lambda b: _at(b, 0, b"OggS")),
    ("audio/x-flac", lambda b: _at(b, 0, b"fLaC")),
    ("audio/x-wav", lambda b: _at(b, 0, b"RIFF") and _at(b, 8, b"WAVE")),
    ("audio/amr", lambda b: _at(b, 0, b"#!AMR\n")),
    ("audio/aiff", lambda b: _at(b, 0, b"FORM") and _at(b, 8, b"AIFF")),
    ("application/font-woff", lambda b: _at(b, 0, b"wOFF") or _at(b, 0, b"wOF2")),
    ("application/font-sfnt", lambda b: _at(b, 0, b"\x00\x01\x00\x00\x00") or _at(b, 0, b"OTTO\x00")),
    ("application/epub+zip", lambda b: _at(b, 0, b"PK\x03\x04") and _at(b, 30, b"mimetypeapplication/epub+zip")),
    ("application/zip", lambda b: _at(b, 0, b"PK") and len(b) > 3 and b[2] in (3, 5, 7) and b[3] in (4, 6, 8)),
    ("application/x-tar", _tar),
    ("application/vnd.rar", lambda b: _at(b, 0, b"Rar!\x1a\x07")),
    ("application/gzip", lambda b: _at(b, 0, b"\x1f\x8b\x08")),
    ("application/x-bzip2", lambda b: _at(b, 0, b"BZh")),
    ("application/x-7z-compressed", lambda b: _at(b, 0, b"7z\xbc\xaf\x27\x1c")),
    ("application/x-xz", lambda b: _at(b, 0, b"\xfd7zXZ\x00")),
    ("application/zstd", lambda b: _at(b, 0, b"\x28\xb5\x2f\xfd")),
    ("application/pdf", lambda b: _at(b, 0, b"%PDF")),
    ("application/vnd.microsoft.portable-executable", lambda b: _at(b, 0, b"MZ")),
    ("application/x-shockwave-flash", lambda b: len(b) > 2 and b[:3] in (b"CWS", b"FWS")),
    ("application/rtf", lambda b: _at(b, 0, b"{\\rtf")),
    ("application/postscript", lambda b: _at(b, 0, b"%!")),
    ("application/vnd.sqlite3", lambda b: _at(b, 0, b"SQLite format 3\x00")),
    ("application/x-google-chrome-extension", lambda b: _at(b, 0, b"Cr24")),
    ("application/vnd.ms-cab-compressed", lambda b: _at(b, 0, b"MSCF") or _at(b, 0, b"ISc(")),
    ("application/vnd.debian.binary-package", lambda b: _at(b, 0, b"!<arch>\ndebian-binary")),
    ("application/x-unix-archive", lambda b: _at(b, 0, b"!<arch>")),
    ("application/x-compress", lambda b: len(b) > 1 and b[0] == 0x1F and b[1] in (0x9D, 0xA0)),
    ("application/x-lzip", lambda b: _at(b, 0, b"LZIP")),
    ("application/x-rpm", lambda b: _at(b, 0, b"\xed\xab\xee\xdb")),
    ("application/x-executable", _elf),
    ("application/dicom", lambda b: _at(b, 128, b"DICM")),
    ("application/x-iso9660-image", lambda b: _at(b, 32769, b"CD001")),
    ("application/x-mach-binary", _macho),
    ("application/wasm", lambda b: _at(b, 0, b"\x00asm\x01\x00\x00\x00")),
    ("application/vnd.android.dex", lambda b: _at(b, 0, b"dex\n")),
    ("application/x-ms-shortcut", lambda b: _at(b, 0, b"\x4c\x00\x00\x00\x01\x14\x02\x00")),
]


def magic(data: bytes) -> str | None:
    head = data[:8192]
    for mime, match in _MAGIC:
        if match(head):
            return mime
    return None


# -- Go's http.DetectContentType (WHATWG MIME sniffing) ---------------------------------------------
_WS = b"\t\n\x0c\r "
_HTML = [b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT", b"<TABLE",
         b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--"]
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_RIFF_MASK = b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff"


def _masked(pattern: bytes, mask: bytes) -> Callable[[bytes], bool]:
    return lambda d: len(d) >= len(pattern) and all((x & m) == p for x, p, m in zip(d, pattern, mask))


def _exact(sig: bytes) -> Callable[[bytes], bool]:
    return lambda d: d.startswith(sig)


#: Go's sniffSignatures after the HTML and XML ones, in Go's order.
_SIGNATURES: list[tuple[Callable[[bytes], bool], str]] = [
    (_exact(b"%PDF-"), "application/pdf"),
    (_exact(b"%!PS-Adobe-"), "application/postscript"),
    (_masked(b"\xfe\xff\x00\x00", b"\xff\xff\x00\x00"), "text/plain; charset=utf-16be"),
    (_masked(b"\xff\xfe\x00\x00", b"\xff\xff\x00\x00"), "text/plain; charset=utf-16le"),
    (_masked(b"\xef\xbb\xbf\x00", b"\xff\xff\xff\x00"), "text/plain; charset=utf-8"),
    (_exact(b"\x00\x00\x01\x00"), "image/x-icon"),
    (_exact(b"\x00\x00\x02\x00"), "image/x-icon"),
    (_exact(b"BM"), "image/bmp"),
    (_exact(b"GIF87a"), "image/gif"),
    (_exact(b"GIF89a"), "image/gif"),
    (_masked(b"RIFF\x00\x00\x00\x00WEBPVP", _RIFF_MASK + b"\xff\xff"), "image/webp"),
    (_exact(b"\x89PNG\x0d\x0a\x1a\x0a"), "image/png"),
    (_exact(b"\xff\xd8\xff"), "image/jpeg"),
    (_exact(b".snd"), "audio/basic"),
    (_masked(b"FORM\x00\x00\x00\x00AIFF", _RIFF_MASK), "audio/aiff"),
    (_exact(b"ID3"), "audio/mpeg"),
    (_exact(b"OggS\x00"), "application/ogg"),
    (_exact(b"MThd\x00\x00\x00\x06"), "audio/midi"),
    (_masked(b"RIFF\x00\x00\x00\x00AVI ", _RIFF_MASK), "video/avi"),
    (_masked(b"RIFF\x00\x00\x00\x00WAVE", _RIFF_MASK), "audio/wave"),
    (lambda d: _go_mp4(d), "video/mp4"),
    (_exact(b"\x1a\x45\xdf\xa3"), "video/webm"),
    (lambda d: len(d) >= 36 and d[34:36] == b"LP", "application/vnd.ms-fontobject"),
    (_exact(b"\x00\x01\x00\x00"), "font/ttf"),
    (_exact(b"OTTO"), "font/otf"),
    (_exact(b"ttcf"), "font/collection"),
    (_exact(b"wOFF"), "font/woff"),
    (_exact(b"wOF2"), "font/woff2"),
    (_exact(b"\x1f\x8b\x08"), "application/x-gzip"),
    (_exact(b"PK\x03\x04"), "application/zip"),
    (_exact(b"Rar!\x1a\x07\x00"), "application/x-rar-compressed"),
    (_exact(b"Rar!\x1a\x07\x01\x00"), "application/x-rar-compressed"),
    (_exact(b"\x00\x61\x73\x6d"), "application/wasm"),
]


def sniff(data: bytes) -> str:
    """``http.DetectContentType``: never fails, ``application/octet-stream`` at worst."""
    data = data[:512]
    start = 0
    while start < len(data) and data[start] in _WS:
        start += 1
    rest = data[start:]
    for sig in _HTML:
        if len(rest) > len(sig) and rest[:len(sig)].upper() == sig and rest[len(sig)] in b" >":
            return "text/html; charset=utf-8"
    if rest[:5] == b"<?xml":
        return "text/xml; charset=utf-8"
    for match, mime in _SIGNATURES:
        if match(data):
            return mime
    if not any(b in _BINARY for b in rest):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _go_mp4(data: bytes) -> bool:
    if len(data) < 12:
        return False
    box = int.from_bytes(data[:4], "big")
    if len(data) < box or box % 4 != 0 or data[4:8] != b"ftyp":
        return False
    for st in range(8, box, 4):
        if st == 12:
            continue  # the minor version
        if data[st:st + 3] == b"mp4":
            return True
    return False


def _encoded_text(data: bytes) -> str | None:
    import json

    try:
        json.loads(data)
        return "application/json"
    except ValueError:
        pass
    text = data.lstrip()
    if text.startswith(b"<"):
        import xml.etree.ElementTree as ET

        try:
            ET.fromstring(text)
            return "text/xml"
        except (ET.ParseError, ValueError):
            pass
    return None


def detect(value: str | bytes) -> str:
    """libbeat's ``mime.Detect``: a MIME type, or ``""`` when nothing can be said."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    found = magic(data)
    if found:
        return found
    net = sniff(data)
    if net.startswith("text/plain"):
        enc = _encoded_text(data)
        if enc:
            return enc
    return "" if net == "application/octet-stream" else net


class DetectMimeTypeConfig(PluginConfig):
    field: str
    target: str


class DetectMimeType:
    def __init__(self, field: str, target: str):
        self.field = field
        self.target = target

    def run(self, event: Event) -> Event:
        value: Any = get_value(event, self.field)
        if not isinstance(value, str) or not value:
            return event
        found = detect(value)
        if found:
            put_value(event, self.target, found)
        return event


class DetectMimeTypePlugin:
    name = "detect_mime_type"
    api_version = "1.0"
    config_model = DetectMimeTypeConfig

    def create(self, config: DetectMimeTypeConfig, ctx: ProcessorContext) -> DetectMimeType:
        return DetectMimeType(config.field, config.target)


detect_mime_type = DetectMimeTypePlugin()
