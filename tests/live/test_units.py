"""Unit tests for the capture layer's pure parts: filter generation, device resolution and
listing, the dump writer, ring geometry and the cooked-filter rewrite."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pybeat.capture import devices, libpcap
from pybeat.capture.afpacket import cook_program, ring_geometry
from pybeat.capture.bpf import build_filter
from pybeat.capture.devices import Device, format_devices, resolve_device
from pybeat.capture.dump import PcapWriter, dump_file_name
from pybeat.capture.errors import CaptureError
from pybeat.capture.pcapfile import PcapFileSource
from tests.conftest import need

# -- BPF generation (Packetbeat's ProtocolsStruct.BpfFilter) ---------------------------------


def test_dns_alone_gives_port_53_for_both_transports() -> None:
    """DNS speaks UDP and TCP, so its expression is the bare `port 53`."""
    assert build_filter([("dns", {"udp", "tcp"}, [53])], icmp=False, with_vlans=False) == "port 53"


def test_protocols_are_ordered_by_name_and_transport_picks_the_keyword() -> None:
    """Protocols come out in Packetbeat's (alphabetical) order; UDP-only and TCP-only ports say so."""
    flt = build_filter(
        [
            ("http", {"tcp"}, [80, 8080]),
            ("dns", {"udp", "tcp"}, [53, 5353]),
            ("dhcpv4", {"udp"}, [67, 68]),
        ],
        icmp=True,
        with_vlans=False,
    )
    assert flt == (
        "udp port 67 or udp port 68 or port 53 or port 5353 or tcp port 80 or tcp port 8080 or icmp or icmp6"
    )


def test_with_vlans_repeats_the_filter_under_vlan() -> None:
    """with_vlans makes tagged frames match too: `<f> or (vlan and (<f>))`."""
    assert build_filter([("dns", {"udp", "tcp"}, [53])], icmp=True, with_vlans=True) == (
        "port 53 or icmp or icmp6 or (vlan and (port 53 or icmp or icmp6))"
    )


def test_icmp_alone_gives_a_well_formed_filter() -> None:
    """Only ICMP enabled gives `icmp or icmp6`, not Packetbeat 1.x's broken ` or icmp or icmp6`."""
    assert build_filter([("icmp", set(), [])], icmp=True, with_vlans=False) == "icmp or icmp6"


def test_nothing_enabled_means_no_filter() -> None:
    """With no ports and no ICMP there is nothing to match: an empty filter (capture all)."""
    assert build_filter([], icmp=False, with_vlans=True) == ""


def test_generated_filters_compile() -> None:
    """What build_filter produces is valid libpcap syntax."""
    need(libpcap.available(), "libpcap (Debian: libpcap0.8)")
    flt = build_filter([("dns", {"udp", "tcp"}, [53, 5353]), ("dhcpv4", {"udp"}, [67, 68])], True, True)
    assert len(libpcap.compile_filter(flt, 1)) % 8 == 0
    with pytest.raises(CaptureError, match="invalid bpf_filter"):
        libpcap.compile_filter("port and port", 1)


# -- devices ----------------------------------------------------------------------------------


def _fake_proc(tmp_path: Path, route: str, ipv6_route: str) -> str:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "route").write_text(route)
    (tmp_path / "net" / "ipv6_route").write_text(ipv6_route)
    return str(tmp_path)


ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth9\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "wlan7\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
    "eth9\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
)
IPV6_ROUTE = (
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fd000000000000000000000000000001 00000400 00000002 00000000 00000003     wg3\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
)


def test_default_route_picks_the_lowest_metric_ipv4_route(tmp_path: Path) -> None:
    """default_route and default_route_ipv4 name the interface of the best IPv4 default route."""
    proc = _fake_proc(tmp_path, ROUTE, IPV6_ROUTE)
    assert resolve_device("default_route", proc=proc) == "eth9"
    assert resolve_device("default_route_ipv4", proc=proc) == "eth9"


def test_default_route_ipv6_skips_the_unreachable_loopback_route(tmp_path: Path) -> None:
    """default_route_ipv6 reads ipv6_route and ignores the kernel's reject route on lo."""
    proc = _fake_proc(tmp_path, ROUTE, IPV6_ROUTE)
    assert resolve_device("default_route_ipv6", proc=proc) == "wg3"


def test_default_route_falls_back_to_ipv6_and_fails_clearly(tmp_path: Path) -> None:
    """With no IPv4 default, default_route takes the IPv6 one; with neither it is a CaptureError."""
    proc = _fake_proc(tmp_path, ROUTE.splitlines()[0] + "\n", IPV6_ROUTE)
    assert resolve_device("default_route", proc=proc) == "wg3"
    (tmp_path / "net" / "ipv6_route").write_text("")
    with pytest.raises(CaptureError, match="no default route"):
        resolve_device("default_route_ipv4", proc=proc)


def test_device_numbers_index_the_devices_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A number (int or digits) picks that entry of `pybeat devices`; out of range is an error."""
    fake = [Device("eth0"), Device("any", "Pseudo-device"), Device("lo")]
    monkeypatch.setattr(devices, "list_devices", lambda: fake)
    assert resolve_device(2) == "lo"
    assert resolve_device("1") == "any"
    with pytest.raises(CaptureError, match="out of range: 3 devices"):
        resolve_device(3)


def test_names_and_any_pass_through_and_empty_means_any() -> None:
    """A name is kept as written (checked when opening); an empty device means `any` on Linux."""
    assert resolve_device("eth0") == "eth0"
    assert resolve_device("any") == "any"
    assert resolve_device(None) == "any"
    assert resolve_device("") == "any"


def test_format_devices_matches_packetbeat() -> None:
    """`pybeat devices` prints `<i>: <name> (<description>) (<addresses>)` with Packetbeat's fillers."""
    out = format_devices(
        [Device("eth0", "", ["192.0.2.2", "fe80::1"]), Device("any", "Pseudo-device that captures on all interfaces")]
    )
    assert out.splitlines() == [
        "0: eth0 (No description available) (192.0.2.2 fe80::1)",
        "1: any (Pseudo-device that captures on all interfaces) (Not assigned ip address)",
    ]
    assert format_devices([]) == "No devices found. You might need sudo?"


def test_the_real_device_list_has_loopback_with_its_address() -> None:
    """On this machine the list includes lo with 127.0.0.1, whether from libpcap or the kernel."""
    lo = [d for d in devices.list_devices() if d.name == "lo"]
    assert lo and "127.0.0.1" in lo[0].addresses
    kernel_lo = [d for d in devices._kernel_devices() if d.name == "lo"]
    assert kernel_lo and "127.0.0.1" in kernel_lo[0].addresses


# -- dump writer ------------------------------------------------------------------------------


def test_dump_writer_round_trips_through_the_pcap_reader(tmp_path: Path) -> None:
    """Frames written with nanosecond stamps read back unchanged."""
    path = tmp_path / "d.pcap"
    frames = [(1_700_000_000_123_456_789, b"\x01" * 60), (1_700_000_001_000_000_001, b"\x02" * 1514)]
    with PcapWriter(str(path), 1, 65535) as w:
        for ts, f in frames:
            w.write(ts, f)
    assert struct.unpack_from("<I", path.read_bytes())[0] == 0xA1B23C4D
    with PcapFileSource(str(path)) as src:
        assert [(ts, lt, bytes(f)) for ts, lt, f in src] == [(ts, 1, f) for ts, f in frames]


def test_dump_file_name_uses_packetbeats_pattern() -> None:
    """`--dump prefix` becomes prefix-yyyyMMddHHmmss.pcap."""
    name = dump_file_name("/tmp/cap", 0)
    assert name.startswith("/tmp/cap-19") or name.startswith("/tmp/cap-20")
    assert name.endswith(".pcap") and len(name) == len("/tmp/cap-") + 14 + 5


def test_dump_to_an_unwritable_place_is_a_capture_error(tmp_path: Path) -> None:
    """A dump path that cannot be created is reported, not raised as OSError."""
    with pytest.raises(CaptureError, match="cannot open dump file"):
        PcapWriter(str(tmp_path / "missing" / "d.pcap"), 1)


# -- af_packet internals ----------------------------------------------------------------------


def test_ring_geometry_fits_the_buffer_and_the_snaplen() -> None:
    """128 KiB blocks fill buffer_size_mb; a bigger snaplen gets the next power of two that holds it."""
    assert ring_geometry(30, 65535) == (1 << 17, 240)
    assert ring_geometry(1, 65535) == (1 << 17, 8)
    assert ring_geometry(1, 1 << 17) == (1 << 18, 4)
    assert ring_geometry(64, 262144) == (1 << 19, 128)


def test_cooked_filter_rewrite_moves_offsets_past_the_sll_header() -> None:
    """Loads beyond the SLL header move back 16 bytes; the protocol field becomes an ancillary load."""
    prog = struct.pack("=HBBI", 0x28, 0, 0, 14) + struct.pack("=HBBI", 0x30, 0, 0, 25) + struct.pack("=HBBI", 0x06, 0, 0, 0xFFFF)
    out = cook_program(prog)
    assert out is not None
    insns = [struct.unpack_from("=HBBI", out, i) for i in range(0, len(out), 8)]
    assert insns[0][3] == 0xFFFFF000  # SKF_AD_OFF + SKF_AD_PROTOCOL
    assert insns[1][3] == 9
    assert insns[2][3] == 0xFFFF  # return: untouched
    assert cook_program(struct.pack("=HBBI", 0x20, 0, 0, 6)) is None  # reads the address bytes
