"""What every live capture source shares: one packet iterator, and a wake pipe for ``close``.

``packets()`` returns the same iterator every time (a caller may stop iterating and pick up
again later): :class:`PacketSource`, the base of every live source. In a
:class:`WakeableSource` (the ones that read a capture handle themselves) the reader waits in ``poll`` on its capture handle and the wake pipe, so that
``close()``, called from a signal handler or another thread, wakes it with one pipe write.
Subclasses write ``_read`` and their own ``close`` (which calls ``_wake`` first).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

__all__ = ["PacketSource", "WakeableSource"]


class PacketSource:
    """Base of the live sources: ``packets()`` is ``_read()``'s iterator, made once."""

    _iter: Iterator[tuple[int, int, bytes] | None] | None = None

    def packets(self) -> Iterator[tuple[int, int, bytes] | None]:
        """Frames as ``(ts_ns, link_type, frame)``, ``None`` when idle for a while. Always the
        same iterator."""
        if self._iter is None:
            self._iter = self._read()
        return self._iter

    def _read(self) -> Iterator[tuple[int, int, bytes] | None]:
        raise NotImplementedError


class WakeableSource(PacketSource):
    """Base of ``AfPacketSource``, ``PcapLiveSource`` and ``MultiLiveSource``."""

    _closing: bool
    _wake_r: int
    _wake_w: int

    def _open_wake(self) -> None:
        """The reader's state and the wake pipe (the write end never blocks a signal handler)."""
        self._iter = None
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def _wake(self) -> None:
        """Ask the reader to stop, and wake it (safe from a signal handler: one pipe write)."""
        self._closing = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _close_wake(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1
