"""pybeat's test kit for plugin authors (and for pybeat's own plugins).

Each harness drives a plugin with the agent's own code, so what a test sees is what a run
does:

- :class:`ProtocolHarness`: a protocol plugin behind the real decoder and envelope; feed it a
  capture file, frames, UDP/TCP payloads or ICMP messages with addresses and packet times;
  collect its events (as emitted, and with ``published=True`` as the pipeline publishes them)
  and its counters; expiry and flush run on packet time.
- :class:`OutputHarness`: an output plugin's group built with a real ``OutputContext``;
  batches to its clients, each checked to be settled exactly once; ``close`` during
  ``publish``; whole runs through the agent's ``OutputRunner`` and its ``output.<name>.*``
  counts.
- :class:`ProcessorHarness`: a processor through the agent's chain builder (``when``,
  faults).
- :class:`DetectorHarness`: a detector fed transaction events (or a capture through protocol
  plugins), alerts collected, packet time.
- :func:`run_cli` (and the ``pybeat_run`` / ``pybeat_cli`` pytest fixtures): the real
  ``pybeat`` command on a config and a capture: exit status, events, summary, metrics.
- :class:`Capture` and :mod:`pybeat.testing.frames`: packets and pcap files as bytes.

A plugin's exception fails the test (:class:`PluginFault`) unless a harness is built with
``strict=False``, which shows the agent's containment instead. A config the agent would refuse
raises :class:`ConfigError` (with the agent's message: the key, "did you mean"); a plugin it
would refuse (interface, ``api_version``) raises :class:`PluginError`. ``docs/plugins.md`` is
the guide.
"""

from __future__ import annotations

from pybeat.config.loader import ConfigError
from pybeat.plugins import PluginError
from pybeat.testing._common import LogRecord, PluginFault, RecordingLogger, fixed_beat
from pybeat.testing.cli import CliResult, run_cli, run_pybeat
from pybeat.testing.detector import DetectorHarness
from pybeat.testing.frames import BASE_NS, SECOND, Address, Capture, at, write_pcap
from pybeat.testing.output import QUICK_RETRY, OutputHarness, OutputRun, Settlement
from pybeat.testing.processor import ProcessorHarness
from pybeat.testing.protocol import ProtocolHarness, TcpStream

__all__ = [
    "BASE_NS", "QUICK_RETRY", "SECOND", "Address", "Capture", "CliResult", "ConfigError", "DetectorHarness",
    "LogRecord", "OutputHarness", "OutputRun", "PluginError", "PluginFault", "ProcessorHarness", "ProtocolHarness",
    "RecordingLogger", "Settlement", "TcpStream", "at", "fixed_beat", "run_cli", "run_pybeat", "write_pcap",
]
