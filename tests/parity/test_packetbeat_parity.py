"""Packetbeat 7.17.29 as an oracle: on every capture in tests/data/pcaps, every DNS transaction
Packetbeat writes has its pybeat twin and >= 99.9 % of the fields Packetbeat writes agree.
Both agents watch DNS on ports 53 and 5353 (mDNS), pybeat with ``mdns: false`` (Packetbeat's
pairing of port 5353; ``compare.PORTS``).

The known differences (version, deliberate fixes) are the rules of ``compare.EXCEPTIONS``, each
with its reason. Packetbeat is built by ``tests/tooling/packetbeat/setup.sh``; the same
comparison runs on any capture as ``python3 tests/parity/compare.py CAPTURE``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import PCAPS, need
from tests.parity import compare

CAPTURES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng")) if PCAPS.is_dir() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future]]:
    """Both agents on every capture, three captures at a time (Packetbeat spends most of a run
    in its shutdown wait)."""
    need(compare.packetbeat_binary(), f"Packetbeat 7.17.29: run bash {compare.SETUP}")
    work = tmp_path_factory.mktemp("parity")
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield {name: pool.submit(compare.run, PCAPS / name, None, work) for name in CAPTURES}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("capture", CAPTURES)
def test_packetbeat_parity(capture: str, runs: dict[str, Future]) -> None:
    """Every Packetbeat transaction has a pybeat twin and >= 99.9 % of its fields agree."""
    res: compare.Result = runs[capture].result(timeout=600)
    report = compare.report(res)
    print(report)
    assert not res.missing, f"Packetbeat transactions without a pybeat twin:\n{report}"
    assert res.ratio >= compare.THRESHOLD, report
    # not passed for want of anything to compare: where pybeat finds DNS (port 53 or mDNS's
    # 5353), Packetbeat does too, unless it cannot read the capture at all (said in the report)
    if res.pybeat_events and not res.note:
        assert res.pairs > 0, report


@pytest.mark.slow
@pytest.mark.integration
def test_packetbeat_writes_all_transactions_of_the_benchmark_capture(runs: dict[str, Future]) -> None:
    """The shutdown wait is long enough: Packetbeat wrote all 50,000 transactions of the 100k
    capture, so a missing twin cannot hide behind events Packetbeat never wrote."""
    name = "dns_bulk_100k.pcap"
    need(name in runs, f"{PCAPS / name}")
    res = runs[name].result(timeout=600)
    assert res.packetbeat_events == res.pybeat_events == 50_000
    assert res.pairs == 50_000


# -- the comparison itself, without Packetbeat ----------------------------------------------------

_PB = {
    "@timestamp": "2026-11-27T05:04:34.039Z", "type": "dns", "status": "OK",
    "source": {"ip": "10.0.0.1", "port": 40000, "bytes": 30}, "destination": {"ip": "10.0.0.2", "port": 53, "bytes": 60},
    "network": {"transport": "udp"}, "event": {"category": ["network_traffic", "network"], "end": "2026-11-27T05:04:34.040Z"},
    "agent": {"version": "7.17.29"},
    "dns": {"id": 7, "type": "answer", "question": {"name": "WWW.Example.CO.UK", "registered_domain": "CO.UK",
                                                   "subdomain": "WWW.Example"},
            "answers": [{"type": "CAA", "data": "\\000\\005issueca.test"}, {"type": "A", "data": "192.0.2.1"}]},
}


def _py(**changes: object) -> dict:
    import copy

    ev = copy.deepcopy(_PB)
    ev["agent"] = {"version": "0.1.0"}
    ev["event"]["category"] = ["network"]
    ev["dns"]["question"].update(registered_domain="example.co.uk", subdomain="WWW")
    ev["dns"]["answers"][0]["data"] = '0 issue "ca.test"'
    for path, value in changes.items():
        node = ev
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return ev


def test_known_differences_are_excused_and_nothing_else() -> None:
    """The exception rules excuse the version and deliberate differences of a transaction
    (7.x category, raw CAA data, case-blind suffix match) and agreement is then complete."""
    res = compare.compare(Path("x.pcap"), [_PB], [_py()])
    assert res.pairs == 1 and not res.missing
    assert res.ratio == 1.0, compare.report(res)
    assert {"version", "event.category", "raw-rendered record type", "suffix case"} <= set(res.excepted)


@pytest.mark.parametrize("change", [
    {"status": "Error"},
    {"dns__answers": [{"type": "CAA", "data": "x"}, {"type": "A", "data": "192.0.2.9"}]},
    {"event__category": ["network", "other"]},
])
def test_other_differences_count(change: dict) -> None:
    """A difference no rule names lowers the agreement, including one hidden next to an excused
    field (a wrong A record beside a raw CAA one)."""
    res = compare.compare(Path("x.pcap"), [_PB], [_py(**change)])
    assert res.ratio < 1.0, compare.report(res)


def test_case_only_subdomain_difference_counts() -> None:
    """A subdomain that differs in case alone, where both found the same registered domain, is
    a difference: the wire name's case is kept (only the suffix match ignores it)."""
    question = {"name": "WWW.example.test", "registered_domain": "example.test", "subdomain": "WWW"}
    pb = {**_PB, "dns": {**_PB["dns"], "question": question}}
    py = _py(dns__question={**question, "subdomain": "www"})
    res = compare.compare(Path("x.pcap"), [pb], [py])
    assert res.fields["dns.question.subdomain"] == [0, 1], compare.report(res)


def test_a_packetbeat_transaction_without_twin_is_reported() -> None:
    """A Packetbeat transaction pybeat did not publish (other DNS id) is listed as missing."""
    res = compare.compare(Path("x.pcap"), [_PB], [_py(dns__id=8)])
    assert len(res.missing) == 1 and not res.ok


def test_retransmissions_pair_with_the_closest_twin() -> None:
    """Two pybeat events with the same key: the Packetbeat event pairs with the one that agrees."""
    res = compare.compare(Path("x.pcap"), [_PB], [_py(status="Error"), _py()])
    assert res.ratio == 1.0
