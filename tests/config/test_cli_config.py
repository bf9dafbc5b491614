"""The config-shaped parts of the command line: export without a config file, warnings and
every error of `test config` at once."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import DATA, REPO


def pybeat(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybeat.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd or REPO, env=env)


def test_export_works_without_a_config_file_as_packetbeats_does(tmp_path):
    out = pybeat("export", "template", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["index_patterns"]
    out = pybeat("export", "ilm-policy", cwd=tmp_path)
    assert out.returncode == 0 and "policy" in json.loads(out.stdout)
    out = pybeat("export", "config", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "{}"


def test_test_config_on_the_stock_reference_prints_warnings_and_ok(tmp_path):
    for version in ("7.17.29", "8.x"):
        cfg = tmp_path / f"{version}.yml"
        cfg.write_text((DATA / "configs" / "stock" / version / "packetbeat.reference.yml").read_text())
        cfg.chmod(0o600)
        out = pybeat("test", "config", "-c", str(cfg))
        assert out.returncode == 0 and out.stdout.strip() == "Config OK", out.stderr
        assert "setup.kibana" in out.stderr and "has no effect" in out.stderr
        assert "Traceback" not in out.stderr
