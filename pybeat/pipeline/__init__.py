"""Events from protocols to outputs: processors, the bounded memory queue, batches, output
workers, acknowledgement and accounting. See pipeline.py."""

from pybeat.pipeline.pipeline import Pipeline, ProtocolClient
from pybeat.pipeline.queue import MemQueue

__all__ = ["MemQueue", "Pipeline", "ProtocolClient"]
