"""Make a virtualenv built at a staging path work at its installed path (packaging/build.sh).

A venv records its own location in three places: the ``#!`` line of its scripts, the
``activate*`` scripts and ``pyvenv.cfg``'s ``command``. This rewrites them to the installed path,
then compiles every module to bytecode that is never checked against the source's timestamp
(``unchecked-hash``), with the installed paths in tracebacks: the installed tree is read-only
(root-owned, and ``ProtectSystem=strict`` under systemd), so Python could not write a missing
or stale .pyc at run time, and a package manager may change file times. Finally it fails if the
staging path is still written anywhere in the tree.

    python3.11 packaging/relocate_venv.py STAGED_VENV INSTALLED_PATH
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import sys
from pathlib import Path


def rewrite_scripts(venv: Path, staged: str, final: str) -> None:
    for path in (venv / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if staged.encode() not in data:
            continue
        text = data.decode()
        if text.startswith("#!"):
            first, _, rest = text.partition("\n")
            first = "#!" + final + "/bin/python3"
            text = first + "\n" + rest
        path.write_text(text.replace(staged, final))


def rewrite_cfg(venv: Path, staged: str, final: str) -> None:
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(staged, final))


def compile_all(venv: Path, final: str) -> None:
    for cache in list(venv.rglob("__pycache__")):
        shutil.rmtree(cache)
    ok = compileall.compile_dir(
        venv / "lib", ddir=final + "/lib", quiet=1, workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise SystemExit("relocate_venv: some modules did not compile")


def leftovers(venv: Path, staged: str) -> list[Path]:
    needle = staged.encode()
    return [p for p in venv.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    venv = Path(argv[1]).resolve()
    staged, final = str(venv), argv[2].rstrip("/")
    rewrite_scripts(venv, staged, final)
    rewrite_cfg(venv, staged, final)
    compile_all(venv, final)
    left = leftovers(venv, staged)
    if left:
        print("relocate_venv: the staging path is still in: " + ", ".join(map(str, left)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
