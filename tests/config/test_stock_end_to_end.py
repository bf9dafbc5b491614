"""`pybeat test config` says OK (with warnings) for every config Packetbeat's packages install,
and a replay with it writes events once the output is switched to a file on the command line.
Needs the stock processors (add_cloud_metadata, add_docker_metadata, detect_mime_type, ...)."""

from __future__ import annotations

import glob
import subprocess
import sys

import pytest

from tests.conftest import DATA, PCAPS, REPO

STOCK = sorted((DATA / "configs" / "stock").glob("*/*.yml"))


@pytest.mark.parametrize("path", STOCK, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_test_config_says_ok_with_warnings_for_every_stock_config(path, tmp_path):
    cfg = tmp_path / "packetbeat.yml"
    cfg.write_text(path.read_text())
    cfg.chmod(0o600)
    out = subprocess.run([sys.executable, "-m", "pybeat.cli", "test", "config", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip() == "Config OK", out.stderr
    assert "Traceback" not in out.stderr
    # with warnings: each names its key and file:line, and says it has no effect or is skipped
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and all(f"({cfg.name}:" in w and ("no effect" in w or "skipped" in w) for w in warnings), \
        out.stderr


@pytest.mark.parametrize("path", [p for p in STOCK if p.name == "packetbeat.yml"], ids=lambda p: p.parent.name)
def test_a_replay_with_the_stock_config_writes_events(path, tmp_path):
    cfg = tmp_path / "packetbeat.yml"
    cfg.write_text(path.read_text())
    cfg.chmod(0o600)
    out = subprocess.run(
        [sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(PCAPS / "dns_udp_mixed.pcap"), "-t",
         "-E", "output.elasticsearch.enabled=false", "-E", f"output.file.path={tmp_path / 'out'}",
         "--path.data", str(tmp_path / "data"), "--path.logs", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    written = glob.glob(str(tmp_path / "out" / "*.ndjson"))
    assert written and sum(1 for f in written for _ in open(f)) > 0
