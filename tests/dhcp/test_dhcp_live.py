"""A capture nobody has seen before: real ISC dhcpd and dhclient, v4 and v6 (plus ping and a UDP probe to a
closed port) in two network namespaces made by the test, captured with tcpdump, replayed through
the DHCPv4 and ICMP analyzers and compared with tshark's decode of the same file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import need, need_root, need_tool
from tests.dhcp.support import messages_from_events, messages_from_rows, run_pcap, tshark_rows

pytestmark = pytest.mark.integration

DHCPD_CONF = """
authoritative;
default-lease-time 600;
max-lease-time 7200;
ddns-update-style none;
ping-check false;
option domain-name "live.example.test";
option domain-name-servers 10.231.3.1;
subnet 10.231.3.0 netmask 255.255.255.0 {
  range 10.231.3.100 10.231.3.150;
  option routers 10.231.3.1;
  option subnet-mask 255.255.255.0;
}
"""
DHCPD6_CONF = """
default-lease-time 600;
max-lease-time 7200;
preferred-lifetime 300;
option dhcp6.name-servers fd00:231:3::1;
option dhcp6.domain-search "live.example.test";
subnet6 fd00:231:3::/64 {
  range6 fd00:231:3::1000 fd00:231:3::1fff;
}
"""


# three echo requests on a raw socket (no ping binary needed), then a UDP datagram to a closed port
PROBES = """
import socket, struct, time
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
raw.settimeout(2)
for seq in (1, 2, 3):
    body = b'pybeat-live-probe'
    hdr = struct.pack('!BBHHH', 8, 0, 0, 0x4242, seq)
    raw.sendto(struct.pack('!BBHHH', 8, 0, csum(hdr + body + b'\\0'), 0x4242, seq) + body, ('10.231.3.1', 0))
    raw.recv(2048)
    time.sleep(0.1)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.sendto(b'probe', ('10.231.3.1', 5399))
"""


def _ns(ns: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, timeout=30, **kw)


@pytest.fixture
def lab(tmp_path: Path):
    """Two namespaces joined by a veth pair; dhcpd on the server side. Torn down even on failure."""
    need_root()
    for tool in ("dhcpd", "dhclient", "tcpdump", "ip"):
        need_tool(tool)
    tag = f"{os.getpid() % 100000}"
    srv, cli = f"pbdhcp-s{tag}", f"pbdhcp-c{tag}"
    procs: list[subprocess.Popen] = []
    try:
        for ns in (srv, cli):
            subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=10)
        subprocess.run(["ip", "link", "add", "pbs0", "netns", srv, "type", "veth", "peer", "name", "pbc0",
                        "netns", cli], check=True, timeout=10)
        subprocess.run(["ip", "-n", srv, "addr", "add", "10.231.3.1/24", "dev", "pbs0"], check=True, timeout=10)
        subprocess.run(["ip", "-n", srv, "addr", "add", "fd00:231:3::1/64", "dev", "pbs0", "nodad"], check=True,
                       timeout=10)
        subprocess.run(["ip", "-n", cli, "link", "set", "pbc0", "address", "02:77:03:00:00:11"], check=True, timeout=10)
        for ns, ifc in ((srv, "pbs0"), (cli, "pbc0")):
            subprocess.run(["ip", "-n", ns, "link", "set", ifc, "up"], check=True, timeout=10)
            subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", ifc, "tx", "off"], capture_output=True, timeout=10)
        (tmp_path / "dhcpd.conf").write_text(DHCPD_CONF)
        (tmp_path / "dhcpd.leases").write_text("")
        dhcpd = subprocess.Popen(
            ["ip", "netns", "exec", srv, "dhcpd", "-4", "-f", "-d", "-cf", str(tmp_path / "dhcpd.conf"),
             "-lf", str(tmp_path / "dhcpd.leases"), "-pf", str(tmp_path / "dhcpd.pid"), "pbs0"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "dhcpd.log", "w"),
        )
        procs.append(dhcpd)
        (tmp_path / "dhcpd6.conf").write_text(DHCPD6_CONF)
        (tmp_path / "dhcpd6.leases").write_text("")
        dhcpd6 = subprocess.Popen(
            ["ip", "netns", "exec", srv, "dhcpd", "-6", "-f", "-d", "-cf", str(tmp_path / "dhcpd6.conf"),
             "-lf", str(tmp_path / "dhcpd6.leases"), "-pf", str(tmp_path / "dhcpd6.pid"), "pbs0"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "dhcpd6.log", "w"),
        )
        procs.append(dhcpd6)
        yield {"srv": srv, "cli": cli, "dir": tmp_path, "procs": procs}
    finally:
        # dhclient daemonises once it has its lease: stop it by the pid it wrote
        for pidfile in (tmp_path / "client.pid", tmp_path / "client6.pid"):
            if pidfile.is_file():
                try:
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
                except (ValueError, IndexError, ProcessLookupError):
                    pass
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        for ns in (cli, srv):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _capture(lab) -> Path:
    """tcpdump on the client side while the client leases, pings and probes a closed port."""
    d, cli = lab["dir"], lab["cli"]
    pcap = d / "live.pcap"
    dump = subprocess.Popen(
        ["ip", "netns", "exec", cli, "tcpdump", "-Z", "root", "-U", "-s", "0", "-i", "pbc0", "-w", str(pcap),
         "udp or icmp or icmp6"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lab["procs"].append(dump)
    assert dump.stderr is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "listening" not in (dump.stderr.readline() or ""):
        pass
    time.sleep(1.0)  # dhcpd must be up too
    need(lab["procs"][0].poll() is None, "a running dhcpd (see dhcpd.log in the test's tmp dir)")
    lease = d / "client.leases"
    _ns(cli, "timeout", "25", "dhclient", "-4", "-1", "-sf", "/bin/true", "-lf", str(lease),
        "-pf", str(d / "client.pid"), "pbc0")
    # DHCPv6: wait until the link-local address is usable, then SOLICIT/ADVERTISE/REQUEST/REPLY
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "-n", cli, "-6", "addr", "show", "dev", "pbc0"], capture_output=True,
                             text=True, timeout=10).stdout
        if "fe80::" in out and "tentative" not in out:
            break
        time.sleep(0.2)
    _ns(cli, "timeout", "25", "dhclient", "-6", "-1", "-sf", "/bin/true", "-lf", str(d / "client6.leases"),
        "-pf", str(d / "client6.pid"), "pbc0")
    # give the client an address by hand (the script above is /bin/true) to ping and probe
    subprocess.run(["ip", "-n", cli, "addr", "add", "10.231.3.9/24", "dev", "pbc0"], check=True, timeout=10)
    _ns(cli, "python3", "-c", PROBES)
    time.sleep(1.0)
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)
    return pcap


def test_live_dhcp_and_icmp_match_tshark(lab):
    """DORA and DHCPv6 SOLICIT..REPLY from real dhcpd/dhclient, 3 echo pairs and one port-unreachable: the events
    agree with tshark on every DHCP message and on ICMP pairs and errors."""
    tshark = need_tool("tshark")
    pcap = _capture(lab)
    a4, e4, a6, e6 = run_pcap(pcap)
    got4, got6 = messages_from_events(e4, e6)
    want4, want6 = messages_from_rows(tshark_rows(tshark, pcap))
    assert got4 == want4 and got6 == want6
    v6types = [e.fields["dhcpv6"]["message_type"] for e in e6]
    assert v6types == ["solicit", "advertise", "request", "reply"]
    reply = e6[-1].fields["dhcpv6"]
    assert reply["ia_na"][0]["addresses"][0]["ip"].startswith("fd00:231:3::1")
    assert reply["option"]["dns_servers"] == ["fd00:231:3::1"]
    assert reply["client_id"]["link_layer_address"] == "02:77:03:00:00:11"
    assert a6.stats()["unmatched_requests"] == 0
    types = [e.fields["dhcpv4"]["option"]["message_type"] for e in e4]
    assert {"discover", "offer", "request", "ack"} <= set(types)
    ack = next(e.fields for e in e4 if e.fields["dhcpv4"]["option"]["message_type"] == "ack")
    assert ack["dhcpv4"]["client_mac"] == "02:77:03:00:00:11"
    assert ack["dhcpv4"]["assigned_ip"].startswith("10.231.3.1")
    assert ack["dhcpv4"]["option"]["domain_name"] == "live.example.test"
    assert ack["dhcpv4"]["exchange"]["messages"][-2:] == ["request", "ack"]
    assert a4.stats()["unmatched_requests"] == 0

    from tests.icmp.support import expected_from_events, expected_from_rows, run_pcap as run_icmp
    from tests.icmp.support import tshark_rows as icmp_rows

    _, icmp_events = run_icmp(pcap)
    assert expected_from_events(icmp_events) == expected_from_rows(icmp_rows(tshark, pcap))
    unreachable = [e.fields for e in icmp_events if e.fields["icmp"].get("request", {}).get("type") == 3]
    assert len(unreachable) == 1
    assert unreachable[0]["icmp"]["original"]["destination"] == {"ip": "10.231.3.1", "port": 5399}
