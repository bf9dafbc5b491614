"""The pytest plugin's fixtures run the real CLI, and what the harness publishes is what a real
run writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from pybeat.api import format_ts
from pybeat.protocols.dns.plugin import plugin as dns
from pybeat.testing import CliResult, ProtocolHarness
from tests.conftest import PCAPS

CAPTURE = PCAPS / "dns_udp_mixed.pcap"
CONFIG = {"packetbeat.protocols": [{"type": "dns", "ports": [53]}]}


def test_pybeat_run_returns_status_events_summary_and_metrics(pybeat_run: Callable[..., CliResult]) -> None:
    result = pybeat_run(CONFIG, CAPTURE)
    assert result.exit_code == 0, result
    assert len(result.events) == result.metrics["output.file.events.acked"] > 0
    assert result.summary.startswith("pybeat summary") and "events" in result.summary
    assert all(doc["type"] == "dns" for doc in result.events)
    assert "started" in result.log_messages("info")


def test_a_config_error_is_a_status_and_a_message(pybeat_run: Callable[..., CliResult]) -> None:
    result = pybeat_run({"packetbeat.protocols": [{"type": "dns", "portz": [53]}]}, CAPTURE)
    assert result.exit_code == 1 and "did you mean 'ports'" in result.stderr and result.events == []


def test_pybeat_cli_runs_any_command(pybeat_cli: Callable[..., "subprocess.CompletedProcess[str]"]) -> None:
    done = pybeat_cli("version")
    assert done.returncode == 0 and done.stdout.startswith("pybeat version")


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("agent", "host", "@metadata", "@timestamp")}


def test_the_harness_publishes_what_a_real_run_writes(pybeat_run: Callable[..., CliResult]) -> None:
    """Same capture, same config: the harness's published events and the CLI's file output
    are the same documents (apart from who ran them)."""
    cli = pybeat_run(CONFIG, CAPTURE)
    h = ProtocolHarness(dns, {"ports": [53]}, published=True)
    h.pcap(CAPTURE)
    assert len(h.published) == len(cli.events)
    for event, doc in zip(h.published, cli.events):
        assert _comparable(event.fields) == _comparable(doc)
        assert format_ts(event.timestamp_ns) == doc["@timestamp"]


def test_the_fixtures_reach_any_project_through_the_entry_point(tmp_path: Path) -> None:
    """A project that installs pybeat gets the fixtures without a conftest of its own."""
    (tmp_path / "test_x.py").write_text(
        "def test_x(pybeat_cli):\n    assert pybeat_cli('version').returncode == 0\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
