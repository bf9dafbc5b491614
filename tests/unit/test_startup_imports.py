"""A file-output DNS run imports only what it uses: start-up cost is paid by every replay
(docs/performance.md). Checked in a fresh interpreter, as ``pybeat run`` starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Modules a quiet file-output DNS replay must not import (each costs 10-100 ms).
NOT_IMPORTED = ("elasticsearch", "elastic_transport", "scapy", "structlog", "asyncio", "requests", "cryptography")

CONFIG = """\
packetbeat.protocols:
  - type: dns
    ports: [53]
    include_authorities: true
    include_additionals: true
output.file:
  path: {out}
  filename: bench
logging.to_stderr: true
logging.level: warning
logging.metrics.enabled: false
"""

PCAP_HEADER = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")  # empty pcap, Ethernet

SCRIPT = """\
import json, sys
from pybeat.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_quiet_file_output_run_imports_no_network_or_logging_libraries(tmp_path: Path, workers: int) -> None:
    config = tmp_path / "pybeat.yml"
    config.write_text(CONFIG.format(out=tmp_path / "out"))
    config.chmod(0o600)
    pcap = tmp_path / "empty.pcap"
    pcap.write_bytes(PCAP_HEADER)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, "run", "-c", str(config), "-I", str(pcap), "-t",
         "-E", f"packetbeat.workers={workers}"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    imported = {name.split(".")[0] for name in result["modules"]}
    assert not imported & set(NOT_IMPORTED), sorted(imported & set(NOT_IMPORTED))


def test_a_warning_still_reaches_the_log(tmp_path: Path) -> None:
    """The deferred structlog set-up still renders events at the configured level."""
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pybeat.logs import setup_logging\n"
         "log = setup_logging(level='warning', to_stderr=True, json_format=True)\n"
         "log.info('hidden'); assert 'structlog' not in sys.modules\n"
         "log.warning('shown', key=1)"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    event = json.loads(line)
    assert (event["event"], event["level"], event["key"]) == ("shown", "warning", 1)
