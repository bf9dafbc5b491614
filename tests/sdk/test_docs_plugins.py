"""docs/plugins.md's protocol example runs as written, and the guide names what exists."""

from __future__ import annotations

import re
from typing import Any

import pybeat.testing
from pybeat.testing import ProtocolHarness, at
from tests.conftest import REPO

GUIDE = (REPO / "docs" / "plugins.md").read_text()


def test_the_protocol_in_brief_works_as_written() -> None:
    block = GUIDE.split("A protocol in brief", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    h = ProtocolHarness(namespace["plugin"])
    (event,) = h.udp(b"hello", src=("10.0.0.1", 5000), dst=("10.0.0.2", 10000), ts=at(0))
    assert event.fields["myproto"] == {"size": 5} and event.fields["server"]["port"] == 10000


def test_every_testing_name_the_guide_uses_exists() -> None:
    used = set(re.findall(r"from pybeat\.testing import ([A-Za-z_, ]+)", GUIDE))
    names = {n.strip() for line in used for n in line.split(",")}
    assert names and all(hasattr(pybeat.testing, n) for n in names)
