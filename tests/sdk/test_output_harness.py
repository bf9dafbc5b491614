"""pybeat.testing.OutputHarness: an output's group built as the agent builds it; every batch
checked to be settled exactly once; close during publish; runs through the agent's
OutputRunner with its counts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pybeat.api import Event, PluginConfig, RetryPolicy, Shard
from pybeat.testing import OutputHarness, PluginFault, at
from tests.sdk.toys import ListOutput


def events(n: int) -> list[Event]:
    return [Event(at(i), {"i": i}) for i in range(n)]


def test_a_batch_settled_once_reports_its_outcome() -> None:
    out = ListOutput()
    h = OutputHarness(out, {"workers": 2})
    assert len(h.clients) == 2
    s = h.publish(events(3), client=1)
    assert (s.acked, s.settled, s.problems) == (3, True, []) and len(out.sink) == 3
    assert h.metrics() == {"output.list.toy.delivered": 3}
    h.close()


@pytest.mark.parametrize("mode, message", [
    ("forget", "returned without settling its batch of 3"),
    ("twice", "batch settled twice"),
    ("miscount", r"batch of 3 settled as 4 acked"),
])
def test_a_batch_not_settled_exactly_once_fails(mode: str, message: str) -> None:
    h = OutputHarness(ListOutput(), {"mode": mode})
    with pytest.raises(AssertionError, match=message):
        h.publish(events(3))


def test_strict_false_reports_the_problems_instead() -> None:
    h = OutputHarness(ListOutput(), {"mode": "raise"}, strict=False)
    s = h.publish(events(2))
    assert isinstance(s.raised, ConnectionError) and not s.settled
    with pytest.raises(PluginFault, match="output list raised ConnectionError during publish"):
        OutputHarness(ListOutput(), {"mode": "raise"}).publish(events(1))


def test_close_during_publish_must_make_publish_return() -> None:
    """A client blocked on a dead server returns soon after close(), its batch cancelled."""
    h = OutputHarness(ListOutput(), {"mode": "block"})
    s = h.close_during_publish(events(4), after=0.05)
    assert len(s.cancelled) == 4 and s.seconds < 5


def test_runs_through_the_runner_count_every_event() -> None:
    """A flaky output's retried batches come back; every event is acked once; the counts add up."""
    out = ListOutput()
    run = OutputHarness(out, {"mode": "flaky", "workers": 2}).run(events(95))
    assert run.drained and run.given == 95 and run.accounted == 95
    assert run.events["acked"] == 95 and run.events["retried"] == 95
    assert sorted(e.fields["i"] for e in out.sink) == list(range(95))
    assert run.metrics["output.list.toy.delivered"] == 95


def test_max_retries_drops_with_the_quick_policy_and_the_groups_own_backoff_is_replaced() -> None:
    """The group asks for 5 s backoffs; the harness's quick policy keeps the test short."""
    started = time.monotonic()
    run = OutputHarness(ListOutput(), {"mode": "refuse"}).run(events(10))
    assert run.events["dropped_max_retries"] == 10 and run.events["acked"] == 0
    assert run.accounted == 10 and time.monotonic() - started < 5


def test_a_stuck_output_is_given_up_at_the_timeout() -> None:
    run = OutputHarness(ListOutput(), {"mode": "forget"}, strict=False).run(
        events(5), retry=RetryPolicy(max_retries=-1, backoff_init=0.01, backoff_max=0.02), timeout=1.0)
    assert not run.drained and run.events["not_delivered"] == 5 and run.accounted == 5


def test_a_0_1_output_is_built_through_the_compatibility_layer(tmp_path: Any) -> None:
    """workers()/batch_size()/create() per worker, ctx.extra's documented keys."""
    made: list[dict[str, Any]] = []

    class Old:
        name = "old"
        config_model = PluginConfig

        def workers(self, config: Any) -> int:
            return 3

        def batch_size(self, config: Any) -> int:
            return 7

        def create(self, config: Any, ctx: Any) -> Any:
            made.append({"suffix": ctx.extra.get("file_suffix", ""), "data": ctx.extra["path_data"]})

            class Client:
                def publish(self, batch: Any) -> None:
                    batch.settle(acked=len(batch.events))

                def close(self) -> None:
                    pass

            return Client()

    with pytest.warns(DeprecationWarning):
        h = OutputHarness(Old(), shard=Shard(1, 2))
    assert h.legacy and len(h.clients) == 3 and h.group.batch_size == 7
    assert made[0]["suffix"] == "-w1" and made[0]["data"] == h.paths.data
    assert h.run(events(20)).events["acked"] == 20
