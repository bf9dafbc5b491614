"""The agent: builds every component from validated settings (build.py), runs the packet loop
and stops it (run.py, stop.py), and splits a replay across processes (shard.py).

    source -> Decoder -> protocol analyzers -> ProtocolClient -> Pipeline -> OutputRunner(s)
"""

from pybeat.agent.build import StartupError, agent_id, local_ips
from pybeat.agent.run import EXIT_EVENTS_LOST, EXIT_OK, EXIT_SOURCE_FAILED, Agent, RunOptions, RunResult
from pybeat.agent.shard import run_sharded
from pybeat.api import Paths

__all__ = [
    "EXIT_EVENTS_LOST", "EXIT_OK", "EXIT_SOURCE_FAILED", "Agent", "Paths", "RunOptions", "RunResult",
    "StartupError", "agent_id", "local_ips", "run_sharded",
]
