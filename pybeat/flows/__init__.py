"""Network flows (``packetbeat.flows``): :class:`FlowTable` counts every frame in its flow and
reports ``type: flow`` events; :func:`attach_flows` wires it to a run's decoder and pipeline.
``docs/flows.md`` describes the events and what differs from Packetbeat."""

from __future__ import annotations

from typing import Any

from pybeat.flows.table import FlowKey, FlowTable, flow_key

__all__ = ["FlowKey", "FlowTable", "attach_flows", "flow_key"]


def attach_flows(config: Any, decoder: Any, pipeline: Any, bctx: Any, metrics: Any, closers: list[Any]) -> FlowTable:
    """A flow table fed by ``decoder`` (its observer and one of its timers), reporting through a
    client with the flows section's ``fields``, ``tags``, ``index`` and ``processors``."""
    from pybeat.pipeline import ProtocolClient
    from pybeat.processors.build import build_chain

    chain = build_chain(config.processors, bctx, "packetbeat.flows.processors")
    closers.append(chain.close)
    client = ProtocolClient(pipeline, processors=chain, fields=config.fields,
                            fields_under_root=config.fields_under_root, tags=config.tags, index=config.index,
                            keep_null=config.keep_null)
    table = FlowTable(client.publish, config.timeout, config.period, config.enable_delta_flow_reports,
                      ethernet=not config.allow_mismatched_eth)
    decoder.observer = table.observer()
    decoder.timers.append(table)
    metrics.register("flows", table.stats)
    return table
