"""Every key a Beats reference config documents, commented out or not.

A ``packetbeat.reference.yml`` lists each option as a commented line (``#snaplen: 65535``)
under its section; a user uncomments the ones they need. This reads those lines as YAML would
if they were uncommented, and yields ``(dotted key, line number, example value text)`` with
``*`` for list items (``packetbeat.protocols.*.ports``). Prose comments ("# Default: false")
are told apart from keys by shape: a key starts lower-case (or ``_``) and has no spaces.
"""

from __future__ import annotations

import re
from typing import Iterator

_KEY = re.compile(r"^(?P<dash>-\s+)?(?P<key>[a-z_][A-Za-z0-9_.\-/]*|\"[^\"]+\"):(?:\s+(?P<value>.*))?$")


def _split(line: str) -> tuple[int, str] | None:
    """(indent, content) of a line as if it were uncommented; None for blank lines."""
    body = line.rstrip()
    stripped = body.lstrip()
    if not stripped:
        return None
    indent = len(body) - len(stripped)
    if stripped.startswith("#"):
        content = stripped.lstrip("#")
        if content.startswith(" "):  # "# key: v": the space belongs to the comment marker
            content = content[1:]
        inner = len(content) - len(content.lstrip())
        return indent + inner, content.strip()
    return indent, stripped


def reference_keys(text: str) -> Iterator[tuple[str, int, str]]:
    # Open sections: (indent, dotted path, opened by a list item?). A block sequence may sit at
    # the indentation of its key (``protocols:`` then ``- type: dns``).
    stack: list[tuple[int, str, bool]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        split = _split(line)
        if split is None:
            continue
        indent, content = split
        m = _KEY.match(content)
        if m is None:
            continue
        key = m.group("key").strip('"')
        value = (m.group("value") or "").split(" #")[0].strip()
        dash = m.group("dash")
        while stack and (stack[-1][0] > indent or (stack[-1][0] == indent and (stack[-1][2] or not dash))):
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if dash:
            parent = f"{parent}.*" if parent else "*"
            stack.append((indent, parent, True))
            indent += len(dash)
        dotted = f"{parent}.{key}" if parent else key
        yield dotted, lineno, value
        if not value:
            stack.append((indent, dotted, False))
