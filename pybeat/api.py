"""pybeat's plugin API: everything a protocol, output, processor or detector plugin may use.

This module is the whole contract. Plugins, the built-in ones included, import nothing else
from ``pybeat`` (a test enforces it for the built-ins); everything outside this module is
private and may change in any release. ``docs/plugins.md`` is the guide; ``pybeat.testing``
drives a plugin in tests with the agent's real decoder and pipeline.

Four kinds of plugin, found through entry-point groups:

- ``pybeat.protocols``: a protocol analyzer (:class:`ProtocolPlugin`, :class:`Analyzer`):
  sans-IO, payloads with their capture timestamps in, transaction events out through
  ``ctx.emit``. It never opens sockets, reads files or reads the clock: its timeouts run on
  packet time.
- ``pybeat.outputs``: an output (:class:`OutputPlugin`, :class:`OutputGroup`,
  :class:`Output`): clients that settle every event of every :class:`Batch`.
- ``pybeat.processors``: a processor (:class:`ProcessorPlugin`, :class:`Processor`): one event
  in, the event or None out.
- ``pybeat.detectors``: a detector (:class:`DetectorPlugin`, :class:`Detector`): watches
  transaction events, keeps state, emits alerts.

Versioning: :data:`API_VERSION` follows semantic versioning. A plugin declares the version it
was written for as ``api_version = "1.0"`` on its plugin object; the agent serves any
``1.x`` up to its own minor version, and plugins that declare nothing are served as written for
0.1 (the first published API) through a compatibility layer that warns once per deprecated
use. A plugin that asks for a version the agent cannot serve is refused with a message that
says what changed (``CHANGELOG.md`` in the source tree lists every change and the deprecation
policy: a name deprecated in ``1.x`` keeps working until ``2.0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pybeat._sdk.config import CommonProtocolConfig, PluginConfig
from pybeat._sdk.detectors import Detector, DetectorContext, DetectorPlugin
from pybeat._sdk.events import BeatInfo, EmitFn, Event
from pybeat._sdk.outputs import AdminContext, Batch, Output, OutputContext, OutputGroup, OutputPlugin, RetryPolicy
from pybeat._sdk.processors import Processor, ProcessorContext, ProcessorPlugin
from pybeat._sdk.protocols import Analyzer, Packet, ProtocolContext, ProtocolPlugin, TcpConnection
from pybeat._sdk.support import Logger, Metrics, Paths, PluginSetupError, Shard, SummaryField
from pybeat.codec import Codec, CodecConfig, FormatCodecConfig, JsonCodecConfig, encode_json, escape_html, json_default
from pybeat.durations import Duration, parse_duration
from pybeat.envelope import Envelope, add_notes, community_id
from pybeat.fieldtypes import load_field_file
from pybeat.netconfig import BackoffConfig, RestartOnCertChange, SslConfig
from pybeat.conditions import Condition, ConditionError, build_condition
from pybeat.timefmt import format_ts, parse_ts

#: The version of this contract (semantic versioning).
API_VERSION = "1.0.0"

__all__ = [
    "API_VERSION",
    # events
    "BeatInfo", "EmitFn", "Event", "format_ts", "parse_ts",
    # protocols
    "Analyzer", "CommonProtocolConfig", "Envelope", "Packet", "ProtocolContext", "ProtocolPlugin",
    "SummaryField", "TcpConnection", "add_notes", "community_id",
    # outputs
    "AdminContext", "BackoffConfig", "Batch", "Codec", "CodecConfig", "FormatCodecConfig", "JsonCodecConfig",
    "Output", "OutputContext", "OutputGroup", "OutputPlugin", "RestartOnCertChange", "RetryPolicy", "SslConfig",
    "encode_json", "escape_html", "json_default",
    # processors
    "Processor", "ProcessorContext", "ProcessorPlugin",
    # detectors
    "Detector", "DetectorContext", "DetectorPlugin",
    # every kind
    "Condition", "ConditionError", "build_condition",  # Beats' `when` conditions, for an output's own rules
    "Duration", "Logger", "Metrics", "Paths", "PluginConfig", "PluginSetupError", "Shard", "load_field_file",
    "parse_duration",
]


class Plugin:
    """pybeat.api 0.1's convenience base for plugin objects (never in ``__all__``); kept for
    plugins that subclassed it. Deprecated: declare the attributes your plugin kind needs."""

    name: str


#: names pybeat.api 0.1's module happened to have (its own imports, never in ``__all__``) that a
#: 0.1 plugin may have imported from it: still found, with a DeprecationWarning, until 2.0
_INCIDENTAL_0_1 = {
    "BaseModel": ("pydantic", "BaseModel"), "ConfigDict": ("pydantic", "ConfigDict"),
    "field_validator": ("pydantic", "field_validator"), "dataclass": ("dataclasses", "dataclass"),
    "field": ("dataclasses", "field"), "Any": ("typing", "Any"), "Callable": ("typing", "Callable"),
    "ClassVar": ("typing", "ClassVar"), "Protocol": ("typing", "Protocol"), "Sequence": ("typing", "Sequence"),
    "runtime_checkable": ("typing", "runtime_checkable"), "orjson": ("orjson", ""),
}


if not TYPE_CHECKING:  # at run time only: type checkers keep reporting unknown names

    def __getattr__(name: str) -> object:
        where = _INCIDENTAL_0_1.get(name)
        if where is None:
            raise AttributeError(f"module 'pybeat.api' has no attribute {name!r}")
        import importlib
        import warnings

        module, attr = where
        warnings.warn(f"pybeat.api.{name} is not part of pybeat.api (0.1 had it by accident): import it from "
                      f"{module}", DeprecationWarning, stacklevel=2)
        found = importlib.import_module(module)
        return getattr(found, attr) if attr else found
