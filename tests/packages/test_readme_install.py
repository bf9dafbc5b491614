"""The README's first lines say how to install the package, besides the pip route (issue 15),
and what they say matches what packaging/build.sh makes."""

from __future__ import annotations

import fnmatch
import re

from tests.conftest import REPO


def _intro() -> str:
    """The README up to its first code block: what a newcomer reads first."""
    text = (REPO / "README.md").read_text()
    return text.split("```", 1)[0]


def test_the_readme_intro_names_the_package_route_and_the_pip_route() -> None:
    """Before the first code block: build the packages, install the .deb with apt, start the
    service, where the rpm and Windows zip are documented; and the pip route after it."""
    intro = " ".join(_intro().split())
    assert "bash packaging/build.sh" in intro
    assert "apt-get install ./dist/pybeat_*_amd64.deb" in intro
    assert "systemctl enable --now pybeat" in intro
    assert ".rpm" in intro and "Windows" in intro and "docs/install.md" in intro
    assert (REPO / "docs" / "install.md").is_file()
    first_block = (REPO / "README.md").read_text().split("```", 2)[1]
    assert "pip install ." in first_block


def test_the_readme_deb_glob_matches_the_name_build_sh_writes() -> None:
    """The glob the README gives (dist/pybeat_*_amd64.deb) matches build.sh's .deb name, and
    the unit it starts is the one the package installs."""
    build = (REPO / "packaging" / "build.sh").read_text()
    (pattern,) = set(re.findall(r"out=\$DIST/(pybeat_\$\{VERSION\}_amd64\.deb)", build))
    assert fnmatch.fnmatch(pattern.replace("${VERSION}", "0.1.0"), "pybeat_*_amd64.deb")
    assert (REPO / "packaging" / "linux" / "pybeat.service").is_file()
