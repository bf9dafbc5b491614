"""Network namespaces for the live-capture tests: a veth pair between a server and a client.

Everything the tests send stays inside the two namespaces they create (private addresses on
the veth ends, nothing routed out); ``veth_pair`` deletes the namespaces even when a test fails.
``in_netns`` switches the calling thread into a namespace for as long as it takes to open a
socket there: a socket keeps the namespace it was created in.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
SRV_IP, CLI_IP = "10.231.0.1", "10.231.0.2"
SRV_IP6, CLI_IP6 = "fd31::1", "fd31::2"
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class VethPair:
    srv_ns: str
    cli_ns: str
    srv_if: str = "pbs0"
    cli_if: str = "pbc0"
    srv_ip: str = SRV_IP
    cli_ip: str = CLI_IP
    srv_ip6: str = SRV_IP6
    cli_ip6: str = CLI_IP6

    def srv(self, *cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return run_in(self.srv_ns, *cmd, **kw)

    def cli(self, *cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return run_in(self.cli_ns, *cmd, **kw)

    def srv_mac(self) -> str:
        return self.srv("cat", f"/sys/class/net/{self.srv_if}/address").stdout.strip()


def run_in(ns: str, *cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
    opts: dict[str, object] = {"check": True, "capture_output": True, "text": True, "timeout": 60}
    opts.update(kw)
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], **opts)  # type: ignore[call-overload,no-any-return]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)


@contextmanager
def veth_pair(offload: bool = True) -> Iterator[VethPair]:
    """Two fresh namespaces joined by a veth pair, addressed, up, with static neighbours."""
    tag = f"{os.getpid()}x{next(_counter)}"
    pair = VethPair(srv_ns=f"pblive{tag}s", cli_ns=f"pblive{tag}c")
    made: list[str] = []
    try:
        for ns in (pair.srv_ns, pair.cli_ns):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("link", "add", pair.srv_if, "netns", pair.srv_ns, "type", "veth",
            "peer", "name", pair.cli_if, "netns", pair.cli_ns)
        for ns, ifname, v4, v6 in ((pair.srv_ns, pair.srv_if, pair.srv_ip, pair.srv_ip6),
                                   (pair.cli_ns, pair.cli_if, pair.cli_ip, pair.cli_ip6)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{v4}/24", "dev", ifname)
            _ip("-n", ns, "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
            _ip("-n", ns, "link", "set", ifname, "up")
            if not offload:
                # Fill in checksums on send, so captured frames carry valid ones.
                subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off"],
                               capture_output=True, timeout=15)
        # Static neighbours: no ARP/ND exchange delays or drops the first packets of a test.
        srv_mac = pair.srv_mac()
        cli_mac = pair.cli("cat", f"/sys/class/net/{pair.cli_if}/address").stdout.strip()
        _ip("-n", pair.cli_ns, "neigh", "replace", pair.srv_ip, "lladdr", srv_mac, "dev", pair.cli_if)
        _ip("-n", pair.srv_ns, "neigh", "replace", pair.cli_ip, "lladdr", cli_mac, "dev", pair.srv_if)
        _ip("-n", pair.cli_ns, "neigh", "replace", pair.srv_ip6, "lladdr", srv_mac, "dev", pair.cli_if)
        _ip("-n", pair.srv_ns, "neigh", "replace", pair.cli_ip6, "lladdr", cli_mac, "dev", pair.srv_if)
        yield pair
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)


@contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the body with the calling thread in namespace ``ns`` (sockets opened here stay there)."""
    own = os.open(f"/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns back: {os.strerror(err)}")
    finally:
        os.close(target)
        os.close(own)
