"""view_of reads a pre-encoded DNS event (without decoding it) exactly as it reads the same
event decoded, on every event of every shared capture; and it never changes the event. What
``reduce_raw`` keeps of an event (what a capture process hands to the detection process) reads
as the whole event does."""

from __future__ import annotations

import orjson
import pytest

from pybeat.api import Event
from pybeat.protocols.dns.detection import plugin as plugin_mod
from pybeat.protocols.dns.detection.view import view_of, view_of_fields
from tests.conftest import PCAPS
from tests.detection.helpers import run

CAPTURES = sorted(p.name for p in PCAPS.iterdir()
                  if p.suffix in (".pcap", ".pcapng") and p.name != "dns_bulk_100k.pcap") + ["dns_bulk_100k.pcap"]


@pytest.mark.parametrize("name", CAPTURES)
def test_the_view_of_a_pre_encoded_event_is_the_view_of_its_fields(name, tmp_path, monkeypatch):
    """Every pre-encoded event the detectors are handed (through ``reduce_raw``, which the
    agent calls with the whole event) is checked here, in a real run."""
    seen = {"raw": 0}
    reduce = plugin_mod.DnsDetectionPlugin.reduce_raw

    def check(raw):
        seen["raw"] += 1
        event = Event(1, None, raw=raw)
        v = view_of(event)
        assert event.raw is raw and event._fields is None  # not decoded, not changed
        want = view_of_fields(1, orjson.loads(raw))
        assert v is not None and want is not None
        # what the pre-encoded reader leaves out (the server's address) is all that differs
        assert v._replace(server_ip="") == want._replace(server_ip="")
        _same_when_reduced(1, raw)
        return reduce(raw)

    monkeypatch.setattr(plugin_mod.DnsDetectionPlugin, "reduce_raw", staticmethod(check))
    # in this process, where the patched hook runs (not only in a detection process)
    run(PCAPS / name, tmp_path, extra="packetbeat.detection_process: false\n")
    if name.startswith("dns_") and name not in ("dns_tcp.pcap",):
        assert seen["raw"] > 0


def _same_when_reduced(ts: int, raw: bytes) -> None:
    """Both reducers cut the same bytes, and both readers read them as the whole event
    (with the message cache empty: the message is parsed from what was kept)."""
    from pybeat.protocols.dns.detection import view

    readers = [view.read_raw]
    reduced = view._reduce_raw_py(raw)
    compiled = _compiled(skip=False)
    if compiled is not None:
        assert compiled.reduce_raw(raw) == reduced
        readers.append(compiled.read_raw)
    assert len(reduced) <= len(raw)
    for read in readers:
        view._messages.clear()
        whole = read(ts, raw)
        view._messages.clear()
        assert read(ts, reduced) == whole
    view._messages.clear()


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


def _compiled(skip: bool = True):
    """The compiled reader, bound to view.py's types and cache (as view.py does unless
    PYBEAT_PURE_PYTHON=1 keeps it out); skipped where it was not built (None: ``skip=False``)."""
    from pybeat.protocols.dns.detection import view

    if skip:
        compiled = pytest.importorskip("pybeat.protocols.dns.detection._view")
    else:
        try:
            from pybeat.protocols.dns.detection import _view as compiled
        except ImportError:
            return None
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


@pytest.mark.parametrize("answered", [True, False])
@pytest.mark.parametrize("body", BODIES)
def test_what_reduce_raw_keeps_reads_as_the_whole_event(body, answered):
    _compiled()
    _same_when_reduced(5, _event(body, answered))


def test_reduce_raw_returns_a_document_of_another_layout_whole():
    from pybeat.protocols.dns.detection import view

    compiled = _compiled()
    for raw in (b'{"x":1}', b'{"client":{"ip":"10.0.0.5","port":1,"bytes":1}}',
                b'{"client":{"ip":"10.0.0.5","port":1},"dns":{"id":1,"type":"other"}}'):
        assert view._reduce_raw_py(raw) is raw and compiled.reduce_raw(raw) is raw


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


def _outcome(read, *args):
    from pybeat.protocols.dns.detection import view

    view._messages.clear()
    try:
        return read(*args)
    except ValueError as exc:
        return type(exc).__name__
    finally:
        view._messages.clear()


@pytest.mark.parametrize("seed", range(4))
def test_both_readers_find_the_same_members_in_cut_and_spliced_documents(seed):
    """The compiled search (memchr for a rare byte of each pattern, then a compare) finds what
    bytes.find finds: on documents cut at every length and with pieces of the patterns and
    their anchor bytes spliced in anywhere, both readers and both reducers agree."""
    import random

    from pybeat.protocols.dns.detection import view

    compiled = _compiled()
    rng = random.Random(seed)
    pieces = [b'"client":{"ip":"', b',"dns":{"id":', b',"type":"answer"}', b',"type":"query"}',
              b'"response_code":"', b',"authorities_count":', b'"question":{', b'"answers_count":',
              b'"answers":[', b"{", b"}", b"[", b"_", b'"', b",", b"1", b'"type":"answer', b',"dns":{']
    for body in BODIES:
        for answered in (True, False):
            raw = _event(body, answered)
            docs = [raw[:k] for k in range(len(raw) + 1)]
            for _ in range(60):
                at = rng.randrange(len(raw) + 1)
                docs.append(raw[:at] + rng.choice(pieces) + raw[at + rng.choice([0, 0, 1, 3]):])
            for doc in docs:
                # the reducers cut at the members found (or keep the document whole: none found)
                assert compiled.reduce_raw(doc) == view._reduce_raw_py(doc)
                # the readers: the same members (a broken message is parsed more leniently in C)
                got, want = _outcome(compiled.read_raw, 5, doc), _outcome(view.read_raw, 5, doc)
                if isinstance(got, tuple) and isinstance(want, tuple):
                    assert got[:7] == want[:7]
                elif want != "JSONDecodeError":
                    assert got == want
