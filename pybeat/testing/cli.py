"""Run the real ``pybeat`` command in a subprocess and read back what it did: the exit
status, the events the file output wrote (parsed), the exit summary, the metrics of the run
(from its ``stopped`` log line) and its log.

    result = run_cli({"packetbeat.protocols": [{"type": "ntp", "ports": [123]}]}, "ntp.pcap", workdir)
    assert result.exit_code == 0
    assert result.metrics["ntp.transactions"] == len(result.events)

The run happens in ``workdir`` (its ``--path.home``), in the same Python environment as the
caller, so it finds exactly the plugins installed there. Without an ``output`` section the
config gets ``output.file`` writing into ``workdir/out``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

__all__ = ["CliResult", "pybeat_command", "run_cli", "run_pybeat"]


def pybeat_command() -> list[str]:
    """How to start this environment's ``pybeat``: its console script beside the running
    interpreter, else the interpreter running ``pybeat.cli.main``."""
    script = shutil.which("pybeat", path=os.path.dirname(sys.executable))
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from pybeat.cli import main; sys.exit(main(sys.argv[1:]))"]


@dataclass
class CliResult:
    """A finished ``pybeat`` command."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    workdir: Path
    #: the documents the file output wrote (every ``*.ndjson`` it left), in file and line order
    events: list[dict[str, Any]] = field(default_factory=list)
    #: the exit summary (``pybeat summary`` and what follows), "" if none was printed
    summary: str = ""
    #: the run's metrics, from its ``stopped`` log line (non-zero values only, as logged)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the JSON log lines, parsed
    logs: list[dict[str, Any]] = field(default_factory=list)

    def log_messages(self, level: str | None = None) -> list[str]:
        """The ``event`` texts of the log lines (at ``level`` only, if given)."""
        return [str(rec.get("event", "")) for rec in self.logs if level is None or rec.get("level") == level]

    def __str__(self) -> str:  # what a failed assertion shows
        return (f"pybeat {' '.join(self.args)} -> {self.exit_code}\n--- stdout\n{self.stdout[-3000:]}"
                f"\n--- stderr\n{self.stderr[-3000:]}")


def run_pybeat(args: Sequence[str], workdir: str | Path, *, timeout: float = 120.0,
               env: Mapping[str, str] | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Any ``pybeat`` command (``["plugins"]``, ``["test", "config", "-c", path]``) in ``workdir``."""
    merged = dict(os.environ)
    merged.update(env or {})
    merged.setdefault("PYTHONWARNINGS", "default")
    return subprocess.run([*pybeat_command(), *args], cwd=str(workdir), capture_output=True, text=True,
                          timeout=timeout, env=merged, input=input.decode() if input is not None else None)


def run_cli(
    config: Mapping[str, Any] | str | Path,
    pcap: str | Path,
    workdir: str | Path,
    *,
    args: Sequence[str] = (),
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> CliResult:
    """``pybeat run -c CONFIG -I PCAP -t -e`` in ``workdir``, logging JSON at info level to
    stderr. ``config``: a mapping (written to ``workdir/pybeat.yml``; dotted keys work) or the
    path of a config file. ``args``: more flags (``["-E", "packetbeat.workers=2"]``)."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    if isinstance(config, Mapping):
        data = dict(config)
        if not any(k == "output" or str(k).startswith("output.") for k in data):
            data["output.file"] = {"path": str(work / "out"), "filename": "events"}
        config_path = work / "pybeat.yml"
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)
    else:
        config_path = Path(config).resolve()
    argv = ["run", "-c", str(config_path), "-I", str(Path(pcap).resolve()), "-t", "-e",
            "--path.home", str(work), "-E", "logging.level=info", *args]
    before = _ndjson_files(work)
    done = run_pybeat(argv, work, timeout=timeout, env=env)
    result = CliResult(argv, done.returncode, done.stdout, done.stderr, work)
    result.logs = _json_lines(done.stderr)
    for rec in result.logs:
        if rec.get("event") == "stopped" and isinstance(rec.get("metrics"), dict):
            result.metrics = rec["metrics"]
    for text in (done.stdout, done.stderr):
        at = text.find("pybeat summary")
        if at >= 0:
            result.summary = text[at:].strip()
            break
    written = [p for p in _ndjson_files(work) if p not in before]
    for key, value in result.metrics.items():  # an output.file path outside the work folder
        if key.endswith(".location") and isinstance(value, str) and value.endswith(".ndjson"):
            path = Path(value) if os.path.isabs(value) else work / value
            if path.exists() and path not in written:
                written.append(path)
    for path in written:
        result.events += _json_lines(path.read_text(encoding="utf-8"), strict=True)
    return result


def _ndjson_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.ndjson") if p.is_file() and "logs" not in p.relative_to(root).parts)


def _json_lines(text: str, strict: bool = False) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            if strict and line.strip():
                raise AssertionError(f"not a JSON document: {line[:200]!r}")
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            if strict:
                raise
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out
