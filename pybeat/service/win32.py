"""The one seam between pybeat and pywin32: every call into the Windows service APIs is here.

``Win32`` is what the rest of ``pybeat.service`` uses; ``PyWin32`` implements it with pywin32
(a Windows-only dependency, imported only when a service action runs on Windows), and the tests
use a fake. Not run by this project's CI (Linux): kept short, and every call is to a documented
pywin32 function.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pybeat.service.runner import PybeatService

#: restart after 5 s on each of the first three failures; the count resets after a day
RESTART_DELAY_MS = 5000
FAILURE_RESET_S = 86400
STOP_WAIT_S = 60.0


class Win32Error(Exception):
    """A service action failed (the message is Windows' own)."""


class Win32(Protocol):
    def install(self, name: str, display_name: str, description: str, command_line: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def serve(self, name: str, service: "PybeatService") -> None: ...


def load_win32() -> Win32:
    try:
        return PyWin32()
    except ImportError as exc:
        raise Win32Error(f"pywin32 is not installed ({exc}); pip install pywin32") from None


class PyWin32:
    """``Win32`` with pywin32: the Service Control Manager through ``win32service`` and
    ``win32serviceutil``, the service process through ``servicemanager``."""

    def __init__(self) -> None:
        import pywintypes
        import servicemanager
        import win32service
        import win32serviceutil

        self._error: type[BaseException] = pywintypes.error
        self._sm: Any = servicemanager
        self._ws: Any = win32service
        self._wsu: Any = win32serviceutil

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except self._error as exc:
            raise Win32Error(getattr(exc, "strerror", None) or str(exc)) from None

    def install(self, name: str, display_name: str, description: str, command_line: str) -> None:
        ws = self._ws
        scm = self._call(ws.OpenSCManager, None, None, ws.SC_MANAGER_ALL_ACCESS)
        try:
            handle = self._call(
                ws.CreateService, scm, name, display_name, ws.SERVICE_ALL_ACCESS,
                ws.SERVICE_WIN32_OWN_PROCESS, ws.SERVICE_AUTO_START, ws.SERVICE_ERROR_NORMAL,
                command_line, None, 0, None, None, None,  # LocalSystem, as Packetbeat's service
            )
            try:
                self._call(ws.ChangeServiceConfig2, handle, ws.SERVICE_CONFIG_DESCRIPTION, description)
                self._call(ws.ChangeServiceConfig2, handle, ws.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, True)
                actions = [(ws.SC_ACTION_RESTART, RESTART_DELAY_MS)] * 3
                self._call(ws.ChangeServiceConfig2, handle, ws.SERVICE_CONFIG_FAILURE_ACTIONS,
                           {"ResetPeriod": FAILURE_RESET_S, "RebootMsg": None, "Command": None,
                            "Actions": actions})
                # also restart when the service stops itself with an error, not only on a crash
                self._call(ws.ChangeServiceConfig2, handle, ws.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True)
            finally:
                ws.CloseServiceHandle(handle)
        finally:
            ws.CloseServiceHandle(scm)

    def remove(self, name: str) -> None:
        self._call(self._wsu.RemoveService, name)

    def start(self, name: str) -> None:
        self._call(self._wsu.StartService, name)

    def stop(self, name: str) -> None:
        self._call(self._wsu.StopService, name)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            state = self._call(self._wsu.QueryServiceStatus, name)[1]
            if state == self._ws.SERVICE_STOPPED:
                return
            time.sleep(0.5)
        raise Win32Error(f"the service did not stop within {STOP_WAIT_S:.0f} s")

    def serve(self, name: str, service: "PybeatService") -> None:
        """Called in the service process: hand control to the Service Control Manager, which
        calls ``service.run()`` and, on a stop request, ``service.stop()``."""
        ws, sm = self._ws, self._sm

        class Framework(self._wsu.ServiceFramework):  # type: ignore[name-defined,misc]
            _svc_name_ = name
            _svc_display_name_ = name

            def SvcDoRun(self) -> None:  # noqa: N802 (pywin32's names)
                status = service.run()
                if status != 0:
                    sm.LogErrorMsg(f"pybeat exited with status {status}; see its log files")
                    # an exception is reported as a failure, and the failure actions restart it
                    raise RuntimeError(f"pybeat exited with status {status}")

            def SvcStop(self) -> None:  # noqa: N802
                self.ReportServiceStatus(ws.SERVICE_STOP_PENDING, waitHint=int(STOP_WAIT_S * 1000))
                service.stop()

        sm.Initialize()
        sm.PrepareToHostSingle(Framework)
        sm.StartServiceCtrlDispatcher()
