"""Drive a processor plugin through the agent's own chain builder: its settings validated by
its model, ``when`` handled by the agent, its ``create`` given the agent's
:class:`ProcessorContext` (or, for a 0.1 plugin, the :class:`BeatInfo`), its faults contained
as the agent contains them.

    h = ProcessorHarness(plugin, {"field": "dns.question.name"}, when={"equals": {"type": "dns"}})
    out = h.run({"type": "dns", "dns": {"question": {"name": "example.com"}}})
    assert out is not None and out["dns"]["question"]["etld"] == "com"
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from pybeat.api import BeatInfo, Event, Paths
from pybeat.processors.build import BuildContext, build_chain
from pybeat.testing._common import RecordingLogger, _Faults, checked, raise_first, registry_with, fixed_beat
from pybeat.testing.frames import BASE_NS

__all__ = ["ProcessorHarness"]


class ProcessorHarness:
    """One processor (``config``: its settings as in a ``processors:`` list, a mapping; ``when``:
    a Beats condition), or a whole list with ``chain=[{...}, ...]`` naming it among others
    (installed processors, ``if``/``then``/``else``).

    A processor that raises fails the test (:class:`pybeat.testing.PluginFault`); with
    ``strict=False`` the agent's handling shows instead: the event goes on with
    ``processor <name> failed: ...`` in ``error.message`` and ``processors.<name>.exceptions``
    counts it (:meth:`exceptions`).
    """

    def __init__(
        self,
        plugin: Any,
        config: Mapping[str, Any] | None = None,
        *,
        when: Mapping[str, Any] | None = None,
        chain: Sequence[Mapping[str, Any]] | None = None,
        strict: bool = True,
        beat: BeatInfo | None = None,
        paths: Paths | None = None,
    ):
        info = checked("processors", plugin)
        self.name = info.name
        self.legacy = info.legacy
        self.strict = strict
        self.beat = beat or fixed_beat()
        self.logger = RecordingLogger()
        self.faults = _Faults(self.logger)
        if chain is None:
            settings = dict(config or {})
            if when is not None:
                settings["when"] = dict(when)
            chain = [{self.name: settings}]
        elif config is not None or when is not None:
            raise ValueError("give either config/when for the one processor, or chain")
        registry = registry_with("processors", info)
        bctx = BuildContext(registry, self.beat, self.faults, paths or Paths.resolve(), self.logger)
        #: the agent's chain (pybeat.processors.build.Chain)
        self.chain = build_chain([dict(spec) for spec in chain], bctx, "processors")

    def run_event(self, event: Event) -> Event | None:
        """The chain on one event: the event (changed, or another one) or None (dropped)."""
        result = self.chain.run(event)
        raise_first(self.faults, self.strict)
        return result

    def run(self, fields: Mapping[str, Any] | Event, ts: int = BASE_NS) -> dict[str, Any] | None:
        """The chain on an event made of ``fields`` (a dict; it is not changed): the resulting
        fields, or None when the event was dropped."""
        event = fields if isinstance(fields, Event) else Event(ts, _copy(fields))
        result = self.run_event(event)
        return None if result is None else result.fields

    def run_all(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
        return [self.run(e) for e in events]

    def exceptions(self) -> int:
        """``processors.<name>.exceptions``: runs that raised (``strict=False``)."""
        return self.faults.count("processor", self.name)

    def close(self) -> None:
        """The end of the run (processors' optional ``close``)."""
        self.chain.close()
        raise_first(self.faults, self.strict)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
