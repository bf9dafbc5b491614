"""Start and stop embedded Elasticsearch 7.17 / OpenSearch 2.19 nodes from pytest fixtures.

The Java launcher (this folder, built by ``setup.sh``) runs one node or a small cluster in one
JVM on free loopback ports and takes ``stop <i>`` / ``start <i>`` / ``quit`` on stdin. This
module wraps it: :class:`NodeProcess` starts the JVM, waits for every node's ``READY`` line and
for the cluster to have all its nodes, exposes their URLs, and kills the JVM on close (closing
stdin first, so the nodes shut down cleanly; SIGKILL if they do not within a few seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = {
    "es7": ("pybeat.nodelauncher.es7.Main", HERE / "es7"),
    "os2": ("pybeat.nodelauncher.os2.Main", HERE / "os2"),
    "os3": ("pybeat.nodelauncher.os3.Main", HERE / "os3"),  # needs Java 21+
}
JAVA17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")
#: Temurin 21 or newer, newest first (setup.sh installs Temurin 21 where there is none)
JAVA21_PLUS = sorted((p for p in Path("/usr/lib/jvm").glob("temurin-*-jdk-amd64/bin/java")
                      if p.parts[-3].split("-")[1].isdigit() and int(p.parts[-3].split("-")[1]) >= 21),
                     key=lambda p: int(p.parts[-3].split("-")[1]), reverse=True)


class LauncherError(RuntimeError):
    pass


def built(engine: str = "es7") -> bool:
    """True when setup.sh has built the launcher for ``engine``."""
    _, mod = ENGINES[engine]
    return (mod / "target" / "classes").is_dir() and (mod / "target" / "lib").is_dir()


def java(engine: str = "es7") -> str | None:
    """The JVM for an engine: Java 17 for ES 7.17 / OpenSearch 2.x, 21+ for OpenSearch 3."""
    if engine == "os3":
        for path in JAVA21_PLUS:
            if path.exists():
                return str(path)
        return None
    if JAVA17.exists():
        return str(JAVA17)
    return shutil.which("java")


def http_json(url: str, method: str = "GET", body: object | None = None, timeout: float = 30.0) -> tuple[int, object]:
    """A tiny HTTP client for test assertions (independent of the output under test)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")


class NodeProcess:
    """One launcher JVM running ``nodes`` nodes of ``engine`` (``es7`` or ``os2``)."""

    def __init__(
        self,
        engine: str = "es7",
        nodes: int = 1,
        settings: dict[str, str] | None = None,
        home: str | None = None,
        heap: str = "512m",
        start_timeout: float = 120.0,
        jvm_options: tuple[str, ...] = ("-XX:+UseParallelGC",),
    ):
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}")
        self.engine = engine
        self.count = nodes
        self._own_home = home is None
        # Node data on tmpfs where there is one: the tests measure the agent, not the disk
        # (translog fsyncs on a shared disk made a node 5x slower here).
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.home = home or tempfile.mkdtemp(prefix=f"pybeat-{engine}-", dir=shm)
        self.http_ports: dict[int, int] = {}
        self.start_ms: dict[int, int] = {}
        self._events: list[str] = []  # READY/STOPPED/FAILED/... lines, in order
        self._cond = threading.Condition()
        self.log: list[str] = []
        main, mod = ENGINES[engine]
        jvm = java(engine)
        if jvm is None:
            raise LauncherError("no java found")
        heap_mb = int(heap.rstrip("m")) * max(1, nodes) if heap.endswith("m") else None
        heap_opt = f"{heap_mb}m" if heap_mb else heap
        cmd = [
            jvm, f"-Xms{heap_opt}", f"-Xmx{heap_opt}", *jvm_options,
            "-Dlog4j2.disable.jmx=true", "-Dlog4j2.level=ERROR",
            "-cp", f"{mod / 'target' / 'classes'}:{mod / 'target' / 'lib' / '*'}",
            main, "--home", self.home, "--nodes", str(nodes), "--cluster", f"pybeat-{engine}-{os.getpid()}",
        ]
        for k, v in (settings or {}).items():
            cmd.append(f"-E{k}={v}")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            for i in range(nodes):
                self._wait_for("READY", i, start_timeout)
            self.wait_nodes(nodes, timeout=start_timeout)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - self.t0

    # -- launcher protocol ------------------------------------------------------------
    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.log.append(line)
            if len(self.log) > 5000:
                del self.log[:1000]
            parts = line.split()
            if parts and parts[0] == "PORTS" and len(parts) >= 4:
                self.http_ports[int(parts[1])] = int(parts[2])
            if parts and parts[0] in ("READY", "STOPPED", "FAILED", "BYE", "ERROR"):
                if parts[0] == "READY" and len(parts) >= 4 and parts[3].endswith("ms"):
                    self.start_ms[int(parts[1])] = int(parts[3][:-2])
                with self._cond:
                    self._events.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait_for(self, word: str, index: int, timeout: float, since: int = 0) -> None:
        """Wait for ``<word> <index>`` among the launcher's lines from position ``since`` on."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._events[since:]:
                    parts = line.split()
                    if len(parts) > 1 and parts[1] == str(index):
                        if parts[0] == word:
                            return
                        if parts[0] == "FAILED":
                            raise LauncherError(f"node {index} of {self.engine} failed: {line}")
                if self.proc.poll() is not None:
                    raise LauncherError(f"launcher exited ({self.proc.returncode}); log tail: {self.log[-30:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LauncherError(
                        f"node {index} of {self.engine}: no {word} within {timeout}s; log tail: {self.log[-20:]}")
                self._cond.wait(min(left, 1.0))

    def _send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    # -- public ---------------------------------------------------------------------
    def url(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.http_ports[index]}"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.count)]

    def stop_node(self, index: int, timeout: float = 60.0) -> None:
        with self._cond:
            mark = len(self._events)
        self._send(f"stop {index}")
        self._wait_for("STOPPED", index, timeout, since=mark)

    def start_node(self, index: int, timeout: float = 120.0) -> None:
        with self._cond:
            mark = len(self._events)
        self._send(f"start {index}")
        self._wait_for("READY", index, timeout, since=mark)

    def wait_nodes(self, n: int, status: str = "yellow", timeout: float = 120.0, via: int | None = None) -> dict:
        """Wait until the cluster has ``n`` nodes and at least ``status``."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for i in ([via] if via is not None else list(self.http_ports)):
                try:
                    code, body = http_json(
                        f"{self.url(i)}/_cluster/health?wait_for_nodes={n}&wait_for_status={status}&timeout=5s",
                        timeout=10,
                    )
                except OSError as exc:
                    last = exc
                    continue
                last = body
                if code == 200 and isinstance(body, dict) and not body.get("timed_out"):
                    return body
            time.sleep(0.5)
        raise LauncherError(f"cluster did not reach {n} nodes/{status} in {timeout}s: {last}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("quit")
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> "NodeProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
