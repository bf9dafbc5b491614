"""`pybeat service ...` and the Windows service, tested on Linux: argument parsing, the paths and
command line the service is installed with, the service object the Service Control Manager
drives (with the real agent), and the host script, with the pywin32 seam faked."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pybeat import cli
from pybeat.service import control, host, runner
from pybeat.service.control import service_command_line, service_paths
from pybeat.service.runner import PybeatService
from pybeat.service.win32 import Win32Error, load_win32
from tests.conftest import PCAPS, REPO

SAMPLE_CONFIG = REPO / "packaging" / "sample" / "pybeat.yml"
ENV = {"ProgramData": r"C:\ProgramData"}


class FakeWin32:
    """The seam, recording calls; ``fail`` makes every call raise as pywin32 would."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail
        self.status: int | None = None

    def _record(self, *call: Any) -> None:
        if self.fail:
            raise Win32Error(self.fail)
        self.calls.append(call)

    def install(self, name: str, display_name: str, description: str, command_line: str) -> None:
        self._record("install", name, display_name, description, command_line)

    def remove(self, name: str) -> None:
        self._record("remove", name)

    def start(self, name: str) -> None:
        self._record("start", name)

    def stop(self, name: str) -> None:
        self._record("stop", name)

    def serve(self, name: str, service: PybeatService) -> None:
        self._record("serve", name, service.argv)
        self.status = service.run()


class FakeAgent:
    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


def test_paths_live_under_programdata_pybeat() -> None:
    """Config, data and logs default to %ProgramData%\\pybeat, ...\\data and ...\\logs."""
    paths = service_paths(ENV, r"C:\Program Files\pybeat")
    assert paths.home == r"C:\Program Files\pybeat"
    assert paths.config == r"C:\ProgramData\pybeat"
    assert paths.config_file == r"C:\ProgramData\pybeat\pybeat.yml"
    assert paths.data == r"C:\ProgramData\pybeat\data"
    assert paths.logs == r"C:\ProgramData\pybeat\logs"


def test_paths_follow_the_environment_and_the_flags() -> None:
    """Another %ProgramData% moves everything; --path.* flags win; no variable at all falls back to C:\\ProgramData."""
    moved = service_paths({"ProgramData": r"D:\Data"}, r"C:\pybeat")
    assert moved.data == r"D:\Data\pybeat\data"
    given = service_paths(ENV, r"C:\pybeat", config=r"E:\conf", data=r"E:\data", logs=r"E:\logs")
    assert (given.config, given.data, given.logs) == (r"E:\conf", r"E:\data", r"E:\logs")
    assert service_paths({}, r"C:\pybeat").config == r"C:\ProgramData\pybeat"


def test_home_is_the_folder_holding_the_venv() -> None:
    """The default --path.home is the install folder, the parent of its venv."""
    assert control.default_home(r"C:\Program Files\pybeat\venv") == r"C:\Program Files\pybeat"
    assert control.default_home("C:\\Program Files\\pybeat\\venv\\") == r"C:\Program Files\pybeat"


def test_command_line_quotes_paths_with_spaces() -> None:
    """The service's binary path runs the base interpreter isolated (-I) on host.py with pybeat's run flags."""
    paths = service_paths(ENV, r"C:\Program Files\pybeat")
    line = service_command_line(r"C:\Program Files\Python311\python.exe",
                                r"C:\Program Files\pybeat\venv\Lib\site-packages\pybeat\service\host.py",
                                control.pybeat_args(paths))
    assert line == (
        r'"C:\Program Files\Python311\python.exe" -I '
        r'"C:\Program Files\pybeat\venv\Lib\site-packages\pybeat\service\host.py" '
        r'run -c C:\ProgramData\pybeat\pybeat.yml --path.home "C:\Program Files\pybeat" '
        r'--path.config C:\ProgramData\pybeat --path.data C:\ProgramData\pybeat\data '
        r'--path.logs C:\ProgramData\pybeat\logs'
    )


def test_install_registers_the_service_through_the_seam(capsys: pytest.CaptureFixture[str]) -> None:
    """`pybeat service install` on Windows installs 'pybeat' with that command line and says where the files are."""
    fake = FakeWin32()
    assert control.main("install", home=r"C:\pybeat", win32=fake, environ=ENV, platform="win32") == 0
    ((action, name, display, description, command),) = fake.calls
    assert (action, name, display) == ("install", "pybeat", "pybeat")
    assert "Packetbeat-compatible" in description
    assert command.endswith(r"run -c C:\ProgramData\pybeat\pybeat.yml --path.home C:\pybeat "
                            r"--path.config C:\ProgramData\pybeat --path.data C:\ProgramData\pybeat\data "
                            r"--path.logs C:\ProgramData\pybeat\logs")
    assert " -I " in command and "host.py" in command
    assert r"config: C:\ProgramData\pybeat\pybeat.yml" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["remove", "start", "stop"])
def test_other_actions_call_the_seam(action: str) -> None:
    """remove, start and stop go to the seam with the service name."""
    fake = FakeWin32()
    assert control.main(action, win32=fake, environ=ENV, platform="win32") == 0
    assert fake.calls == [(action, "pybeat")]


def test_a_windows_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A refused action (e.g. not an administrator) prints Windows' message on one line and exits 1."""
    fake = FakeWin32(fail="Access is denied.")
    assert control.main("start", win32=fake, environ=ENV, platform="win32") == 1
    assert capsys.readouterr().err == "pybeat: error: service start: Access is denied.\n"


def test_without_pywin32_the_seam_says_what_to_install() -> None:
    """Where pywin32 is missing (here: Linux), loading the seam is a Win32Error naming it."""
    with pytest.raises(Win32Error, match="pywin32 is not installed"):
        load_win32()


def test_on_linux_pybeat_service_says_windows_only(capsys: pytest.CaptureFixture[str]) -> None:
    """`pybeat service install` on Linux exits 1 with one line pointing to the systemd unit."""
    assert cli.main(["service", "install"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Windows service" in err and "systemctl enable --now pybeat" in err


def test_service_action_is_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """Only install, remove, start and stop are accepted."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["service", "restart"])
    assert exc.value.code == 2
    assert "invalid choice: 'restart'" in capsys.readouterr().err


def test_stop_before_the_agent_exists_is_applied_when_it_does() -> None:
    """A stop request that comes while pybeat is still starting stops the agent as soon as it is built."""
    agent = FakeAgent()

    def run_agent(argv: Any, on_agent: Any) -> int:
        service.stop()  # the SCM asks to stop during start-up
        on_agent(agent)
        return 0 if agent.stopped.is_set() else 3

    service = PybeatService(["run"], run_agent)
    assert service.run() == 0


def test_stop_while_running_stops_the_agent() -> None:
    """stop() from the control thread reaches the running agent; run() returns the agent's exit status."""
    agent = FakeAgent()

    def run_agent(argv: Any, on_agent: Any) -> int:
        on_agent(agent)
        return 0 if agent.stopped.wait(10) else 3

    service = PybeatService(["run", "-c", "x.yml"], run_agent)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()))
    thread.start()
    time.sleep(0.1)
    service.stop()
    thread.join(10)
    assert result == [0] and service.argv == ["run", "-c", "x.yml"]


def test_service_stops_the_real_agent(tmp_path: Path) -> None:
    """With pybeat's own run (an endless replay, in a thread as under the SCM), stop() ends it cleanly."""
    argv = ["run", "-c", str(SAMPLE_CONFIG), "-I", str(PCAPS / "dns_udp_mixed.pcap"), "-l", "0",
            "-E", f"output.file.path={tmp_path}", "--path.data", str(tmp_path), "--path.logs", str(tmp_path)]
    service = PybeatService(argv, runner.run_pybeat)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()))
    thread.start()
    time.sleep(1.5)
    assert thread.is_alive()  # still replaying
    service.stop()
    thread.join(30)
    assert not thread.is_alive() and result == [0]
    assert list(tmp_path.glob("pybeat-*.ndjson"))


def test_host_puts_the_venv_first_and_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """host.py finds site-packages three folders up, puts it (and its .pth entries) first, then serves pybeat."""
    assert host.site_packages("/opt/pybeat/venv/Lib/site-packages/pybeat/service/host.py") == \
        "/opt/pybeat/venv/Lib/site-packages"
    extra = tmp_path / "extra"
    extra.mkdir()
    (tmp_path / "x.pth").write_text(f"{extra}\n")
    saved = list(sys.path)
    try:
        host.use_site_packages(str(tmp_path))
        assert sys.path[:2] == [str(tmp_path), str(extra)] and sys.path[2:] == saved
    finally:
        sys.path[:] = saved

    fake = FakeWin32()
    monkeypatch.setattr("pybeat.service.win32.load_win32", lambda: fake)
    monkeypatch.setattr(host, "use_site_packages", lambda folder: None)
    monkeypatch.setattr(sys, "argv", ["host.py", "version"])
    host.main()
    assert fake.calls == [("serve", "pybeat", ["version"])] and fake.status == 0
