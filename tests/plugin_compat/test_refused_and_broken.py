"""Plugins the agent cannot use stay unusable on their own: a plugin written for an API version
this agent cannot serve is refused with a message saying why, an entry point that cannot be
loaded or lacks the interface is reported by name, two plugins with one name are both refused;
every other plugin keeps working, and ``pybeat plugins`` exits non-zero while any is broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybeat.api import API_VERSION
from pybeat.testing import Capture, at, run_cli, run_pybeat
from tests.plugin_compat.support import Installed


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cap = Capture()
    cap.udp(b"GET a", src=("10.7.0.1", 5000), dst=("10.7.0.2", 7070), ts=at(0))
    cap.udp(b"VAL a 1", src=("10.7.0.2", 7070), dst=("10.7.0.1", 5000), ts=at(0.1))
    return cap.write(tmp_path_factory.mktemp("refused") / "kv.pcap")


def rows(stdout: str) -> dict[str, str]:
    return {line.split()[1]: line for line in stdout.splitlines()[1:] if line.strip()}


def test_api_versions_it_cannot_serve_are_refused_with_the_reason(installed: Installed, tmp_path: Path) -> None:
    done = run_pybeat(["plugins"], tmp_path, env=installed.env("future20", "legacy01"))
    assert done.returncode == 1 and "2 plugin(s) cannot be used" in done.stderr
    listed = rows(done.stdout)
    assert f"BROKEN: needs pybeat.api 2.0, newer than this agent's {API_VERSION}: upgrade pybeat" in listed["future_kv"]
    assert "BROKEN: is written for pybeat.api 0.2, which this agent" in listed["past_kv"]
    assert "1.0 made outputs return an OutputGroup" in listed["past_kv"]  # what changed
    assert listed["legacy_kv"].endswith("ok (api 0.1, deprecated)") and listed["dns"].endswith("ok")


def test_a_run_naming_a_refused_plugin_says_why_and_others_run(installed: Installed, tmp_path: Path,
                                                               pcap: Path) -> None:
    env = installed.env("future20", "legacy01")
    refused = run_cli({"packetbeat.protocols": [{"type": "future_kv", "ports": [7070]}]}, pcap, tmp_path / "a", env=env)
    assert refused.exit_code == 1 and refused.events == []
    assert "protocol plugin 'future_kv'" in refused.stderr and "needs pybeat.api 2.0" in refused.stderr
    assert "Traceback" not in refused.stderr
    works = run_cli({"packetbeat.protocols": [{"type": "legacy_kv"}]}, pcap, tmp_path / "b", env=env)
    assert works.exit_code == 0 and len(works.events) == 1, works


def test_broken_entry_points_are_reported_and_the_rest_works(installed: Installed, tmp_path: Path,
                                                             pcap: Path) -> None:
    env = installed.env("broken", "legacy01")
    done = run_pybeat(["plugins"], tmp_path, env=env)
    assert done.returncode == 1 and "3 plugin(s) cannot be used" in done.stderr
    listed = rows(done.stdout)
    assert "BROKEN: import failed: ModuleNotFoundError: No module named 'pybeat_broken_nowhere'" in listed["gone"]
    assert "BROKEN: import failed: RuntimeError: pybeat_broken.explodes cannot be imported" in listed["explodes"]
    assert "BROKEN: does not provide config_model, create" in listed["hollow"]
    # every other plugin is listed as usable (Beats processors pybeat only knows by name: as such)
    others = [row for name, row in listed.items() if name not in ("gone", "explodes", "hollow")]
    assert others and not [row for row in others if "BROKEN" in row or not row.endswith(
        ("ok", "ok (api 0.1, deprecated)", "known name, not supported (using it is a config error)"))]
    works = run_cli({"packetbeat.protocols": [{"type": "legacy_kv"}]}, pcap, tmp_path / "run", env=env)
    assert works.exit_code == 0 and len(works.events) == 1, works
    used = run_cli({"packetbeat.protocols": [{"type": "explodes"}]}, pcap, tmp_path / "used", env=env)
    assert used.exit_code == 1 and "protocol plugin 'explodes'" in used.stderr and "RuntimeError" in used.stderr
    assert "Traceback" not in used.stderr


def test_two_plugins_with_one_name_are_both_refused(installed: Installed, tmp_path: Path, pcap: Path) -> None:
    """pybeat-twin registers a processor named legacy_stamp, as pybeat-legacy01 does."""
    env = installed.env("twin", "legacy01")
    done = run_pybeat(["plugins"], tmp_path, env=env)
    assert done.returncode == 1
    clashes = [line for line in done.stdout.splitlines() if "two processors plugins are named 'legacy_stamp'" in line]
    assert len(clashes) == 2 and all("pybeat-twin" in c and "pybeat-legacy01" in c for c in clashes)
    config = {"packetbeat.protocols": [{"type": "legacy_kv"}], "processors": [{"legacy_stamp": {}}]}
    used = run_cli(config, pcap, tmp_path / "used", env=env)
    assert used.exit_code == 1 and "uninstall one of them" in used.stderr
    config = {"packetbeat.protocols": [{"type": "legacy_kv"}], "output.legacy_jsonl": {},
              "output.file": {"path": str(tmp_path / "works" / "out")}}
    works = run_cli(config, pcap, tmp_path / "works", env=env)
    assert works.exit_code == 0 and len(works.events) == 1, works
    assert works.metrics["output.legacy_jsonl.events.acked"] == 1
