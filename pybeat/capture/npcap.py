"""Windows specifics for ``type: pcap``: finding Npcap's wpcap.dll and friendly device names.

Owns everything Windows-only in the capture layer, so the rest stays platform-neutral. Npcap
installs ``wpcap.dll`` under ``%SystemRoot%\\System32\\Npcap``, which is not on the DLL search
path by default; its device names are ``\\Device\\NPF_{GUID}``, and the adapter description
(what Windows calls the friendly name is close to it) is what users recognise. Untested here:
the project's CI is Linux; the logic is small and kept apart for that reason.
"""

from __future__ import annotations

import os

MISSING_MESSAGE = (
    "Npcap was not found: install it from the Npcap project (with 'WinPcap API-compatible "
    "mode') and restart pybeat; live capture on Windows needs it"
)


def find_wpcap() -> str | None:
    """Path of Npcap's ``wpcap.dll`` (made loadable with its ``Packet.dll``), or ``None``."""
    system_root = os.environ.get("SystemRoot", r"C:\Windows")
    folder = os.path.join(system_root, "System32", "Npcap")
    dll = os.path.join(folder, "wpcap.dll")
    if not os.path.exists(dll):
        return None
    add_dir = getattr(os, "add_dll_directory", None)
    if add_dir is not None:
        add_dir(folder)  # so wpcap.dll finds Packet.dll beside it
    return dll


def match_friendly_name(spec: str, devices: list[tuple[str, str, list[str]]]) -> str | None:
    """Map a description (or a unique prefix of one) to the ``\\Device\\NPF_{...}`` name."""
    lowered = spec.lower()
    exact = [name for name, desc, _ in devices if desc.lower() == lowered]
    if len(exact) == 1:
        return exact[0]
    prefixed = [name for name, desc, _ in devices if desc.lower().startswith(lowered)]
    if len(prefixed) == 1:
        return prefixed[0]
    return None
