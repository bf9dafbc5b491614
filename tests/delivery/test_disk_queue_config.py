"""queue.disk in the config: sizes checked at `test config`, not at run time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

SAMPLE = REPO / "packaging" / "sample" / "pybeat.yml"


def _test_config(*sets: str) -> subprocess.CompletedProcess[str]:
    args = [a for s in sets for a in ("-E", s)]
    return subprocess.run([sys.executable, "-m", "pybeat.cli", "test", "config", "-c", str(SAMPLE), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("sets, expected", [
    (["queue.disk.max_size=ten"], "queue.disk.max_size"),
    (["queue.disk.max_size=10MB", "queue.disk.segment_size=8MB"], "at least twice"),
    (["queue.mem.events=100", "queue.disk.max_size=1GB"], "one or the other"),
])
def test_bad_disk_queue_settings_are_refused_with_the_key(sets: list[str], expected: str) -> None:
    """A size that is not one, a segment too big for max_size, both queue kinds: one clear error."""
    r = _test_config(*sets)
    assert r.returncode != 0 and expected in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_a_disk_queue_config_is_accepted() -> None:
    """Beats' keys with Beats' size units pass."""
    r = _test_config("queue.disk.max_size=1GB", "queue.disk.segment_size=100MiB", "queue.disk.retry_interval=2s")
    assert r.returncode == 0, r.stderr
