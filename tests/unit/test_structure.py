"""Structural rules of issue 18 that a refactor could silently break: the compiled code reaches no
private attribute of another object (it shares typed state or calls public methods), and no
module reaches into a library's private internals (an upgrade of a dependency must not break
the agent silently)."""

from __future__ import annotations

import re

from tests.conftest import REPO

COMPILED = [
    REPO / "pybeat" / "decode" / "_replay.pyx",
    REPO / "protocols" / "dns" / "_fast.pyx",
    REPO / "protocols" / "dns" / "pairing.py",  # compiled as it is (pairing.pxd)
    REPO / "pybeat" / "flows" / "_fast.pyx",
]

# `obj._name` where obj is not self: another object's private attribute
_PRIVATE = re.compile(r"(?<![\w.])(?!self\b)([A-Za-z_]\w*)\.(_[A-Za-z]\w*)")


def _code(text: str) -> str:
    """The text without docstrings and comments (they may name private code to explain it)."""
    text = re.sub(r'"""(?:.|\n)*?"""', '""', text)
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_compiled_code_reaches_no_private_attribute() -> None:
    """The replay loop, the DNS lane and the pairing table use only public attributes and
    methods of the objects they are given (their own cdef members go through ``self``)."""
    found = []
    for path in COMPILED:
        for no, line in enumerate(_code(path.read_text()).splitlines(), 1):
            found += [f"{path.name}:{no}: {m.group(0)}" for m in _PRIVATE.finditer(line)]
    assert found == []


def test_no_private_internals_of_libraries() -> None:
    """The private names the review found (publicsuffixlist, ssl, elastic-transport) are gone
    from the agent's code, and so is any `import` of a library's underscore module."""
    banned = re.compile(
        r"_countpublic|\._publicsuffix\b|_maxlabel|ssl\._ssl|\._extras\b"
        r"|^\s*(?:from|import)\s+(?:ssl|publicsuffixlist|elastic_transport|orjson|pydantic)\._"
    )
    found = []
    for root in ("pybeat", "protocols", "outputs"):
        for path in sorted((REPO / root).rglob("*.py*")):
            if path.suffix not in (".py", ".pyx", ".pxd"):
                continue
            for no, line in enumerate(_code(path.read_text()).splitlines(), 1):
                if banned.search(line):
                    found.append(f"{path.relative_to(REPO)}:{no}: {line.strip()}")
    assert found == []
