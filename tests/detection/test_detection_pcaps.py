"""End-to-end: replays of real captures through the agent with the dns detector on (defaults,
protected example.test and corp.test): the real tunnels, the race and the lookalikes are
flagged in time and named; nothing else alerts, on any capture."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import PCAPS
from tests.detection.helpers import rules, run, ts_ns

sys.path.insert(0, str(PCAPS / "generate" / "detection"))
import lookalike_names  # noqa: E402

TUNNELS = {"dns_tunnel_iodine.pcap": ("10.99.6.2", "t1.tunnel.test"),
           "dns_tunnel_dns2tcp.pcap": ("10.99.10.2", "t2.tunnel.test")}
SPECIAL = set(TUNNELS) | {"dns_poisoning_race.pcap", "dns_lookalikes.pcap"}
#: every other capture in the folder (pcap or pcapng), so a capture added later is covered too
OTHERS = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng") and p.name not in SPECIAL)


def first_ts(docs):
    return min(ts_ns(d["@timestamp"]) for d in docs if d.get("event", {}).get("kind") != "alert")


@pytest.mark.parametrize("name", sorted(TUNNELS))
def test_real_tunnels_are_flagged_within_60_s_naming_their_domain_and_nothing_else(name, tmp_path):
    client, zone = TUNNELS[name]
    alerts, docs, metrics = run(PCAPS / name, tmp_path)
    assert rules(alerts) == {"dns_tunnel": len(alerts)} and 1 <= len(alerts) <= 2
    a = alerts[0]
    assert ts_ns(a["@timestamp"]) - first_ts(docs) <= 60 * 10**9
    assert a["client"]["ip"] == client and a["dns"]["question"]["registered_domain"] == "tunnel.test"
    assert a["dns_detection"]["zone"] == zone and zone in a["message"]
    assert a["event"]["category"] == ["network", "intrusion_detection"] and a["threat"]["technique"]["id"][0] == "T1071.004"
    assert len({x["event"]["id"] for x in alerts}) == 1  # refreshes of one finding
    assert metrics["detection.dns.events"] > 0 and not any(k.endswith(".exceptions") for k in metrics if "detection" in k)


def test_the_forged_response_race_is_flagged_within_10_s_naming_client_question_and_forgery(tmp_path):
    alerts, docs, _ = run(PCAPS / "dns_poisoning_race.pcap", tmp_path)
    assert set(rules(alerts)) == {"dns_poisoning"}
    race = next(a for a in alerts if a["dns_detection"]["signal"] == "race")
    first_forged = min(ts_ns(d["@timestamp"]) for d in docs
                       if "203.0.113.66" in str(d.get("dns", {}).get("answers")) and d["event"]["kind"] != "alert")
    assert ts_ns(race["@timestamp"]) - first_forged <= 10 * 10**9
    assert race["client"]["ip"] == "10.99.13.2" and race["dns"]["question"]["name"].endswith(".victim.test")
    assert race["dns"]["answers"] == [{"type": "A", "data": "203.0.113.66"}] and race["server"]["ip"] == "10.99.13.1"
    assert race["threat"]["technique"]["id"] == ["T1557"]
    # the forgery that won (right id) and the genuine answer after it: two answers to one query
    conflict = [a for a in alerts if a["dns_detection"]["signal"] == "conflicting_answers"]
    assert len(conflict) == 1 and "203.0.113.66" in conflict[0]["message"] and "198.51.100.99" in conflict[0]["message"]


def test_lookalikes_are_flagged_once_each_and_idn_names_are_not(tmp_path):
    alerts, _, _ = run(PCAPS / "dns_lookalikes.pcap", tmp_path)
    assert set(rules(alerts)) == {"dns_lookalike"}
    flagged = [a["dns"]["question"]["registered_domain"] for a in alerts]
    expected = {lookalike_names.registered(lookalike_names.wire(n)) for n in lookalike_names.LOOKALIKES}
    assert sorted(flagged) == sorted(expected)  # each once, though each was looked up 4 times
    assert all(a["dns_detection"]["protected_domain"] in ("example.test", "corp.test") for a in alerts)


@pytest.mark.parametrize("name", OTHERS)
def test_no_alert_of_any_kind_on_the_other_captures(name, tmp_path):
    alerts, docs, metrics = run(PCAPS / name, tmp_path)
    assert alerts == [], [a["message"] for a in alerts]
    assert not any(n for k, n in metrics.items() if k.startswith("detection.dns.") and k.endswith(".alerts"))


def test_a_run_split_across_two_processes_gives_the_same_alerts_as_one(tmp_path):
    def key(a):
        return (a["rule"]["name"], a["event"]["id"], a["@timestamp"], a["message"])

    for name in ("dns_tunnel_iodine.pcap", "dns_poisoning_race.pcap", "dns_lookalikes.pcap"):
        one, _, _ = run(PCAPS / name, tmp_path / name / "one")
        two, _, metrics = run(PCAPS / name, tmp_path / name / "two", workers=2)
        assert one and sorted(map(key, one)) == sorted(map(key, two))


def test_the_benign_heavy_users_do_not_alert_even_without_the_allowlist(tmp_path):
    no_allowlist = ("\npybeat.detection.dns:\n  enabled: true\n  protected_domains: [example.test, corp.test]\n"
                    "  tunnel: {allowlist: []}\n")
    alerts, _, metrics = run(PCAPS / "dns_benign_lookalikes_of_tunnels.pcap", tmp_path, detection=no_allowlist)
    assert alerts == [], [a["message"] for a in alerts]
    assert metrics["detection.dns.tunnel.allowlisted"] == 0
