"""``-d`` selectors: debug lines belong to a selector and show when it (or ``*``) is selected;
capture, decode and the outputs write them at setup, never per packet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pybeat import logs
from tests.conftest import REPO

SAMPLE = REPO / "packaging" / "sample"


def _run(tmp_path: Path, *flags: str) -> list[dict]:
    """The sample replay with ``flags``; its log lines (JSON on stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pybeat.cli", "run", "-c", str(SAMPLE / "pybeat.yml"), "-I", str(SAMPLE / "dns.pcap"),
         "-t", "-e", "-E", f"output.file.path={tmp_path / 'out'}", *flags],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]


def test_star_shows_capture_decode_and_output_debug_lines(tmp_path: Path) -> None:
    """-d "*" writes debug lines of the capture, the decoder and the file output; a 243-packet
    replay gives a handful of them, not one per packet."""
    debug = [line for line in _run(tmp_path, "-d", "*") if line["level"] == "debug"]
    assert {"capture", "decoder", "pipeline", "file"} <= {line.get("logger") for line in debug}, debug
    assert len(debug) < 20, debug


def test_a_selector_shows_only_its_own_debug_lines(tmp_path: Path) -> None:
    """-d file: the file output's debug lines, none of the capture's or the decoder's."""
    debug = [line for line in _run(tmp_path, "-d", "file") if line["level"] == "debug"]
    assert debug and {line.get("logger") for line in debug} == {"file"}, debug


def test_the_pipeline_selector_shows_the_pipeline_and_its_output_runners(tmp_path: Path) -> None:
    """-d pipeline: the pipeline's and its output runners' debug lines (Beats' name for it,
    "publisher", selects the same), none of the capture's, the decoder's or the file output's."""
    for selector in ("pipeline", "publisher"):
        debug = [line for line in _run(tmp_path, "-d", selector) if line["level"] == "debug"]
        events = {line["event"] for line in debug}
        assert {"pipeline closed", "output started", "output stopped"} <= events, debug
        assert {line.get("logger") for line in debug} == {"pipeline"}, debug


def test_without_selectors_no_debug_lines(tmp_path: Path) -> None:
    """-v (info) writes no debug line."""
    assert not [line for line in _run(tmp_path, "-v") if line["level"] == "debug"]


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def setup(selectors: list[str] | None, level: str = "info") -> None:
        logs.setup_logging(level=level, to_stderr=True, selectors=selectors, json_format=True)

    yield setup
    logs.setup_logging(level="info", to_stderr=True, json_format=True)


def test_selector_rules(captured, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """A named logger's debug line shows for its selector or '*'; a bound logger(logger=...)
    follows the same rule; logging.level: debug without selectors shows every debug line."""
    captured(["dns"])
    logs.get_logger("dns").debug("shown dns")
    logs.get_logger("file").debug("hidden file")
    logs.setup_logging(level="info", to_stderr=True, selectors=["dns"], json_format=True).bind(logger="dns").debug("shown bound")
    captured(["*"])
    logs.get_logger("file").debug("shown star")
    captured(None, level="debug")
    logs.get_logger("afpacket").debug("shown level")
    captured(None)
    logs.get_logger("afpacket").debug("hidden info")
    err = capsys.readouterr().err
    assert [json.loads(line)["event"] for line in err.splitlines()] == ["shown dns", "shown bound", "shown star",
                                                                       "shown level"]
