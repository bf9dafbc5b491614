"""A capture-file replay split across processes (``packetbeat.workers``).

Every process reads the whole file and decodes only its share, chosen in the decoder by a
hash of the flow and the analyzer's ``shard_key`` (DNS: the message id, so a query and its
answer meet in one process). Each process runs the whole pipeline with its own outputs (file
outputs write ``<filename>-w<i>-...``); the parent adds up metrics, summaries and exit status.
"""

from __future__ import annotations

import os
import queue as queue_mod
import re
import signal
import time
from typing import Any

from pybeat.agent.run import Agent, RunOptions, RunResult, exit_status
from pybeat.api import Paths
from pybeat.agent.build import agent_id, beat_info
from pybeat.agent.detection import DetectionHost
from pybeat.agent.detection import wanted as detection_wanted
from pybeat.config.settings import Settings
from pybeat.plugins import Registry
from pybeat.summary import SummaryObserver, render


def run_sharded(
    settings: Settings, registry: Registry, paths: Paths, logger: Any, options: RunOptions, workers: int
) -> RunResult:
    """Replay in ``workers`` processes (fork); see the module docstring."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    agent_id(paths.data)  # create meta.json once, so every worker reports the same agent.id
    results = ctx.Queue()

    # Detectors in a process of their own see every worker's transactions (agent/detection.py),
    # started before the workers so that each inherits its end of the pipes.
    host = None
    if detection_wanted(settings.agent.packetbeat.detection_process, len(settings.detectors)):
        host = DetectionHost(settings, paths, logger, beat_info(settings, paths), workers)

    def child(index: int) -> None:
        # The parent relays signals: a worker stops when the parent tells it to.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            feed = host.feed(index, None, logger) if host is not None else None
            agent = Agent(settings, registry, paths, logger, options, shard=(index, workers), detection=feed)
            agent.restore_gc = False  # this process ends with the run
            signal.signal(signal.SIGTERM, lambda *_: agent.stopper._on_signal(signal.SIGTERM, None))
            res = agent.run(install_signals=False)
            results.put((index, res.metrics, res.all_settled, agent.observer, None, res.decoded_at))
        except BaseException as exc:  # report, never hang the parent
            results.put((index, {}, False, None, f"{type(exc).__name__}: {exc}", None))

    started = time.monotonic()
    # Shared read-only state built once here is inherited by every worker (copy-on-write).
    for proto in settings.protocols:
        prepare = getattr(proto.plugin, "prepare", None)
        if callable(prepare):
            try:
                prepare()
            except Exception as exc:  # only an optimisation: the workers build it themselves
                logger.warning("protocol prepare hook failed", protocol=proto.name, error=repr(exc))
    procs = [ctx.Process(target=child, args=(i,), name=f"pybeat-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    if host is not None:
        host.close_all()  # the workers hold the feeds now

    def relay(signum: int, frame: Any) -> None:
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except OSError:
                    pass

    old = {sig: signal.signal(sig, relay) for sig in (signal.SIGINT, signal.SIGTERM)}
    merged: dict[str, Any] = {}
    observer = SummaryObserver()
    settled = True
    errors = []
    reported: set[int] = set()
    decoded = started  # when the last worker's input ended
    try:
        while len(reported) < workers:
            try:
                index, metrics, ok, obs, error, decoded_at = results.get(timeout=1.0)
            except queue_mod.Empty:
                # A worker killed from outside (OOM, SIGKILL) never reports: do not wait for it.
                dead = [i for i, p in enumerate(procs) if i not in reported and p.exitcode is not None]
                if dead:
                    time.sleep(0.5)  # a report sent just before exiting may still be in the pipe
                    if results.empty():
                        for i in dead:
                            errors.append(f"worker {i}: ended with exit code {procs[i].exitcode} without reporting")
                            reported.add(i)
                            settled = False
                continue
            reported.add(index)
            if decoded_at is not None:  # (time.monotonic() is the system's clock: the same in every process)
                decoded = max(decoded, decoded_at)
            if error:
                errors.append(f"worker {index}: {error}")
            settled = settled and ok
            _merge(merged, metrics, index)
            if obs is not None:
                observer.merge(obs)
        for p in procs:
            p.join(timeout=10)
        if host is not None:
            host.join(10)  # it ends when every worker's feed has
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if errors:
        raise RuntimeError("; ".join(errors))
    for key in [k for k in merged if k.endswith(".locations")]:
        merged[key[:-1]] = _common_location(merged.pop(key))
    elapsed = time.monotonic() - started
    code, problems = exit_status(merged)
    summary = render(merged, observer, elapsed, [o.name for o in settings.outputs], problems,
                     decoded=decoded - started if decoded > started else None)
    return RunResult(merged, summary, settled, elapsed, {"workers": workers}, exit_code=code, problems=problems,
                     decoded_at=decoded if decoded > started else None)


def _merge(merged: dict[str, Any], metrics: dict[str, Any], index: int) -> None:
    for k, v in metrics.items():
        # Every worker reads and decodes every packet up to the split: what is counted before
        # it (packets, bytes, link/IP errors, fragments, the file) is worker 0's count.
        if _counted_before_split(k):
            if index == 0:
                merged[k] = v
        elif k.endswith(".location"):
            merged.setdefault(k + "s", set()).add(v)
            merged[k] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith((".capacity", ".peak")):
            merged[k] = merged.get(k, 0) + v
        elif k not in merged:
            merged[k] = v


def _common_location(values: set[str]) -> str:
    """One text for where the workers' events went: the same place, or the workers' files as
    a pattern (their names differ only in ``-w<i>``: pybeat.api's ``Shard.suffix``)."""
    if len(values) == 1:
        return next(iter(values))
    patterns = {re.sub(r"-w\d+", "-w*", v) for v in values}
    return next(iter(patterns)) if len(patterns) == 1 else ", ".join(sorted(values))


def _counted_before_split(metric: str) -> bool:
    if metric.startswith(("capture.", "decode.ip_fragments.")):
        return True
    if metric.startswith("decode.errors."):
        return metric != "decode.errors.analyzer_exception"
    return metric in ("decode.packets", "decode.bytes")
