"""The configs the packages install are valid: /etc/pybeat/pybeat.yml (Linux) and the Windows
zip's pybeat.yml, checked with `pybeat test config` as a site would."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PYBEAT = [sys.executable, "-m", "pybeat.cli"]

def check_config(path: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYBEAT, "test", "config", "-c", path, "--strict.perms=false"], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=60)

def test_linux_config_is_valid() -> None:
    """packaging/linux/pybeat.yml (DNS on every interface, af_packet, file output in /var/lib/pybeat) passes."""
    proc = check_config("packaging/linux/pybeat.yml")
    assert proc.returncode == 0 and proc.stdout.strip() == "Config OK", proc.stderr
    text = (REPO / "packaging/linux/pybeat.yml").read_text()
    assert "path: /var/lib/pybeat/events" in text and "type: dns" in text

def test_windows_config_is_valid() -> None:
    """packaging/windows/pybeat.yml (Npcap, file output under %ProgramData%) passes."""
    proc = check_config("packaging/windows/pybeat.yml", {"ProgramData": r"C:\ProgramData"})
    assert proc.returncode == 0 and proc.stdout.strip() == "Config OK", proc.stderr
