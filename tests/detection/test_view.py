"""view_of reads a pre-encoded DNS event (without decoding it) exactly as it reads the same
event decoded, on every event of every shared capture; and it never changes the event."""

from __future__ import annotations

import orjson
import pytest

from pybeat.protocols.dns.detection import detector as detector_mod
from pybeat.protocols.dns.detection.view import view_of, view_of_fields
from tests.conftest import PCAPS
from tests.detection.helpers import run

CAPTURES = sorted(p.name for p in PCAPS.glob("*.pcap") if p.name != "dns_bulk_100k.pcap") + ["dns_bulk_100k.pcap"]


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
