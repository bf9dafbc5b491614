"""view_of reads a pre-encoded DNS event (without decoding it) exactly as it reads the same
event decoded, on every event of every shared capture; and it never changes the event."""

from __future__ import annotations

import orjson
import pytest

from pybeat.protocols.dns.detection import detector as detector_mod
from pybeat.protocols.dns.detection.view import view_of, view_of_fields
from tests.conftest import PCAPS
from tests.detection.helpers import run

CAPTURES = sorted(p.name for p in PCAPS.iterdir()
                  if p.suffix in (".pcap", ".pcapng") and p.name != "dns_bulk_100k.pcap") + ["dns_bulk_100k.pcap"]


@pytest.mark.parametrize("name", CAPTURES)
def test_the_view_of_a_pre_encoded_event_is_the_view_of_its_fields(name, tmp_path, monkeypatch):
    seen = {"raw": 0, "dict": 0}

    def check(self, event):
        raw = event.raw
        v = view_of(event)
        if raw is None:
            seen["dict"] += 1
            return
        seen["raw"] += 1
        assert event.raw is raw and event._fields is None  # not decoded, not changed
        want = view_of_fields(event.timestamp_ns, orjson.loads(raw))
        assert v is not None and want is not None
        # what the pre-encoded reader leaves out (the server's address) is all that differs
        assert v._replace(server_ip="") == want._replace(server_ip="")

    monkeypatch.setattr(detector_mod.DnsDetector, "observe", check)
    run(PCAPS / name, tmp_path)
    if name.startswith("dns_") and name not in ("dns_tcp.pcap",):
        assert seen["raw"] > 0


def _event(dns: bytes, answered: bool = True) -> bytes:
    """A pre-encoded document of the DNS protocol's layout around the members of ``dns``."""
    kind = b"answer" if answered else b"query"
    return (b'{"source":{"ip":"10.0.0.5","port":40000,"bytes":40},"client":{"ip":"10.0.0.5","port":40000,'
            b'"bytes":40},"server":{"ip":"10.0.0.1","port":53,"bytes":80},"type":"dns","dns":{"id":77,' + dns
            + b',"type":"' + kind + b'"},"request":"ID 77; \\"type\\":\\"answer\\"}","agent":{"type":"x"}}')


BODIES = [
    # the usual shape
    b'"op_code":"QUERY","response_code":"NOERROR","question":{"name":"a.example.test","type":"TXT","class":"IN",'
    b'"registered_domain":"Example.test","subdomain":"a"},"answers_count":2,"answers":[{"name":"a.example.test",'
    b'"type":"TXT","ttl":"5","data":"mfrggzdfmztwq2lknnwg23tpobyxe43u"},{"type":"A","data":"192.0.2.1"}],'
    b'"authorities_count":0',
    # an escaped byte in the name, a brace and a bracket inside strings, a non-string value
    b'"response_code":"NOERROR","question":{"name":"a\\\\200}.x.test","type":"A","registered_domain":"x.test",'
    b'"subdomain":"a\\\\200}"},"answers_count":1,"answers":[{"type":"TXT","data":"}],\\"x"}]',
    b'"response_code":"NOERROR","question":{"name":"b.x.test","type":"A","registered_domain":"x.test",'
    b'"subdomain":"b"},"answers_count":1,"answers":[{"type":"TXT","data":"a}]"}],"resolved_ip":["1.2.3.4"]',
    b'"response_code":"NOERROR","question":{"name":"c.x.test","type":"A","registered_domain":null},'
    b'"answers_count":1,"answers":[{"type":"A","ttl":300,"data":"1.2.3.4"}]',
    # no answers, an empty list, members missing
    b'"response_code":"NXDOMAIN","question":{"name":"d.x.test","type":"AAAA"},"answers_count":0',
    b'"response_code":"NOERROR","question":{"name":"e.x.test","type":"A"},"answers_count":0,"answers":[]',
    b'"question":{"name":"f.x.test"}',
    b'"response_code":"NOERROR","question":{},"answers_count":0',
    # names that are not ASCII
    '"response_code":"NOERROR","question":{"name":"münchen.test","type":"A","registered_domain":"münchen.test"},'
    '"answers_count":0'.encode(),
]


def _compiled():
    """The compiled reader, bound to view.py's types and cache (as view.py does unless
    PYBEAT_PURE_PYTHON=1 keeps it out); skipped where it was not built."""
    from pybeat.protocols.dns.detection import view

    compiled = pytest.importorskip("pybeat.protocols.dns.detection._view")
    compiled.bind(view.TxnView, view.Message, view._messages, view._CACHE_MAX, view.message_of_body, view.down,
                  view.view_of_fields)
    return compiled


@pytest.mark.parametrize("answered", [True, False])
@pytest.mark.parametrize("body", BODIES)
def test_the_compiled_reader_reads_what_the_python_reader_reads(body, answered):
    from pybeat.protocols.dns.detection import view

    compiled = _compiled()
    raw = _event(body, answered)
    view._messages.clear()
    want = view.read_raw(5, raw)
    view._messages.clear()
    got = compiled.read_raw(5, raw)
    assert got == want
    assert want == view_of_fields(5, orjson.loads(raw))._replace(server_ip="", has_query=True, has_response=answered)
    view._messages.clear()


def test_a_document_of_another_layout_is_refused_by_both_readers():
    from pybeat.protocols.dns.detection import view

    compiled = _compiled()
    for raw in (b'{"client":{"ip":"10.0.0.5","bytes":1},"dns":{"id":1,"type":"answer"}}',
                b'{"client":{"ip":"10.0.0.5","port":"x","bytes":1},"dns":{"id":1,"a":1,"type":"answer"}}'):
        with pytest.raises(ValueError):
            view.read_raw(1, raw)
        with pytest.raises(ValueError):
            compiled.read_raw(1, raw)
    assert view.read_raw(1, b'{"x":1}') is None and compiled.read_raw(1, b'{"x":1}') is None
