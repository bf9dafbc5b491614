"""#14's end-to-end test: the agent SIGKILLed at random points of a replay of the 100k-packet
DNS capture into a real Lumberjack receiver, with the disk queue, then restarted on the same
path.data (a replay of an empty capture with -t, and a live start): every one of the 50,000
transactions arrives, counted by an independent reader of what the receiver wrote."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import REPO, need
from tests.delivery.agents import (
    BULK, BULK_TRANSACTIONS, Agent, config, empty_pcap, free_port, keys_of_lines, queued_on_disk, wait_for,
)

sys.path.insert(0, str(REPO / "tests" / "tooling" / "lumber-receiver"))
from lumber_receiver import Receiver, binary  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    need(binary() is not None, "the lumber-receiver test program (tests/tooling/lumber-receiver/setup.sh, needs Go)")
    # Slow ACKs make the replay outrun delivery, so the kill finds events queued on disk.
    r = Receiver(tmp_path / "received.ndjson", ack_delay=0.15).start()
    try:
        yield r
    finally:
        r.stop()


def _outputs(r: Receiver) -> dict[str, Any]:
    return {"output.logstash": {"hosts": [r.address], "bulk_max_size": 1024, "timeout": "10s"}}


def _crash_mid_stream(tmp: Path, r: Receiver, rng: random.Random) -> tuple[Path, Path, int]:
    """Replay the bulk capture and SIGKILL the agent at a random point of the delivery, once
    every transaction was published (persisted in the disk queue: what a replay of an empty
    capture can send; a transaction not yet decoded at the kill is in no queue)."""
    port = free_port()
    cfg = config(tmp, _outputs(r), extra={"http.enabled": True, "http.host": "127.0.0.1", "http.port": port})
    data = tmp / "data"
    agent = Agent(cfg, data, BULK)
    assert wait_for(lambda: queued_on_disk(port) >= BULK_TRANSACTIONS or agent.proc.poll() is not None, 120), \
        agent.tail()
    target = rng.randrange(r.count(), 45_000)
    assert wait_for(lambda: r.count() >= target or agent.proc.poll() is not None, 120), agent.tail()
    agent.kill()
    got = r.count()
    assert got < BULK_TRANSACTIONS, f"the agent had delivered everything before the kill ({got})"
    return cfg, data, got


def _check(r: Receiver, reference: set[str]) -> tuple[int, int]:
    received = keys_of_lines(r.lines())
    counts = Counter(received)
    lost = len(reference - set(counts))
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    assert set(counts) <= reference
    return lost, duplicates


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_mid_replay_then_an_empty_replay_sends_the_rest(tmp_path: Path, receiver: Receiver,
                                                              reference: set[str], seed: int) -> None:
    """SIGKILL at a random point, restart with -t on an empty capture: 0 of 50,000 lost."""
    cfg, data, at_kill = _crash_mid_stream(tmp_path, receiver, random.Random(seed))
    restart = Agent(cfg, data, empty_pcap(tmp_path / "empty.pcap"))
    assert restart.wait(300) == 0, restart.tail()
    lost, duplicates = _check(receiver, reference)
    print(f"seed {seed}: killed at {at_kill} received; after the restart: lost {lost}, "
          f"resent duplicates {duplicates}")
    assert lost == 0
    assert b"restored" in restart.log.read_bytes() or at_kill == 0
    # the restart emptied the queue: a second one has nothing to send
    before = receiver.count()
    again = Agent(cfg, data, empty_pcap(tmp_path / "empty2.pcap"))
    assert again.wait(120) == 0, again.tail()
    assert receiver.count() == before


def test_killed_mid_replay_then_a_live_start_sends_the_rest(tmp_path: Path, receiver: Receiver,
                                                            reference: set[str]) -> None:
    """SIGKILL at a random point, restart capturing live on lo: the queue is sent first (0 lost),
    and SIGTERM then ends the run cleanly."""
    need(sys.platform.startswith("linux"), "Linux (live capture on lo)")
    import os

    need(os.geteuid() == 0, "root (live capture on lo)")
    cfg, data, _ = _crash_mid_stream(tmp_path, receiver, random.Random(7))
    live = Agent(cfg, data, None)
    try:
        assert wait_for(lambda: len(set(keys_of_lines(receiver.lines())) & reference) == BULK_TRANSACTIONS
                        or live.proc.poll() is not None, 180, poll=1.0), live.tail()
    finally:
        live.term()
    assert live.wait(60) == 0, live.tail()
    lost, duplicates = _check(receiver, reference)
    print(f"live restart: lost {lost}, resent duplicates {duplicates}")
    assert lost == 0


def test_queue_files_are_private_and_emptied_once_delivered(tmp_path: Path, receiver: Receiver) -> None:
    """After a full delivery the queue folder holds only state.json; files 0600, folder 0700."""
    cfg = config(tmp_path, _outputs(receiver))
    data = tmp_path / "data"
    agent = Agent(cfg, data, BULK)
    assert agent.wait(300) == 0, agent.tail()
    q = data / "diskqueue"
    assert [p.name for p in q.iterdir()] == ["state.json"]
    assert (q.stat().st_mode & 0o777) == 0o700
    assert ((q / "state.json").stat().st_mode & 0o777) == 0o600
    assert receiver.count() == BULK_TRANSACTIONS



def test_sigterm_with_the_output_down_ends_in_time_and_keeps_the_events(tmp_path: Path, receiver: Receiver,
                                                                        reference: set[str]) -> None:
    """Every output down: SIGTERM ends the run within shutdown_timeout + 2 s, with a summary and a
    non-zero exit status; the events stay in the disk queue and the next start delivers them."""
    import signal
    import time

    receiver.stop()  # nothing listens on its port
    port = free_port()
    cfg = config(tmp_path, _outputs(receiver), extra={"packetbeat.shutdown_timeout": "3s", "http.enabled": True,
                                                      "http.host": "127.0.0.1", "http.port": port})
    data = tmp_path / "data"
    agent = Agent(cfg, data, BULK)
    assert wait_for(lambda: queued_on_disk(port) >= BULK_TRANSACTIONS or agent.proc.poll() is not None, 120), \
        agent.tail()
    start = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    code = agent.wait(30)
    took = time.monotonic() - start
    assert took < 3 + 2, f"stopping took {took:.1f}s"
    assert code != 0
    assert b"pybeat summary" in agent.stdout
    assert b"kept in the disk queue" in agent.stdout  # not delivered, and not lost either
    receiver.start()
    # (without the 3 s bound: the restart has 50,000 events to send at the receiver's slow pace)
    restart = Agent(config(tmp_path, _outputs(receiver)), data, empty_pcap(tmp_path / "empty.pcap"))
    assert restart.wait(300) == 0, restart.tail()
    lost, _ = _check(receiver, reference)
    assert lost == 0
