"""Fixtures for the Logstash output tests: real go-lumber receivers, certificates, agent runs.

Receivers are the Go program in tests/tooling/lumber-receiver (built by its setup.sh); every
receiver a test starts is stopped at teardown, pass or fail. Agent runs: agent_run.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, need, need_tool
from tests.logstash.agent_run import stop_leftover_agents

sys.path.insert(0, str(REPO / "tests" / "tooling" / "lumber-receiver"))
from lumber_receiver import Receiver, binary  # noqa: E402

__all__ = ["Receiver"]


@pytest.fixture(autouse=True)
def _no_leftover_agents() -> Iterator[None]:
    """An agent run a failed test did not wait for is killed at teardown."""
    yield
    stop_leftover_agents()


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Any]:
    """A factory: ``receivers(name, **options)`` starts a receiver writing ``<name>.ndjson``."""
    need(binary() is not None, "the lumber-receiver test program (tests/tooling/lumber-receiver/setup.sh, needs Go)")
    started: list[Receiver] = []

    def make(name: str = "recv", **kw: Any) -> Receiver:
        r = Receiver(tmp_path / f"{name}.ndjson", **kw)
        started.append(r)
        return r.start()

    yield make
    for r in started:
        r.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1/localhost, one for another name only, an
    expired one, a client certificate, and a second CA that signed nothing we use."""
    openssl = need_tool("openssl")
    d = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True, timeout=60)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=pybeat test {ca}",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    (d / "wrong-name.ext").write_text("subjectAltName=DNS:logstash.example\n")
    for name, ext, days in (("server", "server.ext", "2"), ("client", "client.ext", "2"),
                            ("wrong-name", "wrong-name.ext", "2"), ("expired", "server.ext", "-1")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", days, "-extfile", ext, "-out", f"{name}.crt")
    # what a server that sends its CA along presents: leaf then CA (ssl.ca_trusted_fingerprint)
    (d / "server-chain.crt").write_bytes((d / "server.crt").read_bytes() + (d / "ca.crt").read_bytes())
    return {p.name: p for p in d.iterdir()}
