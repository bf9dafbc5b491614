"""Each detector on hand-built transactions (TxnView): what fires, what does not, caps and
evictions counted, state persisted."""

from __future__ import annotations

import os
import random
import stat

import pytest

from pybeat.api import BeatInfo, DetectorContext, Event, Paths
from pybeat.protocols.dns.detection import fast
from pybeat.protocols.dns.detection.config import (
    DnsDetectionConfig, LookalikeConfig, NewDomainConfig, PoisoningConfig, RateAnomalyConfig, TunnelConfig,
)
from pybeat.protocols.dns.detection.features import name_features, shape
from pybeat.protocols.dns.detection.lookalike import LookalikeDetector, edit_distance_one, skeleton
from pybeat.protocols.dns.detection.newdomain import NewDomainDetector
from pybeat.protocols.dns.detection.plugin import plugin
from pybeat.protocols.dns.detection.poisoning import PoisoningDetector
from pybeat.protocols.dns.detection.rate import RateDetector
from pybeat.protocols.dns.detection.tunnel import TunnelDetector
from pybeat.protocols.dns.detection.view import Message, TxnView

S = 10**9
T0 = 1_800_000_000 * S


@pytest.fixture(autouse=True, params=["compiled", "python"])
def twins(request, monkeypatch):
    """Every test here runs with the compiled twins of the per-transaction steps (_detect.pyx)
    and with the Python reference."""
    if request.param == "python":
        monkeypatch.setattr(fast, "CORE", None)
    elif fast.CORE is None:
        pytest.skip("the compiled twins are not built (pip install -e . builds them; PYBEAT_PURE_PYTHON=1 "
                    "keeps them out)")
    return request.param


def txn(ts, name, rd, *, client="10.0.0.5", port=40000, id=1, answers=(), q=True, r=True, qtype="A",
        server="10.0.0.53"):
    sub = name[: -len(rd) - 1] if name.endswith("." + rd) else ""
    data = [d for t, d in answers if t not in ("A", "AAAA")]
    msg = Message(name, qtype, rd, sub, "NOERROR", tuple(answers), len(answers), sub.lower(), sum(map(len, data)),
                  any(shape(d) for d in data))
    return TxnView(ts, client, port, server, id, q, r, msg)


def collect():
    out: list[Event] = []
    return out, out.append


def b32(rng, n):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(n))


# -- tunnel -------------------------------------------------------------------------------------

def test_a_tunnel_is_one_alert_per_window_refreshed_with_the_same_id():
    rng = random.Random(1)
    alerts, emit = collect()
    det = TunnelDetector(TunnelConfig(), emit)
    for i in range(600):  # 10 minutes, one query a second, TXT data down
        name = f"{b32(rng, 50)}.{b32(rng, 40)}.t.evil.test"
        det.observe(txn(T0 + i * S, name, "evil.test", id=i, qtype="TXT", answers=[("TXT", b32(rng, 120))]))
    assert 9 <= len(alerts) <= 10  # one per 60 s window
    assert len({a.fields["event"]["id"] for a in alerts}) == 1
    first = alerts[0].fields
    assert first["rule"]["name"] == "dns_tunnel" and first["dns_detection"]["zone"] == "t.evil.test"
    assert first["dns_detection"]["refresh"] == 1 and alerts[-1].fields["dns_detection"]["refresh"] == len(alerts)
    assert alerts[0].timestamp_ns == T0 + 19 * S  # the 20th distinct name


def test_hash_lookups_blocklists_and_dkim_do_not_look_like_tunnels():
    rng = random.Random(2)
    alerts, emit = collect()
    det = TunnelDetector(TunnelConfig(allowlist=[]), emit)  # behaviour alone, no allowlist
    for i in range(500):
        h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        det.observe(txn(T0 + i * S // 10, f"{h}.hashes.av.test", "av.test", qtype="TXT",
                        answers=[("TXT", "1700000000 45")] if i % 5 == 0 else ()))
        # a hash cloud that answers every lookup with a record of its own (SHA-256 in two labels)
        h2 = "".join(rng.choice("0123456789abcdef") for _ in range(64))
        det.observe(txn(T0 + i * S // 10, f"{h2[:32]}.{h2[32:]}.rep.av2.test", "av2.test", qtype="TXT",
                        answers=[("TXT", f"{1700000000 + i} {rng.randrange(100)} malware-family-{i % 7}")]))
        ip = ".".join(str(rng.randrange(256)) for _ in range(4))
        det.observe(txn(T0 + i * S // 10, f"{ip}.dnsbl.rbl.test", "rbl.test", answers=[("A", "127.0.0.2")]))
        det.observe(txn(T0 + i * S // 10, f"s{i}._domainkey.mail.test", "mail.test", qtype="TXT",
                        answers=[("TXT", "v=DKIM1; k=rsa; p=" + b32(rng, 380))]))
    assert alerts == []


def test_allowlisted_domains_are_not_tracked_and_entries_below_a_domain_match_by_name():
    rng = random.Random(3)
    alerts, emit = collect()
    det = TunnelDetector(TunnelConfig(extra_allowlist=["vpn.corp.test"]), emit)
    for i in range(100):
        for base, rd in (("cymru.com", "cymru.com"), ("hash.cymru.com", "cymru.com"), ("vpn.corp.test", "corp.test")):
            det.observe(txn(T0 + i * S // 10, f"{b32(rng, 60)}.{b32(rng, 60)}.{base}", rd, qtype="TXT",
                            answers=[("TXT", b32(rng, 200))]))
    assert alerts == [] and det.counters["allowlisted"] > 0


def test_tunnel_state_is_capped_and_evictions_are_counted():
    rng = random.Random(4)
    alerts, emit = collect()
    det = TunnelDetector(TunnelConfig(max_tracked=1000, max_names_per_domain=16), emit)
    for i in range(20_000):  # random domains, then random names under one domain
        rd = f"{b32(rng, 10)}.test"
        det.observe(txn(T0 + i * 1000, f"www.{rd}", rd))
    for i in range(5_000):
        det.observe(txn(T0 + i * 1000, f"{b32(rng, 12)}.victim.test", "victim.test"))
    assert len(det.state) <= 1000 and det.counters["evicted"] >= 19_000
    assert all(len(st.names) <= 16 for st in det.state.values()) and det.counters["names_over_cap"] > 0


def test_name_shapes():
    assert shape("3f2a9b7c1d0e4f5a6b7c8d9e0f1a2b3c") == "hex"
    assert shape("mfrggzdfmztwq2lknnwg23tpobyxe43u") == "base32"
    assert shape("LP0AAAACCN8CDIoFMhIy+XhuIhentwW88pu5") == "base64"
    assert shape("0qcbd82\\202\\190\\238Y\\214bj") == "binary"
    assert shape("www") == shape("mail-server-number-one") == shape("1234567890123456") == ""
    assert name_features("a\\200b.c").length == 5  # an escaped byte counts once


# -- poisoning ----------------------------------------------------------------------------------

def test_a_burst_of_responses_with_unknown_ids_is_a_race_alert():
    alerts, emit = collect()
    det = PoisoningDetector(PoisoningConfig(), emit)
    det.observe(txn(T0, "x1.victim.test", "victim.test", client="10.0.0.53", port=5555, id=777, r=False))
    for i in range(50):
        det.observe(txn(T0 + S // 100 + i * 1000, "x1.victim.test", "victim.test", client="10.0.0.53", port=5555,
                        id=1000 + i, q=False, answers=[("A", "203.0.113.66")], server="10.0.1.1"))
    assert len(alerts) == 1
    a = alerts[0].fields
    assert a["client"]["ip"] == "10.0.0.53" and a["dns"]["question"]["name"] == "x1.victim.test"
    assert a["dns"]["answers"] == [{"type": "A", "data": "203.0.113.66"}] and a["dns_detection"]["forged_responses"] == 5


def test_late_and_repeated_genuine_answers_do_not_alert():
    alerts, emit = collect()
    det = PoisoningDetector(PoisoningConfig(min_forged_responses=2), emit)
    for i in range(20):
        # a query that timed out (published unanswered), then its late answer on its own
        det.observe(txn(T0 + i * S, f"h{i}.a.test", "a.test", id=i, r=False))
        det.observe(txn(T0 + i * S + 11 * S, f"h{i}.a.test", "a.test", id=i, q=False, answers=[("A", "192.0.2.1")]))
        # a retried query answered twice with the same records
        det.observe(txn(T0 + i * S, f"r{i}.a.test", "a.test", id=100 + i, answers=[("A", "192.0.2.2")]))
        det.observe(txn(T0 + i * S + S // 10, f"r{i}.a.test", "a.test", id=100 + i, q=False,
                        answers=[("A", "192.0.2.2")]))
    assert alerts == [] and det.counters["late_or_repeated_answers"] == 40


def test_two_different_answers_to_one_query_alert_once():
    alerts, emit = collect()
    det = PoisoningDetector(PoisoningConfig(), emit)
    det.observe(txn(T0, "www.bank.test", "bank.test", id=9, answers=[("A", "203.0.113.66")]))
    det.observe(txn(T0 + S // 2, "www.bank.test", "bank.test", id=9, q=False, answers=[("A", "198.51.100.10")]))
    det.observe(txn(T0 + S, "www.bank.test", "bank.test", id=9, q=False, answers=[("A", "198.51.100.11")]))
    assert len(alerts) == 1 and alerts[0].fields["dns_detection"]["signal"] == "conflicting_answers"


def test_remembered_queries_are_capped_and_evictions_counted():
    det = PoisoningDetector(PoisoningConfig(max_tracked=1000), lambda e: None)
    for i in range(10_000):
        det.observe(txn(T0 + i * 1000, f"n{i}.a.test", "a.test", id=i % 65536, port=1024 + i))
    assert len(det.queries) <= 1000 and det.counters["evicted"] == 10_000 - len(det.queries)


# -- lookalike ----------------------------------------------------------------------------------

def test_lookalike_rules():
    det = LookalikeDetector(LookalikeConfig(), ["example.test", "corp.test"], lambda e: None)
    assert det.judge("xn--xample-2of.test").technique == "confusable"  # Cyrillic e
    assert det.judge("examp1e.test").technique == "confusable"
    assert det.judge("exarnple.com").technique == "confusable"
    assert det.judge("exampel.test").technique == "one_edit"
    assert det.judge("corp-vpn.test").technique == "hyphenated"
    for honest in ("example.com", "xn--mnchen-3ya.test", "crop.test", "corporate.test", "examples.org", "www.test"):
        assert det.judge(honest) is None, honest
    assert skeleton("\u0441\u043erp") == "corp" and edit_distance_one("exmaple", "example")


def test_a_lookalike_alerts_once_however_often_it_is_looked_up():
    alerts, emit = collect()
    det = LookalikeDetector(LookalikeConfig(), ["example.test"], emit)
    for i in range(10):
        det.observe(txn(T0 + i, "login.examp1e.test", "examp1e.test"))
    assert len(alerts) == 1 and alerts[0].fields["dns"]["question"]["registered_domain"] == "examp1e.test"


# -- rate anomaly -------------------------------------------------------------------------------

def test_a_client_far_above_its_own_baseline_alerts_once_per_bucket_new_clients_never():
    alerts, emit = collect()
    det = RateDetector(RateAnomalyConfig(), emit)
    t = T0
    for minute in range(15):  # 15 quiet minutes: 30 queries each
        for i in range(30):
            det.observe(txn(t + minute * 60 * S + i * S, "www.a.test", "a.test"))
    burst = T0 + 15 * 60 * S
    for i in range(2000):  # then 2,000 in a minute
        det.observe(txn(burst + i * 10**7, "www.a.test", "a.test"))
        det.observe(txn(burst + i * 10**7, "www.a.test", "a.test", client="10.9.9.9"))  # new client: no baseline
    assert len(alerts) == 1 and alerts[0].fields["client"]["ip"] == "10.0.0.5"
    assert alerts[0].fields["dns_detection"]["queries"] == 600


# -- new domains --------------------------------------------------------------------------------

def test_new_domains_after_learning_persist_across_restarts_0600(tmp_path):
    folder = str(tmp_path / "detection")
    cfg = NewDomainConfig(learning_period=3600, max_alerts_per_window=2)
    alerts, emit = collect()
    det = NewDomainDetector(cfg, emit, folder)
    det.observe(txn(T0, "www.old.test", "old.test"))
    det.observe(txn(T0 + 10 * S, "x.1.in-addr.arpa", "1.in-addr.arpa"))
    det.save()
    path = os.path.join(folder, "dns-domains.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and alerts == []
    det2 = NewDomainDetector(cfg, emit, folder)  # a restart, two hours later
    later = T0 + 2 * 3600 * S
    for rd in ("old.test", "new1.test", "new2.test", "new3.test", "new1.test"):
        det2.observe(txn(later, "www." + rd, rd))
    assert [a.fields["dns"]["question"]["registered_domain"] for a in alerts] == ["new1.test", "new2.test"]
    assert det2.counters["suppressed"] == 1


def test_worker_files_are_merged_at_load_and_folded_by_a_single_process(tmp_path):
    folder = str(tmp_path / "detection")
    cfg = NewDomainConfig(learning_period=0)
    for i, rd in enumerate(("a.test", "b.test")):
        w = NewDomainDetector(cfg, lambda e: None, folder, suffix=f"-w{i}")
        w.observe(txn(T0, "www." + rd, rd))
        w.save()
    alerts, emit = collect()
    one = NewDomainDetector(cfg, emit, folder)
    one.observe(txn(T0 + S, "www.a.test", "a.test"))
    one.observe(txn(T0 + S, "www.b.test", "b.test"))
    assert alerts == []
    one.save()
    assert sorted(os.listdir(folder)) == ["dns-domains.json"]


def test_new_domain_memory_is_capped():
    det = NewDomainDetector(NewDomainConfig(max_tracked=100, learning_period=10**6), lambda e: None, None)
    for i in range(1000):
        det.observe(txn(T0 + i, f"www.d{i}.test", f"d{i}.test"))
    assert len(det.seen) <= 100 and det.counters["evicted"] == 1000 - len(det.seen)


# -- the plugin ---------------------------------------------------------------------------------

def test_only_enabled_and_protected_domains_runs_every_detector_and_each_can_be_turned_off(tmp_path):
    ctx = DetectorContext(emit=lambda e: None, beat=BeatInfo(), paths=Paths.resolve(str(tmp_path)))
    cfg = DnsDetectionConfig.model_validate({"enabled": True, "protected_domains": ["Example.test."]})
    det = plugin.create(cfg, ctx)
    assert sorted(det.parts) == ["lookalike", "new_domain", "poisoning", "rate_anomaly", "tunnel"]
    assert cfg.protected_domains == ["example.test"]
    off = DnsDetectionConfig.model_validate({"protected_domains": ["a.test"], "tunnel": {"enabled": False},
                                             "new_domain": {"enabled": False}})
    assert sorted(plugin.create(off, ctx).parts) == ["lookalike", "poisoning", "rate_anomaly"]
    assert "dns_detection.bytes_up" in plugin.fields() and plugin.protocols == frozenset({"dns"})


def test_unmatched_responses_spread_over_many_questions_are_no_race():
    # e.g. the answers to queries sent before the capture started
    alerts, emit = collect()
    det = PoisoningDetector(PoisoningConfig(), emit)
    for i in range(40):
        det.observe(txn(T0 + i * S // 100, f"host{i}.busy.test", "busy.test", client="10.0.0.53", port=2000 + i,
                        id=i, q=False, answers=[("A", "192.0.2.9")]))
    assert alerts == [] and det.counters["unmatched_responses"] == 40


def test_evicting_from_a_full_table_stays_cheap_under_a_flood():
    # one eviction per insert from the front of a dict is quadratic (holes at the front);
    # evict_oldest drops a sixteenth at a time: 300,000 inserts into a 50,000 cap stay fast
    import time

    from pybeat.protocols.dns.detection.caps import evict_oldest

    table: dict[int, int] = {}
    dropped = 0
    t0 = time.process_time()
    for i in range(300_000):
        dropped += evict_oldest(table, 50_000)
        table[i] = i
    assert len(table) <= 50_000 and dropped == 300_000 - len(table)
    assert next(iter(table)) == 300_000 - len(table)  # the newest survive
    assert time.process_time() - t0 < 5


def test_windows_and_caps_have_upper_bounds_so_they_fit_the_machine_s_numbers():
    import pydantic

    for bad in ({"tunnel": {"window": "9600h"}}, {"poisoning": {"query_memory": 1e11}},
                {"rate_anomaly": {"max_tracked": 2**64}}, {"tunnel": {"max_names_per_domain": 10**12}}):
        with pytest.raises(pydantic.ValidationError, match="less than or equal"):
            DnsDetectionConfig.model_validate({"protected_domains": ["a.test"], **bad})
    DnsDetectionConfig.model_validate({"tunnel": {"window": "720h", "max_tracked": 10**9}})
