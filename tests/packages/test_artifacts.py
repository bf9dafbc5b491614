"""What `bash packaging/build.sh` makes: the five artifacts, the .rpm's file list, scripts and
requirements (read with rpm itself), the .deb's control data, and the Windows zip."""

from __future__ import annotations

import configparser
import subprocess
import tarfile
import zipfile

import pytest

from tests.conftest import REPO
from tests.packages.conftest import Built
from tests.packages.debroot import deb_field

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def rpm_query(rpm: str, *args: str) -> str:
    return subprocess.run(["rpm", "-qp", *args, rpm], capture_output=True, text=True, check=True).stdout


def deb(path: str, *args: str) -> str:
    return subprocess.run(["dpkg-deb", *args, path], capture_output=True, text=True, check=True).stdout


def test_build_makes_every_artifact_with_the_pyproject_version(built: Built) -> None:
    """dist/ holds the wheel (with the compiled extension), the sdist, the .deb, the .rpm and the Windows zip."""
    names = sorted(p.name for p in built.dist.iterdir())
    assert names == sorted([
        built.wheel().name, built.sdist.name, built.deb.name, built.rpm.name, built.windows_zip.name])
    members = zipfile.ZipFile(built.wheel()).namelist()
    assert any(m.startswith("pybeat/") and m.endswith(".so") for m in members)
    assert "pybeat/service/win32.py" in members
    cython = subprocess.run(["git", "ls-files", "*.pyx", "*.pxd"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    with tarfile.open(built.sdist) as sdist:
        names = sdist.getnames()
    assert cython and all(f"pybeat-{built.version}/{path}" in names for path in cython)
    assert not [n for n in names if n.endswith((".c", ".so"))]


def test_rpm_lists_the_packetbeat_layout(built: Built) -> None:
    """rpm -qpl: the wrapper, the config, the unit, the bundled venv, the data and log directories."""
    files = set(rpm_query(str(built.rpm), "-l").split())
    assert {"/usr/bin/pybeat", "/etc/pybeat/pybeat.yml", "/usr/lib/systemd/system/pybeat.service",
            "/usr/share/pybeat/venv/bin/pybeat", "/usr/share/pybeat/venv/bin/python3.11",
            "/usr/share/pybeat/venv/pyvenv.cfg", "/var/lib/pybeat", "/var/log/pybeat",
            "/usr/share/doc/pybeat/install.md"} <= files
    assert any(f.startswith("/usr/share/pybeat/venv/lib/python3.11/site-packages/pybeat/") and f.endswith(".so")
               for f in files)
    assert not any("__pycache__" in f and not f.endswith(".pyc") for f in files if f.endswith(".py"))


def test_rpm_config_is_noreplace_and_readable_by_the_pybeat_group(built: Built) -> None:
    """The config is %config(noreplace), root:pybeat 0640; the data and log directories belong to pybeat."""
    rows = rpm_query(str(built.rpm), "--qf", "[%{FILENAMES}|%{FILEFLAGS:fflags}|%{FILEUSERNAME}:%{FILEGROUPNAME}|"
                                             "%{FILEMODES:perms}\n]")
    table = {line.split("|")[0]: line.split("|")[1:] for line in rows.splitlines()}
    assert table["/etc/pybeat/pybeat.yml"] == ["cn", "root:pybeat", "-rw-r-----"]
    assert table["/var/lib/pybeat"][1:] == ["pybeat:pybeat", "drwxr-x---"]
    assert table["/var/log/pybeat"][1:] == ["pybeat:pybeat", "drwxr-x---"]


def test_rpm_requires_python311_and_libpcap(built: Built) -> None:
    """The rpm declares the interpreter its venv was built for (python3.11) and libpcap."""
    requires = {line.split()[0] for line in rpm_query(str(built.rpm), "--requires").splitlines()}
    assert {"python3.11", "libpcap", "shadow-utils"} <= requires


def test_rpm_scripts_create_the_user_and_manage_the_unit(built: Built) -> None:
    """rpm -qp --scripts: %pre adds the system user, %preun stops and disables on erase only, %postun restarts on upgrade."""
    scripts = rpm_query(str(built.rpm), "--scripts")
    sections = {}
    for block in scripts.split("\n\n"):
        header, _, body = block.strip().partition("\n")
        sections[header.split(" scriptlet")[0]] = body
    pre, preun, postun = sections["preinstall"], sections["preuninstall"], sections["postuninstall"]
    assert "useradd --system --gid pybeat --home-dir /var/lib/pybeat" in pre and "groupadd --system pybeat" in pre
    assert 'if [ "$1" -eq 0 ]' in preun and "disable --now pybeat.service" in preun
    assert 'if [ "$1" -ge 1 ]' in postun and "try-restart pybeat.service" in postun
    assert "userdel" not in scripts  # rpm convention: erase keeps the user


def test_deb_control_conffile_and_scripts(built: Built) -> None:
    """The .deb depends on python3.11, libpcap0.8 and adduser, marks the config as a conffile and ships its scripts."""
    assert deb_field(built.deb, "Depends") == "python3.11, libpcap0.8, adduser"
    assert deb_field(built.deb, "Version") == f"{built.version}-1"
    info = deb(str(built.deb), "-I")
    for script in ("postinst", "prerm", "postrm"):
        assert f" {script} " in info
    conffiles = subprocess.run(["sh", "-c", f"dpkg-deb --ctrl-tarfile {built.deb} | tar -xO ./conffiles"],
                               capture_output=True, text=True, check=True).stdout
    assert conffiles.split() == ["/etc/pybeat/pybeat.yml"]
    listing = deb(str(built.deb), "-c")
    assert "./lib/systemd/system/pybeat.service" in listing and "./usr/bin/pybeat" in listing


def test_unit_runs_as_pybeat_with_only_the_capture_capabilities(built: Built) -> None:
    """pybeat.service: the pybeat user, CAP_NET_RAW and CAP_NET_ADMIN only, no new privileges, a read-only
    system with the data and log directories writable, restart on failure."""
    text = subprocess.run(["sh", "-c", f"dpkg-deb --fsys-tarfile {built.deb} | tar -xO ./lib/systemd/system/pybeat.service"],
                          capture_output=True, text=True, check=True).stdout
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    service = unit["Service"]
    assert service["User"] == "pybeat" and service["Group"] == "pybeat"
    assert service["AmbientCapabilities"] == "CAP_NET_RAW CAP_NET_ADMIN"
    assert service["CapabilityBoundingSet"] == "CAP_NET_RAW CAP_NET_ADMIN"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "pybeat" and service["LogsDirectory"] == "pybeat"
    assert service["ReadWritePaths"] == "/var/lib/pybeat /var/log/pybeat"
    assert service["Restart"] == "on-failure"
    assert "--path.config /etc/pybeat" in service["Environment"] or "--path.config /etc/pybeat" in text
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_windows_zip_is_self_contained(built: Built) -> None:
    """The zip holds the service scripts, a config and a wheelhouse with pybeat and every dependency (pywin32 too)."""
    top = f"pybeat-{built.version}-windows-x86_64/"
    names = zipfile.ZipFile(built.windows_zip).namelist()
    for name in ("install-service-pybeat.ps1", "uninstall-service-pybeat.ps1", "pybeat.yml", "INSTALL.md",
                 f"wheels/pybeat-{built.version}-py3-none-any.whl"):
        assert top + name in names
    wheels = [n.split("/")[-1] for n in names if n.startswith(top + "wheels/")]
    for pyver in ("cp311", "cp312", "cp313"):
        assert any(w.startswith("pywin32-") and f"-{pyver}-" in w and w.endswith("win_amd64.whl") for w in wheels)
        assert any(w.startswith("pydantic_core-") and f"-{pyver}-" in w and "win_amd64" in w for w in wheels)
