"""A real capture (data/ntp_chrony_sntp.pcap: chrony's server answering chrony's and ntpsec's
clients in two network namespaces, made by data/make_capture.sh): through the harness, and
through the real ``pybeat`` command with the pytest fixture pybeat.testing installs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pytest

from pybeat.api import Event, format_ts
from pybeat.testing import CliResult, ProtocolHarness
from pybeat_ntp import plugin

DATA = Path(__file__).parent / "data"
CAPTURE = DATA / "ntp_chrony_sntp.pcap"
SERVERS = {"10.123.0.1", "fd12:3::1"}


@pytest.fixture(scope="module")
def events() -> list[Event]:
    h = ProtocolHarness(plugin)
    h.pcap(CAPTURE)
    assert h.stats() == {
        "messages": 17, "transactions": 9, "unmatched_requests": 1, "unmatched_responses": 0,
        "duplicate_requests": 0, "evicted_requests": 0, "malformed": 2, "other_modes": 0, "pending_requests": 0}
    return h.events


def ntp(event: Event) -> dict[str, Any]:
    value = event.fields["ntp"]
    assert isinstance(value, dict)
    return value


def test_every_exchange_is_paired(events: list[Event]) -> None:
    """6 chrony exchanges (3 over IPv4, 3 over IPv6: chrony hides its clock in a random
    transmit timestamp, which still pairs), 2 sntp exchanges, 1 request to an address no one
    answers, 2 datagrams that are not NTP."""
    answered = [e for e in events if e.fields["status"] == "OK"]
    assert len(answered) == 8 and {e.fields["server"]["ip"] for e in answered} == SERVERS
    assert sum(e.fields["network"]["type"] == "ipv6" for e in answered) == 4
    for e in answered:
        n = ntp(e)
        assert (n["mode"], n["version"], n["stratum"], n["reference_id"], n["leap_indicator"]) == (
            "client", 4, 8, "127.127.1.1", 0)
        assert n["precision"] == -26 and e.fields["client"]["bytes"] == e.fields["server"]["bytes"] == 48
        # one host's clock on both ends: no offset to speak of, a round trip under 50 ms
        assert abs(n["offset"]) < 0.005 and 0 < n["delay"] < 0.05
    (unanswered,) = [e for e in events if e.fields["server"]["ip"] == "10.123.0.9"]
    assert unanswered.fields["error"]["message"] == "Request was received without an associated response."
    malformed = [e.fields["error"]["message"] for e in events if "ntp" not in e.fields]
    assert malformed == ["Malformed NTP message: 10 bytes, an NTP header has 48",
                         "Malformed NTP message: version 0 (NTP has versions 1 to 4)"]


def test_offsets_agree_with_what_the_client_computed(events: list[Event]) -> None:
    """sntp printed its own offset and error bound (data/ntp_chrony_sntp.log): ours, from the
    capture's times, is within that bound."""
    log = (DATA / "ntp_chrony_sntp.log").read_text()
    printed = re.findall(r"\(\+0000\) ([-+][0-9.]+) \+/- ([0-9.]+) (\S+) s8", log)
    assert len(printed) == 2
    sntp = [e for e in events if e.fields["status"] == "OK" and ntp(e)["poll"] == 0]  # sntp polls with 0
    for (offset, bound, server), event in zip(printed, sntp):
        assert event.fields["server"]["ip"] == server
        assert abs(ntp(event)["offset"] - float(offset)) <= float(bound)


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("agent", "host", "@metadata", "@timestamp")}


def test_the_pybeat_command_on_the_capture(pybeat_run: Callable[..., CliResult]) -> None:
    """``pybeat run -c CONFIG -I capture -t``: the installed plugin is found through its entry
    point; the file output has the harness's events; the metrics and the summary show it."""
    result = pybeat_run({"packetbeat.protocols": [{"type": "ntp"}]}, CAPTURE)
    assert result.exit_code == 0, result
    assert result.metrics["ntp.transactions"] == 9 and result.metrics["output.file.events.acked"] == 11
    assert "ntp 11" in result.summary and "10.123.0.1" in result.summary
    h = ProtocolHarness(plugin, published=True)
    h.pcap(CAPTURE)
    assert [_comparable(e.fields) for e in h.published] == [_comparable(d) for d in result.events]
    assert [format_ts(e.timestamp_ns) for e in h.published] == [d["@timestamp"] for d in result.events]


def test_the_index_template_has_the_plugins_fields(
        pybeat_cli: Callable[..., Any], tmp_path: Path) -> None:
    """fields() declarations reach ``pybeat export template``."""
    import json

    config = tmp_path / "ntp.yml"
    config.write_text("packetbeat.protocols:\n  - type: ntp\noutput.console: {}\n")
    config.chmod(0o600)
    done = pybeat_cli("export", "template", "-c", str(config))
    assert done.returncode == 0, done.stderr
    ntp_mapping = json.loads(done.stdout)["template"]["mappings"]["properties"]["ntp"]["properties"]
    assert ntp_mapping["offset"] == {"type": "double"} and ntp_mapping["transmit_time"] == {"type": "date_nanos"}
