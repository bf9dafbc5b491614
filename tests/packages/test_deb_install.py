"""The .deb on a fresh Debian 12 (debootstrap root, chroot): install, run as the pybeat user with
only CAP_NET_RAW, its unit under Debian's own systemd-analyze, upgrade, purge.

The steps share one root and run in order (each test is one step of a package's life); a
failure in one makes the later ones fail too. Needs root, debootstrap and, the first time,
Debian's package mirror (see debroot.py for what is cached).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import PCAPS, need, need_tool
from tests.packages.conftest import Built
from tests.packages.debroot import DebianRoot

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

CAPTURE = "dns_udp_mixed.pcap"
#: the pybeat user with CAP_NET_RAW as its only capability (permitted, effective, ambient, bounding)
AS_PYBEAT = ("setpriv", "--reuid", "pybeat", "--regid", "pybeat", "--init-groups",
             "--inh-caps", "-all,+net_raw", "--ambient-caps", "+net_raw", "--bounding-set", "-all,+net_raw", "--")
#: the pybeat user with no capability at all
AS_PYBEAT_NO_CAPS = ("setpriv", "--reuid", "pybeat", "--regid", "pybeat", "--init-groups",
                     "--inh-caps", "-all", "--bounding-set", "-all", "--")
PATHS = ("/usr/bin/pybeat", "/usr/share/pybeat", "/etc/pybeat", "/var/lib/pybeat", "/var/log/pybeat",
         "/lib/systemd/system/pybeat.service", "/usr/share/doc/pybeat")

DNS_PING = Path(__file__).with_name("dns_ping.py")
UNIT_CHECK = Path(__file__).with_name("unit_check.sh")


@pytest.fixture(scope="module")
def root(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianRoot]:
    need(os.geteuid() == 0, "root (debootstrap, chroot, mounts)")
    need_tool("debootstrap")
    need_tool("dpkg-scanpackages")
    need_tool("unshare")
    need_tool("ip")
    need_tool("systemd-nspawn")
    debian = DebianRoot.create(tmp_path_factory.mktemp("debian12") / "root")
    try:
        debian.use_local_mirror(built.deb)
        yield debian
    finally:
        debian.close()


def stat(root: DebianRoot, path: str) -> str:
    return root.run("stat", "-c", "%U:%G %a", path).stdout.strip()


def events(root: DebianRoot, pattern: str) -> list[dict]:
    found = []
    for path in sorted((root.path / "var/lib/pybeat/events").glob(pattern)):
        found += [json.loads(line) for line in path.read_text().splitlines() if line]
    return found


def test_apt_installs_the_deb_with_its_dependencies(root: DebianRoot, built: Built) -> None:
    """`apt-get install ./pybeat_*.deb` on a minimal Debian 12 pulls python3.11 and libpcap and sets up the user."""
    shutil.copy(built.deb, root.path / "root" / built.deb.name)
    root.shell(f"cd /root && apt-get install -y -qq ./{built.deb.name}")
    assert root.run("dpkg-query", "-W", "-f", "${Status} ${Version}", "pybeat").stdout == \
        f"install ok installed {built.version}-1"
    passwd = root.run("getent", "passwd", "pybeat").stdout.split(":")
    assert int(passwd[2]) < 1000 and passwd[5] == "/var/lib/pybeat" and passwd[6].strip() == "/usr/sbin/nologin"
    assert stat(root, "/etc/pybeat/pybeat.yml") == "root:pybeat 640"
    assert stat(root, "/var/lib/pybeat") == "pybeat:pybeat 750"
    assert stat(root, "/var/log/pybeat") == "pybeat:pybeat 750"
    assert root.run("readlink", "/usr/share/pybeat/venv/bin/python3.11").stdout.strip() == "/usr/bin/python3.11"


def test_version_runs_from_the_bundled_venv(root: DebianRoot, built: Built) -> None:
    """`pybeat version` runs on the system's python3.11 with the bundled venv and its compiled hot path."""
    out = root.run("pybeat", "version").stdout
    assert out.startswith(f"pybeat version {built.version} ") and "python 3.11" in out
    site = root.path / "usr/share/pybeat/venv/lib/python3.11/site-packages"
    compiled = [".".join(p.relative_to(site).with_name(p.name.split(".")[0]).parts) for p in site.glob("pybeat/**/*.so")]
    assert compiled
    root.run("/usr/share/pybeat/venv/bin/python3", "-I", "-c", "import " + ", ".join(compiled))


def test_test_config_without_arguments_checks_etc_pybeat(root: DebianRoot) -> None:
    """`pybeat test config` with no -c validates /etc/pybeat/pybeat.yml, as root and as the pybeat user."""
    assert root.run("pybeat", "test", "config").stdout.strip() == "Config OK"
    assert root.run(*AS_PYBEAT, "pybeat", "test", "config").stdout.strip() == "Config OK"
    conf = root.path / "etc/pybeat/pybeat.yml"
    shipped = conf.read_text()
    try:
        conf.write_text(shipped + "output.file.pathh: /tmp\n")
        broken = root.run("pybeat", "test", "config", check=False)
    finally:
        conf.write_text(shipped)
    assert broken.returncode == 1 and "output.file.pathh (pybeat.yml:" in broken.stderr


def test_capability_set_is_only_net_raw(root: DebianRoot) -> None:
    """The setpriv prefix the next steps use leaves CAP_NET_RAW (bit 13) and nothing else."""
    status = dict(line.split(":\t") for line in root.run(*AS_PYBEAT, "cat", "/proc/self/status").stdout.splitlines()
                  if line.startswith("Cap"))
    assert {k: v.strip() for k, v in status.items()} == {
        "CapInh": "0000000000002000", "CapPrm": "0000000000002000", "CapEff": "0000000000002000",
        "CapBnd": "0000000000002000", "CapAmb": "0000000000002000"}


def test_replay_as_the_pybeat_user_writes_events(root: DebianRoot) -> None:
    """A capture replayed as the pybeat user, with the package's config, lands in /var/lib/pybeat/events."""
    need((PCAPS / CAPTURE).exists(), f"the capture {PCAPS / CAPTURE}")
    shutil.copy(PCAPS / CAPTURE, root.path / "tmp" / CAPTURE)
    os.chmod(root.path / "tmp" / CAPTURE, 0o644)
    out = root.run(*AS_PYBEAT, "pybeat", "run", "-I", f"/tmp/{CAPTURE}", "-t", "-E", "output.file.filename=replay").stdout
    docs = events(root, "replay-*.ndjson")
    assert len(docs) > 100 and all(d["network"]["protocol"] == "dns" for d in docs)
    assert f"output      file: acked {len(docs)}, dropped 0" in out
    assert stat(root, "/var/lib/pybeat/events") == "pybeat:pybeat 700"
    assert any(p.name.startswith("pybeat-") for p in (root.path / "var/log/pybeat").iterdir())


def test_keystore_of_the_service_user_feeds_the_agent(root: DebianRoot) -> None:
    """`pybeat keystore` run as pybeat (as docs/install.md says) keeps /var/lib/pybeat/pybeat.keystore
    private to that user, and the agent running as pybeat resolves ${KEY} from it."""
    secret = "planted-7f3a9c"
    root.run(*AS_PYBEAT, "pybeat", "keystore", "create")
    root.run(*AS_PYBEAT, "pybeat", "keystore", "add", "SITE_TOKEN", "--stdin", input=secret + "\n")
    assert stat(root, "/var/lib/pybeat/pybeat.keystore") == "pybeat:pybeat 600"
    listed = root.run(*AS_PYBEAT, "pybeat", "keystore", "list").stdout
    assert "SITE_TOKEN" in listed and secret not in listed
    out = root.run(*AS_PYBEAT, "pybeat", "run", "-I", f"/tmp/{CAPTURE}", "-t", "-E", "output.file.filename=keystore",
                   "-E", "fields.site_token=${SITE_TOKEN}").stdout
    docs = events(root, "keystore-*.ndjson")
    assert docs and all(d["fields"]["site_token"] == secret for d in docs)
    assert secret not in out
    refused = root.run("pybeat", "test", "config", check=False)  # root, strict perms: not root's file
    assert refused.returncode == 1 and "must be owned by the user running pybeat or root" in refused.stderr


@pytest.mark.parametrize("capture_type", ["af_packet", "pcap"])
def test_live_capture_with_only_cap_net_raw(root: DebianRoot, capture_type: str) -> None:
    """Live capture (af_packet ring and libpcap) on the loopback of a private network namespace
    works as the pybeat user with CAP_NET_RAW alone, and is refused, naming the capability, without it."""
    shutil.copy(DNS_PING, root.path / "tmp" / DNS_PING.name)
    name = f"{capture_type.replace('_', '')}.live.example.test"
    chroot = ["chroot", str(root.path)]
    pybeat = ["pybeat", "run", "-E", "packetbeat.interfaces.device=lo", "-E", f"packetbeat.interfaces.type={capture_type}",
              "-E", f"output.file.filename=live-{capture_type}"]
    script = (
        "ip link set lo up\n"
        f"{' '.join(chroot + list(AS_PYBEAT_NO_CAPS) + pybeat)} && exit 10\n"
        f"{' '.join(chroot + list(AS_PYBEAT) + pybeat)} >/dev/null 2>&1 & agent=$!\n"
        "sleep 2.5\n"
        f"{' '.join(chroot)} python3.11 /tmp/{DNS_PING.name} {name} 20\n"
        "sleep 1\n"
        "kill -INT $agent\n"
        "wait $agent\n"
    )
    proc = subprocess.run(["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr
    assert "CAP_NET_RAW" in proc.stderr
    assert proc.stdout.strip() == "20"  # the responder answered every query
    docs = [d for d in events(root, f"live-{capture_type}-*.ndjson") if d["dns"]["question"]["name"] == name]
    assert len(docs) >= 15 and all(d["status"] == "OK" for d in docs)


def test_unit_passes_systemd_analyze_verify(root: DebianRoot) -> None:
    """Debian 12's systemd-analyze verifies the installed unit, and its sandbox rates as well protected."""
    root.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "systemd", timeout=600)
    verify = root.run("systemd-analyze", "verify", "/lib/systemd/system/pybeat.service", check=False)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = root.run("systemd-analyze", "security", "--offline=true", "--no-pager",
                        "/lib/systemd/system/pybeat.service", check=False)
    overall = [line for line in security.stdout.splitlines() if "Overall exposure level" in line]
    assert overall, security.stdout + security.stderr
    score = float(overall[0].split("level for pybeat.service:")[1].split()[0])
    assert score <= 2.5, security.stdout  # 2.1 when written; systemd calls up to 4.x "OK"


def test_service_runs_under_systemd_with_its_sandbox(root: DebianRoot) -> None:
    """Booted with its own systemd (nspawn, loopback only), the root starts pybeat.service: it runs as
    pybeat with CAP_NET_RAW and CAP_NET_ADMIN only, captures DNS with af_packet, stops cleanly on SIGTERM."""
    conf = root.path / "etc/pybeat/pybeat.yml"
    shipped = conf.read_text()
    check_unit = root.path / "etc/systemd/system/pybeat-check.service"
    wants = root.path / "etc/systemd/system/multi-user.target.wants/pybeat-check.service"
    shutil.copy(DNS_PING, root.path / "root" / DNS_PING.name)
    shutil.copy(UNIT_CHECK, root.path / "root" / UNIT_CHECK.name)
    check_unit.write_text("[Unit]\nAfter=multi-user.target\n[Service]\nExecStart=/root/unit_check.sh\n"
                          "[Install]\nWantedBy=multi-user.target\n")
    wants.parent.mkdir(parents=True, exist_ok=True)
    wants.symlink_to("/etc/systemd/system/pybeat-check.service")
    try:
        booted = root.boot()
        log_file = root.path / "root/unit-check.log"
        log = log_file.read_text() if log_file.exists() else ""
    finally:
        for path in (wants, check_unit, root.path / "root/unit-check.log", root.path / "root" / UNIT_CHECK.name):
            path.unlink(missing_ok=True)
        conf.write_text(shipped)
    assert booted.returncode == 0 and log, f"{booted.returncode}\n{booted.stdout[-3000:]}\n{booted.stderr[-3000:]}"
    facts = dict(line.replace(":\t", "=", 1).split("=", 1) for line in log.splitlines()
                 if "=" in line or ":\t" in line)
    assert facts["ActiveState"] == "active" and facts["User"] == "pybeat", log
    assert facts["Uid"].split() == [facts["Uid"].split()[0]] * 4 and facts["Uid"].split()[0] != "0", log
    net_raw_and_admin = "0000000000003000"
    assert (facts["CapEff"], facts["CapBnd"], facts["CapAmb"], facts["NoNewPrivs"]) == \
        (net_raw_and_admin, net_raw_and_admin, net_raw_and_admin, "1"), log
    assert facts["answered"] == "20" and int(facts["events"]) >= 15, log
    assert facts["Result"] == "success" and facts["ExecMainStatus"] == "0", log
    assert "output      file: acked" in log and "dropped 0" in log


def test_upgrade_keeps_a_changed_conffile(root: DebianRoot, built_upgrade: Built) -> None:
    """Installing a rebuilt, newer .deb keeps an edited /etc/pybeat/pybeat.yml, its ownership and the data."""
    conf = root.path / "etc/pybeat/pybeat.yml"
    edited = conf.read_text().replace("logging.level: info", "logging.level: warning") + "# edited by the site\n"
    conf.write_text(edited)
    shutil.copy(built_upgrade.deb, root.path / "root" / built_upgrade.deb.name)
    root.shell(f"cd /root && apt-get install -y -qq ./{built_upgrade.deb.name}")
    assert root.run("pybeat", "version").stdout.startswith(f"pybeat version {built_upgrade.version} ")
    assert conf.read_text() == edited
    assert not root.exists("/etc/pybeat/pybeat.yml.dpkg-new")
    assert stat(root, "/etc/pybeat/pybeat.yml") == "root:pybeat 640"
    assert events(root, "replay-*.ndjson")
    # as the service user: the keystore made earlier is pybeat's, which root's strict perms refuse
    assert root.run(*AS_PYBEAT, "pybeat", "test", "config").stdout.strip() == "Config OK"


def test_purge_leaves_nothing_behind(root: DebianRoot) -> None:
    """`apt-get purge pybeat` removes every file, the config, data and logs, the overrides and the user."""
    root.run("apt-get", "purge", "-y", "-qq", "pybeat")
    assert root.run("dpkg-query", "-W", "pybeat", check=False).returncode != 0 or \
        root.run("dpkg-query", "-W", "-f", "${Status}", "pybeat").stdout == "unknown ok not-installed"
    assert [p for p in PATHS if root.exists(p)] == []
    assert root.run("getent", "passwd", "pybeat", check=False).returncode == 2
    assert root.run("getent", "group", "pybeat", check=False).returncode == 2
    assert "pybeat" not in root.run("dpkg-statoverride", "--list").stdout
    orphans = root.run("find", "/", "-xdev", "(", "-nouser", "-o", "-nogroup", ")", "-print").stdout
    assert orphans == ""
    assert root.run("find", "/etc/systemd", "-name", "pybeat*").stdout == ""
