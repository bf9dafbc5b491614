"""What packaging/build.sh reads from pyproject.toml, the one place the version is written.

    python3 packaging/version.py                               -> 0.1.0
    python3 packaging/version.py --windows-only-requirements   -> pywin32 (one per line)

The second form lists the dependencies whose environment marker limits them to Windows: pip
evaluates markers for the interpreter it runs on, so ``pip download --platform win_amd64`` on
Linux would leave them out unless they are named.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def project() -> dict:
    with PYPROJECT.open("rb") as fh:
        return tomllib.load(fh)["project"]


def windows_only_requirements(dependencies: list[str]) -> list[str]:
    """The requirement part of each dependency whose marker names win32 / Windows."""
    found = []
    for dep in dependencies:
        requirement, _, marker = dep.partition(";")
        if "win32" in marker or "Windows" in marker:
            found.append(requirement.strip())
    return found


def main(argv: list[str]) -> int:
    meta = project()
    if argv[1:] == ["--windows-only-requirements"]:
        print("\n".join(windows_only_requirements(meta["dependencies"])))
    elif not argv[1:]:
        print(meta["version"])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
