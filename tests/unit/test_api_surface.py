"""pybeat.api is the whole contract: the built-in plugins import nothing else from pybeat (but
the built-ins' speed hooks, pybeat._fastpath), they type-check against the api's Protocols, and
every name the first published API (0.1) exported is still there."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

#: the core's own modules that live beside the built-in processors (not plugins)
CORE_PROCESSOR_MODULES = {"__init__.py", "build.py", "conditions.py"}
#: the built-ins' internal speed hooks (pybeat/_fastpath.py); their compiled code lives in
#: their own packages (protocols/dns/_fast.pyx)
ALLOWED = ("pybeat.api", "pybeat._fastpath")
#: plugin packages may use each other (dhcpv6 shares dhcpv4's exchange tracking): they are not core
PLUGIN_PACKAGES = ("pybeat.protocols.", "pybeat.outputs.")


def _plugin_files() -> list[Path]:
    files = [p for d in ("protocols", "outputs") for p in (REPO / d).rglob("*.py")]
    files += [p for p in (REPO / "pybeat" / "processors").rglob("*.py") if p.name not in CORE_PROCESSOR_MODULES]
    return files


def _own_package(path: Path) -> str:
    rel = path.relative_to(REPO).parts
    if rel[0] in ("protocols", "outputs"):
        return f"pybeat.{rel[0]}.{rel[1]}"
    return "pybeat.processors"


def test_built_in_plugins_import_only_the_api():
    bad = []
    for path in _plugin_files():
        own = _own_package(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if not name.startswith("pybeat"):
                    continue
                if name in ALLOWED or name == own or name.startswith(PLUGIN_PACKAGES):
                    continue
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert not bad, "built-in plugins must import only pybeat.api (and pybeat._fastpath):\n" + "\n".join(bad)


def test_every_built_in_entry_point_declares_the_current_api():
    from pybeat.api import API_VERSION
    from pybeat.plugins import load_registry

    reg = load_registry()
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    for group, entries in groups.items():
        if not group.startswith("pybeat."):
            continue
        kind = group.split(".", 1)[1]
        for name in entries:
            info = reg.info(kind, name)
            assert info.error is None, (name, info.error)
            assert info.api_version == API_VERSION.rsplit(".", 1)[0] and not info.legacy, (kind, name)


def test_the_built_ins_type_check_against_the_api_protocols(tmp_path):
    """Assigning each built-in plugin object to its kind's Protocol type-checks (mypy), so the
    Protocols describe what the built-ins really are (read-only name/config_model/...)."""
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    kinds = {"pybeat.protocols": "ProtocolPlugin", "pybeat.outputs": "OutputPlugin",
             "pybeat.processors": "ProcessorPlugin", "pybeat.detectors": "DetectorPlugin"}
    lines = ["from pybeat import api"]
    for group, entries in groups.items():
        if group not in kinds:
            continue
        for i, (name, target) in enumerate(sorted(entries.items())):
            module, attr = target.split(":")
            alias = f"{group.split('.')[1]}_{i}"
            lines.append(f"from {module} import {attr} as {alias}")
            lines.append(f"_{alias}: api.{kinds[group]} = {alias}")
    check = tmp_path / "check_protocols.py"
    check.write_text("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", str(check)],
                       capture_output=True, text=True, cwd=str(REPO))
    assert r.returncode == 0, r.stdout + r.stderr


#: pybeat.api 0.1's ``__all__`` (commit 28a2b9a): every name must still be importable.
API_0_1 = [
    "Analyzer", "Batch", "BeatInfo", "CommonProtocolConfig", "EmitFn", "Event", "Output", "OutputContext",
    "OutputPlugin", "Packet", "PluginConfig", "Processor", "ProcessorPlugin", "ProtocolContext", "ProtocolPlugin",
    "TcpConnection",
]


def test_every_0_1_name_is_still_exported():
    import pybeat.api as api

    missing = [n for n in API_0_1 if not hasattr(api, n)]
    assert not missing
    assert set(API_0_1) <= set(api.__all__)
    assert hasattr(api, "Plugin")  # 0.1's undeclared convenience base
