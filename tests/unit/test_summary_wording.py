"""What the end-of-run summary says (issue 16): what "Error" means, and how many events the file
output's rotation removed with the setting to raise, driven through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PCAPS, REPO

SAMPLE_CONFIG = REPO / "packaging" / "sample" / "pybeat.yml"


def run(tmp_path: Path, pcap: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(SAMPLE_CONFIG), "-I", str(pcap), "-t",
                           "--strict.perms=false", *extra], capture_output=True, text=True, cwd=tmp_path, timeout=120)


def summary_line(out: str, start: str) -> str:
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith(start)]
    return line.strip()


def test_the_status_line_says_what_error_means(tmp_path: Path) -> None:
    """DNS error responses and unanswered queries are counted as Error; the line says so, so it
    does not read as if pybeat failed."""
    proc = run(tmp_path, REPO / "packaging" / "sample" / "dns.pcap")
    assert proc.returncode == 0, proc.stderr
    status = summary_line(proc.stdout, "status")
    assert status.startswith("status      OK ") and ", Error " in status
    assert "Error = the server answered with an error, or no answer was seen" in status


def test_the_summary_counts_events_rotation_removed_and_names_the_setting(tmp_path: Path) -> None:
    """A rotation that deletes files with this run's events (10 kB files, 2 kept) is reported:
    how many events are gone, and which settings keep them. The count is exact."""
    proc = run(tmp_path, PCAPS / "dns_udp_mixed.pcap", "-E", "output.file.rotate_every_kb=10",
               "-E", "output.file.number_of_files=2")
    assert proc.returncode == 0, proc.stderr
    acked = int(summary_line(proc.stdout, "output      file:").split("acked ")[1].split(",")[0])
    kept = sum(1 for f in (tmp_path / "out").glob("*.ndjson") for line in f.read_text().splitlines()
               if json.loads(line))
    removed = acked - kept
    assert removed > 0
    assert (f"{removed:,} events are in files rotation removed; raise output.file.number_of_files"
            in proc.stdout), proc.stdout


def test_nothing_is_said_about_rotation_when_nothing_was_removed(tmp_path: Path) -> None:
    """Beats' defaults (10 MB files) keep a small run whole: no rotation line."""
    proc = run(tmp_path, PCAPS / "dns_udp_mixed.pcap")
    assert proc.returncode == 0, proc.stderr
    assert "rotation removed" not in proc.stdout


def test_packets_per_second_leave_out_the_wait_for_an_output_that_is_down(tmp_path: Path) -> None:
    """With an output down, the run waits for it until the shutdown deadline: the packets/s are
    of the decoding, and the wait is shown on its own (one process and a split replay)."""
    cfg = tmp_path / "down.yml"
    cfg.write_text("packetbeat.protocols: [{type: dns, ports: [53]}]\n"
                   "output.elasticsearch: {hosts: [\"http://127.0.0.1:9\"]}\npacketbeat.shutdown_timeout: 2s\n")
    for workers in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I",
                               str(REPO / "packaging" / "sample" / "dns.pcap"), "-t", "--strict.perms=false",
                               "-E", f"packetbeat.workers={workers}", "--path.home", str(tmp_path)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert proc.returncode != 0  # the events were not delivered
        line = summary_line(proc.stdout, "packets")
        took, rest = line.split(" in ", 1)[1].split("s = ", 1)
        total, waited = rest.split("; ")[1].split("s in all, ")
        assert float(took) < 1.5 and 2.0 <= float(total) and float(waited.split("s of it")[0]) >= 1.9, line
        assert line.endswith("after the input ended, delivering the events")


def test_a_run_that_did_not_wait_shows_one_time() -> None:
    from pybeat.summary import SummaryObserver, render

    metrics = {"decode.packets": 1000, "decode.bytes": 5000}
    plain = render(metrics, SummaryObserver(), 0.5, [], decoded=0.4).splitlines()[1]
    assert plain.strip() == "packets     1,000 (5,000 bytes) in 0.50s = 2,000 packets/s"
    waited = render(metrics, SummaryObserver(), 5.5, [], decoded=0.5).splitlines()[1]
    assert waited.strip() == ("packets     1,000 (5,000 bytes) in 0.50s = 2,000 packets/s; 5.50s in all, "
                              "5.00s of it after the input ended, delivering the events")
