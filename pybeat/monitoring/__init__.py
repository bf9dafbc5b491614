"""Metrics: one registry of counters and gauges, read by the periodic metrics log, the exit
summary and the HTTP stats endpoint."""

from pybeat.monitoring.registry import MetricsRegistry

__all__ = ["MetricsRegistry"]
