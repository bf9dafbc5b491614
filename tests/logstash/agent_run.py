"""Run the agent CLI (``pybeat -c cfg.yml -I capture -t``) with a Logstash output, in a subprocess,
and read back what it reported (the "stopped" log line's metrics, the file output's copy, RSS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import PCAPS, need

__all__ = ["AgentRun", "dns_capture", "run_agent", "stop_leftover_agents"]

#: agent processes started by run_agent; stop_leftover_agents() ends those still running
_STARTED: list[subprocess.Popen[bytes]] = []


def stop_leftover_agents() -> None:
    """Kill the agent processes this module started that are still running (a test failed
    before waiting for its run); only those, by their own handle."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


class AgentRun:
    """A finished (or running) agent subprocess and what it reported."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr_path: Path, file_out: Path | None):
        self.proc = proc
        self.stderr_path = stderr_path
        self.file_out = file_out
        self.rss_samples: list[int] = []
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        while self.proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss_samples.append(int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.05)

    def wait(self, timeout: float) -> "AgentRun":
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"agent did not finish within {timeout}s; log: {self.log_tail()}")
        self._sampler.join(2)
        return self

    def log_tail(self, n: int = 3000) -> str:
        return self.stderr_path.read_text(errors="replace")[-n:]

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    @property
    def metrics(self) -> dict[str, Any]:
        for ev in reversed(self.log_events()):
            if ev.get("event") == "stopped":
                return ev.get("metrics", {})
        raise AssertionError(f"no 'stopped' line in the agent log: {self.log_tail()}")

    def file_lines(self) -> list[bytes]:
        assert self.file_out is not None
        lines: list[bytes] = []
        for f in sorted(self.file_out.glob("*.ndjson")):
            lines += [x for x in f.read_bytes().split(b"\n") if x]
        return lines


def _have_dns() -> bool:
    try:
        import pybeat.protocols.dns.plugin  # noqa: F401
    except ImportError:
        return False
    return True


def dns_capture(fallback: str = "icmp.pcap") -> str:
    """The DNS capture the volume tests replay (the ICMP one until the DNS plugin is installed)."""
    return "dns_udp_mixed.pcap" if _have_dns() else fallback


def run_agent(
    tmp_path: Path,
    logstash: dict[str, Any],
    capture: str = "icmp.pcap",
    loops: int = 1,
    with_file: bool = True,
    extra: dict[str, Any] | None = None,
    wait: float | None = 120.0,
) -> AgentRun:
    """Run ``pybeat -c cfg.yml -I <capture> -t -l <loops>`` with ``output.logstash`` (and an
    ``output.file`` copy of the same events to compare with, unless ``with_file`` is False)."""
    need(PCAPS.is_dir(), f"shared captures at {PCAPS}")
    protocols: list[dict[str, Any]] = [{"type": "icmp"}, {"type": "dhcpv4", "ports": [67, 68]}]
    if _have_dns():
        protocols.insert(0, {"type": "dns", "ports": [53]})
    cfg: dict[str, Any] = {
        "packetbeat.protocols": protocols,
        "output.logstash": logstash,
    }
    file_out = None
    if with_file:
        file_out = tmp_path / f"file-{time.monotonic_ns()}"
        cfg["output.file"] = {"path": str(file_out), "filename": "events", "rotate_every_kb": 1 << 20}
    cfg.update(extra or {})
    cfg_path = tmp_path / f"pybeat-{time.monotonic_ns()}.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    os.chmod(cfg_path, 0o600)
    stderr_path = cfg_path.with_suffix(".log")
    cmd = [sys.executable, "-m", "pybeat.cli", "-c", str(cfg_path), "--path.data", str(tmp_path / "data"),
           "-I", str(PCAPS / capture), "-t", "-l", str(loops), "-e"]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
    _STARTED.append(proc)
    run = AgentRun(proc, stderr_path, file_out)
    if wait is not None:
        run.wait(wait)
    return run
