"""The agent capturing live (af_packet and pcap) on a veth while real servers answer real clients.

Every server and client runs inside namespaces the test created (see netns.py); the agent runs
``pybeat run -c cfg.yml`` in the server namespace, capturing the server's end of the veth, and is
stopped with SIGINT/SIGTERM like a user would. Events are read from ``output.file``.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.live.netns import VethPair, in_netns, run_in
from tests.live.servers import agent, avahi, bind9, dhclient_lease, dhcpd

pytestmark = pytest.mark.integration

DNS = [{"type": "dns", "ports": [53, 5353]}]


def _need_pybeat_run() -> None:
    out = subprocess.run(["pybeat", "--help"], capture_output=True, text=True, timeout=60)
    need(out.returncode == 0 and " run " in out.stdout, "the `pybeat run` command")


def _dig(pair: VethPair, *args: str) -> str:
    return pair.cli("dig", "+time=2", "+tries=1", *args).stdout


def _wait_for(agent_: Any, pred: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """Poll the output file until ``pred(events)`` holds (the file output flushes per batch)."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = agent_.events()
        if pred(events):
            return events
        time.sleep(0.2)
    return events


def _dns_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "dns"]


@pytest.mark.parametrize("kind", ["af_packet", "pcap"])
def test_dig_queries_to_bind9_are_reported(link: VethPair, tmp_path: Path, kind: str) -> None:
    """dig against a real bind9 over UDP, TCP and IPv6 gives one paired DNS event per query,
    with the right addresses, transport, rcode and answers; SIGINT exits 0 promptly."""
    _need_pybeat_run()
    with bind9(link, tmp_path / "named"), agent(link, tmp_path / "agent", DNS, interface={"type": kind}) as a:
        assert "192.0.2.10" in _dig(link, f"@{link.srv_ip}", "www.example.test", "A")
        assert "2001:db8::10" in _dig(link, f"@{link.srv_ip}", "+tcp", "www.example.test", "AAAA")
        assert "hello from the live test" in _dig(link, f"@{link.srv_ip6}", "txt.example.test", "TXT")
        assert "NXDOMAIN" in _dig(link, f"@{link.srv_ip}", "nope.corp.test", "A")
        assert "REFUSED" in _dig(link, f"@{link.srv_ip}", "elsewhere.invalid", "A")
        _wait_for(a, lambda ev: len(_dns_events(ev)) >= 5)
        took = a.stop(signal.SIGINT)
        assert a.returncode == 0, a.log_text()[-2000:]
        assert took < 10
        events = _dns_events(a.events())
    by_name = {e["dns"]["question"]["name"]: e for e in events}
    assert set(by_name) == {"www.example.test", "txt.example.test", "nope.corp.test", "elsewhere.invalid"}
    assert len(events) == 5
    a4 = next(e for e in events if e["dns"]["question"]["type"] == "A" and e["dns"]["question"]["name"] == "www.example.test")
    assert a4["network"]["transport"] == "udp" and a4["status"] == "OK"
    assert a4["client"]["ip"] == link.cli_ip and a4["server"]["ip"] == link.srv_ip and a4["server"]["port"] == 53
    assert a4["dns"]["response_code"] == "NOERROR" and a4["dns"]["resolved_ip"] == ["192.0.2.10"]
    aaaa = next(e for e in events if e["dns"]["question"]["type"] == "AAAA")
    assert aaaa["network"]["transport"] == "tcp" and aaaa["dns"]["resolved_ip"] == ["2001:db8::10"]
    txt = by_name["txt.example.test"]
    assert txt["network"]["type"] == "ipv6" and txt["client"]["ip"] == link.cli_ip6
    assert by_name["nope.corp.test"]["dns"]["response_code"] == "NXDOMAIN"
    assert by_name["elsewhere.invalid"]["dns"]["response_code"] == "REFUSED"
    assert by_name["elsewhere.invalid"]["status"] == "Error"
    summary = a.log_text()
    assert re.search(r"capture\s+received [\d,]+, kernel dropped 0", summary), summary[-1500:]


def test_dnsperf_load_is_reported_in_full(link: VethPair, tmp_path: Path) -> None:
    """dnsperf sends a bounded load (6,000 queries at up to 3,000/s) to bind9; every completed
    query is one DNS event and the kernel dropped nothing."""
    _need_pybeat_run()
    need(run_in(link.cli_ns, "which", "dnsperf", check=False).returncode == 0, "dnsperf")
    names = ["www.example.test A", "www.example.test AAAA", "txt.example.test TXT", "ns1.example.test A"]
    names += [f"h{i}.example.test A" for i in range(96)]
    qfile = tmp_path / "queries.txt"
    qfile.write_text("\n".join(names) + "\n")
    with bind9(link, tmp_path / "named"), agent(link, tmp_path / "agent", DNS) as a:
        out = link.cli("dnsperf", "-s", link.srv_ip, "-d", str(qfile), "-n", "60", "-Q", "3000", "-l", "20",
                       "-t", "2", timeout=60).stdout
        completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        _wait_for(a, lambda ev: len(_dns_events(ev)) >= sent, timeout=15)
        a.stop(signal.SIGTERM)
        assert a.returncode == 0
        events = _dns_events(a.events())
        metrics = a.metrics
    assert sent == 6000 and completed >= 5994
    answered = [e for e in events if "response_code" in e["dns"]]
    assert len(answered) == completed
    assert len(events) == sent  # unanswered ones (if any) are reported too, as Packetbeat does
    assert metrics.get("capture.kernel_dropped", 0) == 0
    assert metrics["capture.received"] >= 2 * completed


def _mdns_multicast_query(link: VethPair, name: str) -> str:
    """Ask 224.0.0.251:5353 from an ephemeral port (a one-shot mDNS querier, RFC 6762 §5.1) and
    return the answer's text. dig cannot do this: it rejects a reply from the responder's own
    address when it asked the multicast group."""
    import dns.message

    with in_netns(link.cli_ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(link.cli_ip))
        s.settimeout(3)
        s.sendto(dns.message.make_query(name, "A").to_wire(), ("224.0.0.251", 5353))
        data, _ = s.recvfrom(4096)
    return dns.message.from_wire(data).to_text()


def test_avahi_mdns_responder_answers_are_reported(link: VethPair, tmp_path: Path) -> None:
    """mDNS on port 5353: a multicast query and a unicast (legacy) query to a real avahi
    responder are reported as DNS transactions for pbsrv.local."""
    _need_pybeat_run()
    link.cli("ip", "route", "add", "224.0.0.0/4", "dev", link.cli_if)
    with avahi(link, tmp_path / "avahi"), agent(link, tmp_path / "agent", DNS) as a:
        unicast = _dig(link, "-p", "5353", f"@{link.srv_ip}", "pbsrv.local", "A")
        multicast = _mdns_multicast_query(link, "pbsrv.local")
        assert link.srv_ip in unicast and link.srv_ip in multicast
        _wait_for(a, lambda ev: sum(e["dns"]["question"].get("name") == "pbsrv.local" for e in _dns_events(ev)
                                    if "question" in e["dns"]) >= 2)
        a.stop()
        assert a.returncode == 0
        events = [e for e in _dns_events(a.events()) if e["dns"].get("question", {}).get("name") == "pbsrv.local"]
    assert len(events) >= 2
    assert all(e["destination"]["port"] == 5353 or e["server"]["port"] == 5353 for e in events)
    assert any(link.srv_ip in e["dns"].get("resolved_ip", []) for e in events)


def test_dhcp_server_and_client_exchange_is_reported(link: VethPair, tmp_path: Path) -> None:
    """A real dhclient leasing from a real dhcpd: the DHCPv4 messages show up as dhcpv4 events
    carrying the leased address."""
    _need_pybeat_run()
    protocols = [{"type": "dhcpv4", "ports": [67, 68]}]
    with dhcpd(link, tmp_path / "dhcpd"), agent(link, tmp_path / "agent", protocols) as a:
        leased = dhclient_lease(link, tmp_path)
        _wait_for(a, lambda ev: any(leased in str(e) for e in ev if e.get("type") == "dhcpv4"))
        a.stop()
        assert a.returncode == 0
        events = [e for e in a.events() if e.get("type") == "dhcpv4"]
    assert leased.startswith("10.231.0.1")
    assert events, "no dhcpv4 events"
    text = str(events)
    assert leased in text
    assert "ack" in text.lower()


def test_ping_is_reported_as_icmp_transactions(link: VethPair, tmp_path: Path) -> None:
    """ping and ping -6 across the veth: each echo request/reply pair is one ICMP event."""
    _need_pybeat_run()
    need(run_in(link.cli_ns, "which", "ping", check=False).returncode == 0, "ping (iputils-ping)")
    protocols = [{"type": "icmp"}]
    with agent(link, tmp_path / "agent", protocols) as a:
        link.cli("ping", "-c", "3", "-i", "0.2", link.srv_ip)
        link.cli("ping", "-6", "-c", "2", "-i", "0.2", link.srv_ip6)
        _wait_for(a, lambda ev: len([e for e in ev if e.get("type") == "icmp"
                                     and e["client"]["ip"] in (link.cli_ip, link.cli_ip6)]) >= 5)
        a.stop()
        assert a.returncode == 0
        events = [e for e in a.events() if e.get("type") == "icmp"]
    v4 = [e for e in events if e["network"]["type"] == "ipv4"]
    v6 = [e for e in events if e["network"]["type"] == "ipv6" and e["client"]["ip"] == link.cli_ip6]
    assert len(v4) == 3 and len(v6) == 2  # (plus the link's own neighbour/router solicitations)
    assert all(e["status"] == "OK" for e in v4 + v6)
    assert all(e["client"]["ip"] == link.cli_ip and e["server"]["ip"] == link.srv_ip for e in v4)


def test_generated_filter_and_dump_keep_only_the_protocol_ports(link: VethPair, tmp_path: Path) -> None:
    """With flows off the agent captures only `port 53 or port 5353` (Packetbeat's generated
    filter), and --dump PREFIX writes exactly the captured packets to PREFIX-<yyyyMMddHHmmss>.pcap,
    as Packetbeat names it."""
    _need_pybeat_run()
    prefix = tmp_path / "dump"
    with bind9(link, tmp_path / "named"), agent(link, tmp_path / "agent", DNS, args=["--dump", str(prefix)]) as a:
        with in_netns(link.cli_ns):
            noise = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with noise:
            for _ in range(50):
                noise.sendto(b"not dns", (link.srv_ip, 9999))
        _dig(link, f"@{link.srv_ip}", "www.example.test", "A")
        _wait_for(a, lambda ev: len(_dns_events(ev)) >= 1)
        a.stop()
        metrics = a.metrics
    assert metrics["capture.received"] == 2 and metrics["decode.packets"] == 2
    from pybeat.capture.pcapfile import PcapFileSource

    (dump,) = tmp_path.glob("dump-[0-9]*.pcap")
    assert len(dump.name) == len("dump-yyyyMMddHHmmss.pcap")
    with PcapFileSource(str(dump)) as src:
        frames = [bytes(f) for _, _, f in src]
    assert len(frames) == 2 and all(f[36:38] == b"\x00\x35" or f[34:36] == b"\x00\x35" for f in frames)


def test_missing_capability_is_named_without_a_traceback(link: VethPair, tmp_path: Path) -> None:
    """`pybeat run` without CAP_NET_RAW exits non-zero with a message naming the capability."""
    _need_pybeat_run()
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(f"packetbeat.interfaces: {{device: lo, type: af_packet}}\npacketbeat.protocols: [{{type: dns}}]\n"
                   f"output.file: {{path: {tmp_path}/out}}\npath.home: {tmp_path}\n")
    cfg.chmod(0o600)
    out = subprocess.run(
        ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin",
         "pybeat", "run", "-c", str(cfg), "-e"],
        capture_output=True, text=True, timeout=60,
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "CAP_NET_RAW" in text and "Traceback" not in text, text[-2000:]


def test_default_route_device_follows_a_route_change(link: VethPair, tmp_path: Path) -> None:
    """device: default_route with poll_default_route: 1s captures the default route's
    interface, and after the route moves to another veth, that one."""
    _need_pybeat_run()
    need(run_in(link.cli_ns, "which", "ping", check=False).returncode == 0, "ping (iputils-ping)")
    from tests.live.test_sources import _second_link

    second_ip, second_peer = _second_link(link)
    link.srv("ip", "route", "add", "default", "via", link.cli_ip, "dev", link.srv_if)
    iface = {"device": "default_route", "poll_default_route": "1s"}
    with agent(link, tmp_path / "agent", [{"type": "icmp"}], interface=iface) as a:
        link.cli("ping", "-c", "2", "-i", "0.2", link.srv_ip)  # on pbs0: captured
        link.cli("ping", "-c", "2", "-i", "0.2", second_ip)  # on pbs1: not (yet)
        link.srv("ip", "route", "replace", "default", "via", second_peer, "dev", "pbs1")
        time.sleep(2.5)
        link.cli("ping", "-c", "3", "-i", "0.2", second_ip)  # now captured
        _wait_for(a, lambda ev: len([e for e in ev if e.get("type") == "icmp" and e["network"]["type"] == "ipv4"]) >= 5)
        a.stop()
        assert a.returncode == 0
        events = [e for e in a.events() if e.get("type") == "icmp" and e["network"]["type"] == "ipv4"]
        metrics = a.metrics
    servers = [e["server"]["ip"] for e in events]
    assert servers.count(link.srv_ip) == 2 and servers.count(second_ip) == 3, servers
    assert metrics.get("capture.route_changes") == 1


def test_two_agents_in_one_fanout_group_split_the_load(link: VethPair, tmp_path: Path) -> None:
    """Two pybeat processes with the same fanout_group share one veth: dnsperf's 8 client
    sockets are split between them by flow, every query reported exactly once overall."""
    _need_pybeat_run()
    need(run_in(link.cli_ns, "which", "dnsperf", check=False).returncode == 0, "dnsperf")
    qfile = tmp_path / "queries.txt"
    qfile.write_text("\n".join(f"h{i}.example.test A" for i in range(100)) + "\n")
    iface = {"fanout_group": 42}
    with bind9(link, tmp_path / "named"), \
            agent(link, tmp_path / "a1", DNS, interface=iface) as a1, \
            agent(link, tmp_path / "a2", DNS, interface=iface) as a2:
        out = link.cli("dnsperf", "-s", link.srv_ip, "-d", str(qfile), "-n", "20", "-c", "8", "-Q", "2000",
                       "-l", "20", "-t", "2", timeout=60).stdout
        sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        _wait_for(a1, lambda ev: len(_dns_events(ev)) + len(_dns_events(a2.events())) >= sent, timeout=15)
        a1.stop()
        a2.stop()
        n1, n2 = len(_dns_events(a1.events())), len(_dns_events(a2.events()))
    assert sent == 2000
    assert n1 + n2 == sent
    assert n1 > 0 and n2 > 0


@pytest.mark.parametrize(
    ("interface", "message"),
    [
        ({"device": "nosuch0"}, "no such device 'nosuch0'"),
        ({"bpf_filter": "port and and"}, "invalid bpf_filter 'port and and'"),
        ({"type": "pcap", "fanout_group": 3}, "fanout_group is only valid with af_packet type"),
    ],
)
def test_capture_setup_errors_are_one_line_messages(link: VethPair, tmp_path: Path, interface: dict[str, Any],
                                                    message: str) -> None:
    """A missing device, a filter that does not compile, fanout with pcap: the agent exits
    non-zero with a message naming the problem, not a traceback."""
    _need_pybeat_run()
    from tests.live.servers import Agent

    a = Agent(link, tmp_path / "agent", DNS, interface=interface)
    try:
        a.proc.wait(60)
    finally:
        a.kill()
    text = a.log_text()
    assert a.proc.returncode != 0
    assert message in text and "Traceback" not in text, text[-2000:]


def test_pybeat_devices_lists_the_namespace_interfaces(link: VethPair) -> None:
    """`pybeat devices` in the server namespace numbers its interfaces with their addresses, and
    a number from that list works as `device`."""
    _need_pybeat_run()
    out = link.srv("pybeat", "devices").stdout.splitlines()
    line = next(x for x in out if re.match(r"\d+: pbs0 ", x))
    assert link.srv_ip in line and link.srv_ip6 in line
    assert any(re.match(r"\d+: any \(Pseudo-device that captures on all interfaces\)", x) for x in out)
    index = line.split(":", 1)[0]
    code = ("from pybeat.capture.devices import resolve_device\n"
            f"print(resolve_device({index}), resolve_device('{index}'))\n")
    assert link.srv("python3", "-c", code).stdout.split() == ["pbs0", "pbs0"]
