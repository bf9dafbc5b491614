"""Helpers for the Elasticsearch/OpenSearch tests: ``need`` from the suite's conftest, the
node launcher helper, event builders and an in-process pipeline runner.

A plain module (not a conftest) so test files can import it by name; pytest puts this folder
on sys.path because the test folders have no ``__init__.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
TOOLING = TESTS / "tooling" / "esnode"

_spec = importlib.util.spec_from_file_location("_pybeat_tests_root_conftest", TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
need = _root.need
need_tool = _root.need_tool
PCAPS: Path = _root.PCAPS
DATA: Path = _root.DATA
IN_CI: bool = _root.IN_CI

if str(TOOLING) not in sys.path:
    sys.path.insert(0, str(TOOLING))
import esnode  # noqa: E402  (tests/tooling/esnode/esnode.py)

__all__ = ["PCAPS", "DATA", "IN_CI", "esnode", "need", "need_tool"]


# -- events and an in-process pipeline -------------------------------------------------------

import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

from pybeat.api import BeatInfo, Event, OutputContext  # noqa: E402
from pybeat.pipeline.pipeline import OutputRunner, Pipeline  # noqa: E402

BEAT = BeatInfo(beat="packetbeat", name="test-agent", hostname="test-host", version="0.1.0",
                agent_id="a1", ephemeral_id="e1")
DOMAINS = ["example.com", "example.org", "corp.example.net", "tunnel.example.test"]


def dns_event(i: int, ts_ns: int, with_id: bool = True) -> Event:
    """A DNS transaction shaped like the agent's, numbered ``i`` (its ``_id`` when ``with_id``)."""
    dom = DOMAINS[i % len(DOMAINS)]
    client = f"10.1.{(i >> 8) & 255}.{i & 255}"
    fields: dict[str, Any] = {
        "type": "dns", "status": "OK",
        "client": {"ip": client, "port": 40000 + i % 20000, "bytes": 40},
        "source": {"ip": client, "port": 40000 + i % 20000, "bytes": 40},
        "server": {"ip": "10.0.0.53", "port": 53, "bytes": 90},
        "destination": {"ip": "10.0.0.53", "port": 53, "bytes": 90},
        "network": {"transport": "udp", "type": "ipv4", "protocol": "dns", "direction": "internal", "bytes": 130},
        "event": {"kind": "event", "category": ["network"], "type": ["connection", "protocol"], "dataset": "dns",
                  "duration": 1_500_000},
        "related": {"ip": [client, "10.0.0.53"]},
        "dns": {"id": i & 0xFFFF, "type": "answer", "op_code": "QUERY", "response_code": "NOERROR",
                "question": {"name": f"h{i}.{dom}", "type": "A", "class": "IN", "registered_domain": dom},
                "answers_count": 1, "resolved_ip": [f"192.0.2.{i % 250 + 1}"],
                "answers": [{"name": f"h{i}.{dom}", "type": "A", "class": "IN", "ttl": "300", "data": f"192.0.2.{i % 250 + 1}"}]},
    }
    return Event(ts_ns + i * 1000, fields, {"_id": f"test-{i}"} if with_id else {})


class _Scoped:
    """What the agent gives an output as ``ctx.metrics``: its counters under output.<name>."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def register(self, namespace: str, provider: Any) -> None:
        self.registry.register("output.elasticsearch" + (f".{namespace}" if namespace else ""), provider)


class Harness:
    """An output runner and pipeline like the agent's, feeding events from a thread."""

    def __init__(self, es: dict[str, Any], setup: dict[str, Any] | None = None, queue_events: int = 8192,
                 logger: Any = None):
        from pybeat.outputs.elasticsearch.plugin import plugin

        import structlog

        from pybeat.fieldtypes import declared_field_types
        from pybeat.monitoring import MetricsRegistry
        from pybeat.protocols.dns.plugin import plugin as dns

        self.cfg = plugin.config_model.model_validate(es)
        self.log = logger or structlog.get_logger("es-test")
        self.metrics = MetricsRegistry()
        self.ctx = OutputContext(beat=BEAT, metrics=_Scoped(self.metrics), logger=self.log, name="elasticsearch",
                                 setup=setup or {}, field_types=declared_field_types([("dns", dns)]))
        group = plugin.create(self.cfg, self.ctx)
        self.runner = OutputRunner("elasticsearch", group, queue_events, self.log)
        self.metrics.register("output.elasticsearch", self.runner.stats)
        self.pipeline = Pipeline(BEAT, [self.runner], min_events=group.batch_size or 1600, flush_timeout=0.2)
        self.produced = 0

    @property
    def stats(self) -> dict[str, int]:
        """The output's counters and the agent's count of its events' outcomes, as the agent
        reports them (``output.elasticsearch.*``, without the prefix)."""
        prefix = "output.elasticsearch."
        return {k[len(prefix):]: v for k, v in self.metrics.snapshot().items() if k.startswith(prefix)}

    def feed(self, events: list[Event], rate_per_s: float | None = None,
             at: dict[int, Callable[[], None]] | None = None) -> None:
        """Publish ``events`` (optionally paced), calling ``at[i]`` before event ``i``."""
        t0 = time.monotonic()
        for i, ev in enumerate(events):
            if at and i in at:
                at[i]()
            self.pipeline.publish(ev)
            self.produced += 1
            if rate_per_s and i % 100 == 0:
                ahead = i / rate_per_s - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            if i % 500 == 0:
                self.pipeline.tick()
        time.sleep(0.25)  # past flush_timeout: hand the last partial batch to the queue now
        self.pipeline.tick()

    def close(self, timeout: float = 120.0) -> bool:
        return self.pipeline.close(timeout)


def count(url: str, index: str = "packetbeat-*", query: dict | None = None) -> int:
    esnode.http_json(f"{url}/{index}/_refresh", "POST")
    code, body = esnode.http_json(f"{url}/{index}/_count", "POST", {"query": query or {"match_all": {}}})
    assert code == 200, body
    assert isinstance(body, dict)
    return int(body["count"])


def in_thread(fn: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def capture_events(pcap: Path, workdir: Path) -> list[Event]:
    """The events the agent makes from a real capture (``pybeat run -I`` into the file output),
    loaded back as Events, each given an ``_id`` (as Beats' ``add_id`` would) so resent events
    show up as counted duplicates rather than as second documents."""
    import json
    import subprocess

    from pybeat.timefmt import parse_ts

    cfg = workdir / "decode.yml"
    cfg.write_text(json.dumps({
        "packetbeat.interfaces.device": "any",
        "packetbeat.protocols": [{"type": "dns", "ports": [53, 5353]}, {"type": "icmp"}],
        "output.file": {"path": str(workdir / "events"), "filename": "events", "rotate_every_kb": 10_000_000},
        "logging.to_files": False,
    }))
    cfg.chmod(0o600)
    run = subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t",
                          "--strict.perms", "false"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    events: list[Event] = []
    for f in sorted((workdir / "events").glob("*.ndjson")):
        with open(f, "rb") as fh:
            for line in fh:
                import orjson

                doc = orjson.loads(line)
                doc.pop("@metadata", None)
                ts = parse_ts(doc.pop("@timestamp"))
                events.append(Event(ts, doc, {"_id": f"{pcap.stem}-{len(events)}"}))
    return events
