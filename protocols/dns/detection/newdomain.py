"""dns_new_domain: registered domains this agent has never seen, after a learning period.

Every registered domain seen is remembered (``max_tracked``, least recently seen evicted and
counted) with the packet time it was last seen, and persisted under ``path.data``
(``detection/dns-domains.json``, 0600) when the run ends, so a restart does not forget. The
learning period runs on packet time from the first event the agent ever saw (persisted too).
Alerts are capped per window; the rest are counted (``new_domain.suppressed``).

A replay split across processes: each worker loads every state file (``dns-domains.json``
and the workers' ``dns-domains-w<i>.json``, merged) and writes its own ``-w<i>`` file; a run
in one process folds the worker files into ``dns-domains.json`` and removes them. Within one
split run, a domain new to the clients of two workers alerts in each of them (each worker
sees its own clients only).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Callable

from pybeat.api import Event

from .alerts import alert
from .config import NewDomainConfig
from .view import TxnView

__all__ = ["NewDomainDetector", "STATE_NAME"]

STATE_NAME = "dns-domains"
_REFRESH_NS = 3600 * 10**9  # last-seen times are kept to the hour (no dict write per event)


class NewDomainDetector:
    def __init__(self, config: NewDomainConfig, emit: Callable[[Event], None], folder: str | None,
                 suffix: str = "", logger: Any = None):
        self.config = config
        self.emit = emit
        self.folder = folder
        self.suffix = suffix
        self.logger = logger
        self.learning_ns = int(config.learning_period * 1e9)
        self.window_ns = int(config.window * 1e9)
        self.allow = tuple(a.strip(".").lower() for a in config.allowlist) + ("arpa", "local")
        #: registered domain -> packet time last seen (ns); insertion order ~ least recently seen
        self.seen: dict[str, int] = {}
        self.learning_start: int | None = None
        self.window_start = 0
        self.window_alerts = 0
        self.counters = {"alerts": 0, "evicted": 0, "suppressed": 0, "learned": 0, "loaded": 0, "load_errors": 0}
        if folder:
            self._load()

    # -- state on disk --------------------------------------------------------------------------

    def _files(self) -> list[str]:
        assert self.folder
        return sorted(glob.glob(os.path.join(self.folder, STATE_NAME + "*.json")))

    def _load(self) -> None:
        for path in self._files():
            try:
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
                start = data.get("learning_start_ns")
                domains = data.get("domains", {})
            except (OSError, ValueError, AttributeError) as exc:
                self.counters["load_errors"] += 1
                if self.logger is not None:
                    self.logger.warning("new-domain state unreadable, ignored", path=path, error=str(exc))
                continue
            if isinstance(start, int) and (self.learning_start is None or start < self.learning_start):
                self.learning_start = start
            if isinstance(domains, dict):
                seen = self.seen
                for rd, last in domains.items():
                    if isinstance(last, int) and last > seen.get(rd, -1):
                        seen[rd] = last
        # least recently seen first, so eviction takes the stalest
        self.seen = dict(sorted(self.seen.items(), key=lambda kv: kv[1]))
        while len(self.seen) > self.config.max_tracked:
            del self.seen[next(iter(self.seen))]
            self.counters["evicted"] += 1
        self.counters["loaded"] = len(self.seen)

    def save(self) -> None:
        if not self.folder:
            return
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        path = os.path.join(self.folder, f"{STATE_NAME}{self.suffix}.json")
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "learning_start_ns": self.learning_start, "domains": self.seen}, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        if not self.suffix:  # one process: the workers' files are folded into this one
            for other in self._files():
                if other != path:
                    try:
                        os.remove(other)
                    except OSError:
                        pass

    # -- per event ------------------------------------------------------------------------------

    def observe(self, v: TxnView) -> None:
        rd = v.msg.registered_domain
        ts = v.ts
        seen = self.seen
        last = seen.get(rd)
        if last is not None:
            if ts - last > _REFRESH_NS:
                del seen[rd]
                seen[rd] = ts
            return
        if not rd or rd == ".":
            return
        if self.learning_start is None:
            self.learning_start = ts
        if rd.endswith(self.allow) and any(rd == a or rd.endswith("." + a) for a in self.allow):
            return
        if len(seen) >= self.config.max_tracked:
            del seen[next(iter(seen))]
            self.counters["evicted"] += 1
        seen[rd] = ts
        if ts - self.learning_start < self.learning_ns:
            self.counters["learned"] += 1
            return
        if ts - self.window_start >= self.window_ns:
            self.window_start = ts
            self.window_alerts = 0
        if self.window_alerts >= self.config.max_alerts_per_window:
            self.counters["suppressed"] += 1
            return
        self.window_alerts += 1
        self.counters["alerts"] += 1
        evidence = {"known_domains": len(seen), "learning_period_s": self.learning_ns / 1e9,
                    "alerts_in_window": self.window_alerts}
        name = v.msg.name
        msg = f"Newly observed domain: {v.client_ip} looked up {name}, the first lookup of {rd} this agent has seen"
        self.emit(alert("dns_new_domain", ts, msg, key=(rd,), evidence=evidence, client_ip=v.client_ip,
                        name=name, registered_domain=rd))
