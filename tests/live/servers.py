"""Real servers and the agent, started inside the test's namespaces and always stopped.

``bind9`` serves a small zone on the server end of the veth; ``Agent`` runs ``pybeat run`` in the
server namespace capturing that veth live and writing events with ``output.file``; the test then
stops it with SIGINT (or SIGTERM) as a user would, and reads the events back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import need
from tests.live.netns import VethPair, run_in

ZONE = """$TTL 300
@   IN SOA ns1.example.test. admin.example.test. ( 1 3600 600 86400 300 )
    IN NS  ns1.example.test.
ns1 IN A   {srv_ip}
www IN A   192.0.2.10
www IN AAAA 2001:db8::10
txt IN TXT "hello from the live test"
*   IN A   192.0.2.99
"""

CORP_ZONE = """$TTL 300
@   IN SOA ns1.corp.test. admin.corp.test. ( 1 3600 600 86400 300 )
    IN NS  ns1.corp.test.
ns1 IN A   {srv_ip}
"""


@contextmanager
def bind9(pair: VethPair, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """named serving example.test (wildcard) and corp.test (no wildcard) on the server's veth addresses (no recursion)."""
    need(run_in(pair.srv_ns, "which", "named", check=False).returncode == 0, "named (Debian bind9)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "example.test.zone").write_text(ZONE.format(srv_ip=pair.srv_ip))
    conf = workdir / "named.conf"
    conf.write_text(
        f'options {{ directory "{workdir}"; pid-file "{workdir}/named.pid"; '
        f"listen-on {{ {pair.srv_ip}; }}; listen-on-v6 {{ {pair.srv_ip6}; }}; "
        "recursion no; allow-query { any; }; dnssec-validation no; "
        "rate-limit { responses-per-second 0; }; };\n"
        f'zone "example.test" {{ type primary; file "{workdir}/example.test.zone"; }};\n'
        f'zone "corp.test" {{ type primary; file "{workdir}/corp.test.zone"; }};\n'
    )
    (workdir / "corp.test.zone").write_text(CORP_ZONE.format(srv_ip=pair.srv_ip))
    log = open(workdir / "named.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", pair.srv_ns, "named", "-g", "-n", "1", "-c", str(conf)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            r = run_in(pair.cli_ns, "dig", "+short", "+time=1", "+tries=1", f"@{pair.srv_ip}",
                       "ns1.example.test", check=False)
            if r.stdout.strip() == pair.srv_ip:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("named did not start: " + (workdir / "named.log").read_text()[-2000:])
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


class Agent:
    """``pybeat run`` capturing live inside a namespace, writing NDJSON events to a folder."""

    def __init__(self, pair: VethPair, workdir: Path, protocols: list[dict[str, Any]],
                 interface: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                 args: list[str] | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.out = workdir / "out"
        iface = {"device": pair.srv_if, "type": "af_packet"}
        iface.update(interface or {})
        cfg: dict[str, Any] = {
            "packetbeat.interfaces": iface,
            "packetbeat.protocols": protocols,
            "output.file": {"path": str(self.out), "filename": "events", "rotate_every_kb": 10_000_000},
            "logging.level": "info",
            # Publish small batches at once: the tests read the file while the agent runs.
            "queue.mem.flush.timeout": "100ms",
            "path.home": str(workdir),
        }
        cfg.update(extra or {})
        self.config = workdir / "pybeat.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.config.chmod(0o600)
        self.log_path = workdir / "agent.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", pair.srv_ns, "pybeat", "run", "-c", str(self.config), "-e", *(args or [])],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(workdir),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.returncode: int | None = None

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("event") == "started" for e in self.log_events()):
                time.sleep(0.2)  # the source is open before "started" is logged
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited early ({self.proc.returncode}): {self.log_text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"agent did not start: {self.log_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> float:
        """Signal the agent and wait for it; return how long it took to exit."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"agent did not stop within {timeout}s: {self.log_text()[-3000:]}") from None
        finally:
            self._log.close()
        return time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()

    def events(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        if not self.out.is_dir():
            return lines
        for f in sorted(self.out.iterdir()):
            for raw in f.read_text().splitlines():
                if raw.strip():
                    lines.append(json.loads(raw))
        return lines

    @property
    def metrics(self) -> dict[str, Any]:
        for ev in reversed(self.log_events()):
            if ev.get("event") == "stopped":
                return dict(ev.get("metrics", {}))
        raise AssertionError(f"no 'stopped' line in the agent log: {self.log_text()[-3000:]}")


@contextmanager
def agent(pair: VethPair, workdir: Path, protocols: list[dict[str, Any]], **kw: Any) -> Iterator[Agent]:
    a = Agent(pair, workdir, protocols, **kw)
    try:
        a.wait_started()
        yield a
    finally:
        a.kill()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


AVAHI_CONF = """[server]
host-name=pbsrv
use-ipv4=yes
use-ipv6=no
allow-interfaces={ifname}
enable-dbus=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
[rlimits]
"""


@contextmanager
def avahi(pair: VethPair, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """An avahi mDNS responder for ``pbsrv.local`` on the server's veth (no D-Bus).

    ``ip netns exec`` runs it in its own mount namespace, where a tmpfs over
    /run/avahi-daemon keeps its pid file apart from any other avahi on the machine.
    """
    need(run_in(pair.srv_ns, "which", "avahi-daemon", check=False).returncode == 0, "avahi-daemon")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "avahi-daemon.conf"
    conf.write_text(AVAHI_CONF.format(ifname=pair.srv_if))
    log = open(workdir / "avahi.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", pair.srv_ns, "sh", "-c",
         "mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && "
         f"exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f {conf}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while "Server startup complete" not in (workdir / "avahi.log").read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("avahi did not start: " + (workdir / "avahi.log").read_text()[-2000:])
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc)
        log.close()


DHCPD_CONF = """default-lease-time 600;
max-lease-time 7200;
authoritative;
subnet 10.231.0.0 netmask 255.255.255.0 {
  range 10.231.0.100 10.231.0.120;
  option routers 10.231.0.1;
  option domain-name-servers 10.231.0.1;
}
"""


@contextmanager
def dhcpd(pair: VethPair, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """ISC dhcpd serving 10.231.0.100-120 on the server's veth."""
    need(run_in(pair.srv_ns, "which", "dhcpd", check=False).returncode == 0, "dhcpd (isc-dhcp-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "dhcpd.conf").write_text(DHCPD_CONF)
    (workdir / "dhcpd.leases").write_text("")
    log = open(workdir / "dhcpd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", pair.srv_ns, "dhcpd", "-4", "-f", "-d", "-cf", str(workdir / "dhcpd.conf"),
         "-lf", str(workdir / "dhcpd.leases"), "-pf", str(workdir / "dhcpd.pid"), pair.srv_if],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while "Sending on" not in (workdir / "dhcpd.log").read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("dhcpd did not start: " + (workdir / "dhcpd.log").read_text()[-2000:])
            time.sleep(0.1)
        yield proc
    finally:
        _stop(proc)
        log.close()


def dhclient_lease(pair: VethPair, workdir: Path, timeout: float = 30) -> str:
    """Run dhclient in the client namespace until it holds a lease; return the leased address.

    ``-sf /bin/true``: the lease is taken but nothing on the machine is reconfigured.
    """
    need(run_in(pair.cli_ns, "which", "dhclient", check=False).returncode == 0, "dhclient (isc-dhcp-client)")
    leases = workdir / "dhclient.leases"
    log = open(workdir / "dhclient.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", pair.cli_ns, "dhclient", "-4", "-d", "-v", "-sf", "/bin/true",
         "-lf", str(leases), "-pf", str(workdir / "dhclient.pid"), pair.cli_if],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = leases.read_text() if leases.exists() else ""
            if "fixed-address" in text:
                return text.split("fixed-address", 1)[1].split(";", 1)[0].strip()
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError("dhclient got no lease: " + (workdir / "dhclient.log").read_text()[-2000:])
    finally:
        _stop(proc)
        log.close()
