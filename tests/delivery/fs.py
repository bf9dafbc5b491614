"""Small real filesystems for the delivery tests (a full disk, a read-only one): tmpfs mounts."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

from tests.conftest import need


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "256k", read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (needs root; skips locally, fails in CI)."""
    need(os.geteuid() == 0, "root (to mount a small tmpfs)")
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
    need(r.returncode == 0, f"mounting a tmpfs ({r.stderr.decode().strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> Path:
    """Fill the filesystem of ``path`` with one file; returns it (remove it to free the space)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
