"""Every code snippet in docs/plugins.md runs as written (the names a snippet says are yours
are given: the small plugins of tests/sdk/toys.py), and the guide names what exists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Callable

import pytest

import pybeat.testing
from pybeat.api import Event
from pybeat.testing import Capture, CliResult, ProtocolHarness, at
from tests.conftest import REPO, need
from tests.sdk import toys
from tests.sdk.test_example_plugin import installed

GUIDE = (REPO / "docs" / "plugins.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", GUIDE, re.S | re.M)


def python_block(starting: str) -> str:
    (block,) = [code for lang, code in BLOCKS if lang == "python" and code.startswith(starting)]
    return block


def run(block: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    return namespace


def test_every_snippet_is_run_by_a_test_here() -> None:
    """A python or toml snippet added to the guide needs its test below."""
    assert [lang for lang, _ in BLOCKS if lang] == ["toml", "python", "python", "python"]


def test_the_entry_point_table_is_valid_toml_naming_a_plugin_group() -> None:
    (block,) = [code for lang, code in BLOCKS if lang == "toml"]
    groups = tomllib.loads(block)["project"]["entry-points"]
    assert set(groups) <= {"pybeat.protocols", "pybeat.outputs", "pybeat.processors", "pybeat.detectors"}
    assert groups["pybeat.protocols"] == {"myproto": "pybeat_myproto.plugin:plugin"}


def test_the_protocol_in_brief_works_as_written() -> None:
    namespace = run(python_block("from pybeat.api import"), {})
    h = ProtocolHarness(namespace["plugin"])
    (event,) = h.udp(b"hello", src=("10.0.0.1", 5000), dst=("10.0.0.2", 10000), ts=at(0))
    assert event.fields["myproto"] == {"size": 5} and event.fields["server"]["port"] == 10000


def test_the_test_kit_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cap = Capture()
    cap.udp(b"PING 9", src=("10.0.0.1", 40002), dst=("10.0.0.2", 7000), ts=at(6))
    cap.write(tmp_path / "capture.pcap")
    output = toys.ListOutput()
    events = [Event(at(i), {"type": "myproto", "n": i}) for i in range(5)]
    namespace = run(python_block("from pybeat.testing import ProtocolHarness"), {
        "my_protocol": toys.ping, "my_output": output, "my_processor": toys.upper, "my_detector": toys.burst,
        "request": b"PING 1", "response": b"PONG 1", "events": events})
    assert namespace["event"].fields["type"] == "ping" and namespace["settled"].acked == 5
    assert namespace["run"].events["acked"] == 5 and namespace["run"].accounted == 5
    assert namespace["h"].stats()["transactions"] == 2  # the pair over UDP; the capture's PING at the flush
    assert len(output.sink) == 15  # publish, close_during_publish, run


def test_the_pybeat_run_fixture_example_passes(pybeat_run: Callable[..., CliResult], tmp_path: Path) -> None:
    need(installed("pybeat-ntp"),
         "the pybeat-ntp example installed as a package (bash tests/tooling/plugins/setup.sh)")
    request = bytes([0x23]) + bytes(39) + (0xE9B5C0A0 << 32).to_bytes(8, "big")  # NTPv4, mode 3
    namespace = run(python_block("from pybeat.testing import Capture"), {
        "CLIENT": ("10.0.0.1", 40000), "SERVER": ("10.0.0.2", 123), "request": request})
    namespace["test_the_cli"](pybeat_run, tmp_path)


def test_every_testing_name_the_guide_uses_exists() -> None:
    used = set(re.findall(r"from pybeat\.testing import ([A-Za-z_, ]+)", GUIDE))
    names = {n.strip() for line in used for n in line.split(",")}
    assert names and all(hasattr(pybeat.testing, n) for n in names)
