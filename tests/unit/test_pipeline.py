"""The pipeline: queue bounds (block vs drop), batch settlement and retries, processors and
conditions, per-protocol fields/tags, accounting that adds up."""

from __future__ import annotations

import threading
import time

import pytest

from pybeat.api import Batch, BeatInfo, Event, OutputGroup, RetryPolicy
from pybeat.pipeline import MemQueue, Pipeline, ProtocolClient
from pybeat.pipeline.pipeline import OutputRunner
from pybeat.plugins import load_registry
from pybeat.processors import build_condition, build_processors


def ev(i=0, **fields):
    return Event(1_700_000_000_000_000_000 + i, {"type": "dns", "n": i, **fields})


class Collect:
    """An output that acks everything (or fails the first `fail` publishes)."""

    def __init__(self, fail=0, retry_items=0):
        self.got: list[Event] = []
        self.fail = fail
        self.retry_items = retry_items
        self.lock = threading.Lock()

    def publish(self, batch: Batch) -> None:
        with self.lock:
            if self.fail:
                self.fail -= 1
                batch.retry()
                return
            if self.retry_items and batch.retries == 0:
                keep, again = batch.events[self.retry_items:], batch.events[: self.retry_items]
                self.got += keep
                batch.settle(acked=len(keep), retry=again)
                return
            self.got += batch.events
        batch.ack()

    def close(self) -> None:
        pass


def test_queue_blocks_until_space_is_freed():
    q = MemQueue(4)
    assert q.put([ev(i) for i in range(4)]) == 4
    done = []
    t = threading.Thread(target=lambda: done.append(q.put([ev(9)])))
    t.start()
    time.sleep(0.1)
    assert not done
    events, _ = q.get(2)
    q.release(len(events))
    t.join(2)
    assert done == [1]


def test_queue_drops_and_counts_when_full_in_live_mode():
    q = MemQueue(3)
    assert q.put([ev(i) for i in range(5)], block=False) == 3
    assert q.dropped_full == 2


def test_batch_must_settle_every_event_once():
    b = Batch([ev(1), ev(2)], lambda *a: None)
    with pytest.raises(ValueError):
        b.settle(acked=1)
    b.settle(acked=1, dropped=1)
    with pytest.raises(RuntimeError):
        b.ack()


#: retry at once (the agent's backoff is tested on its own)
FAST_RETRY = RetryPolicy(max_retries=-1, backoff_init=0.001, backoff_max=0.01)


def _pipeline(output, **kw):
    group = OutputGroup([output], batch_size=kw.pop("batch", 10), retry=FAST_RETRY)
    runner = OutputRunner("t", group, kw.pop("queue", 100), None)
    return Pipeline(BeatInfo(version="9.9.9", name="h"), [runner], min_events=kw.pop("min_events", 5), **kw), runner


def test_every_event_is_delivered_and_retries_are_counted():
    out = Collect(fail=2, retry_items=3)
    p, runner = _pipeline(out)
    client = ProtocolClient(p)
    for i in range(23):
        client.publish(ev(i))
    assert p.close(10)
    assert sorted(e.fields["n"] for e in out.got) == list(range(23))
    st = runner.stats()
    assert st["events.acked"] == 23 and st["events.retried"] > 0 and st["queue.used"] == 0


def test_agent_fields_protocol_fields_tags_and_index():
    out = Collect()
    p, _ = _pipeline(out, tags=["global"], fields={"env": "lab"})
    client = ProtocolClient(p, fields={"team": "dns"}, tags=["proto"], index="dns-idx")
    client.publish(ev(1))
    p.close(5)
    e = out.got[0]
    assert e.fields["agent"]["type"] == "packetbeat" and e.fields["agent"]["version"] == "9.9.9"
    assert e.fields["agent"]["build"]["original"].startswith("pybeat")
    assert e.fields["ecs"]["version"] and e.fields["host"]["name"] == "h"
    assert e.fields["fields"] == {"team": "dns", "env": "lab"}
    assert e.fields["tags"] == ["proto", "global"]
    assert e.meta["raw_index"] == "dns-idx"


def test_processors_with_conditions_drop_and_reshape():
    reg = load_registry()
    procs = build_processors(
        [
            {"drop_event": {"when": {"equals": {"dns.question.type": "PTR"}}}},
            {"add_fields": {"target": "site", "fields": {"name": "hq"}}},
            {"drop_fields": {"fields": ["n"]}},
            {"rename": {"fields": [{"from": "dns.id", "to": "dns.txid"}]}},
            {"if": {"contains": {"dns.question.name": "evil"}}, "then": [{"add_tags": {"tags": ["suspicious"]}}]},
        ],
        reg, BeatInfo(), "processors",
    )
    out = Collect()
    p, _ = _pipeline(out, processors=procs)
    for i, (qtype, name) in enumerate([("A", "a.example"), ("PTR", "1.in-addr.arpa"), ("TXT", "x.evil.test")]):
        ProtocolClient(p).publish(ev(i, dns={"id": i, "question": {"type": qtype, "name": name}}))
    p.close(5)
    assert [e.fields["dns"]["question"]["type"] for e in out.got] == ["A", "TXT"]
    assert all(e.fields["site"] == {"name": "hq"} and "n" not in e.fields for e in out.got)
    assert out.got[0].fields["dns"]["txid"] == 0 and "id" not in out.got[0].fields["dns"]
    assert out.got[1].fields["tags"] == ["suspicious"]
    assert p.filtered == 1


@pytest.mark.parametrize(
    "cond,expected",
    [
        ({"equals": {"status": "OK"}}, True),
        ({"equals": {"dns.id": 7}}, True),
        ({"contains": {"related.ip": "10.0."}}, True),
        ({"regexp": {"dns.question.name": r"^www\."}}, True),
        ({"range": {"event.duration.gte": 1000, "event.duration.lt": 5000}}, True),
        ({"network": {"source.ip": "private"}}, True),
        ({"network": {"source.ip": ["192.168.0.0/16"]}}, False),
        ({"has_fields": ["dns.id", "status"]}, True),
        ({"has_fields": ["nope"]}, False),
        ({"not": {"equals": {"status": "OK"}}}, False),
        ({"or": [{"equals": {"status": "Error"}}, {"equals": {"dns.id": 7}}]}, True),
        ({"and": [{"equals": {"status": "OK"}}, {"equals": {"dns.id": 8}}]}, False),
    ],
)
def test_conditions(cond, expected):
    e = Event(0, {"status": "OK", "dns": {"id": 7, "question": {"name": "www.x.test"}},
                  "related": {"ip": ["10.0.0.1", "10.0.0.2"]}, "source": {"ip": "10.0.0.1"},
                  "event": {"duration": 2000}})
    assert build_condition(cond)(e) is expected


def test_live_mode_drops_when_the_output_cannot_keep_up_and_counts_it():
    class Slow(Collect):
        def publish(self, batch):
            time.sleep(0.2)
            super().publish(batch)

    out = Slow()
    p, runner = _pipeline(out, queue=10, batch=10, min_events=10, block=False)
    for i in range(200):
        ProtocolClient(p).publish(ev(i))
    p.close(10)
    delivered = len(out.got)
    assert delivered + p.dropped_full == 200 and p.dropped_full > 0


def test_an_idle_worker_keeps_waiting_while_another_holds_a_batch_that_may_come_back():
    """Regression: get() returned None on a closed, momentarily empty queue while a batch was
    still in flight; if that batch came back for retry no worker was left to take it."""
    q = MemQueue(10)
    q.put([ev(1), ev(2)])
    q.close()
    held, _ = q.get(10)  # worker A holds the batch
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(10)))  # worker B goes idle
    t.start()
    time.sleep(0.1)
    assert t.is_alive(), "worker B gave up while a batch was in flight"
    q.requeue(held, 1)  # A's send failed: the batch comes back
    t.join(2)
    assert got and got[0] == (held, 1)
    q.release(2)
    assert q.get(10) is None  # closed and everything settled: now workers may stop


def test_shutdown_timeout_wakes_an_output_backing_off_and_counts_what_it_drops():
    """An output that cannot deliver (server down, long backoff) must not hold shutdown past the
    timeout: its clients are closed first, which wakes it, and the undelivered events are counted
    as not delivered."""

    class Down:
        def __init__(self):
            self.closed = threading.Event()

        def publish(self, batch):
            self.closed.wait(30)  # backing off until closed
            batch.retry()

        def close(self):
            self.closed.set()

    out = Down()
    runner = OutputRunner("down", OutputGroup([out], batch_size=10, retry=FAST_RETRY), 100, None)
    p = Pipeline(BeatInfo(), [runner], min_events=1)
    for i in range(5):
        ProtocolClient(p).publish(ev(i))
    t0 = time.monotonic()
    assert p.close(0.5) is False
    assert time.monotonic() - t0 < 5
    assert runner.stats()["events.not_delivered"] == 5 and runner.queue.used == 0


def test_conditions_on_dotted_field_names_as_yaml_writes_them(tmp_path):
    """`equals: {network.protocol: dns}` in YAML reaches the condition as nested mappings (the
    loader expands dotted keys everywhere); it must still match the field network.protocol."""
    from pybeat.config.loader import parse_yaml

    data, _ = parse_yaml(
        "when:\n"
        "  and:\n"
        "    - equals: {network.protocol: dns}\n"
        "    - contains: {dns.question.name: example}\n"
        "    - regexp: {dns.question.name: '^www'}\n"
        "    - network: {source.ip: private}\n"
        "    - range: {event.duration.gte: 5}\n"
    )
    cond = build_condition(data["when"])
    e = Event(0, {"network": {"protocol": "dns"}, "dns": {"question": {"name": "www.example.test"}},
                  "source": {"ip": "10.1.2.3"}, "event": {"duration": 9}})
    assert cond(e) is True
    e.fields["network"]["protocol"] = "icmp"
    assert cond(e) is False


def test_a_processor_changing_a_nested_agent_field_changes_only_its_event():
    reg = load_registry()
    procs = build_processors([{"add_fields": {"target": "agent.build", "fields": {"site": "x"}, "when": {"equals": {"n": 0}}}}],
                             reg, BeatInfo(), "processors")
    out = Collect()
    p, _ = _pipeline(out, processors=procs)
    for i in range(2):
        ProtocolClient(p).publish(ev(i))
    p.close(5)
    builds = {e.fields["n"]: e.fields["agent"]["build"] for e in out.got}
    assert "site" in builds[0] and "site" not in builds[1]


def test_retry_line_hands_groups_back_earliest_first_when_due() -> None:
    """Both queues' retry line: a group is taken only from its time on, earliest first whatever
    the order they came back in, and a waiter wakes when the earliest is due."""
    from pybeat.pipeline.queue import RetryLine

    line = RetryLine()
    a, b, c = [Event(1, {"n": 1})], [Event(2, {"n": 2})], [Event(3, {"n": 3})]
    line.add(10.0, a, 1)
    line.add(5.0, b, 2)
    line.add(20.0, c, 3)
    assert line.events() == 3 and list(line) == [b, a, c]
    assert line.wait(4.0, 0.25) == 0.25 and line.wait(4.9, 0.25) == pytest.approx(0.1)
    assert line.due(4.0) is None
    assert line.due(12.0) == (b, 2) and line.due(12.0) == (a, 1) and line.due(12.0) is None
    line.clear()
    assert not line and line.wait(0.0, 0.25) == 0.25
