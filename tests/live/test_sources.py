"""Live capture sources alone (no agent): real frames on a veth in namespaces the test made.

Each test opens a source inside the server namespace, sends from the client namespace, and
checks what the source hands over against what was sent and what the kernel counted.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from pybeat.capture import libpcap
from pybeat.capture.errors import CaptureError
from pybeat.capture.live import LiveSource, open_live
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.config.models import InterfaceConfig
from tests.conftest import need
from tests.live.netns import VethPair, in_netns

pytestmark = pytest.mark.integration
KINDS = ["af_packet", "pcap"]
PORT = 9999


def _need_kind(kind: str) -> None:
    if kind == "pcap":
        need(libpcap.available(), "libpcap (Debian: libpcap0.8)")


def _open(link: VethPair, kind: str, flt: str | None = f"udp port {PORT}", **kw: object) -> Any:
    _need_kind(kind)
    dump = kw.pop("dump_path", None)
    cfg = InterfaceConfig(device=kw.pop("device", link.srv_if), type=kind, **kw)  # type: ignore[arg-type]
    with in_netns(link.srv_ns):
        return open_live(cfg, flt, dump_path=dump)  # type: ignore[arg-type]


def _send_udp(link: VethPair, count: int, size: int = 64, ports: int = 1, dst_port: int = PORT) -> None:
    """Send ``count`` datagrams from the client namespace to the server's address."""
    with in_netns(link.cli_ns):
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(ports)]
    payload = b"p" * size
    try:
        for i in range(count):
            socks[i % ports].sendto(payload, (link.srv_ip, dst_port))
    finally:
        for s in socks:
            s.close()


def _drain(src: LiveSource, expect: int, limit_s: float = 5.0,
           keep: Callable[[tuple[int, int, bytes]], None] | None = None) -> int:
    """Read until ``expect`` frames arrived (or an idle tick after ``limit_s``); return the count."""
    n = 0
    deadline = time.monotonic() + limit_s
    for item in src.packets():
        if item is not None:
            n += 1
            if keep is not None:
                keep(item)
            if n >= expect:
                break
        elif time.monotonic() > deadline:
            break
    return n


@pytest.mark.parametrize("kind", KINDS)
def test_every_frame_sent_on_the_veth_is_captured_once(link: VethPair, kind: str) -> None:
    """2,000 datagrams sent across the veth are handed over exactly once each, Ethernet-framed."""
    src = _open(link, kind)
    frames: list[tuple[int, int, bytes]] = []
    try:
        _send_udp(link, 2000)
        got = _drain(src, 2000, keep=frames.append)
        # Nothing more arrives: a further read only times out.
        extra = _drain(src, 1, limit_s=0.0)
        stats = src.stats()
    finally:
        src.close()
    assert got == 2000 and extra == 0
    assert src.link_type == 1
    ts, link_type, frame = frames[0]
    assert link_type == 1 and frame[12:14] == b"\x08\x00"
    assert socket.inet_ntoa(frame[30:34]) == link.srv_ip
    assert abs(ts - time.time_ns()) < 60 * 10**9
    assert all(a[0] <= b[0] for a, b in zip(frames, frames[1:]))
    assert stats["received"] == 2000
    assert stats["kernel_dropped"] == 0
    assert stats["kernel_received"] >= 2000


@pytest.mark.parametrize("kind", KINDS)
def test_idle_link_yields_ticks_and_close_from_another_thread_ends_reading(link: VethPair, kind: str) -> None:
    """With nothing to read the iterator yields None at least every ~0.5 s; close() from another
    thread ends it within a second."""
    src = _open(link, kind)
    ticks: list[float] = []
    start = time.monotonic()
    timer = threading.Timer(1.6, src.close)
    timer.start()
    try:
        for item in src.packets():
            assert item is None
            ticks.append(time.monotonic() - start)
    finally:
        timer.cancel()
        src.close()
    ended = time.monotonic() - start
    # 0.5 s ticks; the margins absorb a loaded CI machine.
    assert ticks and ticks[0] < 1.2
    assert all(b - a < 1.2 for a, b in zip(ticks, ticks[1:]))
    assert ended < 3.5


def test_af_packet_reader_gets_the_last_packets_after_close(link: VethPair) -> None:
    """Frames still in a block the kernel has not handed over yet when close() is called are
    delivered to a reader that keeps iterating until the iterator ends."""
    src = _open(link, "af_packet")
    it = src.packets()
    assert next(it) is None  # reading has started (an idle tick)
    _send_udp(link, 30)
    src.close()
    got = sum(1 for item in it if item is not None)
    assert got == 30


def test_af_packet_kernel_drops_are_counted_when_the_ring_overflows(link: VethPair) -> None:
    """A 1 MB ring left unread overflows; the kernel's drop count plus what was read equals what was sent."""
    src = _open(link, "af_packet", buffer_size_mb=1)
    sent = 20000
    try:
        _send_udp(link, sent, size=1000)
        time.sleep(0.1)
        got = _drain(src, sent, limit_s=0.8)
        stats = src.stats()
    finally:
        src.close()
    assert stats["kernel_dropped"] > 0
    assert got == stats["received"]
    assert stats["received"] + stats["kernel_dropped"] == sent
    assert stats["kernel_received"] == sent


def test_pcap_kernel_drops_are_counted_when_the_buffer_overflows(link: VethPair) -> None:
    """libpcap's small buffer left unread overflows; pcap_stats reports the drops."""
    src = _open(link, "pcap", buffer_size_mb=1)
    sent = 20000
    try:
        _send_udp(link, sent, size=1000)
        time.sleep(0.1)
        got = _drain(src, sent, limit_s=0.8)
        stats = src.stats()
    finally:
        src.close()
    assert stats["kernel_dropped"] > 0
    assert got + stats["kernel_dropped"] == sent


@pytest.mark.parametrize("kind", KINDS)
def test_bpf_filter_keeps_only_matching_frames(link: VethPair, kind: str) -> None:
    """With `udp port 9999` only those datagrams arrive, not the ones to port 9998."""
    src = _open(link, kind)
    try:
        _send_udp(link, 300, dst_port=9998)
        _send_udp(link, 200)
        _send_udp(link, 300, dst_port=9998)
        got = _drain(src, 10_000, limit_s=0.6)
    finally:
        src.close()
    assert got == 200


@pytest.mark.parametrize("kind", KINDS)
def test_configured_bpf_filter_overrides_the_generated_one(link: VethPair, kind: str) -> None:
    """interfaces.bpf_filter wins over the filter the agent generated."""
    src = _open(link, kind, flt="udp port 9999", bpf_filter="udp port 9998")
    try:
        _send_udp(link, 50)
        _send_udp(link, 70, dst_port=9998)
        got = _drain(src, 10_000, limit_s=0.6)
    finally:
        src.close()
    assert got == 70
    assert src.bpf_filter == "udp port 9998"


def _send_tagged(link: VethPair, count: int, vlan: int = 100) -> bytes:
    """Write ``count`` 802.1Q-tagged UDP frames raw on the client's veth; return the frame."""
    dst = bytes.fromhex(link.srv_mac().replace(":", ""))
    ip = bytes.fromhex("450000200000000040110000") + socket.inet_aton("10.232.0.2") + socket.inet_aton("10.232.0.1")
    udp = struct.pack(">HHHH", 4000, PORT, 12, 0) + b"vlan"
    frame = dst + b"\x02\x00\x00\x00\x00\x02" + struct.pack(">HH", 0x8100, vlan) + b"\x08\x00" + ip + udp
    with in_netns(link.cli_ns):
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    with raw:
        raw.bind((link.cli_if, 0))
        for _ in range(count):
            raw.send(frame)
    return frame


def test_pcap_vlan_filter_matches_tagged_frames(link: VethPair) -> None:
    """With type pcap a hand-written `vlan 100 and udp port 9999` filter matches (libpcap uses the
    kernel's VLAN extensions); untagged frames to the same port do not."""
    src = _open(link, "pcap", flt=None, bpf_filter=f"vlan 100 and udp port {PORT}")
    try:
        _send_tagged(link, 7)
        _send_udp(link, 5)
        got = _drain(src, 10_000, limit_s=0.6)
    finally:
        src.close()
    assert got == 7


@pytest.mark.parametrize("kind", KINDS)
def test_vlan_tag_is_on_the_captured_frame(link: VethPair, kind: str) -> None:
    """802.1Q-tagged frames (written raw by the client) are handed over with their tag, even
    though the kernel strips it on receive (af_packet puts it back from the ring's metadata, as
    libpcap does)."""
    src = _open(link, kind, flt=None)
    frames: list[tuple[int, int, bytes]] = []
    try:
        tagged_frame = _send_tagged(link, 5)
        _drain(src, 10_000, limit_s=0.6, keep=frames.append)
    finally:
        src.close()
    tagged = [f for _, _, f in frames if f[12:14] == b"\x81\x00"]
    assert len(tagged) == 5
    assert tagged[0] == tagged_frame


@pytest.mark.parametrize("kind", KINDS)
def test_any_device_gives_cooked_frames(link: VethPair, kind: str) -> None:
    """Device `any` (inside the server namespace) yields Linux cooked (SLL) frames."""
    src = _open(link, kind, device="any")
    frames: list[tuple[int, int, bytes]] = []
    try:
        _send_udp(link, 10)
        _drain(src, 10, keep=frames.append)
    finally:
        src.close()
    assert src.link_type == 113
    assert len(frames) == 10
    f = frames[0][2]
    pkttype, hatype, halen = struct.unpack(">HHH", f[:6])
    assert (pkttype, hatype, halen) == (0, 1, 6)  # to us, Ethernet, 6-byte address
    assert f[14:16] == b"\x08\x00"
    assert socket.inet_ntoa(f[16 + 16 : 16 + 20]) == link.srv_ip


@pytest.mark.parametrize("kind", KINDS)
def test_any_device_sees_loopback_traffic_once(link: VethPair, kind: str) -> None:
    """On `any`, a datagram over the namespace's loopback is captured once, not twice."""
    src = _open(link, kind, device="any")
    try:
        with in_netns(link.srv_ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            for _ in range(25):
                s.sendto(b"lo", ("127.0.0.1", PORT))
        got = _drain(src, 10_000, limit_s=0.6)
    finally:
        src.close()
    assert got == 25


@pytest.mark.parametrize("kind", KINDS)
def test_ignore_outgoing_keeps_only_received_frames(link: VethPair, kind: str) -> None:
    """With ignore_outgoing, what the server sends is not captured, what it receives is."""
    src = _open(link, kind, flt="udp", ignore_outgoing=True)
    try:
        _send_udp(link, 40)
        with in_netns(link.srv_ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            for _ in range(60):
                s.sendto(b"out", (link.cli_ip, PORT))
        got = _drain(src, 10_000, limit_s=0.6)
    finally:
        src.close()
    assert got == 40


def test_af_packet_fanout_group_shares_the_flows(link: VethPair) -> None:
    """Two af_packet sockets in one fanout group split the flows between them, none lost or doubled."""
    a = _open(link, "af_packet", fanout_group=7)
    b = _open(link, "af_packet", fanout_group=7)
    try:
        _send_udp(link, 3200, ports=32)
        got_a = _drain(a, 3200, limit_s=0.6)
        got_b = _drain(b, 3200, limit_s=0.6)
    finally:
        a.close()
        b.close()
    assert got_a + got_b == 3200
    assert got_a > 0 and got_b > 0


def test_fanout_group_is_refused_for_pcap(link: VethPair) -> None:
    """fanout_group with type pcap is a configuration error, as in Packetbeat."""
    with pytest.raises(CaptureError, match="fanout_group is only valid with af_packet type"):
        _open(link, "pcap", fanout_group=3)


def test_auto_promisc_mode_sets_and_clears_promiscuity(link: VethPair) -> None:
    """auto_promisc_mode puts the device in promiscuous mode while capturing, and not after."""

    def promiscuity() -> int:
        out = link.srv("ip", "-d", "-j", "link", "show", link.srv_if).stdout
        return int(json.loads(out)[0]["promiscuity"])

    before = promiscuity()
    src = _open(link, "af_packet", auto_promisc_mode=True)
    during = promiscuity()
    src.close()
    assert (before, during, promiscuity()) == (0, 1, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_dump_file_holds_what_was_captured(link: VethPair, kind: str, tmp_path: object) -> None:
    """--dump writes every captured frame to a pcap that reads back identically."""
    path = f"{tmp_path}/dump.pcap"
    src = _open(link, kind, dump_path=path)
    frames: list[tuple[int, int, bytes]] = []
    try:
        _send_udp(link, 100)
        _drain(src, 100, keep=frames.append)
    finally:
        src.close()
        for _ in src.packets():  # the iterator ends and closes the dump
            pass
    assert src.stats()["dumped"] == 100
    with PcapFileSource(path) as back:
        replay = [(ts, lt, bytes(f)) for ts, lt, f in back]
    assert replay == [(ts, lt, bytes(f)) for ts, lt, f in frames]


@pytest.mark.parametrize("kind", KINDS)
def test_missing_device_is_a_capture_error(link: VethPair, kind: str) -> None:
    """A device that does not exist is refused with a message naming it."""
    with pytest.raises(CaptureError, match="nosuchdev0"):
        _open(link, kind, device="nosuchdev0")


@pytest.mark.parametrize("kind", KINDS)
def test_missing_cap_net_raw_is_named(kind: str) -> None:
    """Without CAP_NET_RAW opening fails with a CaptureError that names the capability."""
    _need_kind(kind)
    need(os.geteuid() == 0, "root (to drop CAP_NET_RAW from the bounding set)")
    need(subprocess.run(["which", "setpriv"], capture_output=True).returncode == 0, "setpriv (util-linux)")
    code = (
        "from pybeat.capture.live import open_live\n"
        "from pybeat.capture.errors import CaptureError\n"
        "from pybeat.config.models import InterfaceConfig\n"
        "try:\n"
        f"    open_live(InterfaceConfig(device='lo', type='{kind}'), None)\n"
        "except CaptureError as exc:\n"
        "    print('CaptureError:', exc)\n"
    )
    out = subprocess.run(
        ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin",
         "python3", "-c", code],
        capture_output=True, text=True, timeout=60,
    )
    assert "CaptureError:" in out.stdout, out.stderr
    assert "CAP_NET_RAW" in out.stdout


def _second_link(link: VethPair) -> tuple[str, str]:
    """A second veth pair between the same two namespaces (10.231.1.0/24); returns the addresses."""
    subprocess.run(["ip", "link", "add", "pbs1", "netns", link.srv_ns, "type", "veth", "peer", "name", "pbc1",
                    "netns", link.cli_ns], check=True, timeout=15)
    link.srv("ip", "addr", "add", "10.231.1.1/24", "dev", "pbs1")
    link.cli("ip", "addr", "add", "10.231.1.2/24", "dev", "pbc1")
    link.srv("ip", "link", "set", "pbs1", "up")
    link.cli("ip", "link", "set", "pbc1", "up")
    mac = link.srv("cat", "/sys/class/net/pbs1/address").stdout.strip()
    link.cli("ip", "neigh", "replace", "10.231.1.1", "lladdr", mac, "dev", "pbc1")
    return "10.231.1.1", "10.231.1.2"


@pytest.mark.parametrize("kinds", [("af_packet", "af_packet"), ("af_packet", "pcap"), ("pcap", "pcap")])
def test_a_list_of_interfaces_is_read_together(link: VethPair, kinds: tuple[str, str], tmp_path: object) -> None:
    """packetbeat.interfaces as a list (8.x): both veths are captured from one iterator, each
    frame once, counters summed and per device, one dump file per device."""
    from pybeat.capture.live import open_live_many

    for kind in kinds:
        _need_kind(kind)
    second_ip, _ = _second_link(link)
    ifaces = [InterfaceConfig(device="pbs0", type=kinds[0]), InterfaceConfig(device="pbs1", type=kinds[1])]  # type: ignore[arg-type]
    with in_netns(link.srv_ns):
        src = open_live_many(ifaces, f"udp port {PORT}", dump_path=f"{tmp_path}/d.pcap")
    frames: list[tuple[int, int, bytes]] = []
    try:
        _send_udp(link, 300)
        with in_netns(link.cli_ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            for _ in range(200):
                s.sendto(b"second", (second_ip, PORT))
        _drain(src, 500, keep=frames.append)  # type: ignore[arg-type]
        extra = _drain(src, 1, limit_s=0.0)  # type: ignore[arg-type]
        stats = src.stats()
    finally:
        src.close()
        for _ in src.packets():
            pass
    assert len(frames) == 500 and extra == 0
    dst = [socket.inet_ntoa(f[30:34]) for _, _, f in frames]
    assert dst.count(link.srv_ip) == 300 and dst.count(second_ip) == 200
    assert stats["received"] == 500 and stats["pbs0.received"] == 300 and stats["pbs1.received"] == 200
    with PcapFileSource(f"{tmp_path}/d-pbs1.pcap") as back:
        assert sum(1 for _ in back) == 200


def test_a_device_listed_twice_is_refused(link: VethPair) -> None:
    """Packetbeat rejects duplicate devices in the interfaces list; so does pybeat."""
    from pybeat.capture.live import open_live_many

    ifaces = [InterfaceConfig(device="pbs0", type="af_packet"), InterfaceConfig(device="pbs0", type="af_packet")]
    with in_netns(link.srv_ns), pytest.raises(CaptureError, match="listed more than once"):
        open_live_many(ifaces, None)
