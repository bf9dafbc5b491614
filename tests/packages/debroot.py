"""A fresh Debian 12 root made with debootstrap, for installing pybeat's .deb in the tests.

Kept between runs under ``CACHE`` (so CI stays fast and needs the network only once):
- ``bookworm-minbase.tgz``: debootstrap's own package set (``--make-tarball``); every root is
  made from it with ``--unpack-tarball``, so each test run starts from a new Debian 12 system.
- ``mirror-<key>/``: a flat apt repository with that set plus what ``apt-get install`` of the
  .deb pulls in (python3.11, libpcap0.8, adduser, their dependencies and recommends) and
  ``EXTRA_PACKAGES``, fetched from Debian's mirror the first time; ``<key>`` hashes the .deb's
  dependency fields, so a new dependency makes a new mirror. Inside the root apt sees only
  this repository.

The root gets /proc, /sys and /dev mounted; ``close()`` unmounts them and deletes the root
without crossing into any file system still mounted below it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

CACHE = Path(os.environ.get("PYBEAT_DEBROOT_CACHE", "/var/cache/pybeat-packaging"))
SUITE = "bookworm"
DEBIAN = "http://deb.debian.org/debian"
MIRROR_IN_ROOT = "/srv/pybeat-mirror"
#: installed after the package, to check its unit with the target's own systemd
EXTRA_PACKAGES = ("systemd",)


def sh(cmd: Sequence[str], *, check: bool = True, timeout: float = 300, input: str | None = None,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def base_tarball() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{SUITE}-minbase.tgz"
    if not tarball.exists():
        work = CACHE / "make-tarball"
        shutil.rmtree(work, ignore_errors=True)
        partial = tarball.with_suffix(".partial.tgz")
        sh(["debootstrap", "--variant=minbase", f"--make-tarball={partial}", SUITE, str(work), DEBIAN], timeout=600)
        partial.rename(tarball)
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def deb_field(deb: Path, field: str) -> str:
    return sh(["dpkg-deb", "-f", str(deb), field], check=False).stdout.strip()


class DebianRoot:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounts: list[Path] = []  # /proc, /sys, /dev
        self.mirror_mount: Path | None = None

    @classmethod
    def create(cls, path: Path) -> "DebianRoot":
        tarball = base_tarball()
        sh(["debootstrap", "--variant=minbase", f"--unpack-tarball={tarball}", SUITE, str(path), DEBIAN], timeout=600)
        root = cls(path)
        root.mount()
        (path / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")  # no daemons start in here
        (path / "usr/sbin/policy-rc.d").chmod(0o755)
        return root

    def mount(self) -> None:
        for fstype, target in (("proc", "proc"), ("sysfs", "sys")):
            sh(["mount", "-t", fstype, fstype, str(self.path / target)])
            self.mounts.append(self.path / target)
        sh(["mount", "--rbind", "/dev", str(self.path / "dev")])
        sh(["mount", "--make-rslave", str(self.path / "dev")])
        self.mounts.append(self.path / "dev")

    def unmount(self) -> None:
        for target in reversed(self.mounts):
            sh(["umount", "-R", str(target)], check=False)
        self.mounts.clear()

    def close(self) -> None:
        self.unmount()
        if self.mirror_mount is not None:
            sh(["umount", str(self.mirror_mount)], check=False)
        still = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                 if line.split()[1].startswith(str(self.path) + "/")]
        if still:
            raise AssertionError(f"still mounted below the root, not deleting it: {still}")
        sh(["rm", "-rf", "--one-file-system", str(self.path)])

    def boot(self, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Boot the root's own systemd in a container with only a loopback interface
        (systemd-nspawn) until something in it powers it off. /proc, /sys and /dev are
        unmounted meanwhile (nspawn brings its own)."""
        self.unmount()
        try:
            Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
            return sh(["systemd-nspawn", "--quiet", "--boot", "--private-network", "--register=no", "--keep-unit",
                       f"--directory={self.path}"], check=False, timeout=timeout)
        finally:
            self.mount()

    # -- running things inside -------------------------------------------------------------

    def run(self, *cmd: str, check: bool = True, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8", "HOME": "/root"}
        return sh(["chroot", str(self.path), *cmd], check=check, timeout=timeout, input=input, env=env)

    def shell(self, script: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-ec", script, check=check, timeout=timeout)

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.path / path.lstrip("/"))

    # -- apt ---------------------------------------------------------------------------------

    def use_local_mirror(self, deb: Path) -> Path:
        """Point apt at the cached repository holding everything ``deb`` needs (built on first use)."""
        key = hashlib.sha256("\n".join(
            [SUITE, deb_field(deb, "Depends"), deb_field(deb, "Pre-Depends"), deb_field(deb, "Recommends"),
             *EXTRA_PACKAGES]
        ).encode()).hexdigest()[:12]
        mirror = CACHE / f"mirror-{key}"
        if not (mirror / "Packages").exists():
            self._fill_mirror(deb, mirror)
        inside = self.path / MIRROR_IN_ROOT.lstrip("/")
        inside.mkdir(parents=True, exist_ok=True)
        sh(["mount", "--bind", "-o", "ro", str(mirror), str(inside)])
        self.mirror_mount = inside
        sh(["mount", "-o", "remount,bind,ro", str(inside)])
        (self.path / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{MIRROR_IN_ROOT} ./\n")
        self.run("apt-get", "update", "-qq")
        return mirror

    def _fill_mirror(self, deb: Path, mirror: Path) -> None:
        (self.path / "etc/apt/sources.list").write_text(f"deb {DEBIAN} {SUITE} main\n")
        shutil.copy(deb, self.path / "tmp" / deb.name)
        self.run("apt-get", "update", "-qq", timeout=600)
        self.run("apt-get", "install", "-y", "-qq", "--download-only", f"/tmp/{deb.name}", *EXTRA_PACKAGES,
                 timeout=600)
        (self.path / "tmp" / deb.name).unlink()
        partial = mirror.with_name(mirror.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for pkg in (self.path / "var/cache/apt/archives").glob("*.deb"):
            if not pkg.name.startswith("pybeat_"):
                shutil.copy(pkg, partial / pkg.name)
        index = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=partial, capture_output=True,
                               text=True, check=True, timeout=300)
        (partial / "Packages").write_text(index.stdout)
        shutil.rmtree(mirror, ignore_errors=True)
        partial.rename(mirror)
        self.run("apt-get", "clean")
        shutil.rmtree(self.path / "var/lib/apt/lists", ignore_errors=True)
        (self.path / "var/lib/apt/lists/partial").mkdir(parents=True)
