"""Interface listing and resolution: ``pybeat devices`` and ``packetbeat.interfaces.device``.

Owns: the numbered device list (libpcap's order and descriptions, as Packetbeat prints them),
and turning a device spec (a name, a number from that list, ``any``, ``default_route``,
``default_route_ipv4``, ``default_route_ipv6``) into an interface name. Default routes are read
from ``/proc/net/route`` and ``/proc/net/ipv6_route``. Without libpcap the list comes from the
kernel's interface table (no descriptions).
"""

from __future__ import annotations

import fcntl
import socket
import struct
import sys
from dataclasses import dataclass, field

from pybeat.capture import libpcap
from pybeat.capture.errors import CaptureError

DEFAULT_ROUTE_SPECS = ("default_route", "default_route_ipv4", "default_route_ipv6")
SIOCGIFADDR = 0x8915


@dataclass(frozen=True)
class Device:
    name: str
    description: str = ""
    addresses: list[str] = field(default_factory=list)


def list_devices() -> list[Device]:
    """Devices in the order ``pybeat devices`` numbers them."""
    if libpcap.available():
        return [Device(n, d, a) for n, d, a, _flags in libpcap.find_all_devices()]
    return _kernel_devices()


def _kernel_devices() -> list[Device]:
    if not hasattr(socket, "if_nameindex"):
        return []
    v6: dict[str, list[str]] = {}
    try:
        with open("/proc/net/if_inet6") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 6:
                    raw = bytes.fromhex(parts[0])
                    v6.setdefault(parts[5], []).append(socket.inet_ntop(socket.AF_INET6, raw))
    except OSError:
        pass
    out = []
    for _index, name in socket.if_nameindex():
        addrs = []
        v4 = _ipv4_address(name)
        if v4:
            addrs.append(v4)
        out.append(Device(name, "", addrs + v6.get(name, [])))
    if sys.platform.startswith("linux"):
        out.append(Device("any", "Pseudo-device that captures on all interfaces", []))
    return out


def _ipv4_address(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(res[20:24])


def format_devices(devices: list[Device] | None = None) -> str:
    """Packetbeat's ``devices`` output: ``<index>: <name> (<description>) (<addresses>)``."""
    devs = list_devices() if devices is None else devices
    if not devs:
        return "No devices found." + ("" if sys.platform == "win32" else " You might need sudo?")
    lines = []
    for i, dev in enumerate(devs):
        desc = dev.description or "No description available"
        addrs = " ".join(dev.addresses) if dev.addresses else "Not assigned ip address"
        lines.append(f"{i}: {dev.name} ({desc}) ({addrs})")
    return "\n".join(lines)


def default_route_device(family: str = "any", proc: str = "/proc") -> str | None:
    """The interface of the lowest-metric default route (``ipv4``, ``ipv6`` or ``any``)."""
    if family in ("any", "ipv4"):
        dev = _default_route_v4(proc)
        if dev or family == "ipv4":
            return dev
    return _default_route_v6(proc)


def _default_route_v4(proc: str) -> str | None:
    best: tuple[int, str] | None = None
    try:
        with open(f"{proc}/net/route") as fh:
            next(fh, None)
            for line in fh:
                cols = line.split()
                if len(cols) < 8:
                    continue
                iface, dest, flags, metric, mask = cols[0], cols[1], int(cols[3], 16), int(cols[6]), cols[7]
                if dest == "00000000" and mask == "00000000" and flags & 0x1:  # RTF_UP
                    if best is None or metric < best[0]:
                        best = (metric, iface)
    except (OSError, ValueError):
        return None
    return best[1] if best else None


def _default_route_v6(proc: str) -> str | None:
    best: tuple[int, str] | None = None
    try:
        with open(f"{proc}/net/ipv6_route") as fh:
            for line in fh:
                cols = line.split()
                if len(cols) < 10:
                    continue
                dest, plen, metric, flags, iface = cols[0], cols[1], int(cols[5], 16), int(cols[8], 16), cols[9]
                # RTF_UP and not RTF_REJECT (0x200): the kernel lists unreachable defaults on lo.
                if dest == "0" * 32 and plen == "00" and flags & 0x1 and not flags & 0x200 and iface != "lo":
                    if best is None or metric < best[0]:
                        best = (metric, iface)
    except (OSError, ValueError):
        return None
    return best[1] if best else None


def resolve_device(spec: str | int | None, *, proc: str = "/proc") -> str:
    """Turn a configured device into an interface name, or raise ``CaptureError`` saying why."""
    if spec is None or spec == "":
        spec = "any" if sys.platform.startswith("linux") else "default_route"
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        index = int(spec)
        devs = list_devices()
        if index < 0 or index >= len(devs):
            raise CaptureError(
                f"device number {index} is out of range: {len(devs)} devices found "
                "(see `pybeat devices`)"
            )
        return devs[index].name
    if spec == "any":
        if not sys.platform.startswith("linux"):
            raise CaptureError("device 'any' exists only on Linux")
        return "any"
    if spec in DEFAULT_ROUTE_SPECS:
        family = {"default_route": "any", "default_route_ipv4": "ipv4", "default_route_ipv6": "ipv6"}[spec]
        dev = default_route_device(family, proc)
        if dev is None:
            raise CaptureError(f"device {spec!r}: no default route found")
        return dev
    if sys.platform == "win32":
        from pybeat.capture import npcap

        devs = list_devices()
        if spec not in {d.name for d in devs}:
            match = npcap.match_friendly_name(spec, [(d.name, d.description, d.addresses) for d in devs])
            if match:
                return match
    return spec
