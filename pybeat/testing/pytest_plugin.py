"""pybeat's pytest plugin (registered through the ``pytest11`` entry point: any project gets
it by installing pybeat). Fixtures:

- ``pybeat_run(config, pcap, args=(), timeout=120)``: the real CLI, ``pybeat run -c CONFIG -I
  PCAP -t``, in a fresh folder under ``tmp_path``; returns a :class:`pybeat.testing.CliResult`
  (``exit_code``, ``events``, ``summary``, ``metrics``, ``logs``).
- ``pybeat_cli(*args)``: any other command (``pybeat_cli("plugins")``), in ``tmp_path``; returns
  a ``subprocess.CompletedProcess``.

Nothing is imported from pybeat until a fixture is used.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import pytest

if TYPE_CHECKING:
    from pybeat.testing.cli import CliResult

RunFn = Callable[..., "CliResult"]


@pytest.fixture
def pybeat_run(tmp_path: Path) -> RunFn:
    """Run ``pybeat run -c CONFIG -I PCAP -t`` (see :func:`pybeat.testing.run_cli`)."""
    from pybeat.testing.cli import run_cli

    counter = itertools.count(1)

    def run(config: Mapping[str, Any] | str | Path, pcap: str | Path, args: Sequence[str] = (),
            timeout: float = 120.0, env: Mapping[str, str] | None = None) -> "CliResult":
        return run_cli(config, pcap, tmp_path / f"run{next(counter)}", args=args, timeout=timeout, env=env)

    return run


@pytest.fixture
def pybeat_cli(tmp_path: Path) -> Callable[..., "subprocess.CompletedProcess[str]"]:
    """Run ``pybeat <args>`` in ``tmp_path`` (see :func:`pybeat.testing.run_pybeat`)."""
    from pybeat.testing.cli import run_pybeat

    def cli(*args: str, timeout: float = 120.0,
            env: Mapping[str, str] | None = None) -> "subprocess.CompletedProcess[str]":
        return run_pybeat(list(args), tmp_path, timeout=timeout, env=env)

    return cli
