"""Running the agent with the dns detector on a capture, in this process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pybeat.agent import Agent, Paths, RunOptions
from pybeat.config import load, load_settings
from pybeat.logs import setup_logging
from pybeat.plugins import load_registry

DETECTION = """
pybeat.detection.dns:
  enabled: true
  protected_domains: [example.test, corp.test]
"""


def run(pcap: Path, tmp: Path, detection: str = DETECTION, workers: int = 1, data: Path | None = None,
        extra: str = "") -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(alerts, every document, metrics) of a replay of ``pcap`` with the detector on."""
    out = tmp / "out"
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "pybeat.yml"
    cfg.write_text(
        "packetbeat.protocols:\n  - type: dns\n    ports: [53, 5353]\n"
        f"output.file:\n  path: {out}\n  filename: ev\n  rotate_every_kb: 10485760\n" + detection + extra
    )
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    log = setup_logging(logs_dir=str(tmp / "logs"))
    paths = Paths.resolve(str(tmp), data=str(data) if data else None)
    options = RunOptions(file=str(pcap), fast=True)
    if workers > 1:
        from pybeat.agent import run_sharded

        result = run_sharded(settings, registry, paths, log, options, workers)
    else:
        result = Agent(settings, registry, paths, log, options).run(install_signals=False)
    docs = [json.loads(line) for name in sorted(os.listdir(out)) for line in (out / name).read_text().splitlines()]
    alerts = [d for d in docs if d.get("event", {}).get("kind") == "alert"]
    return alerts, docs, result.metrics


def rules(alerts: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in alerts:
        counts[a["rule"]["name"]] = counts.get(a["rule"]["name"], 0) + 1
    return counts


def ts_ns(stamp: str) -> int:
    from pybeat.api import parse_ts

    return int(parse_ts(stamp))
