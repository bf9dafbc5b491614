"""Agent runs for the delivery tests: configs, an agent subprocess that can be SIGKILLed, an
empty capture, and an independent reader that names each transaction by its content.

Only processes these helpers started are signalled, by their own handle.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from tests.conftest import PCAPS

BULK = PCAPS / "dns_bulk_100k.pcap"
BULK_TRANSACTIONS = 50_000

_STARTED: list[subprocess.Popen[bytes]] = []


def stop_leftovers() -> None:
    """Kill the agents started here that are still running (a test failed before waiting)."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def empty_pcap(path: Path) -> Path:
    """A classic pcap with a header and no packet (a replay that only sends what is queued)."""
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    return path


def config(tmp: Path, outputs: dict[str, Any], disk_queue: bool = True, extra: dict[str, Any] | None = None) -> Path:
    cfg: dict[str, Any] = {
        "packetbeat.interfaces.device": "lo",
        "packetbeat.protocols": [{"type": "dns", "ports": [53]}],
        "logging.to_files": False,
        "logging.level": "info",
        "logging.metrics.enabled": False,
        **outputs,
    }
    if disk_queue:
        cfg["queue.disk"] = {"max_size": "1GB"}
    cfg.update(extra or {})
    path = tmp / f"pybeat-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


class Agent:
    """``pybeat run`` in a subprocess (stderr to a log file)."""

    def __init__(self, cfg: Path, data: Path, capture: Path | None, *args: str):
        self.log = cfg.with_suffix(f".{time.monotonic_ns()}.log")
        cmd = [sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "--path.data", str(data), "-e",
               "--strict.perms", "false", *args]
        if capture is not None:
            cmd += ["-I", str(capture), "-t"]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=cfg.parent)
        _STARTED.append(self.proc)
        self.stdout = b""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def term(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"agent did not finish within {timeout}s; log: {self.tail()}") from None
        self.stdout = out or b""
        return self.proc.returncode

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def key(doc: dict[str, Any]) -> str:
    """A transaction's identity: its document without what differs between runs."""
    doc = dict(doc)
    doc.pop("@metadata", None)
    agent = dict(doc.get("agent") or {})
    agent.pop("ephemeral_id", None)
    agent.pop("id", None)  # (each test run has its own path.data)
    doc["agent"] = agent
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def keys_of_lines(lines: Iterable[bytes]) -> list[str]:
    return [key(json.loads(line)) for line in lines if line.strip()]


def reference_keys(tmp: Path) -> set[str]:
    """Every transaction of the bulk capture, from a plain run into the file output."""
    out = tmp / "reference"
    cfg = config(tmp, {"output.file": {"path": str(out), "filename": "ref", "rotate_every_kb": 1 << 20}},
                 disk_queue=False)
    agent = Agent(cfg, tmp / "ref-data", BULK)
    assert agent.wait(300) == 0, agent.tail()
    lines = [x for f in sorted(out.glob("*.ndjson")) for x in f.read_bytes().splitlines()]
    keys = set(keys_of_lines(lines))
    assert len(lines) == len(keys) == BULK_TRANSACTIONS
    return keys


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stats(port: int) -> dict[str, Any]:
    """The agent's /stats (nested), or {} while it does not answer."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as r:
            return dict(json.loads(r.read()))
    except (OSError, ValueError):
        return {}


def queued_on_disk(port: int) -> int:
    """Events the running agent's disk queue has written (synced) so far."""
    node: Any = stats(port)
    for part in ("pipeline", "queue", "disk", "events_written"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, int) else 0


def wait_for(predicate: Any, timeout: float, poll: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


def lines_in(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0


def private(path: Path) -> bool:
    return (os.stat(path).st_mode & 0o077) == 0
