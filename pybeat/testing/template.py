"""``pybeat new-plugin protocol|output|processor|detector NAME``: a plugin package to start from.

Writes ``pybeat-NAME/`` with a ``pyproject.toml`` registering the plugin under its kind's
entry-point group, ``src/pybeat_NAME/plugin.py`` (a config model, the plugin object with
``api_version``, a small working plugin to replace with yours), and tests written with
``pybeat.testing`` that pass out of the box, ``mypy --strict`` included.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from pybeat.api import API_VERSION

__all__ = ["KINDS", "TemplateError", "write_package"]

#: kind -> entry-point group
KINDS = {
    "protocol": "pybeat.protocols",
    "output": "pybeat.outputs",
    "processor": "pybeat.processors",
    "detector": "pybeat.detectors",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TemplateError(ValueError):
    """The name or the folder cannot be used (the text says why)."""


def write_package(kind: str, name: str, folder: str | Path = ".", taken: set[str] | frozenset[str] = frozenset()
                  ) -> Path:
    """Write the package for a ``kind`` plugin called ``name`` into ``folder/pybeat-<name>``
    (``name`` with ``-`` for ``_``); returns that folder. ``taken``: names already used by
    installed plugins of that kind."""
    if kind not in KINDS:
        raise TemplateError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise TemplateError(f"{name!r} cannot name a plugin: use lower-case letters, digits and _, starting with "
                            "a letter (it is the config key and part of the Python package name)")
    if name in taken:
        raise TemplateError(f"a {kind} plugin named {name!r} is installed already: pick another name")
    root = Path(folder) / f"pybeat-{name.replace('_', '-')}"
    if root.exists():
        raise TemplateError(f"{root} exists already")
    words = {
        "name": name,
        "Name": "".join(part.capitalize() for part in name.split("_")),
        "package": f"pybeat_{name}",
        "dist": f"pybeat-{name.replace('_', '-')}",
        "kind": kind,
        "group": KINDS[kind],
        "api": ".".join(API_VERSION.split(".")[:2]),
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        "src/$package/__init__.py": _INIT,
        "src/$package/py.typed": "",
        "src/$package/plugin.py": _PLUGINS[kind],
        f"tests/test_$name.py": _TESTS[kind],
        "tests/test_typing.py": _TEST_TYPING,
    }
    for rel, text in files.items():
        path = root / Template(rel).substitute(words)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(words), encoding="utf-8")
    return root


_PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "The $name $kind plugin for pybeat"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["pybeat", "pydantic>=2"]  # the config model is a pydantic v2 model

[project.optional-dependencies]
test = ["pytest>=8", "hypothesis>=6.100", "mypy>=1.10"]

# How pybeat finds the plugin: its kind's entry-point group, under the name configs use.
[project.entry-points."$group"]
$name = "$package.plugin:plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
$package = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.mypy]
python_version = "3.11"
strict = true
files = ["src", "tests"]

[[tool.mypy.overrides]]
module = ["pybeat", "pybeat.*"]
follow_imports = "silent"
'''

_README = '''\
# $dist

A $kind plugin for pybeat, started from `pybeat new-plugin $kind $name`. The guide is
`docs/plugins.md` in pybeat's repository; `examples/pybeat-ntp` there is a complete protocol.

```
pip install -e '.[test]'      # registers the plugin: `pybeat plugins` lists $name
python -m pytest              # its tests (pybeat.testing), mypy --strict included
```
'''

_INIT = '''\
"""The $name $kind plugin for pybeat."""

from $package.plugin import plugin

__all__ = ["plugin"]
'''

_TEST_TYPING = '''\
"""The package and its tests pass ``mypy --strict`` (settings: pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pybeat.api

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_strict(tmp_path: Path) -> None:
    env = dict(os.environ)
    # mypy finds an installed pybeat in site-packages; an editable one in its source tree.
    source = Path(pybeat.api.__file__).resolve().parent.parent
    if not str(source).startswith(sysconfig.get_paths()["purelib"]):
        env["MYPYPATH"] = str(source)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
'''

_PROTOCOL = '''\
"""The ``$name`` protocol plugin (entry point ``$group: $name = $package.plugin:plugin``).

A sans-IO analyzer: UDP payloads and their capture times in, one event per request/response
pair out through ``ctx.emit``; timeouts on packet time (``expire``), nothing from the clock.

The message format below is a placeholder to replace with your protocol's: byte 0 says what
the message is (0: a request, 1: a response), bytes 1-2 are a transaction id that a response
repeats.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

from pydantic import Field

from pybeat.api import Analyzer, CommonProtocolConfig, Event, Packet, ProtocolContext, add_notes

__all__ = ["${Name}Analyzer", "${Name}Config", "${Name}Plugin", "plugin"]

NO_RESPONSE = "Request was received without an associated response."
NO_REQUEST = "Response was received without an associated request."


class ${Name}Config(CommonProtocolConfig):
    """``packetbeat.protocols: - type: $name``: the common keys, and this protocol's own."""

    type: str = "$name"
    ports: list[int] = [10000]  # your protocol's port(s)
    #: cap on requests waiting for their response; the oldest is published to make room
    max_pending: int = Field(default=10_000, ge=1)


@dataclass(slots=True)
class _Request:
    ts: int
    src: tuple[str, int]
    dst: tuple[str, int]
    size: int


class ${Name}Analyzer(Analyzer):
    """Called on the capture thread, one packet at a time. Bad bytes are counted (and could be
    events with a note), never an exception."""

    def __init__(self, config: ${Name}Config, ctx: ProtocolContext):
        self.ctx = ctx
        self.timeout_ns = int(config.transaction_timeout * 1e9)
        self.max_pending = config.max_pending
        #: (client, server, transaction id) -> request, oldest first
        self.pending: OrderedDict[tuple[tuple[str, int], tuple[str, int], int], _Request] = OrderedDict()
        self.counters = {"requests": 0, "responses": 0, "unmatched": 0, "malformed": 0}

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        if len(payload) < 3 or payload[0] > 1:
            self.counters["malformed"] += 1
            return
        txid = struct.unpack_from("!H", payload, 1)[0]
        src, dst = (pkt.src_ip, pkt.src_port), (pkt.dst_ip, pkt.dst_port)
        if payload[0] == 0:
            self.counters["requests"] += 1
            if len(self.pending) >= self.max_pending:
                _, oldest = self.pending.popitem(last=False)
                self._publish(oldest, None, 0, [NO_RESPONSE])
            self.pending[(src, dst, txid)] = _Request(pkt.ts_ns, src, dst, len(payload))
            return
        self.counters["responses"] += 1
        request = self.pending.pop((dst, src, txid), None)
        if request is None:
            self.counters["unmatched"] += 1
            self._publish(_Request(pkt.ts_ns, dst, src, 0), pkt.ts_ns, len(payload), [NO_REQUEST])
        else:
            self._publish(request, pkt.ts_ns, len(payload), [])

    def expire(self, now_ns: int) -> None:
        while self.pending:
            request = next(iter(self.pending.values()))
            if now_ns - request.ts < self.timeout_ns:
                break
            self.pending.popitem(last=False)
            self._publish(request, None, 0, [NO_RESPONSE])

    def flush(self, now_ns: int) -> None:
        while self.pending:
            _, request = self.pending.popitem(last=False)
            self._publish(request, None, 0, [NO_RESPONSE])

    def stats(self) -> dict[str, int]:
        return {**self.counters, "pending": len(self.pending)}

    def _publish(self, request: _Request, end_ns: int | None, response_size: int, notes: list[str]) -> None:
        fields = self.ctx.envelope.build(
            "$name", "udp", request.src[0], request.src[1], request.dst[0], request.dst[1],
            request.ts, end_ns, request.size, response_size)
        fields["type"] = "$name"
        fields["status"] = "Error" if notes else "OK"
        fields["$name"] = {"answered": end_ns is not None}
        add_notes(fields, notes)
        self.ctx.emit(Event(request.ts, fields))


class ${Name}Plugin:
    name = "$name"
    api_version = "$api"
    transports = frozenset({"udp"})
    config_model = ${Name}Config

    def create(self, config: ${Name}Config, ctx: ProtocolContext) -> Analyzer:
        return ${Name}Analyzer(config, ctx)

    def fields(self) -> dict[str, str]:
        """The fields the events carry, for the Elasticsearch index template."""
        return {"$name.answered": "boolean"}


plugin = ${Name}Plugin()
'''

_PROTOCOL_TEST = '''\
"""The $name protocol through pybeat's real decoder and envelope (pybeat.testing)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pybeat.testing import Capture, CliResult, ProtocolHarness, at
from $package import plugin

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 10000)


def test_a_request_and_its_response_are_one_event() -> None:
    h = ProtocolHarness(plugin)
    assert h.udp(b"\\x00\\x00\\x07hello", src=CLIENT, dst=SERVER, ts=at(0)) == []
    (event,) = h.udp(b"\\x01\\x00\\x07hi", src=SERVER, dst=CLIENT, ts=at(0.25))
    assert (event.fields["type"], event.fields["status"]) == ("$name", "OK")
    assert event.fields["client"] == {"ip": "10.0.0.1", "port": 40000, "bytes": 8}
    assert event.fields["event"]["duration"] == 250_000_000
    assert h.stats()["pending"] == 0


def test_an_unanswered_request_is_published_after_the_timeout() -> None:
    h = ProtocolHarness(plugin, {"transaction_timeout": "2s"})
    h.udp(b"\\x00\\x00\\x01", src=CLIENT, dst=SERVER, ts=at(0))
    assert h.advance(at(1)) == []
    (event,) = h.advance(at(2.5))
    assert event.fields["status"] == "Error" and event.fields["$name"] == {"answered": False}


def test_garbage_is_counted_not_raised() -> None:
    h = ProtocolHarness(plugin)
    h.udp(b"\\xff", src=CLIENT, dst=SERVER)
    assert h.stats()["malformed"] == 1 and h.events == []


def test_the_pybeat_command_on_a_capture(pybeat_run: Callable[..., CliResult], tmp_path: Path) -> None:
    """The installed plugin, found through its entry point by the real CLI."""
    cap = Capture()
    for i in range(3):
        cap.udp(bytes([0, 0, i]), src=CLIENT, dst=SERVER, ts=at(i))
        cap.udp(bytes([1, 0, i]), src=SERVER, dst=CLIENT, ts=at(i + 0.01))
    result = pybeat_run({"packetbeat.protocols": [{"type": "$name"}]}, cap.write(tmp_path / "test.pcap"))
    assert result.exit_code == 0, result
    assert len(result.events) == 3 and result.metrics["$name.requests"] == 3
'''

_OUTPUT = '''\
"""The ``$name`` output plugin (entry point ``$group: $name = $package.plugin:plugin``).

A placeholder to replace with your destination: events as Beats' JSON lines appended to a
file. The agent owns the queue, batching, retries and backoff; a client settles every event of
every batch it is given (ack, retry, cancel or drop).
"""

from __future__ import annotations

import os
from typing import BinaryIO

from pydantic import Field

from pybeat.api import Batch, Codec, OutputContext, OutputGroup, PluginConfig, PluginSetupError, RetryPolicy

__all__ = ["${Name}Client", "${Name}Config", "${Name}Plugin", "plugin"]


class ${Name}Config(PluginConfig):
    """``output.$name``."""

    #: the file; a relative path is under the agent's data folder (path.data)
    path: str = "$name.ndjson"
    batch_size: int = Field(default=500, ge=1)
    max_retries: int = 3


class ${Name}Client:
    """One client: the agent calls ``publish`` from one thread, ``close`` maybe from another."""

    def __init__(self, path: str, codec: Codec):
        self.path = path
        self.codec = codec
        try:
            self.file: BinaryIO = open(path, "ab")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise PluginSetupError(f"cannot write to {path}: {exc.strerror}") from None

    def publish(self, batch: Batch) -> None:
        lines: list[bytes] = []
        dropped = 0
        for event in batch.events:
            try:
                lines.append(self.codec.encode(event) + b"\\n")
            except (TypeError, ValueError):  # never deliverable: drop it (counted by the agent)
                dropped += 1
        try:
            self.file.write(b"".join(lines))
            self.file.flush()
        except (OSError, ValueError):  # the destination failed: the agent retries with backoff
            batch.retry()
            return
        batch.settle(acked=len(lines), dropped=dropped)

    def close(self) -> None:
        self.file.close()


class ${Name}Plugin:
    name = "$name"
    api_version = "$api"
    config_model = ${Name}Config

    def create(self, config: ${Name}Config, ctx: OutputContext) -> OutputGroup:
        path = os.path.join(ctx.paths.data, config.path)
        if ctx.shard is not None:  # a replay split across processes: one file each
            root, ext = os.path.splitext(path)
            path = f"{root}{ctx.shard.suffix}{ext}"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        client = ${Name}Client(path, Codec(ctx.beat))
        return OutputGroup(clients=[client], batch_size=config.batch_size,
                           retry=RetryPolicy(max_retries=config.max_retries), location=lambda: path)


plugin = ${Name}Plugin()
'''

_OUTPUT_TEST = '''\
"""The $name output driven as the agent drives it (pybeat.testing.OutputHarness)."""

from __future__ import annotations

import json
from pathlib import Path

from pybeat.api import Event, Paths
from pybeat.testing import OutputHarness, at
from $package import plugin


def events(n: int) -> list[Event]:
    return [Event(at(i), {"type": "test", "i": i}) for i in range(n)]


def test_a_batch_is_written_and_acked(tmp_path: Path) -> None:
    h = OutputHarness(plugin, paths=Paths.resolve(str(tmp_path)))
    settled = h.publish(events(3))  # checked: settled exactly once
    h.close()
    assert settled.acked == 3
    lines = (tmp_path / "data" / "$name.ndjson").read_text().splitlines()
    assert [json.loads(line)["i"] for line in lines] == [0, 1, 2]
    assert json.loads(lines[0])["@timestamp"] == "2024-01-01T00:00:00.000Z"


def test_an_event_that_cannot_be_encoded_is_dropped(tmp_path: Path) -> None:
    h = OutputHarness(plugin, paths=Paths.resolve(str(tmp_path)))
    settled = h.publish([Event(0, {"n": 2**70}), *events(1)])
    assert (settled.acked, settled.dropped) == (1, 1)


def test_a_run_through_the_agents_runner_delivers_everything(tmp_path: Path) -> None:
    run = OutputHarness(plugin, {"batch_size": 7}, paths=Paths.resolve(str(tmp_path))).run(events(100))
    assert run.drained and run.events["acked"] == 100 and run.accounted == 100
'''

_PROCESSOR = '''\
"""The ``$name`` processor plugin (entry point ``$group: $name = $package.plugin:plugin``).

Runs on every event of its chain, on the capture thread: one event in, the event (changed) or
None (dropped) out. ``when`` is applied by the agent. A placeholder to replace: it writes a
value into a field.
"""

from __future__ import annotations

from pybeat.api import Event, PluginConfig, Processor, ProcessorContext

__all__ = ["${Name}", "${Name}Config", "${Name}Plugin", "plugin"]


class ${Name}Config(PluginConfig):
    """``processors: - $name: {...}``."""

    field: str = "labels.$name"
    value: str = "seen"


class ${Name}:
    def __init__(self, config: ${Name}Config):
        self.field = config.field
        self.value = config.value

    def run(self, event: Event) -> Event | None:
        event.put(self.field, self.value)
        return event


class ${Name}Plugin:
    name = "$name"
    api_version = "$api"
    config_model = ${Name}Config

    def create(self, config: ${Name}Config, ctx: ProcessorContext) -> Processor:
        return ${Name}(config)


plugin = ${Name}Plugin()
'''

_PROCESSOR_TEST = '''\
"""The $name processor through the agent's chain builder (pybeat.testing.ProcessorHarness)."""

from __future__ import annotations

import pytest

from pybeat.testing import ConfigError, ProcessorHarness
from $package import plugin


def test_it_writes_the_field() -> None:
    assert ProcessorHarness(plugin).run({"type": "dns"}) == {"type": "dns", "labels": {"$name": "seen"}}


def test_when_limits_it() -> None:
    h = ProcessorHarness(plugin, {"value": "x"}, when={"equals": {"type": "dns"}})
    assert h.run({"type": "icmp"}) == {"type": "icmp"}
    assert h.run({"type": "dns"}) == {"type": "dns", "labels": {"$name": "x"}}


def test_a_misspelt_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="did you mean 'value'"):
        ProcessorHarness(plugin, {"valeu": "x"})
'''

_DETECTOR = '''\
"""The ``$name`` detector plugin (entry point ``$group: $name = $package.plugin:plugin``).

Watches the transaction events of the protocols it names, keeps state, emits alerts. Time is
packet time (the events' timestamps, ``expire``'s ``now_ns``), never the clock. A placeholder
to replace: an alert when one client makes ``threshold`` transactions within ``window``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import Field

from pybeat.api import Detector, DetectorContext, Duration, Event, PluginConfig

__all__ = ["${Name}", "${Name}Config", "${Name}Plugin", "plugin"]


class ${Name}Config(PluginConfig):
    """``pybeat.detection.$name``."""

    enabled: bool = True  # the agent runs the detector only when this is true
    threshold: int = Field(default=100, ge=1)
    window: Duration = Field(default=60.0, gt=0)
    #: cap on clients tracked at once (the oldest is forgotten first)
    max_clients: int = Field(default=100_000, ge=1)


class ${Name}(Detector):
    def __init__(self, config: ${Name}Config, ctx: DetectorContext):
        self.ctx = ctx
        self.threshold = config.threshold
        self.window_ns = int(config.window * 1e9)
        self.max_clients = config.max_clients
        self.seen: dict[str, deque[int]] = {}
        self.alerts = 0

    def observe(self, event: Event) -> None:
        client = event.get("client.ip")
        if not isinstance(client, str):
            return
        times = self.seen.pop(client, None) or deque()
        self.seen[client] = times  # most recently seen last
        times.append(event.timestamp_ns)
        while times and event.timestamp_ns - times[0] > self.window_ns:
            times.popleft()
        if len(times) == self.threshold:
            self.alerts += 1
            # An alert as the built-in detectors write theirs (docs/plugins.md, detectors)
            alert: dict[str, Any] = {
                "event": {"kind": "alert", "category": ["network", "intrusion_detection"], "type": ["info"],
                          "dataset": "pybeat.detection"},
                "rule": {"name": "$name", "description": "One client made many transactions in a short time"},
                "client": {"ip": client}, "related": {"ip": [client]},
                "message": f"$name: {client} made {len(times)} transactions in {self.window_ns / 1e9:g} s",
                "$name": {"transactions": len(times), "window_s": self.window_ns / 1e9},
            }
            self.ctx.emit(Event(event.timestamp_ns, alert))
        if len(self.seen) > self.max_clients:
            del self.seen[next(iter(self.seen))]

    def expire(self, now_ns: int) -> None:
        for client in [c for c, t in self.seen.items() if not t or now_ns - t[-1] > self.window_ns]:
            del self.seen[client]

    def stats(self) -> dict[str, int]:
        return {"clients": len(self.seen), "alerts": self.alerts}


class ${Name}Plugin:
    name = "$name"
    api_version = "$api"
    config_model = ${Name}Config
    protocols = frozenset({"dns"})  # whose transaction events it observes

    def create(self, config: ${Name}Config, ctx: DetectorContext) -> Detector:
        return ${Name}(config, ctx)

    def fields(self) -> dict[str, str]:
        return {"$name.transactions": "long", "$name.window_s": "double"}


plugin = ${Name}Plugin()
'''

_DETECTOR_TEST = '''\
"""The $name detector fed transaction events (pybeat.testing.DetectorHarness)."""

from __future__ import annotations

from pybeat.testing import DetectorHarness, at
from $package import plugin


def dns(client: str) -> dict[str, object]:
    return {"type": "dns", "client": {"ip": client}}


def test_a_burst_from_one_client_is_one_alert() -> None:
    h = DetectorHarness(plugin, {"threshold": 3, "window": "10s"})
    alerts = h.observe_all([(at(i), dns("10.0.0.1")) for i in range(5)])
    assert len(alerts) == 1 and alerts[0].fields["$name"]["transactions"] == 3
    assert alerts[0].fields["event"]["kind"] == "alert" and alerts[0].fields["rule"]["name"] == "$name"
    assert h.observe((at(5), dns("10.0.0.2"))) == []


def test_the_window_runs_on_packet_time() -> None:
    h = DetectorHarness(plugin, {"threshold": 3, "window": "1s"})
    assert h.observe_all([(at(i * 2), dns("10.0.0.1")) for i in range(5)]) == []
    h.advance(at(60))
    assert h.stats()["clients"] == 0
'''

_PLUGINS = {"protocol": _PROTOCOL, "output": _OUTPUT, "processor": _PROCESSOR, "detector": _DETECTOR}
_TESTS = {"protocol": _PROTOCOL_TEST, "output": _OUTPUT_TEST, "processor": _PROCESSOR_TEST,
          "detector": _DETECTOR_TEST}
