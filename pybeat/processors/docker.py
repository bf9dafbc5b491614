"""``add_docker_metadata``: ``container.{id,name,image.name,labels}`` of the Docker container an
event belongs to, as libbeat's processor.

Keys as Beats: ``host`` (``unix:///var/run/docker.sock``; ``tcp://h:p`` or ``http(s)://`` too),
``ssl``, ``match_fields``, ``match_pids`` (``process.pid``, ``process.parent.pid``: the
container is found through ``/proc/<pid>/cgroup``), ``match_source``/``match_source_index``
(a container id in ``log.file.path``), ``match_short_id``, ``cleanup_timeout`` (60s: a container
that is gone is still known that long), ``labels.dedot`` (true), ``hostfs``.

A background thread lists the running containers (``GET /containers/json`` on Docker's API)
every ``refresh`` seconds (pybeat polls where Beats follows Docker's event stream). Where no
Docker API answers, one warning is logged and ``run`` returns at its first line: no cost per
event; the thread keeps trying quietly and says so once Docker answers.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from pybeat.api import Duration, Event, PluginConfig, ProcessorContext, SslConfig

from ._fields import MISSING, get_value, put_value


class DedotConfig(PluginConfig):
    dedot: bool = True


class AddDockerMetadataConfig(PluginConfig):
    host: str = "unix:///var/run/docker.sock"
    ssl: SslConfig | None = None
    match_fields: list[str] = []
    match_pids: list[str] = ["process.pid", "process.parent.pid"]
    match_source: bool = True
    match_source_index: int = 4
    match_short_id: bool = False
    cleanup_timeout: Duration = 60.0
    labels: DedotConfig = DedotConfig()
    hostfs: str = ""
    #: pybeat: how often the container list is read again (Beats follows Docker's events)
    refresh: Duration = 10.0


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    image: str
    labels: dict[str, str]


_CID = re.compile(r"[0-9a-zA-Z_]{64}")


def container_id_from_cgroup(text: str) -> str:
    """The 64-character container id in a process's ``/proc/<pid>/cgroup`` (cgroup v1
    ``/docker/<id>`` and v2 ``.../docker-<id>.scope``), or ``""``."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        m = _CID.search(path)
        if m:
            return m.group(0)
    return ""


class DockerClient:
    """The few Docker API calls the processor makes."""

    def __init__(self, host: str, ssl: SslConfig | None, timeout: float = 5.0):
        self.timeout = timeout
        self.unix: str | None = None
        self.context: Any = None
        if host.startswith("unix://"):
            self.unix = host[len("unix://"):]
            self.base = "http://localhost"
        elif host.startswith("tcp://"):
            self.base = ("https://" if ssl is not None else "http://") + host[len("tcp://"):]
        elif host.startswith(("http://", "https://")):
            self.base = host.rstrip("/")
        else:
            raise ValueError(f"host must be unix://, tcp://, http:// or https://, got {host!r}")
        if self.base.startswith("https://"):
            from ._http import ssl_context

            self.context = ssl_context(ssl)

    def containers(self) -> list[Container]:
        from ._http import request

        resp = request("GET", self.base + "/containers/json", deadline=time.monotonic() + self.timeout,
                       unix_socket=self.unix, context=self.context)
        out = []
        for c in json.loads(resp.body):
            names = c.get("Names") or []
            name = names[0].lstrip("/") if names else ""
            out.append(Container(str(c.get("Id", "")), name, str(c.get("Image", "")), dict(c.get("Labels") or {})))
        return out


def _labels(labels: dict[str, str], dedot: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in labels.items():
        if dedot:
            out[k.replace(".", "_")] = v
        else:  # Beats' safemapstr.Put: dotted keys nest, a clash keeps both under "value"
            node = out
            *parents, leaf = k.split(".")
            for p in parents:
                child = node.get(p)
                if not isinstance(child, dict):
                    child = node[p] = {} if child is None else {"value": child}
                node = child
            if isinstance(node.get(leaf), dict):
                node[leaf]["value"] = v
            else:
                node[leaf] = v
    return out


class AddDockerMetadata:
    def __init__(self, config: AddDockerMetadataConfig, logger: Any = None, client: DockerClient | None = None):
        self.config = config
        self.logger = logger
        self.client = client or DockerClient(config.host, config.ssl)
        self.available = False
        self.lookups = self.misses = self.refreshes = self.refresh_errors = 0
        self._by_id: dict[str, tuple[Container, float]] = {}
        self._by_short: dict[str, str] = {}
        self._pid_cache: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._first = threading.Event()
        self._warned = False
        threading.Thread(target=self._watch, name="add_docker_metadata", daemon=True).start()

    # -- the container list (background) -------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._first.set()
            self._stop.wait(self.config.refresh)

    def refresh(self) -> None:
        try:
            listed = self.client.containers()
        except Exception as exc:
            self.refresh_errors += 1
            if not self._warned and self.logger is not None:
                self.logger.warning("add_docker_metadata: no Docker API; events are not enriched",
                                    host=self.config.host, error=str(exc)[:200])
            self._warned = True
            self.available = bool(self._by_id)
            return
        now = time.monotonic()
        by_id = {cid: entry for cid, entry in self._by_id.items() if now - entry[1] < self.config.cleanup_timeout}
        for c in listed:
            by_id[c.id] = (c, now)
        self._by_short = {cid[:12]: cid for cid in by_id}
        self._by_id = by_id
        self.refreshes += 1
        if not self.available and self._warned and self.logger is not None:
            self.logger.info("add_docker_metadata: connected to Docker", host=self.config.host)
        self.available = True

    def wait_ready(self, timeout: float) -> bool:
        return self._first.wait(timeout)

    def close(self) -> None:
        self._stop.set()

    # -- per event -------------------------------------------------------------------------------
    def _pid_container(self, pid: int) -> str:
        now = time.monotonic()
        hit = self._pid_cache.get(pid)
        if hit is not None and now - hit[1] < 300:
            return hit[0]
        try:
            with open(os.path.join(self.config.hostfs or "/", "proc", str(pid), "cgroup"), encoding="utf-8") as fh:
                cid = container_id_from_cgroup(fh.read())
        except OSError:
            cid = ""
        if len(self._pid_cache) >= 4096:
            self._pid_cache.clear()
        self._pid_cache[pid] = (cid, now)
        return cid

    def run(self, event: Event) -> Event:
        if not self.available:
            return event
        cid = ""
        if self.config.match_source:
            path = get_value(event, "log.file.path")
            if isinstance(path, str):
                parts = path.split(os.sep)
                if 0 <= self.config.match_source_index < len(parts):
                    cid = parts[self.config.match_source_index]
                    put_value(event, "container.id", cid)
        if not cid:
            for f in self.config.match_pids:
                v = get_value(event, f)
                if v is MISSING or isinstance(v, bool):
                    continue
                try:
                    pid = int(v)
                except (TypeError, ValueError):
                    continue
                cid = self._pid_container(pid)
                if cid:
                    put_value(event, "container.id", cid)
                break
        if not cid:
            for f in self.config.match_fields:
                v = get_value(event, f)
                if isinstance(v, str):
                    cid = v
                    break
        if not cid:
            return event
        self.lookups += 1
        entry = self._by_id.get(cid)
        if entry is None and self.config.match_short_id and len(cid) == 12:
            full = self._by_short.get(cid)
            entry = self._by_id.get(full) if full else None
        if entry is None:
            self.misses += 1
            return event
        c = entry[0]
        container = event.fields.get("container")
        if not isinstance(container, dict):
            container = event.fields["container"] = {}
        if c.labels:
            container["labels"] = _labels(c.labels, self.config.labels.dedot)
        container["id"] = c.id
        image = container.get("image")
        if not isinstance(image, dict):
            image = container["image"] = {}
        image["name"] = c.image
        container["name"] = c.name
        return event


class AddDockerMetadataPlugin:
    name = "add_docker_metadata"
    api_version = "1.0"
    config_model = AddDockerMetadataConfig

    def create(self, config: AddDockerMetadataConfig, ctx: ProcessorContext) -> AddDockerMetadata:
        return AddDockerMetadata(config, ctx.logger)


add_docker_metadata = AddDockerMetadataPlugin()
