"""The capture layer's one error family.

Owns: the exception raised when a live source cannot be opened or read (a missing capability,
a missing device, a missing libpcap/Npcap, a filter that does not compile). The message names
the cause and what to do about it, so the CLI can print it instead of a traceback.
"""

from __future__ import annotations

import errno


class CaptureError(Exception):
    """A live capture source could not be opened, configured or read."""


def explain_os_error(exc: OSError, action: str, device: str) -> CaptureError:
    """Turn an ``OSError`` from a capture syscall into a ``CaptureError`` naming the cause."""
    code = exc.errno
    if code in (errno.EPERM, errno.EACCES):
        return CaptureError(
            f"{action} on device {device!r} was refused ({exc.strerror}): capturing needs the "
            "CAP_NET_RAW capability (and CAP_NET_ADMIN for promiscuous mode); run as root or "
            "grant them, e.g. `setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3))`"
        )
    if code in (errno.ENODEV, errno.ENXIO):
        return CaptureError(
            f"{action}: no such device {device!r} (see `pybeat devices` for the list)"
        )
    if code == errno.ENETDOWN:
        return CaptureError(f"{action}: device {device!r} is down")
    if code == errno.ENOMEM:
        return CaptureError(
            f"{action} on device {device!r}: the kernel could not allocate the capture ring "
            "(lower packetbeat.interfaces.buffer_size_mb)"
        )
    return CaptureError(f"{action} on device {device!r} failed: {exc.strerror or exc}")
