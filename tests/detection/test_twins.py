"""The compiled twins of the dns detector's per-transaction steps (``_detect.pyx``) against the
Python reference: the same alerts, counters and state on random streams built to reach every
branch (new keys, windows that roll, allowlisted names, caps that evict, races, conflicting
answers, rate buckets), and the same alerts and counters on every capture."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pybeat.api import Event, Paths
from pybeat.protocols.dns.detection import fast
from pybeat.protocols.dns.detection.config import DnsDetectionConfig
from pybeat.protocols.dns.detection.detector import DnsDetector
from pybeat.protocols.dns.detection.features import shape
from pybeat.protocols.dns.detection.view import Message, TxnView
from tests.conftest import PCAPS
from tests.detection.helpers import run

S = 10**9
T0 = 1_800_000_000 * S

if fast.CORE is None:
    pytest.skip("the compiled twins are not built (pip install -e . builds them; PYBEAT_PURE_PYTHON=1 keeps "
                "them out)", allow_module_level=True)

#: low thresholds, short windows and small caps: every branch is reached in a few thousand events
CONFIG = {
    "enabled": True,
    "protected_domains": ["example.test"],
    "tunnel": {"window": 5, "min_distinct_subdomains": 5, "min_bytes_up": 50, "min_bytes_down": 40,
               "min_mean_length": 8, "min_distinct_lengths": 3, "max_tracked": 10, "max_names_per_domain": 16,
               "extra_allowlist": ["ok.test", "hash.partly.test"]},
    "poisoning": {"window": 3, "query_memory": 2, "min_forged_responses": 3, "max_tracked": 50},
    "rate_anomaly": {"window": 1, "min_history": 2, "factor": 2, "min_queries": 5, "max_tracked": 8},
    "new_domain": {"enabled": False},
}

DOMAINS = ["evil.test", "ok.test", "partly.test", "example.test", "cdn.test", "x.test", "ex4mple.test"]
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _b32(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def _view(ts: int, client: str, port: int, mid: int, name: str, rd: str, qtype: str,
          answers: tuple[tuple[str, str], ...], has_query: bool = True, has_response: bool = True) -> TxnView:
    sub = name[: -len(rd) - 1] if name.endswith("." + rd) else ""
    data = [d for t, d in answers if t not in ("A", "AAAA")]
    msg = Message(name, qtype, rd, sub, "NOERROR", answers, len(answers), sub.lower(), sum(map(len, data)),
                  any(shape(d) for d in data))
    return TxnView(ts, client, port, "10.0.0.53", mid, has_query, has_response, msg)


def _stream(seed: int, segments: int) -> list[TxnView | int]:
    """Views, and now and then an int: a tick (expire) at that packet time. Segments of
    random noise, tunnels, races and bursts of one client, one after another."""
    rng = random.Random(seed)
    out: list[TxnView | int] = []
    ts = T0
    for _ in range(segments):
        kind = rng.choice(["noise", "noise", "tunnel", "race", "burst", "conflict"])
        client = f"10.0.0.{rng.randint(1, 12)}"
        for i in range(rng.randint(5, 120)):
            ts += rng.choice([0, 1, 1000, S // 50, S // 20, S // 5]) if kind != "noise" else rng.choice(
                [0, 1000, S // 50, S // 5, S, 4 * S])
            jitter = -rng.randint(0, 2 * S) if rng.random() < 0.03 else 0  # now and then out of order
            port = rng.choice([40000, 40001, 40002, 5353])
            if kind == "tunnel":
                rd = rng.choice(["evil.test", "ok.test", "partly.test"])
                name = f"{_b32(rng, rng.randint(10, 60))}.{rng.choice(['t', 'hash'])}.{rd}"
                out.append(_view(ts + jitter, client, port, i, name, rd, "TXT", (("TXT", _b32(rng, 90)),)))
            elif kind == "race":
                out.append(_view(ts + jitter, client, port, rng.randint(0, 65535), "www.bank.test", "bank.test", "A",
                                 (("A", "6.6.6.6"),), has_query=False))
            elif kind == "burst":
                ts += S // 200
                out.append(_view(ts + jitter, client, port, i, f"www{i % 3}.cdn.test", "cdn.test", "A", (("A", "10.0.0.1"),)))
            elif kind == "conflict":
                mid = rng.randint(0, 5)
                out.append(_view(ts, client, 40000, mid, "mail.x.test", "x.test", "A", (("A", "10.0.0.1"),)))
                out.append(_view(ts + 1, client, 40000, mid, "mail.x.test", "x.test", "A",
                                 (("A", rng.choice(["10.0.0.1", "10.0.0.9"])),), has_query=False))
            else:
                rd = rng.choice(DOMAINS)
                sub = rng.choice(["", "www", "mail", "API", "api", "a\\255b", _b32(rng, rng.randint(4, 70)),
                                  "hash." + "".join(rng.choice("0123456789abcdef") for _ in range(32))])
                qtype = rng.choice(["A", "AAAA", "TXT", "NULL", "CNAME"])
                answers = tuple((qtype, _b32(rng, rng.randint(1, 80)) if qtype not in ("A", "AAAA") else "10.0.0.1")
                                for _ in range(rng.randint(0, 2)))
                halves = rng.choice([(True, True), (True, False), (False, True)])
                out.append(_view(ts + jitter, client, port, rng.choice([-1, rng.randint(0, 20)]),
                                 f"{sub}.{rd}" if sub else rd, rd, qtype, answers, *halves))
            if rng.random() < 0.02:
                out.append(ts)
    return out


def _detector(compiled: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> tuple[DnsDetector, list[Event]]:
    alerts: list[Event] = []
    ctx = type("Ctx", (), {"emit": alerts.append, "paths": Paths.resolve(str(tmp_path)), "shard": None,
                           "logger": None})()
    with monkeypatch.context() as m:
        if not compiled:
            m.setattr(fast, "CORE", None)
        det = DnsDetector(DnsDetectionConfig.model_validate(CONFIG), ctx)
    assert (det._core is not None) == compiled
    return det, alerts


def _state(det: DnsDetector) -> dict[str, Any]:
    """Every table the twins keep, as plain values."""
    tunnel, poisoning, rate = det.parts["tunnel"], det.parts["poisoning"], det.parts["rate_anomaly"]
    windows = {k: (st.start, st.first_seen, st.last, st.queries, st.distinct, st.bytes_up, st.bytes_down,
                   st.data_answers, st.encoded_answers, st.packed, st.encoded, st.refreshes, st.alerted, st.partial,
                   sorted(st.names), sorted(st.lengths), dict(st.types))
               for k, st in tunnel.state.items()}
    clients = {ip: (c.start, c.count, c.history, c.baseline, c.alerted) for ip, c in rate.clients.items()}
    return {"windows": list(windows.items()), "queries": list(poisoning.queries.items()),
            "clients": list(clients.items()), "gate": dict(det._gate), "stats": det.stats()}


@pytest.mark.parametrize("seed", range(6))
def test_the_twins_match_the_python_reference_on_random_streams(seed, monkeypatch, tmp_path):
    stream = _stream(seed, 150)
    results = []
    for compiled in (True, False):
        det, alerts = _detector(compiled, monkeypatch, tmp_path / str(compiled))
        for item in stream:
            if isinstance(item, int):
                det.expire(item)
            else:
                det.observe_view(item)
        det.flush(stream[-1].ts if isinstance(stream[-1], TxnView) else stream[-1])
        results.append(([(a.timestamp_ns, a.fields) for a in alerts], _state(det)))
    (alerts_c, state_c), (alerts_py, state_py) = results
    assert alerts_c == alerts_py
    assert state_c == state_py
    # the streams do reach the branches they are built for
    stats = state_py["stats"]
    assert {r["rule"]["name"] for _, r in alerts_py} >= {"dns_tunnel", "dns_poisoning", "dns_rate_anomaly"}
    assert stats["tunnel.evicted"] and stats["tunnel.allowlisted"] and stats["tunnel.names_over_cap"]
    assert stats["poisoning.evicted"] and stats["poisoning.late_or_repeated_answers"]
    assert stats["rate_anomaly.evicted"]


def test_a_view_that_is_not_a_view_is_an_error_of_that_call_only(monkeypatch, tmp_path):
    det, _ = _detector(True, monkeypatch, tmp_path)
    good = next(v for v in _stream(0, 1) if isinstance(v, TxnView) and v.client_port != 5353)
    for bad in (["not", "a", "view"], (1, 2, 3), tuple(good)[:7], good._replace(msg=("short",)),
                good._replace(msg=None)):
        with pytest.raises(TypeError, match="expected a TxnView"):
            det.observe_view(bad)
        for twin in (det.parts["tunnel"].observe, det.parts["poisoning"].observe, det.parts["rate_anomaly"].observe):
            with pytest.raises(TypeError, match="expected a TxnView"):
                twin(bad)
    det.observe_view(next(v for v in _stream(0, 1) if isinstance(v, TxnView) and v.client_port != 5353))
    assert det.stats()["events"] == 1


CAPTURES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("name", CAPTURES)
def test_the_twins_match_the_python_reference_on_every_capture(name, monkeypatch, tmp_path):
    results = []
    for compiled in (True, False):
        with monkeypatch.context() as m:
            if not compiled:
                m.setattr(fast, "CORE", None)
            alerts, _, metrics = run(PCAPS / name, tmp_path / str(compiled),
                                     extra="packetbeat.detection_process: false\n")
        counters = {k: v for k, v in metrics.items() if k.startswith("detection.")}
        for a in alerts:  # (each run has an agent of its own)
            a.pop("agent", None)
            a["event"].pop("ingested", None)
        results.append((alerts, counters))
    assert results[0] == results[1]


def test_the_twins_refuse_a_view_with_values_of_other_types_in_that_call_and_never_crash(monkeypatch, tmp_path):
    """A view is built by the agent with these types; the compiled twins still check them (a
    TypeError for that call, counted by the agent), where a C cast would read memory."""
    compiled = True
    good = _view(T0, "10.0.0.1", 40000, 1, "a" * 20 + ".evil.test", "evil.test", "TXT", (("TXT", "x" * 30),))
    odd = [good._replace(msg=good.msg._replace(subdomain=None)), good._replace(msg=good.msg._replace(subdomain=5)),
           good._replace(ts="late"), good._replace(msg=good.msg._replace(bytes_down="many"))]
    for v in odd:  # (each fresh: the odd value is not left in the tables for the next one)
        det, _ = _detector(compiled, monkeypatch, tmp_path)
        try:
            det.observe_view(v)
        except TypeError:
            pass  # what the agent counts as detection.dns.exceptions
        det.observe_view(good)  # and the detector goes on
        assert det.stats()["events"] >= 1


def test_a_foreign_object_in_a_table_is_a_type_error_not_a_crash(monkeypatch, tmp_path):
    """The twins' tables are the detectors' own dicts, open to Python code: what they find
    there is type-checked (review finding: an unchecked cast read any object as a window)."""
    det, _ = _detector(True, monkeypatch, tmp_path)
    v = _view(T0, "10.0.0.1", 40000, 1, "a.evil.test", "evil.test", "A", ())
    det.parts["tunnel"].state[("10.0.0.1", "evil.test")] = object()
    det.parts["rate_anomaly"].clients["10.0.0.1"] = object()
    with pytest.raises(TypeError):
        det.parts["tunnel"].observe(v)
    with pytest.raises(TypeError):
        det.parts["rate_anomaly"].observe(v)


def test_a_view_whose_numbers_are_not_ints_is_refused_not_truncated(monkeypatch, tmp_path):
    det, _ = _detector(True, monkeypatch, tmp_path)
    v = _view(T0, "10.0.0.1", 40000, 1, "a.evil.test", "evil.test", "TXT", (("TXT", "x"),))
    for odd in (v._replace(ts=T0 + 0.5), v._replace(msg=v.msg._replace(bytes_down=1.5))):
        with pytest.raises(TypeError, match="ints"):
            det.observe_view(odd)
