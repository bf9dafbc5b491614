"""Pre-encoded DNS events (Event.raw) are the documents the dict path builds.

When nothing downstream can change an event, the DNS analyzer publishes the usual transaction
as JSON bytes assembled from pieces memoised per flow and per message (``_publish_raw``). These
tests run every shared capture (and a hostile one) through both paths and compare the decoded
documents one by one, and check what the exit summary and the outputs make of raw events.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from pybeat.api import Event
from pybeat.pipeline.pipeline import ProtocolClient
from tests.conftest import PCAPS, need
from tests.golden.test_golden import CAPTURES, run_capture

MORE = ["dns_bulk_100k.pcap", "dns_tunnel_iodine.pcap"]


def _both_paths(pcap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict], list[dict], int]:
    raw_count = 0
    (tmp_path / "raw").mkdir()
    (tmp_path / "dict").mkdir()
    original = ProtocolClient.publish
    original_closed = ProtocolClient.publish_closed

    def counting(self: ProtocolClient, event: Event) -> None:
        nonlocal raw_count
        if event.raw is not None:
            raw_count += 1
        original(self, event)

    def counting_closed(self: ProtocolClient, event: Event) -> None:
        nonlocal raw_count
        assert event.raw is not None and event.raw.endswith(self.raw_close)
        raw_count += 1
        original_closed(self, event)

    with monkeypatch.context() as m:
        m.setattr(ProtocolClient, "publish", counting)
        m.setattr(ProtocolClient, "publish_closed", counting_closed)
        fast = run_capture(pcap, tmp_path / "raw")
    with monkeypatch.context() as m:
        # The analyzer is told events may not share: every event takes the dict path.
        m.setattr(ProtocolClient, "events_may_share", lambda self: False)
        slow = run_capture(pcap, tmp_path / "dict")
    return fast, slow, raw_count


def _key(doc: dict) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


@pytest.mark.parametrize("name", CAPTURES + MORE)
def test_raw_documents_equal_dict_documents(name, tmp_path, monkeypatch):
    """Every capture gives the same documents, in the same order, on both paths."""
    pcap = PCAPS / name
    need(pcap.exists(), f"capture {pcap} missing")
    fast, slow, raw_count = _both_paths(pcap, tmp_path, monkeypatch)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert a == b, json.dumps({"raw": a, "dict": b}, indent=1, sort_keys=True)
        # and the same bytes: keys in the same order (json.loads keeps the order)
        assert json.dumps(a) == json.dumps(b)
    if name in ("dns_udp_mixed.pcap", "dns_bulk_100k.pcap", "packetbeat_vectors_udp.pcap"):
        assert raw_count > 0  # the raw path was really taken


def test_hostile_capture_same_on_both_paths(tmp_path, monkeypatch):
    """Malformed, truncated and looping messages (test_dns_hostile's capture): same documents."""
    from tests.dns.test_dns_hostile import _build

    pcap = tmp_path / "hostile.pcap"
    _build(pcap, 200)
    fast, slow, _raw = _both_paths(pcap, tmp_path, monkeypatch)
    assert fast == slow and fast


def test_unanswered_queries_same_on_both_paths(tmp_path, monkeypatch):
    """Queries that never get an answer (bench/flood_unanswered.py's capture: timed out at the
    end, some evicted with a small cap) take the pre-encoded path and give the same documents."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("flood", Path(__file__).parents[2] / "bench" / "flood_unanswered.py")
    assert spec is not None and spec.loader is not None
    flood = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flood)
    pcap = tmp_path / "flood.pcap"
    flood.write_flood(pcap, 3000)
    fast, slow, raw_count = _both_paths(pcap, tmp_path, monkeypatch)
    assert len(fast) == 3000 and raw_count == 3000
    assert fast == slow


def test_bulk_capture_is_all_raw(tmp_path, monkeypatch):
    """On the benchmark capture every transaction takes the pre-encoded path."""
    pcap = PCAPS / "dns_bulk_100k.pcap"
    need(pcap.exists(), f"capture {pcap} missing")
    fast, _slow, raw_count = _both_paths(pcap, tmp_path, monkeypatch)
    assert raw_count == len(fast) == 50_000


def test_reading_fields_of_a_raw_event_decodes_it():
    """``fields`` of a raw event is its document; after that the dict is what gets encoded."""
    ev = Event(1_700_000_000_000_000_000, None, raw=b'{"type":"dns","dns":{"id":7}}')
    assert ev.fields == {"type": "dns", "dns": {"id": 7}}
    assert ev.raw is None
    ev.fields["dns"]["id"] = 8
    from pybeat.api import BeatInfo
    from pybeat.codec import Codec

    line = Codec(BeatInfo(beat="packetbeat", version="1.0")).encode(ev)
    assert orjson.loads(line)["dns"]["id"] == 8



def test_repr_of_a_raw_event_does_not_decode_it():
    """Logging an event (its repr) leaves a pre-encoded event pre-encoded."""
    ev = Event(1, None, raw=b'{"type":"dns"}')
    assert "raw=" in repr(ev) and ev.raw == b'{"type":"dns"}'


def test_raw_event_in_a_bulk_request_and_the_summary():
    """The Elasticsearch bulk document and the exit summary of a raw event are those of its
    decoded twin."""
    from pybeat.outputs.elasticsearch.bulk import BulkEncoder
    from pybeat.summary import SummaryObserver

    doc = {"type": "dns", "status": "Error", "dns": {"question": {"name": "a<b>.test"}},
           "error": {"message": ["x", "y"]}}
    raw = orjson.dumps(doc)
    for escape in (False, True):
        enc = BulkEncoder(escape_html=escape)
        assert enc.document(Event(5_000_000, None, raw=raw)) == enc.document(Event(5_000_000, dict(doc)))
    from pybeat.protocols.dns.plugin import plugin

    a, b = SummaryObserver({"dns": plugin.summary_field}), SummaryObserver({"dns": plugin.summary_field})
    a(Event(5, None, raw=raw, digest=("dns", "Error", "a<b>.test", ["x", "y"])))
    b(Event(5, dict(doc)))
    assert (a.by_type, a.by_status, a.top, a.notes) == (b.by_type, b.by_status, b.top, b.notes)


def test_punycode_that_is_not_unicode_keeps_the_event(tmp_path, monkeypatch):
    """``xn--ib9b`` decodes to a lone surrogate, which JSON cannot hold: the name gets no
    ``name_unicode`` and the transaction is written, the same on both paths (it used to be lost:
    counted as an internal error on one path, dropped by the output on the other)."""
    from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, Ether, wrpcap  # type: ignore

    from pybeat.protocols.dns.domain import unicode_name

    assert unicode_name("xn--ib9b.example.com") is None
    assert unicode_name("xn--bcher-kva.example.com") == "bücher.example.com"
    pkts = []
    for i, name in enumerate(["xn--ib9b.example.com", "ok.example.com"]):
        q = Ether() / IP(src="10.0.0.1", dst="10.0.0.53") / UDP(sport=1111 + i, dport=53) / DNS(id=i, qd=DNSQR(qname=name))
        r = Ether() / IP(src="10.0.0.53", dst="10.0.0.1") / UDP(sport=53, dport=1111 + i) / DNS(
            id=i, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata="1.2.3.4"))
        q.time, r.time = 1_700_000_000 + i, 1_700_000_000.001 + i
        pkts += [q, r]
    pcap = tmp_path / "surrogate.pcap"
    wrpcap(str(pcap), pkts)
    fast, slow, raw_count = _both_paths(pcap, tmp_path, monkeypatch)
    assert len(fast) == 2 and raw_count == 2
    assert fast == slow


@pytest.mark.parametrize("kind", ["python", "compiled"])
def test_closed_documents_with_percent_signs_in_the_closing_bytes(kind):
    """The pipeline's agent/ecs/host bytes are part of the %-templates when the context offers
    them (ProtocolContext.raw_close): a '%' in them (a host name) is text, not a format."""
    from pybeat.api import BeatInfo, ProtocolContext
    from pybeat.capture.pcapfile import PcapFileSource
    from pybeat.decode import Decoder
    from pybeat.envelope import Envelope
    from pybeat.protocols.dns.plugin import plugin
    from tests.unit.test_replay_loop import loop_impl

    close = b',"agent":{"name":"50%d %s %%"},"ecs":{"version":"8.0.0"},"host":{"name":"a%b"}}'
    pcap = PCAPS / "dns_udp_mixed.pcap"
    need(pcap.exists(), f"capture {pcap} missing")

    def run(share: bool) -> list[Event]:
        events: list[Event] = []
        ctx = ProtocolContext(emit=events.append, beat=BeatInfo(), protocol_name="dns", envelope=Envelope(),
                              events_may_share=share, raw_close=close if share else None,
                              emit_closed=events.append if share else None)
        an = plugin.create(plugin.config_model(type="dns", ports=[53], send_request=True, send_response=True), ctx)
        dec = Decoder({53: an}, {53: an})
        source = PcapFileSource(str(pcap))
        assert loop_impl(kind)(source, dec, lambda: False) is True
        source.close()
        dec.flush()
        return events

    closed, plain = run(True), run(False)
    assert len(closed) == len(plain) > 0
    extra = orjson.loads(b"{" + close[1:])
    raw = 0
    for a, b in zip(closed, plain):
        if a.raw is not None:
            raw += 1
            assert a.raw.endswith(close)
            assert orjson.loads(a.raw) == {**b.fields, **extra}
    assert raw > 0
