"""``pybeat service install|remove|start|stop``: what the service is called, where its files are
and the command line the Service Control Manager starts it with.

Paths follow Packetbeat's Windows service: the program (home) stays where it was installed, the
config, data and logs live under ``%ProgramData%\\pybeat``. The service process is the base
Python interpreter running ``host.py`` (a venv's ``python.exe`` is a launcher that starts the real
interpreter as a child, which the Service Control Manager does not talk to); ``host.py`` puts
the venv's site-packages on the path itself. Paths are built with ``ntpath`` so that they are the
same when tested on Linux.
"""

from __future__ import annotations

import ntpath
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pybeat.service.win32 import Win32, Win32Error, load_win32

SERVICE_NAME = "pybeat"
DISPLAY_NAME = "pybeat"
DESCRIPTION = "Packetbeat-compatible network agent (DNS security monitoring)"
ACTIONS = ("install", "remove", "start", "stop")
LINUX_MESSAGE = ("pybeat: error: `pybeat service` manages the Windows service; on Linux the "
                 "packages install the systemd unit pybeat.service (systemctl enable --now pybeat)")


@dataclass(frozen=True)
class ServicePaths:
    home: str
    config: str
    data: str
    logs: str

    @property
    def config_file(self) -> str:
        return ntpath.join(self.config, "pybeat.yml")


def service_paths(environ: Mapping[str, str], home: str, config: str | None = None,
                  data: str | None = None, logs: str | None = None) -> ServicePaths:
    """The service's paths: ``%ProgramData%\\pybeat`` for config, ``...\\data`` and ``...\\logs``
    unless given (``--path.*``)."""
    program_data = environ.get("ProgramData") or environ.get("PROGRAMDATA") or r"C:\ProgramData"
    root = ntpath.join(program_data, "pybeat")
    return ServicePaths(
        home=home,
        config=config or root,
        data=data or ntpath.join(root, "data"),
        logs=logs or ntpath.join(root, "logs"),
    )


def default_home(prefix: str) -> str:
    """The install directory: the parent of the venv (``<home>\\venv``) pybeat runs from."""
    return ntpath.dirname(prefix.rstrip("\\/")) or prefix


def host_script() -> str:
    return str(Path(__file__).with_name("host.py"))


def pybeat_args(paths: ServicePaths, config_file: str | None = None) -> list[str]:
    """The ``pybeat`` arguments the service runs with."""
    return [
        "run",
        "-c", config_file or paths.config_file,
        "--path.home", paths.home,
        "--path.config", paths.config,
        "--path.data", paths.data,
        "--path.logs", paths.logs,
    ]


def service_command_line(python: str, script: str, args: Sequence[str]) -> str:
    """The service's binary path: ``"python.exe" -I "host.py" run ...`` (``-I``: no environment
    variables, user site or current directory on the path)."""
    return subprocess.list2cmdline([python, "-I", script, *args])


def base_python() -> str:
    """The interpreter behind the current venv (``sys._base_executable``), which is a real
    ``python.exe``, not the venv's launcher."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def main(action: str, *, home: str | None = None, config: str | None = None, data: str | None = None,
         logs: str | None = None, config_file: str | None = None, win32: Win32 | None = None,
         environ: Mapping[str, str] | None = None, platform: str = sys.platform) -> int:
    """Run one ``pybeat service`` action; returns the exit status."""
    if platform != "win32":
        print(LINUX_MESSAGE, file=sys.stderr)
        return 1
    if action not in ACTIONS:
        raise ValueError(f"unknown service action {action!r}")
    import os

    try:
        api = win32 or load_win32()
        if action == "install":
            paths = service_paths(environ if environ is not None else os.environ,
                                  home or default_home(sys.prefix), config, data, logs)
            command = service_command_line(base_python(), host_script(), pybeat_args(paths, config_file))
            api.install(SERVICE_NAME, DISPLAY_NAME, DESCRIPTION, command)
            print(f"installed service {SERVICE_NAME!r}: {command}")
            print(f"config: {config_file or paths.config_file}; data: {paths.data}; logs: {paths.logs}")
        elif action == "remove":
            api.remove(SERVICE_NAME)
            print(f"removed service {SERVICE_NAME!r}")
        elif action == "start":
            api.start(SERVICE_NAME)
            print(f"started service {SERVICE_NAME!r}")
        else:
            api.stop(SERVICE_NAME)
            print(f"stopped service {SERVICE_NAME!r}")
    except Win32Error as exc:
        print(f"pybeat: error: service {action}: {exc}", file=sys.stderr)
        return 1
    return 0
